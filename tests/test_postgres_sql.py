"""Every variant of the collector's SQL that this PostgreSQL can run, run against it.

Only PostgreSQL 15 is installed here, so the 13 and 14 variants run on 15 (their columns still
exist there); the 17 variant names columns 15 does not have and is not run.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from collectors.postgres import reads as pgc
from collectors.postgres.arrays import float8_rows, register_int8_array
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store.schema import STATEMENT_COUNTERS
from tests.support.postgres import new_database, run_workload


@pytest.mark.parametrize("version", [130000, 140000, 150000])
def test_sql_variants_run_and_agree(pg: ThrowawayPostgres, version: int) -> None:
    dsn = pg.dsn(dbname=new_database(pg, "sqlv"))
    run_workload(dsn)
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        register_int8_array(conn)
        before = conn.execute("SELECT count(queryid) AS n FROM pg_stat_statements").fetchone()
        reads = pgc._Reads(conn, version, "public")
        with conn.pipeline():
            reads.send("server", "database", "activity", "database_sizes", "names")
            reads.send_statements({})
        assert reads.sent("statements_info") == (version >= 140000)
        assert reads.rows("server")[0]["pgss_schema"] == "public"
        assert {r["kind"] for r in reads.rows("names")} == {"database", "role"}
        assert all(r["size_bytes"] > 0 for r in reads.rows("database_sizes"))
        rows = reads.rows("statements")
        counters = float8_rows([r[4] for r in rows], len(STATEMENT_COUNTERS))
        assert len(rows) > 10 and (counters >= 0).all() and counters[:, 0].sum() > 0
        expected = conn.execute("SELECT sum(calls) AS calls FROM pg_stat_statements").fetchone()
        assert counters[:, 0].sum() == pytest.approx(float(expected["calls"]), rel=0.05)
        assert len(rows) >= before["n"]  # no signature sent: every entry (and these reads)

        sigs = {pgc.StatementKey(*r[:4]): r[10] for r in rows}  # last cycle's signatures ...
        again = pgc._Reads(conn, version, "public")
        with conn.pipeline():
            again.send_statements(sigs)
        moved = again.rows("statements")
        assert 0 < len(moved) < 6  # ... leave out all but the queries run since (these reads)


@pytest.mark.parametrize("version", [130000, 140000, 150000])
def test_the_wait_sample_runs_on_each_version_and_names_the_lock_wait_start_from_14(
    pg: ThrowawayPostgres, version: int
) -> None:
    """A session waits on a row lock while the sample is read with each version's SQL: before 14
    it has no lock wait start (pg_locks.waitstart is 14+), from 14 it has one."""
    import threading

    dsn = pg.dsn(dbname=new_database(pg, "waitv"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (1)")
    holder = psycopg.connect(dsn)
    holder.execute("SELECT * FROM t WHERE id = 1 FOR UPDATE")
    waiter = psycopg.connect(dsn, autocommit=True)
    pids = holder.info.backend_pid, waiter.info.backend_pid
    thread = threading.Thread(target=lambda: waiter.execute("SELECT * FROM t WHERE id = 1 FOR UPDATE"))
    thread.start()
    try:
        with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
            for _ in range(100):
                row = pgc._Reads(conn, version, None).fetch("waits")[0]
                waiting = [s for s in row["locks"] if s["blocked_by"]]
                if waiting:
                    break
                threading.Event().wait(0.05)
    finally:
        holder.rollback()
        thread.join(timeout=10)
        holder.close()
        waiter.close()
    (found,) = waiting
    assert found["pid"] == pids[1] and found["blocked_by"] == [pids[0]]
    assert (found["wait_start"] is None) == (version < 140000)
    assert found["wait_start"] is None or found["wait_start"] >= found["query_start"]
