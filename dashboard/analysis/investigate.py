"""Investigate: from a statement (recorded, or pasted) to its plan on a configured PostgreSQL target.

The glue between the page and `dashboard.plans`: which targets can be explained on and what each
allows, what a deep link asks for, the recorded statement an id names, and the call to
`plans.run.explain` with the target's DSN, password and ANALYZE policy from the configuration. No
Streamlit here: the page (pages/investigate.py) draws, `dashboard.ui.cached` caches.

Every text here is foreign: the statement goes to `plans.run`, whose guarded door checks it before
anything connects; the page shows every text escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dashboard.analysis import statements
from dashboard.analysis.reader import Reader
from dashboard.core.config import Config, PostgresTarget
from dashboard.core.guarded import Refused, check
from dashboard.core.redaction import password_of, redact
from dashboard.plans import document, run
from dashboard.plans.document import PlanDocument

SQL_LINK_MAX = 2000  # characters of a statement a link carries (`?sql=`); longer ones go by id only
VALUE_MAX = 1000  # characters of one $n value


@dataclass(frozen=True)
class Choice:
    """A configured PostgreSQL target as the page offers it."""

    name: str
    database: str | None  # the database its DSN names
    analyze: bool  # explain_analyze: EXPLAIN ANALYZE may run statements here
    writes: bool  # explain_analyze_writes: ... even statements that write (rolled back)


@dataclass(frozen=True)
class Link:
    """What a deep link (`?id=`, `?sql=`, `target=`, `db=`, `analyze=1`) asks for."""

    id: int | None = None
    sql: str | None = None
    target: str | None = None
    db: str | None = None
    analyze: bool = False
    bad_id: str | None = None  # an `id` that is not a number, to say so
    sql_cut: bool = False  # `sql` was longer than SQL_LINK_MAX and is ignored

    def params(self) -> dict[str, str]:
        """As URL query parameters (the keys this page owns)."""
        found: dict[str, str] = {}
        if self.id is not None:
            found["id"] = str(self.id)
        elif self.sql:
            found["sql"] = self.sql
        if self.target:
            found["target"] = self.target
        if self.db:
            found["db"] = self.db
        if self.analyze:
            found["analyze"] = "1"
        return found


LINK_KEYS = ("id", "sql", "target", "db", "analyze")


@dataclass(frozen=True)
class Subject:
    """A recorded statement: where it ran and its text."""

    id: int
    target: str
    database: str | None
    text: str


def choices(config: Config) -> list[Choice]:
    """The configured PostgreSQL targets, in the order written."""
    found = []
    for t in config.targets.postgres:
        writes = t.explain_analyze and t.explain_analyze_writes
        found.append(Choice(t.name, _dsn_database(t.dsn), t.explain_analyze, writes))
    return found


def link(params: Mapping[str, str | None]) -> Link:
    """The deep link in URL query parameters (st.query_params: the last value of each)."""
    raw_id = (params.get("id") or "").strip()
    sid = int(raw_id) if raw_id.isdigit() and len(raw_id) < 19 else None
    sql = params.get("sql") or None
    cut = sql is not None and len(sql) > SQL_LINK_MAX
    return Link(
        id=sid,
        sql=None if cut or sid is not None else sql,
        target=(params.get("target") or "").strip() or None,
        db=(params.get("db") or "").strip() or None,
        analyze=(params.get("analyze") or "").strip().lower() in ("1", "true", "yes", "on"),
        bad_id=raw_id if raw_id and sid is None else None,
        sql_cut=cut,
    )


def subject(reader: Reader, statement_id: int) -> Subject | None:
    """The recorded PostgreSQL statement with this id, or None (unknown, not PostgreSQL, no text)."""
    info = statements.statement(reader, statement_id)
    if info is None or info.kind != "postgres" or not info.query:
        return None
    return Subject(info.id, info.target, info.datname, info.query)


def placeholders(text: str) -> int:
    """How many values $1..$n the statement takes (0 when it would be refused: explaining says why)."""
    if not text.strip():
        return 0
    try:
        return check(text).params
    except Refused:
        return 0


def request(text: str, analyze: bool, values: tuple[str, ...] | None) -> run.ExplainRequest:
    """The request for these inputs: empty values everywhere mean a generic plan."""
    given = tuple(v if v.strip() else None for v in values or ())
    return run.ExplainRequest(
        text=text,
        analyze=analyze,
        values=given if any(v is not None for v in given) else None,
    )


def explain(config: Config, target: str, datname: str, req: run.ExplainRequest) -> run.Explained:
    """`req` explained in `datname` of the configured target `target`, with what its config allows;
    an Explained with the error when it cannot be (unknown target, refused, failed)."""
    t = _target(config, target)
    if t is None:
        return failed(req.text, f"{target} is not a PostgreSQL target of the configuration")
    too_long = [i + 1 for i, v in enumerate(req.values or ()) if v is not None and len(v) > VALUE_MAX]
    if too_long:
        return failed(req.text, f"the value of ${too_long[0]} is over {VALUE_MAX:,} characters")
    try:
        dsn = _dsn(t, datname)
    except ValueError as err:
        return failed(req.text, f"the target's DSN cannot name database {datname!r}: {err}")
    return run.explain(
        dsn,
        req,
        password_env=t.password_env,
        policy=run.AnalyzePolicy(analyze=t.explain_analyze, writes=t.explain_analyze_writes),
        allow_privileged=t.advise_privileged,
        timeout_s=t.explain_timeout,
    )


def sample_values(config: Config, target: str, datname: str, text: str) -> tuple[str | None, ...]:
    """Values for $1..$n from the target's statistics (run.sample_values); raises ValueError with
    the reason when there are none to be had."""
    t = _target(config, target)
    if t is None:
        raise ValueError(f"{target} is not a PostgreSQL target of the configuration")
    try:
        dsn = _dsn(t, datname)
    except ValueError as err:
        raise ValueError(f"the target's DSN cannot name database {datname!r}: {err}") from None
    found = run.sample_values(dsn, text, password_env=t.password_env, allow_privileged=t.advise_privileged)
    if isinstance(found, str):
        raise ValueError(found)
    return found


def failed(text: str, error: str) -> run.Explained:
    return run.Explained(statement=text, plan=None, error=error)


def load_plan(data: str | bytes) -> PlanDocument:
    """A plan someone gives (a file saved here, or EXPLAIN (FORMAT JSON) output as psql or pgAdmin
    print it). Raises PlanUnreadable with the reason."""
    return document.loads(data)


def plan_document(explained: run.Explained, target: str) -> PlanDocument:
    """The plan file of an Explained: where and when it was taken, never the DSN."""
    assert explained.plan is not None
    return PlanDocument(
        plan=explained.plan,
        statement=explained.statement,
        target=target,
        database=explained.database,
        server_version=explained.server_version,
        captured_at=explained.captured_at,
        command=explained.command or None,
        generic=explained.generic,
    )


def _target(config: Config, name: str) -> PostgresTarget | None:
    return next((t for t in config.targets.postgres if t.name == name), None)


def _dsn(target: PostgresTarget, datname: str) -> str:
    """The target's DSN naming `datname` (the DSN's own database when empty); ValueError if unreadable."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    try:
        return make_conninfo(target.dsn, dbname=datname) if datname else target.dsn
    except psycopg.ProgrammingError as err:
        message = str(err).splitlines()[0] if str(err) else "not a DSN"
        raise ValueError(redact(message, password_of(target.dsn))) from None


def _dsn_database(dsn: str) -> str | None:
    from psycopg.conninfo import conninfo_to_dict

    try:
        return conninfo_to_dict(dsn).get("dbname")
    except Exception:  # psycopg.ProgrammingError: a DSN the collector reports as broken
        return None
