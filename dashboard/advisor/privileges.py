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
from dashboard.core.records import OWN_MARKER


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
    if not hypopg["usage"] or hypopg["denied"]:
        needs.append(_hypopg_grant(role, hypopg))
        return Access(needs, "forbidden")
    return Access(needs, "usable")


def _hypopg_grant(role: str, hypopg: dict) -> str:
    """USAGE on its schema and EXECUTE on the two functions the advisor calls, nothing wider (its
    schema is often public, where someone may have revoked EXECUTE from other functions)."""
    grants = []
    if not hypopg["usage"]:
        grants.append(f"GRANT USAGE ON SCHEMA {_quoted(hypopg['schema'])} TO {role};")
    if hypopg["denied"]:
        grants.append(f"GRANT EXECUTE ON FUNCTION {', '.join(hypopg['denied'])} TO {role};")
    return f"{role} may not call HypoPG, so suggestions cannot be proven: {' '.join(grants)}"


def denied(conn: Connection, reads_only: bool) -> str:
    """For a statement refused with "permission denied": what lets the role plan it. A statement
    that still writes (MERGE, INSERT ... VALUES, a CTE that writes) needs a write privilege, which
    the advisor's role should not have; one that only reads needs SELECT."""
    role = _quoted(conn.info.user)
    if not reads_only or _reads_everything(conn):
        return f"planning it needs a privilege to write, which {role} is rightly not given: not planned"
    how = f"GRANT SELECT ON the tables TO {role}"
    if conn.info.server_version >= 140000:
        how = f"GRANT pg_read_all_data TO {role}; or {how}"
    return f"the advisor's role needs to read the tables it plans ({how})"


def _reads_everything(conn: Connection) -> bool:
    if conn.info.server_version < 140000:
        return False
    row = conn.execute(
        OWN_MARKER + "SELECT pg_has_role(current_user, 'pg_read_all_data', 'USAGE')"
    ).fetchone()
    return bool(row and row[0])


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
