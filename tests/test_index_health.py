"""Index health against a real PostgreSQL 15: exact findings per check, and the same as pg_monitor."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from dashboard.advisor.health import human_bytes, index_health
from dashboard.core.advice import IndexHealthReport
from dashboard.servers.throwaway import ThrowawayPostgres
from tests.support.postgres import new_database


@pytest.fixture
def db(pg: ThrowawayPostgres) -> Iterator[psycopg.Connection]:
    """A superuser connection (tuple rows, autocommit) to a fresh database."""
    with psycopg.connect(pg.dsn(dbname=new_database(pg, "health")), autocommit=True) as conn:
        yield conn


def check(conn: psycopg.Connection, **limits: int) -> IndexHealthReport:
    """Every threshold at its most permissive unless a test says otherwise."""
    return index_health(
        conn,
        **{"min_unused_bytes": 0, "min_fk_table_rows": 10_000, "min_bloat_bytes": 0, **limits},
    )


def run(conn: psycopg.Connection, *statements: str) -> None:
    # One execute per statement: a multi-statement string is a single transaction, and an index
    # built in the transaction that deleted rows still holds those rows.
    for statement in statements:
        conn.execute(statement)


def size_of(conn: psycopg.Connection, index: str) -> int:
    return conn.execute("SELECT pg_relation_size(%s::regclass)", (index,)).fetchone()[0]


def use_index(conn: psycopg.Connection, query: str, index: str, timeout: float = 10.0) -> None:
    """Run a query that scans `index`, then wait until the scan shows in pg_stat_user_indexes."""
    conn.execute(query)
    conn.execute("SELECT pg_stat_force_next_flush()")  # flushed as soon as the backend is idle
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scans = conn.execute(
            "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s", (index,)
        ).fetchone()[0]
        if scans:
            return
        time.sleep(0.05)
    raise AssertionError(f"{index} never showed a scan: the planner did not use it")


# -- scenarios (also reused by the pg_monitor test) -------------------------------------------
def build_unused(conn: psycopg.Connection) -> None:
    run(
        conn,
        "CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL, b int NOT NULL, c int NOT NULL)",
        "INSERT INTO t SELECT g, g, g, g FROM generate_series(1, 100000) g",
        "CREATE INDEX t_a_idx ON t (a)",
        "CREATE INDEX t_b_idx ON t (b)",
        "CREATE UNIQUE INDEX t_c_key ON t (c)",
        'CREATE SCHEMA "Sales"',
        'CREATE TABLE "Sales"."Order Lines" (x int)',
        'CREATE INDEX "Odd ""Name""" ON "Sales"."Order Lines" (x)',
        "ANALYZE t",
    )
    use_index(conn, "SELECT * FROM t WHERE b = 42", "t_b_idx")


def build_duplicates(conn: psycopg.Connection) -> None:
    run(
        conn,
        "CREATE TABLE d (id int PRIMARY KEY, b int)",
        "CREATE INDEX d_id_copy ON d (id)",  # plain twin of the primary key
        "CREATE INDEX d_b_first ON d (b)",
        "CREATE INDEX d_b_second ON d (b)",  # exact twin: the newer one goes
        # Two constraints on one column (CREATE TABLE would fold the UNIQUE into the key).
        "CREATE TABLE k (x int PRIMARY KEY)",
        "ALTER TABLE k ADD CONSTRAINT k_x_key UNIQUE (x)",
    )


def build_invalid(conn: psycopg.Connection) -> None:
    run(
        conn,
        "CREATE TABLE inv (id int, v int)",
        "INSERT INTO inv SELECT g, g % 10 FROM generate_series(1, 1000) g",
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY inv_v_key ON inv (v)")


def build_fks(conn: psycopg.Connection) -> None:
    children = {
        "child_bare": "",  # 50k rows, no index: flagged
        "child_indexed": "CREATE INDEX child_indexed_parent ON child_indexed (parent_id, id)",
        '"Child Pair"': 'CREATE INDEX child_pair_code ON "Child Pair" (code)',  # not leading both
        "child_pair_ok": "CREATE INDEX child_pair_ok_idx ON child_pair_ok (code, parent_id, id)",
    }
    run(
        conn,
        "CREATE TABLE parent (id int PRIMARY KEY, code int NOT NULL, UNIQUE (id, code))",
        "INSERT INTO parent SELECT g, g FROM generate_series(1, 1000) g",
        "CREATE TABLE child_small (id int, parent_id int REFERENCES parent)",
        "INSERT INTO child_small SELECT g, 1 + g % 1000 FROM generate_series(1, 100) g",
    )
    for table, index in children.items():
        parent_id = '"parentId"' if table == '"Child Pair"' else "parent_id"
        run(
            conn,
            f"CREATE TABLE {table} (id int, {parent_id} int, code int)",
            f"INSERT INTO {table} SELECT g, 1 + g % 1000, 1 + g % 1000 FROM generate_series(1, 50000) g",
            *([index] if index else []),
        )
    # Added after the load: one validating join instead of 50k row-by-row checks.
    run(
        conn,
        "ALTER TABLE child_bare ADD FOREIGN KEY (parent_id) REFERENCES parent",
        "ALTER TABLE child_indexed ADD FOREIGN KEY (parent_id) REFERENCES parent",
        'ALTER TABLE "Child Pair" ADD FOREIGN KEY ("parentId", code) REFERENCES parent (id, code)',
        "ALTER TABLE child_pair_ok ADD FOREIGN KEY (parent_id, code) REFERENCES parent (id, code)",
        "ANALYZE",
    )


def build_bloat(conn: psycopg.Connection) -> None:
    run(
        conn,
        "CREATE TABLE bl (id int PRIMARY KEY, v int NOT NULL)",
        "INSERT INTO bl SELECT g, (g * 7919) % 200000 FROM generate_series(1, 200000) g",
        "CREATE INDEX bl_v ON bl (v)",
        "DELETE FROM bl WHERE id % 10 <> 0",  # 90 % gone; the index keeps its pages
        "CREATE INDEX bl_v_fresh ON bl (v)",
        "ANALYZE bl",  # the estimate reads reltuples and pg_stats
    )


# -- 1. unused --------------------------------------------------------------------------------
def test_unused_index_is_reported_with_its_size_and_drop(db: psycopg.Connection) -> None:
    build_unused(db)
    unused = {u.index: u for u in check(db).unused}
    # t_b_idx was scanned; t_pkey and t_c_key are unique: never "unused".
    assert set(unused) == {"t_a_idx", 'Odd "Name"'}
    found = unused["t_a_idx"]
    size = size_of(db, "t_a_idx")
    assert (found.table, found.definition, found.size_bytes, found.size, found.fix_sql) == (
        "public.t",
        "CREATE INDEX t_a_idx ON public.t USING btree (a)",
        size,
        human_bytes(size),
        "DROP INDEX CONCURRENTLY public.t_a_idx;",
    )
    assert "no index scans since at least the server start" in found.reason
    assert "replica" in found.reason
    odd = unused['Odd "Name"']
    assert (odd.table, odd.fix_sql) == (
        '"Sales"."Order Lines"',
        'DROP INDEX CONCURRENTLY "Sales"."Odd ""Name""";',
    )
    db.execute(odd.fix_sql)  # the quoting is right if PostgreSQL accepts it
    # The default 1 MB threshold keeps the 2 MB index only.
    assert [u.index for u in index_health(db).unused] == ["t_a_idx"]
    assert check(db, min_unused_bytes=size + 1).unused == []


# -- 2. duplicates and redundancy -----------------------------------------------------------------
def test_exact_duplicates_flag_the_one_without_a_constraint(db: psycopg.Connection) -> None:
    build_duplicates(db)
    found = {(r.index, r.covered_by, r.exact_duplicate, r.fix_sql) for r in check(db).redundant}
    assert found == {
        ("d_id_copy", "d_pkey", True, "DROP INDEX CONCURRENTLY public.d_id_copy;"),
        ("d_b_second", "d_b_first", True, "DROP INDEX CONCURRENTLY public.d_b_second;"),
        ("k_x_key", "k_pkey", True, None),  # both back constraints: reported, no drop
    }
    both = next(r for r in check(db).redundant if r.index == "k_x_key")
    assert both.reason.startswith("covered by k_pkey") and "both back constraints" in both.reason


def test_prefix_redundancy_only_with_same_expressions_predicate_and_opclass(
    db: psycopg.Connection,
) -> None:
    run(
        db,
        *(f"CREATE TABLE {t} (a int, b int, c text)" for t in ("p1", "p2", "p3", "p4", "p5", "p6")),
        "CREATE INDEX p1_a ON p1 (a)",
        "CREATE INDEX p1_ab ON p1 (a, b)",  # covers p1_a
        "CREATE INDEX p2_a ON p2 (a)",
        "CREATE INDEX p2_ba ON p2 (b, a)",  # (a) is not its prefix
        "CREATE INDEX p3_a ON p3 (a) WHERE b > 0",
        "CREATE INDEX p3_ab ON p3 (a, b)",  # other predicate
        "CREATE INDEX p4_upper ON p4 (upper(c))",
        "CREATE INDEX p4_lower_a ON p4 (lower(c), a)",  # other expression
        "CREATE INDEX p4_lower ON p4 (lower(c))",  # same expression: covered
        "CREATE INDEX p5_c ON p5 (c text_pattern_ops)",
        "CREATE INDEX p5_ca ON p5 (c, a)",  # other operator class
        "CREATE INDEX p6_a_incl ON p6 (a) INCLUDE (b)",
        "CREATE INDEX p6_ab ON p6 (a, b)",  # has b too: covers the INCLUDE index
    )
    found = {(r.table, r.index, r.covered_by, r.exact_duplicate) for r in check(db).redundant}
    assert found == {
        ("public.p1", "p1_a", "p1_ab", False),
        ("public.p4", "p4_lower", "p4_lower_a", False),
        ("public.p6", "p6_a_incl", "p6_ab", False),
    }


# -- 3. invalid ---------------------------------------------------------------------------------
def test_invalid_index_from_a_failed_concurrent_build(db: psycopg.Connection) -> None:
    build_invalid(db)
    health = check(db)
    assert [(i.index, i.fix_sql, i.alternative_sql) for i in health.invalid] == [
        (
            "inv_v_key",
            "REINDEX INDEX CONCURRENTLY public.inv_v_key;",
            "DROP INDEX CONCURRENTLY public.inv_v_key;\n"
            "CREATE UNIQUE INDEX CONCURRENTLY inv_v_key ON public.inv USING btree (v);",
        )
    ]
    assert "duplicate values" in health.invalid[0].reason
    assert "inv_v_key" not in {f.index for f in [*health.unused, *health.redundant]}
    db.execute("DELETE FROM inv WHERE id > 10")  # the duplicates go; the suggested fix now works
    db.execute(health.invalid[0].fix_sql)
    assert check(db).invalid == []


# -- 4. foreign keys without an index --------------------------------------------------------------
def test_foreign_keys_without_a_leading_index_on_big_tables(db: psycopg.Connection) -> None:
    build_fks(db)
    found = check(db).missing_fk_indexes
    assert sorted((f.table, f.columns, f.referenced_table, f.fix_sql) for f in found) == [
        (
            'public."Child Pair"',
            ('"parentId"', "code"),
            "public.parent",
            'CREATE INDEX CONCURRENTLY ON public."Child Pair" ("parentId", code);',
        ),
        (
            "public.child_bare",
            ("parent_id",),
            "public.parent",
            "CREATE INDEX CONCURRENTLY ON public.child_bare (parent_id);",
        ),
    ]
    bare = next(f for f in found if f.table == "public.child_bare")
    assert bare.index is None and bare.table_rows == 50_000
    assert "DELETE or key UPDATE on public.parent scans public.child_bare" in bare.reason
    # The small table counts once the threshold allows it.
    assert "public.child_small" in {f.table for f in check(db, min_fk_table_rows=50).missing_fk_indexes}
    for f in found:
        db.execute(f.fix_sql)
    assert check(db).missing_fk_indexes == []


# -- 5. bloat -------------------------------------------------------------------------------------
def test_bloat_estimate_after_mass_delete(db: psycopg.Connection) -> None:
    build_bloat(db)
    bloat = {b.index: b for b in check(db).bloat}
    for name in ("bl_v", "bl_pkey"):
        assert bloat[name].bloat_percent > 50, bloat[name]
    assert bloat["bl_v_fresh"].bloat_percent < 10
    stale = bloat["bl_v"]
    assert stale.fix_sql == "REINDEX INDEX CONCURRENTLY public.bl_v;"
    assert "estimate" in stale.reason and stale.size_bytes == size_of(db, "bl_v")
    assert abs(stale.bloat_bytes / stale.size_bytes * 100 - stale.bloat_percent) < 1
    # The threshold is on estimated bloat bytes, as PgHero's.
    assert {b.index for b in check(db, min_bloat_bytes=stale.bloat_bytes).bloat} <= {"bl_v", "bl_pkey"}
    db.execute(stale.fix_sql)
    assert next(b for b in check(db).bloat if b.index == "bl_v").bloat_percent < 10


# -- all of it as a monitoring role ---------------------------------------------------------------
def test_pg_monitor_role_gets_the_same_findings(pg: ThrowawayPostgres, db: psycopg.Connection) -> None:
    for build in (build_unused, build_duplicates, build_invalid, build_fks, build_bloat):
        build(db)
    owner = check(db)
    role = f"monitor_{uuid.uuid4().hex[:8]}"
    dbname = db.info.dbname
    run(db, f"CREATE ROLE {role} LOGIN IN ROLE pg_monitor", f"GRANT CONNECT ON DATABASE {dbname} TO {role}")
    try:
        # Connected the way the collector connects: read-only, statement timeout, dict rows.
        options = "-c default_transaction_read_only=on -c statement_timeout=5000"
        with psycopg.connect(
            pg.dsn(user=role, dbname=dbname), autocommit=True, row_factory=dict_row, options=options
        ) as mon:
            monitor = check(mon)
            assert mon.autocommit and mon.row_factory is dict_row  # the caller's settings stand
            assert mon.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            db.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
            granted = check(mon)
    finally:
        run(db, f"DROP OWNED BY {role}", f"DROP ROLE {role}")
    for name in ("unused", "redundant", "invalid", "missing_fk_indexes"):
        assert getattr(monitor, name) == getattr(owner, name), name
    # pg_stats hides the columns of tables the role cannot SELECT: what is NOT NULL and of fixed
    # width is still estimated exactly; the rest is named in a note, not guessed.
    hidden = {b.index for b in owner.bloat} - {b.index for b in monitor.bloat}
    assert monitor.bloat == [b for b in owner.bloat if b.index not in hidden]
    assert hidden == {"child_indexed_parent", "child_pair_code", "child_pair_ok_idx"}  # nullable
    assert all(f"public.{name}" in monitor.notes[0] for name in hidden)
    # With SELECT on the tables everything matches.
    assert granted.model_dump(mode="json") == owner.model_dump(mode="json")
