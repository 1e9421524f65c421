"""What the advisor's role lacks in one database to plan its statements, and the SQL that grants it.

Planning reads: EXPLAIN checks SELECT on every relation a statement names (UPDATE and DELETE are
planned as the SELECT that finds their rows, so no write privilege is needed), and hypothetical
indexes need EXECUTE on HypoPG's functions. `pg_monitor`, all the collector needs, gives neither.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pglast.stream import maybe_double_quote_name
from psycopg import Connection
from psycopg.rows import dict_row

from dashboard.advisor.catalog import sql


class Access(NamedTuple):
    needs: list[str]  # one line per missing grant: what cannot be done, then the SQL that fixes it
    hypopg: Literal["absent", "forbidden", "usable"]


def access(conn: Connection) -> Access:
    """What the connected role may not do here that planning needs, and whether it may use HypoPG."""
    role = _quoted(conn.info.user)
    with conn.cursor(row_factory=dict_row) as cur:
        tables = cur.execute(sql("privileges_tables")).fetchall()
        hypopg = cur.execute(sql("privileges_hypopg")).fetchone()
    needs = [_table_grant(conn, role, row) for row in tables]
    if hypopg is None:
        return Access(needs, "absent")
    if not hypopg["usable"]:
        schema = _quoted(hypopg["schema"])
        needs.append(
            f"{role} may not call HypoPG, so suggestions cannot be proven: GRANT USAGE ON SCHEMA {schema} "
            f"TO {role}; GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {role};"
        )
        return Access(needs, "forbidden")
    return Access(needs, "usable")


def read_grant(conn: Connection) -> str:
    """For a statement refused with "permission denied": what lets the role plan it."""
    role = _quoted(conn.info.user)
    how = f"GRANT SELECT ON the tables TO {role}"
    if conn.info.server_version >= 140000:
        how = f"GRANT pg_read_all_data TO {role}; or {how}"
    return f"the advisor's role needs to read the tables it plans ({how})"


def _table_grant(conn: Connection, role: str, row: dict) -> str:
    schema = _quoted(row["schema"])
    count, names = row["unreadable"], ", ".join(_quoted(name) for name in row["examples"])
    more = ", ..." if count > len(row["examples"]) else ""
    what = (
        f"{role} cannot read {count} relation{'s' if count != 1 else ''} in schema {schema} ({names}{more})"
    )
    defaults = " ".join(
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {_quoted(owner)} IN SCHEMA {schema} "
        f"GRANT SELECT ON TABLES TO {role};"
        for owner in row["owners"]
    )
    per_schema = (
        f"GRANT USAGE ON SCHEMA {schema} TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA {schema} "
        f"TO {role}; {defaults}"
    )
    if conn.info.server_version >= 140000:
        per_schema = f"GRANT pg_read_all_data TO {role}; or {per_schema}"
    return f"{what}, so statements on them cannot be planned: {per_schema}"


def _quoted(name: str) -> str:
    """As a person would type it: quoted only when PostgreSQL needs it (`"Odd Name"`, `"user"`)."""
    return maybe_double_quote_name(name)
