"""Time partitions of a PostgreSQL store (dashboard/store/partitions.py): made on write for any time,
dropped whole by retention, an unpartitioned (version 5) store upgraded with its rows, reads that
scan only the partitions of their window."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import event, text

from collectors.cycle_writer import CycleWriter
from collectors.jobs.retention import prune as retention_job
from dashboard.core.config import Retention
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.migrations import current_version
from dashboard.store.partitions import (
    CLOCK_SKEW,
    SPANS,
    existing,
    is_partitioned,
    partition_name,
    span,
    store_clock,
)
from dashboard.store.reads import Window, series_frame, statement_totals
from dashboard.store.schema import SCHEMA_VERSION
from tests.support.cycles import DAY, T0, cycle
from tests.support.stores import new_store_dsn

WEEK = 7 * DAY


@pytest.fixture
def pg_store(pg: ThrowawayPostgres) -> Iterator[Store]:
    store = Store(new_store_dsn(pg))
    yield store
    store.close()


def starts(store: Store, table: str) -> list[int]:
    with store.engine.connect() as conn:
        return [start for _, start, _ in existing(conn, table)]


def names(store: Store, table: str) -> set[str]:
    with store.engine.connect() as conn:
        return {name for name, *_ in existing(conn, table)}


def calls(store: Store, window: Window, level: str = "raw") -> float:
    tid = store.target_id("postgres", "erp")
    return float(statement_totals(store.engine, [tid], window, level)["calls"].sum())


def test_a_new_store_is_partitioned_and_partitions_are_made_on_write(pg_store: Store) -> None:
    with pg_store.engine.connect() as conn:
        assert all(is_partitioned(conn, table) for table in SPANS)
    past, future = 1000, T0 + 400 * DAY  # 1970, and a year past T0
    for ts in (past, T0 + 3600, future):
        pg_store.write_cycle(cycle(ts, {1: 2}))
    for table in ("points_raw", "stmt_raw"):
        assert starts(pg_store, table) == [0, T0, T0 + 400 * DAY]  # whole days
    week = span("stmt_hourly", T0)[0]
    assert week % WEEK == 4 * DAY and week <= T0 < week + WEEK  # weeks start on Mondays
    assert starts(pg_store, "stmt_hourly") == [span("stmt_hourly", t)[0] for t in (past, T0, future)]
    assert partition_name("stmt_raw", T0) in names(pg_store, "stmt_raw")
    assert calls(pg_store, Window(0, future + 10)) == 6
    assert calls(pg_store, Window(0, future + 10), "hourly") == 6


def test_known_partitions_cost_no_query(pg_store: Store) -> None:
    pg_store.write_cycle(cycle(T0 + 60, {1: 1}))
    statements: list[str] = []
    event.listen(pg_store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    pg_store.partitions.ensure([T0 + 120, T0 + 7200])
    assert statements == []
    pg_store.partitions.ensure([T0 + DAY + 5])  # a new day: one partition per raw table
    assert sum("ATTACH PARTITION" in s for s in statements) == 2


def test_prune_drops_whole_partitions_and_keeps_the_rest(pg_store: Store) -> None:
    for day in range(6):
        for hour in (1, 13):
            pg_store.write_cycle(cycle(T0 + day * DAY + hour * 3600, {1: 1, 2: 1}))
    before = starts(pg_store, "stmt_raw")
    assert before == [T0 + d * DAY for d in range(6)]
    now = T0 + 5 * DAY + 14 * 3600
    deleted = pg_store.prune(Retention(raw=2 * DAY, hourly=90 * DAY, daily=365 * DAY), now)
    # horizon T0 + 3 d 14 h: days 0-2 dropped whole (6 cycles), day 3's 01:00 row deleted, 13:00 gone too
    assert deleted["stmt_raw"] == 2 * 8 and deleted["points_raw"] == 3 * 8
    assert deleted["stmt_hourly"] == 0
    after = starts(pg_store, "stmt_raw")
    assert after[:3] == [T0 + 3 * DAY, T0 + 4 * DAY, T0 + 5 * DAY]
    assert after[3:] == [T0 + d * DAY for d in range(6, 6 + len(after) - 3)]  # made ahead of `now`
    assert len(after) - 3 >= 3
    assert calls(pg_store, Window(T0, T0 + 10 * DAY)) == 2 * 4  # the cycles of days 4 and 5
    assert calls(pg_store, Window(T0, T0 + 10 * DAY), "hourly") == 2 * 12
    pg_store.write_cycle(cycle(T0 + 2 * DAY, {1: 1}))  # into a day dropped: made again
    assert T0 + 2 * DAY in starts(pg_store, "stmt_raw")


def test_a_writer_whose_partition_another_store_dropped_recovers(pg: ThrowawayPostgres) -> None:
    url = new_store_dsn(pg)
    first, second = Store(url), Store(url)
    try:
        first.write_cycle(cycle(T0 + 60, {1: 1}))
        second.prune(Retention(raw=1, hourly=90 * DAY, daily=365 * DAY), T0 + 3 * DAY)
        assert T0 not in starts(second, "stmt_raw")
        failed = CycleWriter(first).write_now([cycle(T0 + 120, {1: 5})])  # first's cache still has T0
        assert failed == []
        assert calls(first, Window(T0, T0 + DAY)) == 5
    finally:
        first.close()
        second.close()


def as_version_5(store: Store) -> None:
    """Turn a store back into the layout of schema 5: the raw and hourly tables plain, their rows,
    primary keys and indexes as version 5 made them."""
    with store.engine.begin() as conn:
        for table in SPANS:
            conn.execute(text(f"CREATE TABLE {table}_plain (LIKE {table} INCLUDING DEFAULTS)"))
            conn.execute(text(f"INSERT INTO {table}_plain SELECT * FROM {table}"))
            conn.execute(text(f"DROP TABLE {table}"))
            conn.execute(text(f"ALTER TABLE {table}_plain RENAME TO {table}"))
            key = "target_id, ts, statement_id" if table.startswith("stmt") else "series_id, ts"
            conn.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({key})"))
            if table.startswith("stmt"):
                conn.execute(text(f"CREATE INDEX ix_{table}_statement ON {table} (statement_id, ts)"))
        conn.execute(text("UPDATE meta SET value = '5' WHERE key = 'schema_version'"))


def test_upgrade_from_5_partitions_the_tables_and_keeps_every_row(pg: ThrowawayPostgres) -> None:
    url = new_store_dsn(pg)
    old = Store(url)
    for day in range(4):
        old.write_cycle(cycle(T0 + day * DAY + 600, {1: 1, 2: 3}, cumulative=float(day)))
    everything = Window(T0, T0 + 5 * DAY)
    tid = old.target_id("postgres", "erp")
    expected = {lvl: statement_totals(old.engine, [tid], everything, lvl) for lvl in ("raw", "hourly")}
    points = series_frame(old.engine, [tid], ["pg.connections"], everything, "raw")
    as_version_5(old)
    with old.engine.connect() as conn:
        assert current_version(conn) == 5 and not is_partitioned(conn, "stmt_raw")
    old.close()
    upgraded = Store(url)
    try:
        with upgraded.engine.connect() as conn:
            assert current_version(conn) == SCHEMA_VERSION >= 6
            assert all(is_partitioned(conn, table) for table in SPANS)
            assert not conn.execute(text("SELECT to_regclass('stmt_raw_v5')")).scalar()
        assert starts(upgraded, "stmt_raw") == [T0 + d * DAY for d in range(4)]
        for level, frame in expected.items():
            got = statement_totals(upgraded.engine, [tid], everything, level)
            assert (
                got[["statement_id", "calls"]].values.tolist()
                == frame[["statement_id", "calls"]].values.tolist()
            )
        again = series_frame(upgraded.engine, [tid], ["pg.connections"], everything, "raw")
        assert (
            again[["ts", "sum"]].values.tolist() == points[["ts", "sum"]].values.tolist() and len(again) == 4
        )
        upgraded.write_cycle(
            cycle(T0 + 3 * DAY + 900, {1: 1})
        )  # upserts into a copied partition still add up
        assert calls(upgraded, Window(T0 + 3 * DAY, T0 + 4 * DAY), "hourly") == 5
    finally:
        upgraded.close()


def test_upgrade_from_5_keeps_rows_before_the_first_monday_and_before_1970(pg: ThrowawayPostgres) -> None:
    """PostgreSQL's % truncates toward zero: a span computed with it misses a row earlier than the
    weeks' offset (1970-01-05) or than the epoch, and the whole upgrade rolled back."""
    url = new_store_dsn(pg)
    old = Store(url)
    times = (-5 * DAY - 1, 1000, 3 * DAY, T0 + 600)  # 1969, 1970 before the first Monday, T0
    for ts in times:
        old.write_cycle(cycle(ts, {1: 1}))
    as_version_5(old)
    old.close()
    upgraded = Store(url)
    try:
        everything = Window(-10 * DAY, T0 + DAY)
        assert calls(upgraded, everything) == calls(upgraded, everything, "hourly") == len(times)
        with upgraded.engine.connect() as conn:
            for table in SPANS:
                held = conn.execute(text(f"SELECT DISTINCT tableoid::regclass::text, ts FROM {table}")).all()
                assert len(held) >= len(times)
                assert all(name == partition_name(table, span(table, ts)[0]) for name, ts in held), held
    finally:
        upgraded.close()


def test_the_retention_job_prunes_by_the_stores_clock_and_not_at_all_when_this_machines_is_off(
    pg: ThrowawayPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """A shared store: a daemon whose clock runs days ahead must not delete the raw rows the fleet
    wrote a minute ago, nor one running behind prune by its clock; either logs one line and deletes
    nothing. With its clock right, the store's clock sets the horizon."""
    store = Store(new_store_dsn(pg))
    try:
        clock = store_clock(store.engine)
        assert abs(clock - time.time()) < 5
        for ago in (3 * DAY, 2 * 60, 60):
            store.write_cycle(cycle(clock - ago, {1: 1}))
        fresh, everything = Window(clock - DAY, clock + DAY), Window(0, clock + DAY)
        for off in (3 * DAY, -3 * DAY, CLOCK_SKEW + 60):
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="observatory.collect"):
                retention_job(store, Retention(raw=2 * DAY), clock + off)
            assert [r.levelname for r in caplog.records] == ["ERROR"]
            said = re.search(r"clock is ([+-]\d+) s off the store's", caplog.text)
            # the store's clock has moved on since `clock` was read: a second or more on a slow run
            assert said and off - 10 <= int(said[1]) <= off, caplog.text
            assert calls(store, everything) == 3
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="observatory.collect"):
            retention_job(store, Retention(raw=2 * DAY), clock + CLOCK_SKEW - 60)  # drift: prunes
        assert calls(store, everything) == calls(store, fresh) == 2  # only the 3-day-old cycle went
        assert "retention: deleted" in caplog.text
        store.write_cycle(cycle(clock - 3 * DAY + 7, {1: 1}))
        assert store.prune(Retention(raw=2 * DAY))["stmt_raw"] == 1  # no `now`: the store's clock
        assert calls(store, everything) == 2
    finally:
        store.close()


def test_on_sqlite_the_retention_job_prunes_by_the_daemons_clock(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        for day in range(4):
            store.write_cycle(cycle(T0 + day * DAY, {1: 1}))
        retention_job(store, Retention(raw=2 * DAY), T0 + 3 * DAY + 60)  # one machine: its clock
        assert calls(store, Window(0, T0 + 5 * DAY)) == 2
    finally:
        store.close()


def test_prune_during_a_long_read_keeps_writes_flowing_and_drops_the_rest(pg: ThrowawayPostgres) -> None:
    """DROP of a partition takes ACCESS EXCLUSIVE on the parent: behind a 3 s read of points_raw it
    queued, every write queued behind it, and the prune failed whole. Now the held table's partitions
    wait for the next prune (their rows deleted meanwhile), the others go, and writes wait ~0.2 s."""
    url = new_store_dsn(pg)
    writer, pruner = Store(url), Store(url)
    try:
        for day in range(4):
            writer.write_cycle(cycle(T0 + day * DAY + 60, {1: 1}))
        reader = psycopg.connect(url)
        reader.execute("SELECT count(*) FROM points_raw")  # its transaction holds the table 3 s
        result: dict[str, object] = {}
        waits: list[float] = []
        stop = threading.Event()

        def write() -> None:  # a daemon's cycles, every 50 ms
            n = 0
            while not stop.is_set():
                started = time.monotonic()
                writer.write_cycle(cycle(T0 + 3 * DAY + 120 + n, {1: 1}))
                waits.append(time.monotonic() - started)
                n += 1
                time.sleep(0.05)

        def prune() -> None:
            result["deleted"] = pruner.prune(Retention(raw=2 * DAY), T0 + 4 * DAY)

        writing, pruning = threading.Thread(target=write), threading.Thread(target=prune)
        writing.start()
        time.sleep(0.3)
        pruning.start()
        pruning.join(10)
        time.sleep(0.3)
        held = starts(pruner, "points_raw")
        reader.rollback()
        reader.close()
        stop.set()
        writing.join(10)
        assert result["deleted"]["stmt_raw"] == result["deleted"]["points_raw"] / 3 == 2  # type: ignore[index]
        # DROP_LOCK_TIMEOUT (0.2 s) by design, and a slow machine's margin; the bug held them 5 s
        assert max(waits) < 1.0, f"a cycle's write waited {max(waits):.2f} s behind retention"
        assert starts(pruner, "stmt_raw")[:2] == [T0 + 2 * DAY, T0 + 3 * DAY]  # dropped
        assert held[:2] == [T0, T0 + DAY]  # kept: the read held the table
        assert calls(writer, Window(0, T0 + 2 * DAY - 1)) == 0  # but emptied
        again = pruner.prune(Retention(raw=2 * DAY), T0 + 4 * DAY)
        assert again["points_raw"] == 0 and starts(pruner, "points_raw")[:2] == [T0 + 2 * DAY, T0 + 3 * DAY]
    finally:
        writer.close()
        pruner.close()


def plans(store: Store, read) -> list[str]:
    """EXPLAIN of every statement `read` runs, with its parameters, as the reader ran it."""
    ran: list[tuple[str, object]] = []
    listener = lambda _c, _cur, statement, params, *_: ran.append((statement, params))  # noqa: E731
    event.listen(store.engine, "before_cursor_execute", listener)
    read()
    event.remove(store.engine, "before_cursor_execute", listener)
    with store.engine.connect() as conn:
        return [
            "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params).all())
            for sql, params in ran
            if any(table in sql for table in SPANS)  # not pandas' look-ups of the catalog
        ]


def test_a_one_day_read_scans_only_that_days_partitions(pg_store: Store) -> None:
    for day in range(12):
        pg_store.write_cycle(cycle(T0 + day * DAY + 600, {1: 1}))
    tid = pg_store.target_id("postgres", "erp")
    day5 = Window(T0 + 5 * DAY, T0 + 6 * DAY - 1)
    for level, table in (("raw", "stmt_raw"), ("hourly", "stmt_hourly")):
        found = plans(pg_store, lambda lvl=level: statement_totals(pg_store.engine, [tid], day5, lvl))
        scanned = {n for n in names(pg_store, table) if any(n in p for p in found)}
        assert scanned == {partition_name(table, span(table, day5.start)[0])}, found
    found = plans(pg_store, lambda: series_frame(pg_store.engine, [tid], ["pg.connections"], day5, "raw"))
    scanned = {n for n in names(pg_store, "points_raw") if any(n in p for p in found)}
    assert scanned == {partition_name("points_raw", T0 + 5 * DAY)}
