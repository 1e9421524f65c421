"""The sessions health part and the Connections page, on real sessions of the throwaway PostgreSQL.

The store is built the way the daemon builds it: a session holds a row lock in an open transaction
(idle in transaction), another UPDATEs the same row with a password in its text and waits, a third
runs a long statement, and three real collector cycles read them (as a pg_monitor role). The page is
then drawn from that store, through AppTest and in Chromium.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from playwright.sync_api import Page
from sqlalchemy import select

from collectors.postgres.health import sessions as part
from dashboard.analysis import connections, health
from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core import config as config_mod
from dashboard.core import metrics
from dashboard.core.details import PostgresDetails
from dashboard.core.health.sessions import SessionsNow
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.reads import Window, series_frame, target_details
from dashboard.store.schema import target_status
from dashboard.ui import frame as ui
from tests.support.apptest import charts, no_exception, open_page, texts
from tests.support.browser import CELLS, charts_drawn, serve, settle, shoot
from tests.support.postgres import ADVISOR_ROLE, advisor_dsn, new_database
from tests.support.stores import collect_once, make_config

TARGET = "erp-sessions"
# Markup in an application_name (it is the client's to choose): it must be shown as written.
HOLDER_APP = "**holder** <img src=x> [go](http://e.x) :red[red]"
WAITER_APP = "billing-worker"
SECRET = "hunter2-s3cret"
BLOCKED_SQL = f"UPDATE accounts SET dsn = 'host=db password={SECRET}' WHERE id = 1"
HOLDER_SQL = "UPDATE accounts SET dsn = dsn WHERE id = 1"
EVERYTHING = Window(0, 4_000_000_000)


class Scene:
    """Real sessions on `db`: a holder idle in transaction, a waiter blocked by it, a sleeper."""

    def __init__(self, pg: ThrowawayPostgres, db: str) -> None:
        self.dsn = pg.dsn(dbname=db)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, dsn text)")
            conn.execute("INSERT INTO accounts VALUES (1, 'host=db')")
        self.holder = psycopg.connect(self.dsn, application_name=HOLDER_APP)
        self.holder.execute(HOLDER_SQL)  # the row lock, kept: the transaction stays open
        self.waiter = psycopg.connect(self.dsn, autocommit=True, application_name=WAITER_APP)
        self.sleeper = psycopg.connect(self.dsn, autocommit=True, application_name="reports")
        self.pids = {
            "holder": self.holder.info.backend_pid,
            "waiter": self.waiter.info.backend_pid,
            "sleeper": self.sleeper.info.backend_pid,
        }
        self.threads = [
            threading.Thread(target=self._run, args=(self.waiter, BLOCKED_SQL)),
            threading.Thread(target=self._run, args=(self.sleeper, "SELECT pg_sleep(120)")),
        ]
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _run(conn: psycopg.Connection, sql: str) -> None:
        with contextlib.suppress(psycopg.errors.QueryCanceled):  # the sleeper, ended by end()
            conn.execute(sql)

    def wait_until_blocked(self, pg: ThrowawayPostgres) -> None:
        deadline = time.monotonic() + 10
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            while time.monotonic() < deadline:
                found = conn.execute("SELECT pg_blocking_pids(%s)", (self.pids["waiter"],)).fetchone()
                if found and found[0] == [self.pids["holder"]]:
                    return
                time.sleep(0.05)
        raise AssertionError("the UPDATE never waited for the holder's lock")

    def end(self) -> None:
        self.holder.rollback()  # the waiter's UPDATE goes through
        self.sleeper.cancel_safe()
        for thread in self.threads:
            thread.join(timeout=10)
        for conn in (self.holder, self.waiter, self.sleeper):
            conn.close()


@pytest.fixture(scope="module")
def blocked(pg: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A SQLite store of three collector cycles, 15 s apart, of the scene; and its config file."""
    db = new_database(pg, "sessions")
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        # "Long" is 1 s here (60 s by default), for this database alone: the sleeper counts.
        conn.execute(f"ALTER ROLE {ADVISOR_ROLE} IN DATABASE {db} SET observatory.long_running_s = '1'")
    scene = Scene(pg, db)
    folder = tmp_path_factory.mktemp("sessions")
    url = f"sqlite:///{folder / 'store.db'}"
    dsn = advisor_dsn(pg, db)  # pg_monitor, not a superuser: what the README asks for
    config = make_config(url, [{"name": TARGET, "dsn": dsn, "interval": "15s"}])
    store = Store(url)
    now = int(time.time())
    try:
        scene.wait_until_blocked(pg)
        time.sleep(1.2)  # past the 1 s threshold: the sleeper and the waiter run "long"
        cycles = [collect_once(config, store, ts)[0] for ts in (now - 30, now - 15, now)]
    finally:
        scene.end()
        store.close()
    config_file = folder / "observatory.yaml"
    config_file.write_text(f"store: {url}\ntargets:\n  postgres:\n    - name: {TARGET}\n      dsn: {dsn}\n")
    yield {"url": url, "config": str(config_file), "db": db, "pids": scene.pids, "now": now, "cycles": cycles}


def stored_now(url: str) -> tuple[SessionsNow, str]:
    """The snapshot as the pages read it, and the details' JSON as stored."""
    engine = make_engine(url, readonly=True)
    try:
        details = target_details(engine, 1)
        with engine.connect() as conn:
            raw = conn.execute(select(target_status.c.details)).scalar_one()
    finally:
        engine.dispose()
    assert isinstance(details, PostgresDetails) and details.sessions is not None
    return details.sessions, raw


def stored_points(url: str, name: str, labels: str) -> dict[int, float]:
    engine = make_engine(url, readonly=True)
    try:
        frame = series_frame(engine, [1], [name], EVERYTHING, "raw")
    finally:
        engine.dispose()
    frame = frame[frame["labels"] == labels]
    return dict(zip(frame["ts"].astype(int), frame["sum"], strict=True))


# -- what is collected ----------------------------------------------------------------------------
def test_cycles_succeed_as_a_pg_monitor_role(blocked) -> None:
    states = [(c.status.state, c.status.error) for c in blocked["cycles"]]
    assert states == [("ok", None)] * 3


def test_blocked_update_names_the_idle_transaction_as_its_root(blocked) -> None:
    now, _ = stored_now(blocked["url"])
    holder, waiter = blocked["pids"]["holder"], blocked["pids"]["waiter"]
    by_pid = now.by_pid()
    w, h = by_pid[waiter], by_pid[holder]
    assert w.blocked_by == (holder,) and w.roots == (holder,)
    assert w.wait_event_type == "Lock" and w.state == "active" and w.application == WAITER_APP
    assert w.datname == blocked["db"] and w.query_s >= 1.0
    assert holder in now.roots and waiter not in now.roots
    assert not h.blocked and h.idle_in_transaction and h.application == HOLDER_APP
    assert h.query == HOLDER_SQL and h.xact_s >= h.state_s >= 1.0
    assert now.ts == blocked["now"] and now.long_running_s == 1.0
    assert now.blocked_total >= 1 and now.idle_in_transaction_total >= 1


def test_long_running_and_idle_lists(blocked) -> None:
    now, _ = stored_now(blocked["url"])
    pids = blocked["pids"]
    long = {s.pid for s in now.long_running()}
    assert {pids["sleeper"], pids["waiter"]} <= long  # active > 1 s: sleeping, and waiting for a lock
    assert pids["holder"] not in long  # idle: not running
    assert pids["holder"] in {s.pid for s in now.idle_in_transaction()}
    assert all(s.application not in part.OWN for s in now.sessions)  # the collector left itself out


def test_password_in_a_blocked_statement_is_masked(blocked) -> None:
    now, raw = stored_now(blocked["url"])
    text = now.by_pid()[blocked["pids"]["waiter"]].query
    assert text == "UPDATE accounts SET dsn = 'host=db password=***' WHERE id = 1"
    assert SECRET not in raw  # nowhere in what the store keeps


def test_count_points_per_database(blocked) -> None:
    labels, url, now = metrics.encode({"datname": blocked["db"]}), blocked["url"], blocked["now"]
    times = [now - 30, now - 15, now]
    assert stored_points(url, metrics.PG_SESSIONS_BLOCKED, labels) == dict.fromkeys(times, 1.0)
    assert stored_points(url, metrics.PG_SESSIONS_IDLE_IN_TRANSACTION, labels) == dict.fromkeys(times, 1.0)
    assert stored_points(url, metrics.PG_SESSIONS_LONG_RUNNING, labels) == dict.fromkeys(times, 2.0)
    oldest = stored_points(url, metrics.PG_SESSIONS_IDLE_IN_TRANSACTION_OLDEST_S, labels)
    assert list(oldest) == times and oldest[now] >= oldest[now - 30] >= 1.0  # it ages cycle by cycle
    holder = metrics.encode({"datname": blocked["db"], "usename": "postgres", "application": HOLDER_APP})
    assert stored_points(url, metrics.PG_CONNECTIONS_BY_CLIENT, holder) == dict.fromkeys(times, 1.0)


def test_client_combinations_are_capped(pg: ThrowawayPostgres, store: Store) -> None:
    db = new_database(pg, "tenants")
    opened = [
        psycopg.connect(pg.dsn(dbname=db), application_name=f"tenant-{i:02d}")
        for i in range(part.TOP_CLIENTS + 3)
    ]
    try:
        config = make_config(store.url, [{"name": "many", "dsn": pg.dsn(dbname=db)}])
        cycle = collect_once(config, store)[0]
    finally:
        for conn in opened:
            conn.close()
    found = [p for p in cycle.points if p.name == metrics.PG_CONNECTIONS_BY_CLIENT]
    apps = [metrics.decode(p.labels)["application"] for p in found]
    assert len(found) == part.TOP_CLIENTS + 1 and apps[-1] == part.OTHER
    tenants = [a for a in apps if a.startswith("tenant-")]
    # Every combination has one connection here (unless another test left some): kept by name.
    assert tenants == sorted(tenants)
    clients = cycle.status.details.sessions.clients
    assert sum(c.connections for c in clients) >= part.TOP_CLIENTS + 3
    assert clients[-1].datname == part.OTHER and clients[-1].connections >= 3
    assert all(a not in part.OWN for a in apps)


def test_a_chain_of_three_and_a_circle() -> None:
    """blocking_rows on a snapshot as the part reads it: root, then each waiter under its blocker."""
    row = {
        "long_running_s": 60.0,
        "clients": [],
        "sessions": [
            _row(1, [], "idle in transaction", None),
            _row(2, [1], "active", "Lock"),
            _row(3, [1, 2], "active", "Lock"),
            _row(7, [8], "active", "Lock"),  # 7 and 8 wait for each other (a deadlock, for now)
            _row(8, [7], "active", "Lock"),
            _row(9, [0], "active", "Lock"),  # a prepared transaction holds its lock
        ],
    }
    now = part.read([row], 100).snapshot
    assert now.roots == (1, 0)
    assert {s.pid: s.roots for s in now.blocked()} == {2: (1,), 3: (1,), 7: (), 8: (), 9: (0,)}
    rows = [(depth, pid) for depth, _, pid in connections.blocking_rows(now)]
    assert rows == [(0, 1), (1, 2), (2, 3), (0, 0), (1, 9), (0, 7), (1, 8)]
    table = connections.blocking_table(now)
    assert table["role"].tolist() == ["root blocker", "blocked, blocks others", "blocked", "root blocker",
                                      "blocked", "waiting in a circle", "waiting in a circle"]  # fmt: skip
    assert "prepared transaction" in table["query"].iloc[3]
    # `observatory health`: each root an error; the prepared one with the statements that end it.
    found = health.connection_findings(now)
    assert [f.subject.split(" (")[0] for f in found if f.level == "error"] == [
        "pid 1",
        "a prepared transaction",
    ]
    assert (
        "COMMIT PREPARED or ROLLBACK PREPARED" in found[1].fix
        and "pg_terminate_backend(0)" not in found[1].fix
    )


def _row(pid: int, blocked_by: list[int], state: str, wait: str | None) -> dict:
    return {
        "pid": pid, "datname": "d", "usename": "u", "application": "a", "client": None,
        "backend_type": "client backend", "state": state, "wait_event_type": wait, "wait_event": None,
        "query": "select 1", "xact_s": 10.0 - pid, "query_s": 10.0 - pid, "state_s": 1.0,
        "blocked_by": blocked_by,
    }  # fmt: skip


# -- the page -------------------------------------------------------------------------------------
def test_page_shows_who_blocks_whom(monkeypatch, blocked) -> None:
    at = open_page(monkeypatch, blocked["config"], "connections")
    no_exception(at)
    holder, waiter = blocked["pids"]["holder"], blocked["pids"]["waiter"]
    warning = texts(at.warning)
    assert f"pid {holder}" in warning and "Root blocker" in warning
    assert ui.md_escape(HOLDER_APP) in warning and HOLDER_APP not in warning  # markup escaped
    metrics_row = {m.label: m.value for m in at.metric}
    assert int(metrics_row["Blocked sessions"]) >= 1
    assert metrics_row["Connections"].endswith("/ 100")
    chain = at.dataframe[0].value
    pids = chain["session"].str.strip("\u2003↳ ").astype(int).tolist()
    assert pids.index(holder) < pids.index(waiter)  # the root first, its waiter below
    mine = chain[chain["session"].str.endswith(str(waiter))].iloc[0]
    assert mine["session"].startswith(connections.INDENT) and mine["role"] == "blocked"
    assert SECRET not in mine["query"] and "password=***" in mine["query"]
    assert chain[chain["session"] == str(holder)].iloc[0]["application"] == HOLDER_APP  # as written
    drawn = {c["title"]: c for c in charts(at)}
    assert drawn["Connections by state"]["kind"] == "area"
    limit = [s for s in drawn["Connections and max_connections"]["series"] if s["label"] == "max_connections"]
    assert limit and limit[0]["dash"] and set(limit[0]["values"]) == {100.0}
    assert HOLDER_APP in {s["label"] for s in drawn["Connections by application"]["series"]}
    counts = {s["label"]: s["values"] for s in drawn["Blocked, long-running, idle in transaction"]["series"]}
    assert min(counts["blocked"]) >= 1


def test_page_in_chromium(page: Page, blocked, tmp_path_factory) -> None:
    with serve(blocked["config"], tmp_path_factory) as url:
        page.set_viewport_size({"width": 1440, "height": 4000})
        started = time.monotonic()
        page.goto(f"{url}/connections")
        page.get_by_role("heading", name="Connections").first.wait_for()
        settle(page)
        drawn = charts_drawn(page, 7)
        settled = time.monotonic() - started
        print(f"\nConnections page settled in {settled:.2f} s with {drawn} charts")
        assert drawn == 7  # with the wait events, sampled by each cycle
        assert page.get_by_text("Root blocker").count() >= 1
        # each grid fills its cells when it is drawn: wait for the sessions' grid, not just the first
        holder = re.compile(rf"^{blocked['pids']['holder']}$")
        page.locator(CELLS, has_text=holder).first.wait_for(state="attached", timeout=30_000)
        cells = page.locator(CELLS).all_text_contents()
        assert HOLDER_APP in cells and str(blocked["pids"]["holder"]) in cells, cells[:40]
        assert page.locator("img[src='x']").count() == 0  # the application_name stayed text
        assert page.locator("[data-testid='stException']").count() == 0
        assert settled < 15, settled
        shoot(page, "connections")


def test_health_names_the_root_blocker_first(blocked) -> None:
    """`observatory health`'s connections area: the holder is an error, naming whom it blocks and
    the statement that ends it; the sleeper, not blocked, is a long-running warning."""
    reader = Reader.open(config_mod.load(blocked["config"]))
    try:
        found = [f for f in health.findings(reader, Target(1, TARGET)) if f.area == "connections"]
    finally:
        reader.store.close()
    holder, sleeper = blocked["pids"]["holder"], blocked["pids"]["sleeper"]
    first = found[0]
    assert (first.level, first.subject.split(" (")[0]) == ("error", f"pid {holder}")
    assert first.problem.startswith("blocks 1 session, idle in transaction for ")
    assert first.fix == f"end its transaction, or SELECT pg_terminate_backend({holder});"
    assert any(
        f.level == "warning" and f.subject == f"pid {sleeper}" and "running for" in f.problem for f in found
    )
    assert health.headline(found)["connections"] == first


def test_long_running_after_in_the_config_wins_over_the_role_setting(
    pg: ThrowawayPostgres, store: Store
) -> None:
    db = new_database(pg, "longcfg")
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {ADVISOR_ROLE} IN DATABASE {db} SET observatory.long_running_s = '1000'")
    sleeper = psycopg.connect(pg.dsn(dbname=db), autocommit=True, application_name="nightly")
    thread = threading.Thread(target=Scene._run, args=(sleeper, "SELECT pg_sleep(30)"))
    thread.start()
    try:
        time.sleep(1.5)
        target = {"name": "long", "dsn": advisor_dsn(pg, db), "long_running_after": "1s"}
        (cycle,) = collect_once(make_config(store.url, [target]), store)
    finally:
        sleeper.cancel_safe()
        thread.join(timeout=10)
        sleeper.close()
    assert cycle.status.state == "ok", cycle.status
    now = cycle.status.details.sessions
    assert now.long_running_s == 1.0
    assert [s.application for s in now.long_running()] == ["nightly"]
