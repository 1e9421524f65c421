"""Wait events sampled between cycles, and blocking chains kept as history, on real sessions of the
throwaway PostgreSQL.

A holder keeps a row lock in an open transaction; two UPDATEs queue behind it (one with a password
in its text); a fourth session sleeps. The real collector's sampler samples them on its own
connection, real cycles drain the samples into the store; then the holder rolls back and the chain
ends. A second target, keeping only chains of a minute, sees the same and keeps none. The daemon's
sampling thread is checked on its own, and the Connections page drawn from the store.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import select

from collectors.postgres.chains import ChainTracker
from collectors.postgres.collector import PostgresCollector, _long_running
from collectors.postgres.waits import Sample, WaitSampler, wait_points
from collectors.scheduler import Scheduler
from dashboard.analysis import waits
from dashboard.core import metrics
from dashboard.core.config import PostgresTarget
from dashboard.core.health.chains import BlockingChain, ChainSession
from dashboard.core.records import Cycle, Status
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.reads import Window, blocking_chains, series_frame
from dashboard.store.schema import blocking_chains as chains_table
from dashboard.store.schema import targets
from tests.support.apptest import charts, no_exception, open_page
from tests.support.postgres import advisor_dsn, new_database
from tests.support.stores import make_config

KEEPS = "erp-waits"  # keeps chains of 1 s
STRICT = "erp-waits-strict"  # keeps chains of a minute
HOLDER_APP = "<b>holder</b> [x](http://e.x)"
SECRET = "s3cret-in-sql"
HOLDER_SQL = "UPDATE ledger SET note = note WHERE id = 1"
WAITER_SQL = f"UPDATE ledger SET note = 'password={SECRET}' WHERE id = 1"
EVERYTHING = Window(0, 4_000_000_000)


class Scene:
    """A holder idle in transaction, two waiters queued behind it, a sleeper."""

    def __init__(self, dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE ledger (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO ledger VALUES (1, '')")
        self.holder = psycopg.connect(dsn, application_name=HOLDER_APP)
        self.holder.execute(HOLDER_SQL)
        self.others = [psycopg.connect(dsn, autocommit=True, application_name=f"w{i}") for i in range(3)]
        self.pids = {
            "holder": self.holder.info.backend_pid,
            **{f"w{i}": c.info.backend_pid for i, c in enumerate(self.others)},
        }
        sqls = [WAITER_SQL, HOLDER_SQL, "SELECT pg_sleep(60)"]
        self.threads = [
            threading.Thread(target=self._run, args=(c, q)) for c, q in zip(self.others, sqls, strict=True)
        ]
        for thread in self.threads:
            thread.start()
            time.sleep(0.2)  # the waiters queue in order

    @staticmethod
    def _run(conn: psycopg.Connection, sql: str) -> None:
        with contextlib.suppress(psycopg.errors.QueryCanceled):
            conn.execute(sql)

    def wait_until_queued(self, dsn: str) -> None:
        deadline = time.monotonic() + 10
        with psycopg.connect(dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:
                waiting = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND application_name IN ('w0', 'w1')"
                ).fetchone()
                if waiting and waiting[0] == 2:
                    return
                time.sleep(0.05)
        raise AssertionError("the UPDATEs never queued behind the holder")

    def end(self) -> None:
        self.holder.rollback()
        self.others[2].cancel_safe()
        for thread in self.threads:
            thread.join(timeout=10)
        for conn in (self.holder, *self.others):
            conn.close()


@pytest.fixture(scope="module")
def history(pg: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Cycles of both targets: two while the chain lasts (sampled between them), one after it ended
    (sampled once more), and one with no sample taken in between (the cycle samples itself)."""
    db = new_database(pg, "waits")
    scene = Scene(pg.dsn(dbname=db))
    folder = tmp_path_factory.mktemp("waits")
    url = f"sqlite:///{folder / 'store.db'}"
    dsn = advisor_dsn(pg, db)
    targets = [
        {"name": KEEPS, "dsn": dsn, "interval": "15s", "blocking_history_after": "1s"},
        {"name": STRICT, "dsn": dsn, "interval": "15s", "blocking_history_after": "60s"},
    ]
    store = Store(url)
    now = [int(time.time()) - 60]
    scheduler = Scheduler(make_config(url, targets), store, clock=lambda: float(now[0]))
    cycles: list[list[Cycle]] = []

    def sample(times: int) -> None:
        for _ in range(times):
            for collector in scheduler.collectors:
                assert collector.sample_waits()
            time.sleep(0.4)

    def cycle() -> None:
        cycles.append(scheduler.run_once())
        now[0] += 15

    try:
        scene.wait_until_queued(pg.dsn(dbname=db))
        sample(3)
        cycle()
        sample(3)
        cycle()
        scene.end()
        sample(1)
        cycle()
        cycle()
    finally:
        scene.end() if scene.threads[0].is_alive() else None
        for collector in scheduler.collectors:
            collector.close_sampler()
        store.close()
    config_file = folder / "observatory.yaml"
    config_file.write_text(
        f"store: {url}\ntargets:\n  postgres:\n    - name: {KEEPS}\n      dsn: {dsn}\n"
        "      blocking_history_after: 1s\n"
    )
    yield {"url": url, "config": str(config_file), "db": db, "pids": scene.pids, "cycles": cycles}


def _tid(url: str, name: str) -> int:
    """The target's id: the collectors' threads create them in no set order."""
    engine = make_engine(url, readonly=True)
    try:
        with engine.connect() as conn:
            return conn.execute(select(targets.c.id).where(targets.c.name == name)).scalar_one()
    finally:
        engine.dispose()


def _stored(url: str, target: str, name: str) -> dict[str, dict[int, float]]:
    """A series' stored values by label set, then by ts."""
    engine = make_engine(url, readonly=True)
    try:
        frame = series_frame(engine, [_tid(url, target)], [name], EVERYTHING, "raw")
    finally:
        engine.dispose()
    found: dict[str, dict[int, float]] = {}
    for row in frame.itertuples():
        found.setdefault(row.labels, {})[int(row.ts)] = row.sum
    return found


def _chains(url: str, target: str) -> list:
    engine = make_engine(url, readonly=True)
    try:
        return blocking_chains(engine, _tid(url, target), EVERYTHING)
    finally:
        engine.dispose()


def test_cycles_succeed(history) -> None:
    states = [
        (c.status.state, c.status.error, c.status.hints) for round_ in history["cycles"] for c in round_
    ]
    assert states == [("ok", None, [])] * 8


def test_waits_are_averaged_over_the_samples_between_cycles(history) -> None:
    samples = _stored(history["url"], KEEPS, metrics.PG_WAITS_SAMPLES)[""]
    assert list(samples.values()) == [3.0, 3.0, 1.0, 1.0]  # the last cycle sampled itself
    waits_by = _stored(history["url"], KEEPS, metrics.PG_WAITS_SESSIONS)
    mine = {
        metrics.decode(k)["type"] + ":" + metrics.decode(k)["event"]: v
        for k, v in waits_by.items()
        if metrics.decode(k)["datname"] == history["db"]
    }
    first = min(samples)
    # Both UPDATEs wait on a lock in every sample while the chain lasts; the sleeper sleeps.
    lock = {k: v for k, v in mine.items() if k.startswith("Lock:")}
    assert sum(v[first] for v in lock.values()) == 2.0, mine
    assert mine["Timeout:PgSleep"][first] == 1.0
    # After the rollback the locks are gone from the samples.
    assert all(max(v) < first + 30 for v in lock.values()), lock


def test_a_chain_that_lasts_is_kept_once_with_its_root(history) -> None:
    found = _chains(history["url"], KEEPS)
    assert len(found) == 1, found
    chain, pids = found[0], history["pids"]
    assert chain.root.pid == pids["holder"] and chain.root.application == HOLDER_APP
    assert chain.root.state == "idle in transaction" and chain.root.query == HOLDER_SQL
    assert chain.waited == 2 and chain.most_at_once == 2
    assert {w.pid for w in chain.waiting} == {pids["w0"], pids["w1"]}
    assert chain.lasted_s >= 2  # six samples 0.4 s apart, after the UPDATEs queued
    assert chain.started <= chain.last_seen
    written = [c for round_ in history["cycles"] for c in round_ if c.target == KEEPS]
    assert [len(c.chains) for c in written] == [1, 1, 1, 0]  # going on, going on, ended, gone


def test_passwords_never_reach_the_store(history) -> None:
    chain = _chains(history["url"], KEEPS)[0]
    waiter = next(w for w in chain.waiting if w.pid == history["pids"]["w0"])
    assert waiter.query == "UPDATE ledger SET note = 'password=***' WHERE id = 1"
    engine = make_engine(history["url"], readonly=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(chains_table.c.chain)).scalars().all()
    finally:
        engine.dispose()
    assert rows and all(SECRET not in r for r in rows)


def test_a_shorter_chain_than_the_threshold_is_not_kept(history) -> None:
    assert _chains(history["url"], STRICT) == []
    written = [c for round_ in history["cycles"] for c in round_ if c.target == STRICT]
    assert all(c.chains == [] for c in written)


def test_daemon_samples_between_cycles_and_closes_its_connection(pg: ThrowawayPostgres, store: Store) -> None:
    db = new_database(pg, "sampling")
    config = make_config(
        store.url,
        [{"name": "sampled", "dsn": advisor_dsn(pg, db), "interval": "3s", "health": {"waits": "1s"}}],
    )
    scheduler = Scheduler(config, store)
    thread = threading.Thread(target=scheduler.run_forever)
    thread.start()
    try:
        time.sleep(6.5)
    finally:
        scheduler.stop()
        thread.join(timeout=20)
    counts = list(_stored(store.url, "sampled", metrics.PG_WAITS_SAMPLES)[""].values())
    assert counts[0] == 1.0 and max(counts) >= 2.0, counts  # the first cycle sampled itself
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'observatory'",
            (db,),
        ).fetchone()
    assert left == (0,)


def test_connections_page_shows_waits_and_history(monkeypatch, history) -> None:
    at = open_page(monkeypatch, history["config"], "connections")
    no_exception(at)
    drawn = {c["title"]: c for c in charts(at)}
    kinds = {s["label"] for s in drawn["Active sessions by wait type"]["series"]}
    assert {"Lock", "Timeout"} <= kinds
    # The two grids are drawn once their expanders are opened (the page's speed).
    assert not any("root_query" in d.value.columns or "meaning" in d.value.columns for d in at.dataframe)
    labels = [e.label for e in at.expander]
    assert "Every chain, the latest first (1)" in labels
    assert any(label.startswith("The top wait events\\: ") for label in labels), labels
    for section in ("chains", "waits"):
        at.session_state[f"connections:{section}:{KEEPS}"] = True
    at.run()
    no_exception(at)
    tables = [d.value for d in at.dataframe]
    chains = next(t for t in tables if "root_query" in t.columns)
    assert chains.iloc[0]["root"] == str(history["pids"]["holder"])
    assert chains.iloc[0]["application"] == HOLDER_APP and chains.iloc[0]["waited"] == 2
    top = next(t for t in tables if "meaning" in t.columns)
    lock = top[top["type"] == "Lock"]
    assert not lock.empty and lock.iloc[0]["meaning"] == waits.MEANING["Lock"]
    assert abs(top["share"].sum() - 1.0) < 1e-9
    captions = "\n".join(c.value for c in at.caption)
    assert "1 blocking chain lasted 1 s or more" in captions


def test_a_sampled_cycle_without_waits_counts_as_zero(store: Store) -> None:
    """Averages over the window divide by every cycle that sampled, idle ones included."""
    busy = Sample(1000.0, [{"datname": "db", "type": "Lock", "event": "tuple", "sessions": 2}], [])
    for ts, sample in ((1000, busy), (1015, Sample(1015.0, [], []))):
        store.write_cycle(Cycle("postgres", "w", ts, Status(), points=wait_points([sample])))
    frame = series_frame(store.engine, [store.target_id("postgres", "w")], waits.SERIES, EVERYTHING, "raw")
    top = waits.top_events(frame)
    assert top[["type", "event", "sessions", "share"]].values.tolist() == [["Lock", "tuple", 1.0, 1.0]]
    assert waits.by_type(frame).values.tolist() == [[1000, "Lock", 2.0], [1015, "Lock", 0.0]]


# -- what the review found ---------------------------------------------------------------------------
def test_a_text_that_is_not_utf8_is_a_hint_never_a_down_target(pg: ThrowawayPostgres, store: Store) -> None:
    """A SQL_ASCII database lets a client send any bytes; the session waiting with them on a lock
    is in the sample's JSON, which psycopg cannot decode."""
    db = f"latin_{int(time.time() * 1000) % 10**8}"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {db} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        )
    with psycopg.connect(pg.dsn(dbname=db), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t VALUES (1, '')")
    holder = psycopg.connect(pg.dsn(dbname=db))
    holder.execute("UPDATE t SET v = 'a' WHERE id = 1")
    waiter = psycopg.connect(pg.dsn(dbname=db), autocommit=True)
    thread = threading.Thread(target=Scene._run, args=(waiter, b"UPDATE t SET v = 'caf\xe9' WHERE id = 1"))
    thread.start()
    try:
        time.sleep(1.0)
        scheduler = Scheduler(
            make_config(store.url, [{"name": "latin", "dsn": advisor_dsn(pg, "postgres")}]), store
        )
        collector = scheduler.collectors[0]
        assert collector.sample_waits() is False  # refused, not raised: the sampling goes on
        (cycle,) = scheduler.run_once()
    finally:
        holder.rollback()
        thread.join(timeout=10)
        holder.close()
        waiter.close()
    assert cycle.status.state == "ok", cycle.status
    assert any(h.startswith("wait events could not be sampled: ") for h in cycle.status.hints)
    assert collector.sample_waits() is False  # in its pause after the failure, no reconnection
    collector.close_sampler()


def test_the_samplers_warning_never_holds_the_password(caplog: pytest.LogCaptureFixture) -> None:
    secret = "hunter2-in-dsn"
    dsn = f"postgresql://u:{secret}@127.0.0.1:1/db?sslmode=bogus-{secret}"
    collector = PostgresCollector(PostgresTarget(name="leaky", dsn=dsn), None)  # type: ignore[arg-type]
    with caplog.at_level("WARNING", logger="observatory.collect"):
        assert collector.sample_waits() is False
    assert "wait sampler" in caplog.text and secret not in caplog.text


def test_a_server_that_cannot_be_read_is_tried_again_after_a_growing_pause() -> None:
    attempts, now = [], [0.0]

    def connect() -> psycopg.Connection:
        attempts.append(now[0])
        return psycopg.connect("postgresql://u@127.0.0.1:1/db", connect_timeout=1)

    sampler = WaitSampler(connect, lambda conn: {}, str, clock=lambda: now[0])
    for _ in range(60):  # a minute of ticks every second
        sampler.sample()
        now[0] += 1.0
    assert attempts == [0.0, 5.0, 15.0, 35.0]  # 5, 10, 20 s apart, not 60 times


def _lock_rows(now: float, *waits: tuple[int, int, float, float | None]) -> Sample:
    """A sample whose locks are (pid, blocked by, statement start, lock wait start); the blockers
    are added as idle sessions."""
    rows = {
        pid: {"pid": pid, "blocked_by": [by], "query_start": q, "wait_start": w, "backend_start": 1.0}
        for pid, by, q, w in waits
    }
    for _, by, _, _ in waits:
        rows.setdefault(by, {"pid": by, "blocked_by": [], "query_start": 1.0, "backend_start": 1.0})
    return Sample(now, [], [{"state": "active", "query": "", **r} for r in rows.values()])


def test_a_chain_that_changes_hands_does_not_inherit_the_wait_before() -> None:
    """A blocks B and C; A commits, B gets the row and now blocks C: B's chain began when it took
    over, not when C began waiting behind A."""
    tracker = ChainTracker(after_s=5)
    for t in range(100, 110, 2):
        assert tracker.observe(_lock_rows(t, (2, 1, 95.0, None), (3, 2, 96.0, None))) == []
    ended = tracker.observe(_lock_rows(110, (3, 2, 96.0, None)))  # A (1) gone: B (2) is the root
    assert [(c.root.pid, c.started, c.last_seen) for c in ended] == [(1, 95, 108)]
    tracker.observe(_lock_rows(112, (3, 2, 96.0, None)))
    (b,) = tracker.observe(_lock_rows(116, (3, 2, 96.0, None))) or tracker.ongoing()
    assert (b.root.pid, b.started) == (2, 108)  # C was waiting at 108, behind A


def test_the_lock_wait_start_is_used_where_the_server_has_it() -> None:
    """A long statement that waits a moment on a lock is not a long chain (pg_locks.waitstart, 14+)."""
    tracker = ChainTracker(after_s=5)
    tracker.observe(_lock_rows(100, (2, 1, 92.0, 99.5)))  # its statement began 8 s before its wait
    ended = tracker.observe(_lock_rows(101, (9, 8, 100.0, None)))
    assert ended == []  # 1 s of waiting: not kept


def test_a_restarted_collector_does_not_store_a_chain_twice(store: Store) -> None:
    def chain(started: int, last_seen: int, waited: int) -> BlockingChain:
        return BlockingChain(
            root=ChainSession(pid=10), started=started, last_seen=last_seen, waited=waited, most_at_once=1
        )

    store.write_cycle(Cycle("postgres", "db", 120, Status(), chains=[chain(100, 120, 2)]))
    # The daemon restarted; the earliest waiter left: the new tracker sees the chain start later.
    store.write_cycle(Cycle("postgres", "db", 140, Status(), chains=[chain(110, 140, 1)]))
    store.write_cycle(Cycle("postgres", "db", 160, Status(), chains=[chain(110, 160, 1)]))
    # Much later, the same session blocks again: another chain.
    store.write_cycle(Cycle("postgres", "db", 900, Status(), chains=[chain(890, 900, 1)]))
    found = blocking_chains(store.engine, store.target_id("postgres", "db"), EVERYTHING)
    assert [(c.started, c.last_seen, c.waited) for c in found] == [(890, 900, 1), (100, 160, 2)]


def test_long_running_after_is_sent_as_plain_decimals() -> None:
    assert _long_running(12 * 86400) == " -c observatory.long_running_s=1036800.000"
    assert _long_running(0.00001) == " -c observatory.long_running_s=0.000"
    assert _long_running(None) == ""
