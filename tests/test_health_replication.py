"""The replication health part and the Replication page, on real servers: a throwaway primary and a
streaming replica made by pg_basebackup (ThrowawayReplica), both collected as targets.

One scenario, collected as the daemon collects it (four cycles of both targets, 30 s apart):
steady, replay paused on the replica while the primary writes, resumed and caught up, and the
replica stopped. The replica connects through a slot and under a name full of Markdown; a second
slot is created and left without a consumer. The tests read the cycles, the store and the page.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from playwright.sync_api import Page

from collectors.postgres.health.replication import _replica_names
from dashboard.analysis import replication as views
from dashboard.core import metrics
from dashboard.core.health import ReplicationNow
from dashboard.core.records import Cycle
from dashboard.servers.throwaway import ThrowawayPostgres, ThrowawayReplica
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.reads import Window, series_frame, target_statuses
from dashboard.ui import frame as ui
from tests.support.apptest import charts, no_exception, open_page, texts
from tests.support.browser import CELLS, chart_frame_tags, chart_texts, charts_drawn, serve, settle, shoot
from tests.support.stores import collect_once, make_config

REPLICA = "replica_1 **bold** [link](http://x.test) :red[red] <b>b</b>"  # its application_name
SLOT, STALE = "replica_1_slot", "stale_slot"
MONITOR = "repl_monitor"
STEPS = ("steady", "lagging", "cleared", "gone")
EVERYTHING = Window(0, 4_000_000_000)
# WAL the server writes on its own (a running-transactions record) may arrive between "caught up"
# and the cycle: a few hundred bytes, against the >10 kB of the paused writes.
SLACK = 4096


def _wait(check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _caught_up(primary: psycopg.Connection) -> bool:
    row = primary.execute(
        "SELECT count(*) = 1 AND bool_and(replay_lsn = pg_current_wal_lsn()) FROM pg_stat_replication"
    ).fetchone()
    return bool(row[0])


def _received(replica: psycopg.Connection, lsn: str) -> bool:
    return bool(replica.execute("SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0])


def _write(primary: psycopg.Connection) -> str:
    """A transaction on the primary; the WAL position after it."""
    primary.execute("INSERT INTO ticks SELECT generate_series(1, 2000)")
    return str(primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0])


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """{cycles: step -> (primary's cycle, replica's cycle), url, config, now, ports}."""
    folder = tmp_path_factory.mktemp("replication")
    url = f"sqlite:///{folder / 'store.db'}"
    with ThrowawayPostgres() as primary:
        with psycopg.connect(primary.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute(f"CREATE ROLE {MONITOR} LOGIN IN ROLE pg_monitor")
            conn.execute("CREATE TABLE ticks (n int)")
        replica = ThrowawayReplica(primary, application_name=REPLICA, slot=SLOT).start()
        try:
            targets = [
                {"name": "main", "dsn": primary.dsn(user=MONITOR), "interval": "30s"},
                {"name": "standby", "dsn": replica.dsn(user=MONITOR), "interval": "30s"},
            ]
            config = make_config(url, targets)
            store = Store(url)
            now = int(time.time())
            cycles = _run(primary, replica, config, store, now)
            store.close()
        finally:
            replica.stop()
        config_file = folder / "observatory.yaml"
        lines = [f"store: {url}", "targets:", "  postgres:"]
        lines += [f"    - name: {t['name']}\n      dsn: {t['dsn']}\n      interval: 30s" for t in targets]
        config_file.write_text("\n".join(lines) + "\n")
        yield {"cycles": cycles, "url": url, "config": str(config_file), "now": now}


def _run(primary, replica, config, store: Store, now: int) -> dict[str, tuple[Cycle, Cycle]]:
    cycles = {}
    with (
        psycopg.connect(primary.dsn(), autocommit=True) as p,
        psycopg.connect(replica.dsn(), autocommit=True) as r,
    ):
        p.execute(f"SELECT pg_create_physical_replication_slot('{STALE}', true)")
        _write(p)
        _wait(lambda: _caught_up(p), "the replica to replay")
        cycles["steady"] = collect_once(config, store, now - 120)
        r.execute("SELECT pg_wal_replay_pause()")
        time.sleep(1.2)  # the replica's last replayed commit grows older
        lsn = _write(p)
        _wait(lambda: _received(r, lsn), "the replica to receive the WAL")
        cycles["lagging"] = collect_once(config, store, now - 90)
        r.execute("SELECT pg_wal_replay_resume()")
        _wait(lambda: _caught_up(p), "the replica to catch up")
        cycles["cleared"] = collect_once(config, store, now - 60)
        _lose_stale_slot(p)
    replica.stop()
    with psycopg.connect(primary.dsn(), autocommit=True) as p:
        _wait(
            lambda: p.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0] == 0,
            "the walsender to go",
        )
    cycles["gone"] = collect_once(config, store, now - 30)
    return {step: (found[0], found[1]) for step, found in cycles.items()}


def _lose_stale_slot(primary: psycopg.Connection) -> None:
    """Cap the WAL slots may keep, then move past it: the checkpoint invalidates the stale slot,
    while the streaming replica keeps its own slot current."""
    primary.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
    primary.execute("SELECT pg_reload_conf()")
    for _ in range(3):
        _write(primary)
        primary.execute("SELECT pg_switch_wal()")
    _wait(lambda: _caught_up(primary), "the replica to catch up")
    primary.execute("CHECKPOINT")


def snap(cycle: Cycle) -> ReplicationNow:
    found = cycle.status.details.replication
    assert found is not None, cycle.status
    return found


def point(cycle: Cycle, name: str, labels: str = "") -> float | None:
    values = [p.value for p in cycle.points if p.name == name and p.labels == labels]
    assert len(values) <= 1
    return values[0] if values else None


LAG = metrics.encode({"replica": REPLICA})


# -- the primary ------------------------------------------------------------------------------
def test_the_replica_streams_on_the_primarys_snapshot(scenario) -> None:
    main, _ = scenario["cycles"]["steady"]
    assert main.status.state == "ok", main.status
    now = snap(main)
    assert now.role == "primary"
    (replica,) = now.replicas
    assert replica.name == REPLICA  # as written: only pages escape it
    assert (replica.state, replica.sync_state, replica.client_addr) == ("streaming", "async", "127.0.0.1")
    assert replica.replay_bytes <= SLACK and replica.lag_s < views.LAG_HEALTHY_S
    assert point(main, metrics.PG_REPLICATION_REPLICAS) == 1
    assert point(main, metrics.PG_REPLICATION_LAG_BYTES, LAG) <= SLACK
    assert point(main, metrics.PG_REPLICATION_REPLAY_DELAY_S) is None  # a primary replays nothing
    # The page's line for it (its table is drawn once opened), as text: the page escapes it.
    assert views.replica_line(replica).startswith(f"{REPLICA}: streaming, async, replay lag ")
    assert views.replica_line(replica).endswith(" of WAL not replayed")


def test_lag_appears_while_replay_is_paused(scenario) -> None:
    main, _ = scenario["cycles"]["lagging"]
    (replica,) = snap(main).replicas
    assert replica.state == "streaming"
    assert replica.unsent_bytes == 0  # received, not replayed
    assert replica.replay_bytes is not None and replica.replay_bytes > 10_000  # 2,000 rows of WAL
    assert point(main, metrics.PG_REPLICATION_LAG_BYTES, LAG) == replica.replay_bytes
    # The primary's replay_lag is the last one measured: still running, it is not 0.
    assert replica.lag_s is None or replica.lag_s > 0


def test_lag_clears_once_the_replica_catches_up(scenario) -> None:
    main, _ = scenario["cycles"]["cleared"]
    (replica,) = snap(main).replicas
    assert replica.replay_bytes <= SLACK
    # pg_stat_replication keeps showing the lag it measured as the replica caught up (over a
    # second: the pause); caught up, it is no lag.
    assert replica.replay_lag_s is None or replica.replay_lag_s > 0
    assert replica.lag_s < views.LAG_HEALTHY_S
    assert point(main, metrics.PG_REPLICATION_LAG_S, LAG) < views.LAG_HEALTHY_S
    assert views.replica_findings(snap(main)) == []


def test_slots_active_inactive_and_retained_wal(scenario) -> None:
    main, _ = scenario["cycles"]["steady"]
    slots = {s.name: s for s in snap(main).slots}
    assert set(slots) == {SLOT, STALE}
    assert slots[SLOT].active and not slots[STALE].active
    assert slots[STALE].slot_type == "physical" and slots[STALE].wal_status == "reserved"
    assert slots[STALE].retained_bytes > slots[SLOT].retained_bytes >= 0  # the stale one keeps more
    assert views.slot_line(slots[SLOT]).startswith(f"{SLOT} (physical): active, WAL ")
    assert point(main, metrics.PG_REPLICATION_SLOTS_INACTIVE) == 1
    stale = metrics.encode({"slot": STALE})
    assert point(main, metrics.PG_REPLICATION_SLOT_RETAINED_BYTES, stale) == slots[STALE].retained_bytes
    (finding,) = views.slot_findings(snap(main))
    assert (finding.level, finding.subject) == ("warning", STALE)
    assert "is inactive" in finding.problem and "MiB of WAL" in finding.problem
    assert f"pg_drop_replication_slot('{STALE}')" in finding.fix


def test_a_lost_slot_and_a_stopped_replicas_slot(scenario) -> None:
    main, standby = scenario["cycles"]["gone"]
    now = snap(main)
    assert now.replicas == () and point(main, metrics.PG_REPLICATION_REPLICAS) == 0
    assert {s.name for s in now.inactive_slots} == {SLOT, STALE}
    assert point(main, metrics.PG_REPLICATION_SLOTS_INACTIVE) == 2
    slots = {s.name: s for s in now.slots}
    assert slots[STALE].wal_status == "lost" and slots[STALE].retained_bytes is None
    assert slots[SLOT].wal_status in ("reserved", "extended") and slots[SLOT].safe_wal_bytes is not None
    assert point(main, metrics.PG_REPLICATION_SLOT_RETAINED_BYTES, metrics.encode({"slot": STALE})) is None
    found = {f.subject: f for f in views.slot_findings(now)}
    assert found[STALE].level == "error" and "lost WAL" in found[STALE].problem
    assert found[SLOT].level == "warning" and "bring its replica back" in found[SLOT].fix
    assert standby.status.state == "down"


# -- the replica --------------------------------------------------------------------------------
def test_the_replica_reports_its_role_and_delay(scenario) -> None:
    cycles = scenario["cycles"]
    steady, lagging, cleared = (snap(cycles[step][1]) for step in ("steady", "lagging", "cleared"))
    assert cycles["steady"][1].status.state == "ok", cycles["steady"][1].status
    assert (steady.role, steady.receiver_status, steady.replay_paused) == ("replica", "streaming", False)
    assert steady.replay_delay_s < views.LAG_HEALTHY_S and steady.replay_bytes <= SLACK
    assert steady.replicas == () and steady.slots == ()
    assert lagging.replay_paused is True and lagging.replay_bytes > 10_000
    assert lagging.replay_delay_s >= 1.2  # its last replayed commit was before the pause
    assert point(cycles["lagging"][1], metrics.PG_REPLICATION_REPLAY_DELAY_S) == lagging.replay_delay_s
    problems = [f.problem for f in views.standby_findings(lagging, "standby")]
    assert problems == ["has its replay paused"]  # 1.2 s is below PgHero's 5 s
    assert cleared.replay_delay_s < views.LAG_HEALTHY_S and cleared.replay_paused is False
    assert views.standby_findings(cleared, "standby") == []


def test_the_stored_series(scenario) -> None:
    now = scenario["now"]
    engine = make_engine(scenario["url"], readonly=True)
    try:
        ids = dict(zip(target_statuses(engine)["name"], target_statuses(engine)["target_id"], strict=True))
        frame = series_frame(engine, [ids["main"]], views.SERIES, EVERYTHING, "raw")
        delays = series_frame(engine, [ids["standby"]], views.SERIES, EVERYTHING, "raw")
    finally:
        engine.dispose()
    lag = views.lag_mib(frame).set_index("ts")["value"]
    assert list(lag.index) == [now - 120, now - 90, now - 60]  # none once it is gone
    assert lag[now - 120] < SLACK / 2**20 < lag[now - 90] and lag[now - 60] < SLACK / 2**20
    retained = views.retained_mib(frame)
    assert set(retained["series"]) == {SLOT, STALE} and len(retained) == 7  # none once lost
    delay = views.replay_delay(delays).set_index("ts")["value"]
    assert delay[now - 120] < views.LAG_HEALTHY_S and delay[now - 90] >= 1.2
    assert delay[now - 60] < views.LAG_HEALTHY_S
    (gone,) = views.gone_replicas(frame, snap(scenario["cycles"]["gone"][0]))
    assert gone.subject == REPLICA and "not connected now" in gone.problem


def test_replicas_that_share_a_name_are_told_apart() -> None:
    rows = [
        {"application_name": "walreceiver", "client_addr": "10.0.0.1"},
        {"application_name": "walreceiver", "client_addr": "10.0.0.2"},
        {"application_name": "walreceiver", "client_addr": "10.0.0.2"},
        {"application_name": "a", "client_addr": None},
    ]
    assert _replica_names(rows) == [
        "walreceiver (10.0.0.1)",
        "walreceiver (10.0.0.2) #1",
        "walreceiver (10.0.0.2) #2",
        "a",
    ]


# -- the page -----------------------------------------------------------------------------------
def test_the_page(monkeypatch, scenario) -> None:
    at = open_page(monkeypatch, scenario["config"], "replication", window="1h")
    no_exception(at)
    roles = [m.value for m in at.metric if m.label == "Role"]
    assert roles == ["primary", "replica"]
    inactive = next(m for m in at.metric if m.label == "Inactive slots")
    assert inactive.value == "2" and "retained by 2 slots" in inactive.delta
    warnings, errors = texts(at.warning), texts(at.error)
    assert ui.md_escape(SLOT) in warnings and ui.md_escape(f"pg_drop_replication_slot('{SLOT}');") in warnings
    assert ui.md_escape(STALE) in errors and ui.md_escape("rebuild its replica") in errors
    assert ui.md_escape(REPLICA) in warnings and "not connected now" in warnings  # escaped
    assert "<b>" not in warnings and "**bold**" not in warnings
    assert ui.md_escape("standby") in errors  # down: its banner
    assert [m.value for m in at.metric if m.label == "WAL receiver"] == ["streaming"]  # its last reading
    # Each slot is a line at first; their table is drawn once its expander is opened (issue 11).
    assert not at.dataframe
    assert [e.label for e in at.expander] == ["The 2 slots: WAL retained, safe WAL and xmin age (2 inactive)"]
    listed = texts(at.markdown)
    assert ui.md_escape(f"{STALE} (physical): inactive, WAL lost") in listed
    assert ui.md_escape(f"{SLOT} (physical): inactive, WAL") in listed
    assert "No replica streams from this server now." in texts(at.caption)  # the replica stopped
    at.session_state["replication:slots:main"] = True
    at.run()
    no_exception(at)
    assert texts(at.warning) == warnings and texts(at.error) == errors  # the same lines, opened or not
    slots = next(d.value for d in at.dataframe if "slot" in d.value.columns)
    assert slots.set_index("slot")["active"].to_dict() == {SLOT: False, STALE: False}
    drawn = {c["title"]: c for c in charts(at)}
    assert list(drawn) == [
        "Replay lag per replica",
        "WAL not yet replayed per replica",
        "WAL retained per slot",
        "Replay delay",
    ]
    lag = drawn["Replay lag per replica"]["series"]
    assert [s["label"] for s in lag] == [REPLICA, "target healthy < 5 s (PgHero)"]
    assert lag[1]["values"][0] == 5.0 and lag[1]["dash"]
    (not_replayed,) = drawn["WAL not yet replayed per replica"]["series"]
    values = not_replayed["values"]
    assert values[1] > SLACK / 2**20 and values[0] <= SLACK / 2**20 and values[2] <= SLACK / 2**20
    assert max(drawn["Replay delay"]["series"][0]["values"]) >= 1.2


def test_the_page_in_chromium(page: Page, scenario, tmp_path_factory) -> None:
    with serve(scenario["config"], tmp_path_factory) as url:
        started = time.monotonic()
        page.goto(f"{url}/replication?window=1h")
        page.get_by_role("heading", name="Replication").wait_for()
        settle(page)
        drawn = charts_drawn(page, 4)
        settled = time.monotonic() - started
        print(f"Replication page settled in {settled:.2f} s with {drawn} charts")
        assert drawn >= 4
        assert {"Replay lag per replica", "WAL retained per slot", "Replay delay"} <= set(chart_texts(page))
        assert REPLICA in chart_texts(page)  # the legend shows the name as text
        assert chart_frame_tags(page) <= {
            "div",
            "canvas",
            "table",
            "tbody",
            "thead",
            "tr",
            "th",
            "td",
            "script",
        }
        assert page.locator("[data-testid='stException']").count() == 0
        # The warning shows the name as written; none of its Markdown or HTML became markup.
        assert REPLICA in page.locator("body").inner_text().replace(ui.WORD_JOINER, "")
        markdown = page.locator("[data-testid='stMarkdownContainer']")
        assert markdown.locator("a[href*='x.test'], b, .stMarkdownColoredText").count() == 0
        bold = markdown.locator("strong", has_text="bold").all_inner_texts()
        assert [t.replace(ui.WORD_JOINER, "") for t in bold] == [REPLICA]  # the page's own bold, whole
        # The slots' table is drawn once its expander is opened: a line each until then.
        assert page.locator(CELLS).count() == 0
        body = page.locator("body").inner_text().replace(ui.WORD_JOINER, "")
        assert f"{STALE} (physical): inactive, WAL lost" in body
        page.locator("[data-testid='stExpander']").filter(has_text="The 2 slots").locator("summary").click()
        page.locator(CELLS).filter(has_text=STALE).first.wait_for(state="attached")
        settle(page)
        cells = page.locator(CELLS).all_text_contents()
        assert {SLOT, STALE, "physical", "lost"} <= set(cells), cells
        assert markdown.locator("a[href*='x.test'], b, .stMarkdownColoredText").count() == 0
        assert page.locator("[data-testid='stException']").count() == 0
        shoot(page, "replication")
    assert settled < 20
