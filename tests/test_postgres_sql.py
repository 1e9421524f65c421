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
