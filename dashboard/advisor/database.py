"""Advising one database: connect read-only, take its workload, suggest indexes, check index health.

Everything runs in a guarded session (dashboard.core.guarded): read-only, under timeouts set before any
statement is sent, refused for roles that could run programs or touch the server's files. The
recorded statements are foreign SQL and are only planned through the session's door. Hypothetical
indexes live only in this session and are dropped at its end. Nothing is ever created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from pglast.stream import maybe_double_quote_name
from psycopg import Connection
from psycopg import sql as pgsql
from psycopg.rows import dict_row

from dashboard.advisor.advise import Advisor, Options, StatementInput
from dashboard.advisor.catalog import sql
from dashboard.advisor.privileges import access
from dashboard.core.advice import AdviceReport, IndexHealthReport
from dashboard.core.guarded import GuardedSession, SessionRefused, first_line
from dashboard.core.guarded.statement import is_utility
from dashboard.core.records import OWN_MARKER, OWN_UNMARKED
from dashboard.core.statement_redaction import redact_statement


@dataclass(frozen=True)
class Workload:
    """Which recorded statements are worth advising on."""

    min_calls: int = 10
    min_mean_ms: float = 1.0
    limit: int = 100


# Someone created a function beside pg_stat_statements' own with a signature that makes its calls
# ambiguous: anyone who may create in the extension's schema can. The fix is a schema of its own.
PGSS_OVERLOAD = (
    "Someone who may create objects in pg_stat_statements' schema made its functions ambiguous: "
    "give the extension a schema of its own (CREATE SCHEMA pgss; ALTER EXTENSION pg_stat_statements "
    "SET SCHEMA pgss)"
)


def no_hypopg(database: str) -> str:
    where = f"CREATE EXTENSION hypopg; in database {maybe_double_quote_name(database)}"
    return f"install HypoPG ({where}) so the planner proves every suggestion"


class AdviseError(RuntimeError):
    """The database cannot be advised on: the message says why and what to do."""


def connect(dsn: str, password_env: str | None = None, allow_privileged: bool = False) -> GuardedSession:
    try:
        return GuardedSession.connect(dsn, password_env, allow_privileged=allow_privileged)
    except SessionRefused as err:
        raise AdviseError(str(err)) from None


def workload_statements(conn: Connection, workload: Workload) -> list[StatementInput]:
    """This database's top statements from pg_stat_statements, with calls per day and mean time."""
    with conn.cursor(row_factory=dict_row) as cur:
        ext = cur.execute(
            OWN_MARKER + "SELECT extnamespace::regnamespace::text AS schema FROM pg_extension"
            " WHERE extname = 'pg_stat_statements'"
        ).fetchone()
        if ext is None:
            raise AdviseError(
                "pg_stat_statements is not installed here: CREATE EXTENSION pg_stat_statements;"
            )
        since = cur.execute(_since_query(conn, ext["schema"])).fetchone()["since"]
        query = pgsql.SQL(sql("workload_statements")).format(pgss=pgsql.Identifier(ext["schema"]))
        params = {
            "since": since,
            "own_marker": OWN_MARKER,
            "own_unmarked": list(OWN_UNMARKED),
            **workload.__dict__,
        }
        rows = cur.execute(query, params).fetchall()
    return _merge_same_text(rows)


def _merge_same_text(rows: list[dict]) -> list[StatementInput]:
    """One input per text: drivers send $1 as int2, int4 or int8, which pg_stat_statements keeps apart.
    Statements without a plan are left out."""
    merged: dict[str, tuple[float, float]] = {}  # text -> (calls per day, total ms per day)
    for r in rows:
        if is_utility(r["query"]):  # BEGIN, COMMIT, SET: nothing to plan, nothing to say
            continue
        # As the collector stores it: a PASSWORD literal never reaches a report (and texts still match).
        text = redact_statement(r["query"])
        calls, total = merged.get(text, (0.0, 0.0))
        merged[text] = (
            calls + float(r["calls_per_day"]),
            total + float(r["calls_per_day"]) * float(r["mean_ms"]),
        )
    return [
        StatementInput(text, calls, total / calls if calls else 0.0)
        for text, (calls, total) in merged.items()
    ]


def _since_query(conn: Connection, schema: str) -> pgsql.Composable:
    if conn.info.server_version >= 140000:  # the time of the last pg_stat_statements_reset()
        query = OWN_MARKER + "SELECT coalesce(stats_reset, pg_postmaster_start_time()) AS since FROM {}.{}"
        return pgsql.SQL(query).format(pgsql.Identifier(schema), pgsql.Identifier("pg_stat_statements_info"))
    return pgsql.SQL(OWN_MARKER + "SELECT pg_postmaster_start_time() AS since")


def advice_report(
    dsn: str,
    *,
    queries: list[str] | None = None,
    password_env: str | None = None,
    options: Options | None = None,
    workload: Workload | None = None,
    health: bool = True,
    allow_privileged: bool = False,
) -> AdviceReport:
    """The database's report: suggestions, skipped statements, index health (unless `health` is False)."""
    report, _ = advise_database(
        dsn,
        queries=queries,
        password_env=password_env,
        options=options,
        workload=workload,
        health=health,
        allow_privileged=allow_privileged,
    )
    return report


def advise_database(
    dsn: str,
    *,
    queries: list[str] | None = None,
    password_env: str | None = None,
    options: Options | None = None,
    workload: Workload | None = None,
    health: bool = True,
    allow_privileged: bool = False,
) -> tuple[AdviceReport, dict[str, Any]]:
    """`advice_report`, and the plan of each statement it planned (text -> EXPLAIN's JSON, without
    hypothetical indexes): the daemon keeps them as the statements' plan history."""
    with connect(dsn, password_env, allow_privileged) as session:
        conn = session.conn
        if queries:
            statements = [StatementInput(q) for q in queries]
        else:
            try:
                statements = workload_statements(conn, workload or Workload())
            except psycopg.errors.AmbiguousFunction as err:
                raise AdviseError(f"cannot read the workload: {first_line(err)}. {PGSS_OVERLOAD}") from None
            except psycopg.Error as err:
                raise AdviseError(f"cannot read the workload: {first_line(err)}") from None
        database = conn.info.dbname  # read while the session stands: the advice may lose it
        allowed = access(conn)
        advice = Advisor(session, options).advise(statements)
        checked = _health(conn) if health and not session.lost else None
    report = AdviceReport(
        suggestions=[s.to_record() for s in advice.suggestions],
        skipped=advice.skipped,
        hypopg=advice.hypopg,
        database=database,
        hint=no_hypopg(database) if allowed.hypopg == "absent" else None,
        needs=allowed.needs or None,
        health=checked,
    )
    return report, {text: plan.tree for text, plan in advice.plans.items()}


def _health(conn: Connection) -> IndexHealthReport:
    from dashboard.advisor.health import index_health

    try:
        return index_health(conn)
    except psycopg.Error as err:  # the suggestions stand without it
        return IndexHealthReport.unreadable(first_line(err))
