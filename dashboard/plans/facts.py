"""The catalog facts a plan's findings need: each table's size, statistics age and whether it has
statistics at all, the memory settings, and whether the server is a standby, read in one round trip
from the database the plan ran in.

The connection's search_path is pinned to `pg_catalog, pg_temp`, so the query names nothing
outside pg_catalog; the plan's relation names (untrusted text) travel as one array parameter and
are matched against the catalog, never written into the SQL. psycopg errors propagate: the caller
says what went wrong.
"""

from __future__ import annotations

from pathlib import Path

from psycopg import Connection
from psycopg.rows import dict_row

from dashboard.core.sqlfiles import SqlFiles
from dashboard.plans.findings import Facts, TableFacts
from dashboard.plans.tree import Plan

sql = SqlFiles(Path(__file__).with_name("sql"))  # the plan pages' own queries


def plan_relations(plan: Plan) -> list[str]:
    """The relations the plan reads, as it names them, each once, sorted."""
    return sorted({node.relation for node in plan.nodes if node.relation})


def read_facts(conn: Connection, plan: Plan) -> Facts:
    """Facts on every relation of the plan the catalog knows (a name it does not is left out), the
    server's work_mem and hash_mem_multiplier, its clock, and whether it is a standby. `suggestions`
    stay empty: the caller adds the advisor's."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql("plan_facts"), {"names": plan_relations(plan)}).fetchall()
    tables = {row["relation"]: _table(row) for row in rows if row["relation"] is not None}
    first = rows[0]  # the query returns one row even when no relation matched
    return Facts(
        tables=tables,
        work_mem_kb=first["work_mem_kb"],
        hash_mem_multiplier=first["hash_mem_multiplier"],
        now=first["now"],
        in_recovery=bool(first["in_recovery"]),
    )


def _table(row: dict) -> TableFacts:
    return TableFacts(
        relation=row["relation"],
        reltuples=float(row["reltuples"]),
        pages=int(row["pages"]),
        size_bytes=int(row["size_bytes"]),
        live=row["live"],
        modified_since_analyze=row["modified_since_analyze"],
        last_analyze=row["last_analyze"],
        has_statistics=bool(row["has_statistics"]),
    )
