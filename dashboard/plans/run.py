"""Running EXPLAIN on a statement through the guarded door, and everything the findings need.

The statement is foreign SQL: `check()` reads it before anything connects, and it reaches the server
only through `GuardedSession.run_explain` (one statement, extended protocol, a transaction always
rolled back, read-only unless the target lets ANALYZE run writes, timeouts it cannot lift). Around
the plan, the session's own SQL reads the catalog facts of the tables it touches, and the advisor
proposes an index, planned with HypoPG for a before/after.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import psycopg

from dashboard.advisor.advise import Advisor, StatementInput
from dashboard.advisor.privileges import denied
from dashboard.core.guarded import (
    ForeignStatement,
    GuardedSession,
    Limits,
    Refused,
    Run,
    SessionRefused,
    check,
    first_line,
    reading_form,
)
from dashboard.core.redaction import password_of, redact
from dashboard.plans import samples
from dashboard.plans.facts import read_facts
from dashboard.plans.findings import Facts, Finding, find
from dashboard.plans.tree import Plan, read_plan

APPLICATION = "observatory-investigate"
MIN_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class ExplainRequest:
    text: str  # foreign SQL: checked by the guarded door before anything connects
    analyze: bool = False  # run it (rolled back); only when the target allows it
    values: tuple[str | None, ...] | None = None  # for $1..$n, as text; None: a generic plan
    hypothetical: bool = True  # also plan it with the index the advisor proposes (HypoPG)


@dataclass(frozen=True)
class AnalyzePolicy:
    """What the target's config allows (`explain_analyze`, `explain_analyze_writes`)."""

    analyze: bool = False
    writes: bool = False


@dataclass(frozen=True)
class Proposal:
    """The advisor's index for the statement and the estimated plan with it, for a side-by-side."""

    create_sql: str
    table: str  # 'public.orders'
    before: Plan  # estimated, without the index
    after: Plan  # estimated, with it (hypothetical)


@dataclass(frozen=True)
class Explained:
    statement: str  # the text as planned (typed placeholders written as casts)
    plan: Plan | None
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None  # why there is no plan: refused, cancelled, denied ... (for people)
    command: str = ""  # the EXPLAIN options used: 'EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS)'
    generic: bool = False  # a generic plan: $n without values
    proposal: Proposal | None = None
    database: str | None = None
    server_version: int | None = None
    captured_at: datetime | None = None
    notes: list[str] = field(default_factory=list)  # what was done instead of what was asked


def explain(
    dsn: str,
    request: ExplainRequest,
    *,
    password_env: str | None = None,
    policy: AnalyzePolicy = AnalyzePolicy(),
    allow_privileged: bool = False,
    timeout_s: float = 10.0,
) -> Explained:
    """The plan of `request.text` on the server `dsn` names, read and judged; or why there is none.
    Never raises for what the statement, the server or the role do: `Explained.error` says it."""
    try:
        statement = check(request.text)
    except Refused as err:
        return Explained(statement=str(request.text)[:10_000], plan=None, error=f"Not explained: {err}")
    if request.analyze and not policy.analyze:
        return Explained(
            statement.text,
            None,
            error="EXPLAIN ANALYZE is off for this target: it runs the statement. Allow it with "
            "explain_analyze: true in the target's config (writes also need explain_analyze_writes: true)",
        )
    # statement_timeout = 0 would mean no limit at all; under half a second the session's own
    # checks would not finish.
    timeout_s = max(timeout_s, MIN_TIMEOUT_S)
    limits = Limits(statement_ms=round(timeout_s * 1000), deadline_s=timeout_s + 5)
    try:
        session = GuardedSession.connect(
            dsn, password_env, limits=limits, allow_privileged=allow_privileged, application_name=APPLICATION
        )
    except SessionRefused as err:
        return Explained(statement.text, None, error=f"Cannot connect: {err}")
    with session:
        try:
            return _explained(session, statement, request, policy, timeout_s)
        except psycopg.Error as err:  # the session's own reads, or the server went away
            message = redact(first_line(err), password_of(dsn))
            return Explained(statement.text, None, error=f"The server failed: {message}")


def _explained(
    session: GuardedSession,
    statement: ForeignStatement,
    request: ExplainRequest,
    policy: AnalyzePolicy,
    timeout_s: float,
) -> Explained:
    run = Run(analyze=request.analyze, values=request.values, writes=policy.writes)
    base = {"database": session.conn.info.dbname, "server_version": session.server_version}
    notes: list[str] = []
    try:
        planned, (tree, command, generic) = _run(session, statement, run, notes)
    except Refused as err:
        return Explained(statement.text, None, error=f"Not explained: {err}", **base)
    except psycopg.errors.QueryCanceled:
        what = "ran" if request.analyze else "was planned"
        return Explained(
            statement.text,
            None,
            error=f"Cancelled: it {what} longer than {timeout_s:g} s (the target's explain_timeout), "
            "and the server stopped it",
            **base,
        )
    except psycopg.errors.InsufficientPrivilege as err:
        return Explained(
            statement.text, None, error=f"{first_line(err)}: {denied(session.conn, True)}", **base
        )
    except psycopg.Error as err:
        if session.lost:  # the deadline struck, and the server did not stop: the session was ended
            lost = f"Cancelled: it ran past {timeout_s + 5:g} s and the server did not stop it: disconnected"
            return Explained(statement.text, None, error=lost, **base)
        return Explained(statement.text, None, error=f"The server refused it: {first_line(err)}", **base)
    plans = [t for t in tree if isinstance(t, dict)] if isinstance(tree, list) else [tree]
    if len(tree) > 1 and plans:  # a rule (DO ALSO) adds statements of its own: NOTIFY, an INSERT ...
        notes.append(f"A rule makes it {len(tree)} statements: shown is the first one's plan.")
        tree = plans[:1]
    plan = read_plan(tree)
    proposal = _proposal(session, planned, request, notes) if request.hypothetical else None
    facts = _facts(session, plan, proposal, notes)
    return Explained(
        statement=statement.text,
        plan=plan,
        findings=find(plan, facts),
        command=command,
        generic=generic,
        proposal=proposal,
        captured_at=datetime.now(UTC),
        notes=notes,
        **base,
    )


def _run(
    session: GuardedSession, statement: ForeignStatement, run: Run, notes: list[str]
) -> tuple[ForeignStatement, tuple]:
    """EXPLAIN of the statement; an estimated plan of a write the role may not make is the plan of
    the SELECT that finds its rows (so the role never needs a write privilege)."""
    try:
        return statement, session.run_explain(statement, run)
    except psycopg.errors.InsufficientPrivilege:
        reading = reading_form(statement)
        if run.analyze or reading is statement:
            raise
    notes.append(
        f"The role may not {statement.kind.upper()} here: shown is the plan of the SELECT that finds "
        "the rows it would change (the same scans and joins, without the write)."
    )
    return reading, session.run_explain(reading, run)


def _proposal(
    session: GuardedSession, statement: ForeignStatement, request: ExplainRequest, notes: list[str]
) -> Proposal | None:
    """The advisor's best index for the statement, with the estimated plans before and after it."""
    advisor = Advisor(session)
    if not advisor.planner.hypopg:
        notes.append("No before/after with an index: HypoPG is not installed here (CREATE EXTENSION hypopg).")
        return None
    try:
        advice = advisor.advise([StatementInput(statement.text)])
        if not advice.suggestions:
            return None
        best = advice.suggestions[0]
        estimated = Run(values=request.values)
        before = read_plan(session.run_explain(statement, estimated)[0])
        with advisor.planner.hypothetical([best.candidate]):
            after = read_plan(session.run_explain(statement, estimated)[0])
    except (Refused, psycopg.Error, ValueError) as err:
        if session.lost:
            raise
        notes.append(f"No before/after with an index: {first_line(err)}")
        return None
    return Proposal(create_sql=best.create_sql(), table=best.candidate.table, before=before, after=after)


def _facts(session: GuardedSession, plan: Plan, proposal: Proposal | None, notes: list[str]) -> Facts:
    try:
        facts = read_facts(session.conn, plan)
    except psycopg.Error as err:
        notes.append(f"Without the tables' statistics: {first_line(err)}")
        facts = Facts()
    if proposal is None:
        return facts
    return replace(facts, suggestions={**facts.suggestions, proposal.table: proposal.create_sql})


def sample_values(
    dsn: str, text: str, *, password_env: str | None = None, allow_privileged: bool = False
) -> tuple[str | None, ...] | str:
    """Values for the statement's $1..$n from pg_stats (None where nothing is known), or why not."""
    try:
        statement = check(text)
        with GuardedSession.connect(
            dsn, password_env, allow_privileged=allow_privileged, application_name=APPLICATION
        ) as session:
            oids = session.relation_oids(sorted(statement.relations))
            return samples.sample_values(session.conn, statement, oids)
    except (Refused, SessionRefused) as err:
        return str(err)
    except psycopg.Error as err:
        return f"cannot read pg_stats: {redact(first_line(err), password_of(dsn))}"
