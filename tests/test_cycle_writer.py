"""The daemon's writer: batches, a store outage (nothing lost), a cycle the store refuses."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from sqlalchemy import func, select

from collectors.cycle_writer import MAX_ATTEMPTS, MAX_BATCH_ROWS, CycleWriter
from dashboard.core.records import Cycle, Point, SlowlogEntry, Status
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.reads import target_statuses
from dashboard.store.schema import STMT
from tests.support.cycles import T0, cycle


def calls_stored(store: Store) -> float:
    raw = STMT["raw"]
    with store.engine.connect() as conn:
        return float(conn.execute(select(func.coalesce(func.sum(raw.c.calls), 0))).scalar_one())


@pytest.fixture
def running():
    """Start a writer thread; stops it at the end of the test."""
    stops: list[tuple[threading.Event, threading.Thread]] = []

    def start(writer: CycleWriter) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=writer.run, args=(stop,), daemon=True)
        thread.start()
        stops.append((stop, thread))

    yield start
    for stop, thread in stops:
        stop.set()
        thread.join(timeout=10)


def test_cycles_of_several_targets_are_saved_in_order(backend_store: Store, running) -> None:
    saved: list[tuple[str, int]] = []
    writer = CycleWriter(backend_store, on_saved=lambda c: saved.append((c.target, c.ts)))
    for i in range(5):
        for name in ("erp", "crm"):
            c = cycle(T0 + 60 * i, {1: 2, 2: 1})
            c.target = name
            writer.submit(c)
    running(writer)
    assert writer.flush(timeout=20)
    assert writer.pending() == 0
    assert [ts for target, ts in saved if target == "erp"] == [T0 + 60 * i for i in range(5)]
    assert calls_stored(backend_store) == 2 * 5 * 3
    statuses = target_statuses(backend_store.engine).set_index("name")
    assert statuses.loc["crm", "last_success"] == T0 + 240


def test_a_batch_holds_the_store_for_a_bounded_number_of_rows(store: Store, running) -> None:
    """A daemon's first cycles (thousands of statements each) are saved in several transactions,
    so a SQLite store's one write lock is free between them; a cycle is never split."""
    per_cycle = MAX_BATCH_ROWS // 3
    writer = CycleWriter(store)
    for i in range(7):
        c = cycle(T0, {1: 1})
        c.target = f"db{i}"
        c.points += [Point("pg.table.rows", float(n), "gauge", f"relname=t{n}") for n in range(per_cycle)]
        writer.submit(c)
    huge = cycle(T0, {1: 1})
    huge.target, huge.points = "huge", [Point("x", 1.0, "gauge", f"n={n}") for n in range(MAX_BATCH_ROWS + 5)]
    writer.submit(huge)
    batches = []
    while batch := writer._take(timeout=0):
        batches.append([c.target for c in batch])
        writer._requeue([])
    assert batches == [["db0", "db1"], ["db2", "db3"], ["db4", "db5"], ["db6"], ["huge"]]
    for target in ("db0", "db1", "huge"):  # the writer thread saves them all, in turn
        c = cycle(T0 + 60, {1: 1})
        c.target = target
        writer.submit(c)
    running(writer)
    assert writer.flush(timeout=30) and writer.pending() == 0
    assert set(target_statuses(store.engine)["name"]) == {"db0", "db1", "huge"}


def test_store_outage_loses_nothing(pg: ThrowawayPostgres, running) -> None:
    """The store's database refuses connections for a while: cycles queue up, then all land."""
    name = f"store_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg.dsn(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        store = Store(pg.dsn(dbname=name))
        store.write_cycle(cycle(T0, {1: 1}))  # the store works, then goes away
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        dropped: list[Cycle] = []
        writer = CycleWriter(store, on_dropped=lambda c, _why: dropped.append(c))
        running(writer)
        for i in range(1, 6):
            writer.submit(cycle(T0 + 60 * i, {1: 2}))
        assert not writer.flush(timeout=3)  # cannot be saved now ...
        assert writer.pending() == 5 and not dropped  # ... and none is given up
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        assert writer.flush(timeout=30)
    assert not dropped
    assert calls_stored(store) == 1 + 5 * 2
    store.close()


def test_a_cycle_the_store_refuses_is_dropped_not_retried_forever(store: Store, running) -> None:
    dropped: list[tuple[Cycle, str]] = []
    writer = CycleWriter(store, on_dropped=lambda c, why: dropped.append((c, why)))
    bad = Cycle("redis", "cache", T0, Status(), slowlog=[SlowlogEntry(1, T0, 50, None)])  # type: ignore[arg-type]
    writer.submit(bad)
    for i in range(1, MAX_ATTEMPTS + 1):  # good cycles keep landing around it
        writer.submit(cycle(T0 + 60 * i, {1: 1}))
        assert writer.save(writer._take(timeout=0)) is (i == MAX_ATTEMPTS)
    assert [c for c, _ in dropped] == [bad]
    assert "NOT NULL" in dropped[0][1] and f"{MAX_ATTEMPTS} times" in dropped[0][1]
    assert calls_stored(store) == MAX_ATTEMPTS
    assert writer.pending() == 0


def test_backlog_is_bounded(store: Store) -> None:
    dropped: list[Cycle] = []
    writer = CycleWriter(store, max_backlog=3, on_dropped=lambda c, _why: dropped.append(c))
    cycles = [cycle(T0 + 60 * i, {1: 1}) for i in range(5)]
    for c in cycles:
        writer.submit(c)
    assert dropped == cycles[:2]  # the oldest go first
    assert writer.pending() == 3


def test_a_target_is_saved_in_order_around_a_refused_cycle(store: Store) -> None:
    """A target's later cycles wait for its earlier one: an older cycle never overwrites the state a
    newer one saved. Other targets' cycles are saved meanwhile."""
    writer = CycleWriter(store)
    bad = Cycle("postgres", "erp", T0, Status(), slowlog=[SlowlogEntry(1, T0, 50, None)])  # type: ignore[arg-type]
    later = cycle(T0 + 60, {1: 4})
    other = cycle(T0 + 60, {1: 1})
    other.target = "crm"
    assert [(c.target, type(e).__name__) for c, e in writer.write_now([bad, later, other])] == [
        ("erp", "IntegrityError"),
        ("erp", "HeldBack"),
    ]
    assert calls_stored(store) == 1  # crm's


def test_state_is_reloaded_only_once_nothing_of_the_target_is_pending(
    pg: ThrowawayPostgres, store: Store
) -> None:
    """A dropped cycle makes its collector reload its state from the store, but not while cycles
    computed from the state it has are still queued: that would count their activity twice."""
    from collectors.scheduler import Scheduler
    from tests.support.postgres import new_database
    from tests.support.stores import make_config

    dsn = pg.dsn(dbname=new_database(pg, "resync"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
    scheduler = Scheduler(make_config(store.url, [{"name": "t1", "dsn": dsn}]), store)
    collector = scheduler.collectors[0]
    writer = scheduler.writer

    def run(times: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _ in range(times):
                conn.execute("SELECT count(*) FROM t")

    try:
        writer.save([scheduler.collect(collector)])  # the baseline
        run(5)
        writer.submit(scheduler.collect(collector))
        writer.max_backlog = 1
        run(3)
        writer.submit(scheduler.collect(collector))  # the 5 calls' cycle is dropped
        writer.max_backlog = 10
        run(2)
        writer.submit(scheduler.collect(collector))  # one still queued: the state is kept
        assert writer.save(writer._take(timeout=0))
        run(4)
        writer.save([scheduler.collect(collector)])  # nothing queued: reloaded, then collected
        assert collector._state is not None and ("postgres", "t1") not in scheduler._resync
    finally:
        collector.close()
    # 14 calls ran; the 5 in the dropped cycle are lost (its successor's state covers them), and
    # none is counted twice.
    frame = target_calls(store, "SELECT count(*) FROM t")
    assert frame == 14 - 5


def target_calls(store: Store, text: str) -> float:
    from dashboard.store.schema import statements

    raw = STMT["raw"]
    query = (
        select(func.sum(raw.c.calls))
        .join(statements, statements.c.id == raw.c.statement_id)
        .where(statements.c.query == text)
    )
    with store.engine.connect() as conn:
        return float(conn.execute(query).scalar() or 0)
