"""The index advisor's report as it crosses the store: typed records, not dicts.

Here in core because both sides use them: the advisor builds them (dashboard.advisor.database, and
collectors.jobs.advisor for error reports), the store writes and reads them (`StoredAdvice` per
database), the analyses say what a report holds for one statement (`StatementAdvice`). The JSON is the shape
the dicts had (same keys, same order), so reports stored before these records existed still load:
`AdviceReport.from_stored(text)`. Loading is tolerant, as for `details.Details`: a key this version
does not know (a row another version wrote) is ignored, and a row that still cannot be read becomes an
error report saying so, for that database alone. Built in code, the records refuse unknown keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
    model_serializer,
)


class _Record(BaseModel):
    """A record of the report. A field with a default is dumped only when it was given (built or
    loaded) and is not None: the JSON keeps the keys the dicts had (an error report has no `hypopg`,
    index health that could not be read has only `notes`)."""

    # Finding.schema_ is "schema" in JSON.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, serialize_by_alias=True)

    @model_serializer(mode="wrap")
    def _given_keys(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        given = self.model_fields_set
        absent = {
            name
            for name, field in type(self).model_fields.items()
            if not field.is_required() and (name not in given or getattr(self, name) is None)
        }
        return {k: v for k, v in handler(self).items() if k not in absent}


# -- index suggestions ------------------------------------------------------------------------
class IndexSuggestion(_Record):
    """One index worth creating, and the statements it serves (ranked in the report)."""

    table: str  # schema-qualified
    columns: list[str]  # key columns or expressions, in index order
    create_sql: str  # CREATE INDEX CONCURRENTLY ...;
    statements: list[str]  # the texts it serves, as recorded
    cost_before: float  # the planner's cost of those statements now
    cost_after: float | None  # with the (hypothetical) index; None when unproven (no HypoPG)
    proven: bool  # every statement planned with it under HypoPG
    saved_ms_per_day: float | None  # None without calls and mean time, or unproven
    writes_per_day: float  # rows written to the table: what keeping the index up to date costs
    table_rows: int
    reason: str
    plan_before: str  # EXPLAIN text of the first statement served
    plan_after: str | None


class SkippedStatement(_Record):
    """A statement without a suggestion, and why."""

    statement: str
    reason: str


# -- index health -----------------------------------------------------------------------------
class Finding(_Record):
    """One index (or foreign key) to act on; `fix_sql` is None when only a human can decide."""

    schema_: str = Field(alias="schema")  # `schema` would shadow a BaseModel method
    table: str  # schema-qualified, quoted where needed: public.orders, "Sales"."Order"
    index: str | None  # the index's name as stored (unquoted); None for a missing index
    definition: str  # pg_get_indexdef, or the foreign key's definition
    size_bytes: int  # the index's size; the referencing table's for a missing FK index
    size: str
    reason: str
    fix_sql: str | None


class UnusedIndex(Finding):
    unused_since: datetime | None  # stats_reset, else postmaster start (a lower bound)

    @field_serializer("unused_since", when_used="json-unless-none")
    def _iso(self, value: datetime) -> str:
        return value.isoformat()  # '+00:00', as the dicts wrote it (pydantic's own writes 'Z')


class RedundantIndex(Finding):
    covered_by: str
    covered_by_definition: str
    exact_duplicate: bool


class InvalidIndex(Finding):
    alternative_sql: str | None  # drop and recreate, when REINDEX is not wanted
    build_running: bool


class MissingFkIndex(Finding):
    constraint: str
    referenced_table: str
    columns: tuple[str, ...]  # quoted, in the foreign key's order
    table_rows: int


class BloatedIndex(Finding):
    bloat_bytes: int
    bloat: str
    bloat_percent: float


class IndexHealthReport(_Record):
    """Every check's findings, and notes on what could not be checked."""

    unused: list[UnusedIndex] = []
    redundant: list[RedundantIndex] = []
    invalid: list[InvalidIndex] = []
    missing_fk_indexes: list[MissingFkIndex] = []
    bloat: list[BloatedIndex] = []
    notes: list[str] = []

    @classmethod
    def unreadable(cls, why: str) -> IndexHealthReport:
        """The checks failed: only a note says so (the suggestions stand without them)."""
        return cls(notes=[f"index health could not be read: {why}"])


# -- the report -------------------------------------------------------------------------------
class AdviceReport(_Record):
    """One database's advice. An error report has only `error`, empty lists and empty health;
    `health` is absent when it was not checked (or the session was lost)."""

    error: str | None = None
    suggestions: list[IndexSuggestion]
    skipped: list[SkippedStatement]
    hypopg: bool | None = None  # suggestions proven with HypoPG (absent in an error report)
    database: str | None = None
    hint: str | None = None  # what to do for better advice
    needs: list[str] | None = None  # privileges the advisor's role lacks here, each with its GRANT
    health: IndexHealthReport | None = None

    @classmethod
    def failed(cls, error: str) -> AdviceReport:
        """The report of a database that could not be advised."""
        return cls(error=error, suggestions=[], skipped=[], health=IndexHealthReport())

    @classmethod
    def from_stored(cls, text: str | bytes) -> AdviceReport:
        """The report from the store's JSON (`advice.report`), as written now or before these records.
        A report that cannot be read whole (not JSON, a key missing or unknown, a value of the wrong
        type: another version wrote it) is an error report that says so, never a report that looks
        complete without what this version could not read."""
        try:
            return cls.model_validate_json(text)
        except (ValidationError, TypeError) as err:
            return cls.failed(f"this stored report cannot be read: {_reason(err)}")

    def to_stored(self) -> str:
        """The JSON the store keeps."""
        return self.model_dump_json(by_alias=True)


def _reason(err: Exception) -> str:
    """The first problem, on one line: where it is and what is wrong."""
    if isinstance(err, ValidationError) and err.errors():
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        text = f"{where}: {first['msg']}" if where else first["msg"]
    else:
        text = str(err)
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else type(err).__name__


# -- the report as the store keeps it -------------------------------------------------------------
class StoredAdvice(NamedTuple):
    """The advisor's latest report for one database of a target, as the store holds it."""

    target: str  # the target's name
    target_id: int
    datname: str
    ts: int  # when the report was made (Unix seconds)
    duration_ms: float | None  # how long making it took
    report: AdviceReport


class StatementAdvice(NamedTuple):
    """What a stored report says about one statement: the suggestion that serves it (with its rank
    in the report), or why it got none (`skipped`)."""

    target: str
    datname: str
    ts: int
    suggestion: IndexSuggestion | None = None
    rank: int | None = None  # 1 for the report's first suggestion
    skipped: str | None = None  # the reason, when the statement got no suggestion
