"""Did the index help? Real collector cycles and real advisor runs on the throwaway PostgreSQL, into a
real SQLite store: the advisor suggests an index, we create it and one it did not suggest, the
workload runs again, and the weekly review judges both (dashboard/analysis/review/indexes.py)."""

from __future__ import annotations

import contextlib
import time

import pandas as pd
import psycopg
import pytest
from psycopg.rows import dict_row

from collectors.jobs.advisor import advise_target
from dashboard.analysis.reader import Reader, StoreReads
from dashboard.analysis.review import indexes
from dashboard.analysis.review.model import Period
from dashboard.core.health.indexes import IndexesNow, IndexSeen
from dashboard.core.records import Cycle, Status
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.reads import index_catalog_rows
from tests.support.postgres import advisor_dsn, new_database
from tests.support.stores import collect_once, make_config

REF = "SELECT * FROM orders WHERE ref = $1"
STEP = 900  # the indexes part's default interval


def _schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION hypopg")
        conn.execute(
            "CREATE TABLE orders (id int PRIMARY KEY, ref text NOT NULL, customer int NOT NULL,"
            " status text NOT NULL, total numeric NOT NULL)"
        )
        conn.execute(
            "INSERT INTO orders SELECT g, 'R-' || g, g % 500, (ARRAY['new','paid','shipped'])[g % 3 + 1], g"
            " FROM generate_series(1, 100000) g"
        )
        conn.execute("CREATE INDEX orders_customer_idx ON orders (customer)")  # there before the first read
        # Never scanned and over 1 MB: the advisor's index health calls it unused.
        conn.execute("CREATE TABLE archive (id int, note text)")
        conn.execute("INSERT INTO archive SELECT g, md5(g::text) FROM generate_series(1, 50000) g")
        conn.execute("CREATE INDEX archive_note_idx ON archive (note)")
        conn.execute("VACUUM ANALYZE")


def _workload(dsn: str, rows: range) -> None:
    """30 lookups by ref (a sequential scan of 100,000 rows without an index) and 20 updates of one
    row each. Each update also sleeps 50 ms once, so that its mean time is not at the mercy of this
    machine's timing noise (commits, page writes and other tests' load move it by milliseconds):
    the writes before and after compare as they should, unchanged."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(30):
            conn.execute("SELECT * FROM orders WHERE ref = %s", (f"R-{i * 3001 + 7}",)).fetchall()
        for row in rows:
            conn.execute(
                "UPDATE orders SET total = total + %s WHERE id = %s AND (SELECT pg_sleep(0.05)) IS NOT NULL",
                (1, row),
            )


def test_the_suggested_index_helped_and_the_other_is_not_used_yet(
    pg: ThrowawayPostgres, store: Store
) -> None:
    name = new_database(pg, "review_indexes")
    owner = pg.dsn(dbname=name)
    _schema(owner)
    config = make_config(store.url, [{"name": "t", "dsn": advisor_dsn(pg, name), "interval": "60s"}])
    target = config.targets.postgres[0]
    t0 = int(time.time()) - 4 * STEP
    reader = Reader(StoreReads.open(store.url), config, now=lambda: t0 + 4 * STEP)
    t1, t2, t3 = t0 + STEP, t0 + 2 * STEP, t0 + 3 * STEP
    collect_once(config, store, t0)  # the catalog's first read: what it sees are not creations
    _workload(owner, range(1, 21))
    collect_once(config, store, t1)
    assert advise_target(store, target, now=t1)[name] is None
    targets = reader.targets("postgres")
    (suggestion,) = indexes.open_suggestions(reader, targets)
    assert suggestion.create_sql == "CREATE INDEX CONCURRENTLY ON public.orders (ref);"
    assert suggestion.benefit.startswith("cost ") and suggestion.benefit.count(" for 1 statement") == 1

    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("CREATE INDEX orders_ref_idx ON orders (ref)")  # as the advisor suggested
        conn.execute("CREATE INDEX orders_status_idx ON orders (status)")  # nobody asked for it
        conn.execute("ANALYZE orders")
    collect_once(config, store, t2)  # the catalog read that sees them
    # The latest report still suggests it, but an index in the last read serves it: not open.
    assert indexes.open_suggestions(reader, targets) == ()
    _workload(owner, range(21, 41))
    collect_once(config, store, t3)
    assert advise_target(store, target, now=t3)[name] is None  # plans the lookup again: by the index

    # Periods to the second (Period.between rounds to the hour): the reads are minutes apart.
    period, baseline = Period(t0, t3 + 60, "period"), Period(t0 - 3 * STEP, t0, "baseline")
    found = {o.index: o for o in indexes.outcomes(reader, targets, period, baseline)}
    # The primary key and orders_customer_idx were there at the first read: not created in the period.
    assert sorted(found) == ["public.orders_ref_idx", "public.orders_status_idx"]

    ref = found["public.orders_ref_idx"]
    assert (ref.target, ref.datname, ref.table, ref.created) == ("t", name, "public.orders", t2)
    assert ref.definition == "CREATE INDEX orders_ref_idx ON public.orders USING btree (ref)"
    assert ref.ours is True
    (effect,) = ref.statements
    assert effect.query == REF
    before, after = effect.mean_ms
    assert before is not None and after is not None and after < before / 5, effect
    writes_before, writes_after = ref.writes_ms
    assert writes_before is not None and writes_after is not None
    assert writes_after <= writes_before * 1.2, ref.writes_ms  # the same updates, by primary key
    assert ref.verdict == "helped"

    status = found["public.orders_status_idx"]
    assert (status.ours, status.statements, status.verdict) == (False, (), "not used yet")
    assert status.writes_ms == ref.writes_ms  # the same table, the same writes

    # A period after the creation holds none; the unused index is the advisor's, with its size.
    later = Period(t3 + 60, t3 + 120, "later")
    assert indexes.outcomes(reader, targets, later, period) == ()
    (idle,) = [u for u in indexes.unused(reader, targets) if u.index == "public.archive_note_idx"]
    assert (idle.target, idle.table, idle.bytes > 1_000_000) == ("t", "public.archive", True)


def _catalog(datname: str, *names: str, ts: int) -> IndexesNow:
    return IndexesNow(
        ts=ts,
        datname=datname,
        indexes=tuple(IndexSeen(index_name=n, table_name="public.t", definition=f"def {n}") for n in names),
    )


def test_the_catalog_history_tells_creations_from_the_baseline_and_from_indexes_made_again(
    store_url: str,
) -> None:
    """Through the real writer, on both store backends: the first read is a baseline; a new index
    is created since the read before; one dropped and made again is a new creation; an empty
    database's first index counts."""
    store = Store(store_url)
    for ts, names in ((100, ("public.a",)), (200, ("public.a", "public.b")), (300, ("public.b",))):
        store.write_cycle(Cycle("postgres", "t", ts, Status(), indexes=_catalog("db", *names, ts=ts)))
    store.write_cycle(
        Cycle("postgres", "t", 400, Status(), indexes=_catalog("db", "public.a", "public.b", ts=400))
    )
    store.write_cycle(Cycle("postgres", "t", 100, Status(), indexes=_catalog("empty", ts=100)))
    store.write_cycle(Cycle("postgres", "t", 200, Status(), indexes=_catalog("empty", "public.c", ts=200)))
    rows = index_catalog_rows(store.engine, [store.target_id("postgres", "t")])
    got = {
        (r.datname, r.index_name): (r.first_seen, None if pd.isna(r.previous_read) else r.previous_read)
        for r in rows.itertuples()
    }
    assert got == {
        ("db", "public.a"): (400, 300),  # gone at 300, back at 400: made again
        ("db", "public.b"): (200, 100),
        ("empty", "public.c"): (200, 100),
    }
    store.close()


@pytest.mark.parametrize(
    ("reads", "blocks", "writes", "expected"),
    [
        (None, None, 1.0, "not measured"),
        (1.25, 0.5, None, "hurt"),  # slower by a quarter: half the blocks read does not make it help
        (1.6, 0.5, 1.0, "hurt"),  # the statements that use it 60 % slower, however few blocks read
        (1.2, None, None, "hurt"),  # HURT_SLOWER exactly
        (1.19, None, 1.0, "no effect"),
        (0.1, None, 1.25, "helped"),  # 10x faster is worth writes 25 % slower
        (0.1, None, 1.95, "hurt"),  # ... not writes twice as slow: lost more than the reads gained
        (0.79, None, 1.19, "helped"),
        (0.8, None, 1.2, "helped"),  # both thresholds exactly
        (0.95, 0.4, None, "helped"),  # half the blocks read, not slower
        (1.0, 0.5, 1.0, "helped"),
        (1.05, 0.4, 1.0, "no effect"),  # half the blocks read but 5 % slower
        (0.9, None, 1.0, "no effect"),
        (0.9, None, 1.3, "hurt"),  # writes lost 30 %, reads gained 10 %
        (0.5, None, 1.3, "helped"),  # writes lost 30 %, reads gained 50 %
        (0.7, None, 1.5, "hurt"),  # writes lost 50 %, reads gained 30 %
        (1.0, None, 1.25, "hurt"),  # nothing gained, writes 25 % slower
    ],
)
def test_the_verdict_follows_the_thresholds(reads, blocks, writes, expected) -> None:
    """After / before ratios of the statements that use the index, of their blocks read, of the
    table's writes. Slower by 20 % is "hurt" first; then faster with writes slowed by no more than
    max(20 %, the reads' gain) "helped"; writes slowed by more "hurt"."""
    assert indexes._verdict(True, reads, blocks, writes) == expected
    assert indexes._verdict(False, reads, blocks, writes) == "not used yet"


def test_too_few_calls_on_either_side_are_not_measured() -> None:
    """The ratio the verdict judges needs MIN_CALLS calls on each side, the statements that ran on
    both sides together; the writes' ratio (min_calls 1) does not."""

    def side(calls: dict[int, int], ms: float) -> pd.DataFrame:
        rows = [(i, c, c * ms, c * 10.0) for i, c in calls.items()]
        return pd.DataFrame(rows, columns=["statement_id", "calls", "exec_ms", "shared_read"]).set_index(
            "statement_id"
        )

    ratio = indexes._ratio
    many, few = side({1: 6, 2: 4}, 10.0), side({1: 5, 2: 4, 3: 100}, 2.0)  # 3 ran after only
    assert ratio(many, side({1: 6, 2: 4}, 2.0), [1, 2], "exec_ms", indexes.MIN_CALLS) == pytest.approx(0.2)
    assert ratio(many, few, [1, 2, 3], "exec_ms", indexes.MIN_CALLS) is None  # 9 after on both sides
    assert ratio(few, many, [1, 2], "exec_ms", indexes.MIN_CALLS) is None  # 9 before
    assert ratio(many, few, [1, 2, 3], "exec_ms") == pytest.approx(0.2)  # a write: one call is enough
    assert indexes._verdict(True, None, None, None) == "not measured"


def test_an_invalid_index_left_by_a_failed_concurrent_build_is_not_seen(pg: ThrowawayPostgres) -> None:
    """CREATE UNIQUE INDEX CONCURRENTLY over duplicates fails and leaves an invalid index behind:
    it serves no query, so the catalog reading does not count it as created."""
    import psycopg

    from collectors.postgres.health import indexes as part
    from collectors.postgres.reads import _Reads

    dsn = pg.dsn(dbname=new_database(pg, "invalid"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int, v int)")
        conn.execute("INSERT INTO t SELECT g, g % 3 FROM generate_series(1, 30) g")
        conn.execute("CREATE INDEX t_id_idx ON t (id)")
        with contextlib.suppress(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY t_v_key ON t (v)")
        valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_v_key'::regclass"
        ).fetchone()
    assert valid == (False,)  # the failed build's index is there, invalid
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        rows = _Reads(conn, conn.info.server_version, None).fetch("indexes")
    seen = part.read(rows, 1_000, {}).snapshot
    assert [i.index_name for i in seen.indexes] == ["public.t_id_idx"]
