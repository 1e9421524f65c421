"""The store on SQLite and PostgreSQL: migrations, write-through roll-ups, retention, readers."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, func, inspect, select, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from dashboard.core.config import Retention
from dashboard.core.records import Cycle, StatementEntry, Status
from dashboard.store import Store, migrations, schema
from dashboard.store.engine import make_engine
from dashboard.store.reads import (
    CHART_BUCKETS,
    TOTALS_BUCKETS,
    Window,
    choose_level,
    series_frame,
    statement_series,
    statement_totals,
    target_statuses,
)
from tests.support.cycles import DAY, T0, cycle, key


def test_new_store_is_at_the_current_version(backend_store: Store) -> None:
    with backend_store.engine.connect() as conn:
        assert migrations.current_version(conn) == schema.SCHEMA_VERSION
        tables = set(inspect(conn).get_table_names())
    assert {"targets", "statements", "stmt_raw", "stmt_hourly", "stmt_daily", "points_daily"} <= tables
    assert migrations.migrate(backend_store.engine) == schema.SCHEMA_VERSION  # idempotent


def test_sqlite_store_uses_wal(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_upgrade_keeps_history(backend_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    backend_store.write_cycle(cycle(T0 + 60, {1: 5}))
    added = Column("note", Integer)

    def step(conn) -> None:  # what a real step looks like: add, never drop
        conn.execute(text("ALTER TABLE statements ADD COLUMN note INTEGER"))

    now = schema.SCHEMA_VERSION
    monkeypatch.setattr(schema, "SCHEMA_VERSION", now + 1)
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", now + 1)
    monkeypatch.setitem(migrations.STEPS, now, step)
    assert migrations.migrate(backend_store.engine) == now
    with backend_store.engine.connect() as conn:
        assert migrations.current_version(conn) == now + 1
        assert conn.execute(select(func.sum(schema.STMT["raw"].c.calls))).scalar() == 5
        assert added.name in {c["name"] for c in inspect(conn).get_columns("statements")}


def test_a_version_1_store_gains_the_alert_tables_and_keeps_its_history(backend_store: Store) -> None:
    backend_store.write_cycle(cycle(T0 + 60, {1: 5}))
    alert_tables = ("alerts_now", "alert_events", "alert_journal")
    with backend_store.engine.begin() as conn:  # the store as version 1 left it
        for name in alert_tables:
            conn.execute(text(f"DROP TABLE {name}"))
        conn.execute(text("UPDATE meta SET value = '1' WHERE key = 'schema_version'"))
    assert migrations.migrate(backend_store.engine) == 1
    with backend_store.engine.connect() as conn:
        assert migrations.current_version(conn) == schema.SCHEMA_VERSION
        assert set(alert_tables) <= set(inspect(conn).get_table_names())
        assert conn.execute(select(func.sum(schema.STMT["raw"].c.calls))).scalar() == 5


def test_newer_store_is_refused(backend_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 0)
    with pytest.raises(migrations.SchemaError, match="upgrade the observatory"):
        migrations.migrate(backend_store.engine)


def test_rollups_hold_the_same_totals_as_raw(backend_store: Store) -> None:
    minutes = [T0 + 60 * i for i in range(1, 150)]  # two and a half hours
    for i, ts in enumerate(minutes):
        backend_store.write_cycle(cycle(ts, {1: 2, 2: 1 + i % 3} if i % 2 else {1: 2}, cumulative=i))
    window = Window(T0, T0 + DAY)
    raw = statement_totals(backend_store.engine, [1], window, "raw").set_index("query")
    for level in ("hourly", "daily"):
        coarse = statement_totals(backend_store.engine, [1], window, level).set_index("query")
        assert (coarse["calls"] == raw["calls"]).all()
        assert coarse["exec_ms"].equals(raw["exec_ms"])
    assert raw.loc["SELECT 1 FROM t WHERE id = $1", "calls"] == 2 * len(minutes)
    assert raw.loc["SELECT 1 FROM t WHERE id = $1", "hit_ratio"] == pytest.approx(0.9)
    hourly = series_frame(backend_store.engine, [1], ["pg.connections"], window, "hourly")
    raw_points = series_frame(backend_store.engine, [1], ["pg.connections"], window, "raw")
    assert len(hourly) == 3 and hourly["count"].sum() == len(minutes)
    assert hourly["sum"].sum() == pytest.approx(raw_points["sum"].sum())
    assert hourly["max"].max() == raw_points["sum"].max() and hourly["min"].min() == raw_points["sum"].min()
    sparkline = statement_series(backend_store.engine, [raw["statement_id"].iloc[0]], window, "hourly")
    assert list(sparkline["ts"]) == [T0, T0 + 3600, T0 + 7200]


def test_same_second_cycles_add_up(backend_store: Store) -> None:
    backend_store.write_cycle(cycle(T0 + 60, {1: 2}))
    backend_store.write_cycle(cycle(T0 + 60, {1: 3}))
    frame = statement_totals(backend_store.engine, [1], Window(T0, T0 + 120), "raw")
    assert frame["calls"].sum() == 5


def test_retention_drops_old_detail_only(backend_store: Store) -> None:
    for day in range(5):
        backend_store.write_cycle(cycle(T0 + day * DAY + 60, {1: 1}))
    deleted = backend_store.prune(
        Retention(raw=2 * DAY, hourly=3 * DAY, daily=30 * DAY), now=T0 + 4 * DAY + 30
    )
    assert deleted["stmt_raw"] == 2 and deleted["stmt_hourly"] == 2 and deleted["stmt_daily"] == 0
    everything = Window(T0, T0 + 10 * DAY)
    assert statement_totals(backend_store.engine, [1], everything, "daily")["calls"].sum() == 5
    assert statement_totals(backend_store.engine, [1], everything, "raw")["calls"].sum() == 3


def test_status_counts_failures_and_keeps_last_success(backend_store: Store) -> None:
    backend_store.write_cycle(cycle(T0 + 60, {1: 1}))
    down = Cycle("postgres", "erp", T0 + 120, Status(state="down", error="refused", hints=["start it"]))
    backend_store.write_cycle(down)
    backend_store.write_cycle(Cycle("postgres", "erp", T0 + 180, Status(state="down", error="refused")))
    row = target_statuses(backend_store.engine).iloc[0]
    assert (row["state"], row["failures"], row["last_success"], row["last_attempt"]) == (
        "down",
        2,
        T0 + 60,
        T0 + 180,
    )
    assert row["samples"] > 0


def test_readers_cannot_write(store_url: str, backend_store: Store) -> None:
    reader = make_engine(store_url, readonly=True)
    with pytest.raises((OperationalError, SQLAlchemyError)), reader.begin() as conn:
        conn.execute(schema.targets.insert().values(kind="x", name="y", created_at=1))
    reader.dispose()


def test_choose_level() -> None:
    kept = Retention()
    now = T0 + 100 * DAY
    hour, day = Window(now - 3600, now), Window(now - DAY, now)
    week, month = Window(now - 7 * DAY, now), Window(now - 30 * DAY, now)
    charts = [choose_level(w, now, kept, CHART_BUCKETS) for w in (hour, day, week, month)]
    assert charts == ["raw", "raw", "hourly", "hourly"]
    totals = [choose_level(w, now, kept, TOTALS_BUCKETS) for w in (hour, day, week, month)]
    assert totals == ["raw", "hourly", "daily", "daily"]
    # Raw detail older than its retention is gone: a window reaching back that far reads hourly.
    assert choose_level(Window(now - 3 * DAY, now - 3 * DAY + 3600), now, kept, CHART_BUCKETS) == "hourly"


def test_cycle_state_rows_keep_their_shape(backend_store: Store) -> None:
    """Moved entries refresh last_seen and names, unmoved ones only their state; presence flips."""
    backend_store.write_cycle(cycle(T0 + 60, {1: 1, 2: 1}))
    moved = cycle(T0 + 120, {1: 4})
    counters = tuple(float(i) for i in range(len(schema.STATEMENT_COUNTERS)))
    moved.entries = [
        StatementEntry(key(1), counters, datname="erp2", rolname="app2", mean_ms=3.5),
        StatementEntry(key(2), counters, datname="ignored", rolname="ignored", stats_since=T0),
    ]
    backend_store.write_cycle(moved)
    backend_store.write_cycle(Cycle("postgres", "erp", T0 + 180, Status(), vanished=[key(2)]))
    assert backend_store.statement_state("postgres", "erp")[key(2)] == (counters, False)
    backend_store.write_cycle(Cycle("postgres", "erp", T0 + 240, Status(), entries=moved.entries[1:]))
    assert backend_store.statement_state("postgres", "erp") == {
        key(1): (counters, True),
        key(2): (counters, True),
    }
    s = schema.statements.c
    with backend_store.engine.connect() as conn:
        rows = conn.execute(select(s.queryid, s.last_seen, s.datname, s.rolname, s.mean_ms, s.stats_since))
        got = {r.queryid: tuple(r)[1:] for r in rows}
    assert got[key(1).queryid] == (T0 + 120, "erp2", "app2", 3.5, None)
    assert got[key(2).queryid] == (T0 + 60, "erp", "app", None, T0)


def test_same_second_points_add_counters_and_replace_gauges(backend_store: Store) -> None:
    backend_store.write_cycle(cycle(T0 + 60, {1: 2}, cumulative=10.0))
    backend_store.write_cycle(cycle(T0 + 60, {1: 3}, cumulative=13.0))
    backend_store.write_cycle(cycle(T0 + 61, {1: 1}, cumulative=14.0))
    window = Window(T0, T0 + 3600)
    raw = series_frame(backend_store.engine, [1], ["pg.db.xact_commit", "pg.connections"], window, "raw")
    by_name = {(r.name, r.ts): r.sum for r in raw.itertuples()}
    assert by_name[("pg.db.xact_commit", T0 + 60)] == 5  # two deltas in one second add up
    assert by_name[("pg.connections", T0 + 60)] == 3.0 + (T0 + 60) % 7  # a gauge keeps the latest
    hourly = series_frame(backend_store.engine, [1], ["pg.connections"], window, "hourly").iloc[0]
    gauges = [3.0 + (T0 + 60) % 7] * 2 + [3.0 + (T0 + 61) % 7]
    assert (hourly["count"], hourly["sum"]) == (3, sum(gauges))
    assert (hourly["min"], hourly["max"]) == (min(gauges), max(gauges))
    assert backend_store.series_state("postgres", "erp") == {("pg.db.xact_commit", "datname=erp"): 14.0}


def test_alert_history_is_read_per_alert_and_kept_as_long_as_hourly_figures(backend_store: Store) -> None:
    from dashboard.core.alerts import Alert
    from dashboard.store import alerting

    old = Alert({"alertname": "A", "target": "x"}, {}, "firing", 1.0, T0, fired_at=T0)
    new = Alert({"alertname": "B", "target": "x"}, {}, "pending", 2.0, T0 + 100 * DAY)
    backend_store.save_alerts([old], [old], T0)
    backend_store.save_alerts([old, new], [new], T0 + 100 * DAY)
    engine = backend_store.engine
    assert alerting.history(engine, 0, 2**40, new.fingerprint)["rule"].tolist() == ["B"]
    assert alerting.history(engine, 0, 2**40, "nonexistent").empty
    deleted = backend_store.prune(Retention(raw=2 * DAY, hourly=90 * DAY, daily=365 * DAY), T0 + 100 * DAY)
    assert deleted["alert_events"] == 1  # the 100-day-old change; the alert still firing stays
    assert alerting.history(engine, 0, 2**40)["rule"].tolist() == ["B"]
    assert {a.name for a in backend_store.active_alerts()} == {"A", "B"}


def test_targets_are_registered_once_in_one_go(backend_store: Store) -> None:
    """The daemon creates every target's row before its threads start; a second daemon (or a
    restart) finds them and changes nothing."""
    keys = [("postgres", f"db{i}") for i in range(30)] + [("redis", "cache")]
    backend_store.ensure_targets(keys)
    ids = {k: backend_store.target_id(*k) for k in keys}
    backend_store.ensure_targets(reversed(keys))
    assert {k: backend_store.target_id(*k) for k in keys} == ids
    assert len(set(ids.values())) == len(keys)
    with backend_store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.targets)).scalar_one() == len(keys)
