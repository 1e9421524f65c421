"""Asking PostgreSQL's planner what a statement costs, with and without hypothetical indexes.

Statements are foreign SQL: they reach the server only through the guarded session's `explain`
(one statement, extended protocol, read-only, rolled back, under timeouts). Statements with `$1`
placeholders get a generic plan; an UPDATE or DELETE is planned as the SELECT that finds its rows
(`reading_form`), so the advisor's role needs no write privilege. HypoPG's indexes live only in
this session; nothing is ever created for real.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql as pgsql

from dashboard.advisor.candidates import Candidate
from dashboard.advisor.catalog import sql
from dashboard.advisor.privileges import denied
from dashboard.core.guarded import ForeignStatement, GuardedSession, Refused, check, first_line, reading_form
from dashboard.core.records import OWN_MARKER


class PlanError(ValueError):
    """The planner refused the statement: the message says why."""


@dataclass(frozen=True)
class Plan:
    cost: float
    indexes: frozenset[str]  # index names the plan uses
    text: str  # EXPLAIN's text form, for people
    # EXPLAIN's JSON as the server gave it (plan history keeps it); not part of a plan's identity.
    tree: Any = field(default=None, compare=False, repr=False)

    def uses(self, index_name: str) -> bool:
        return index_name in self.indexes


class Planner:
    def __init__(self, session: GuardedSession) -> None:
        self.session = session
        self._hypopg_schema = self._find_hypopg()
        self.hypopg = self._hypopg_schema is not None

    def _find_hypopg(self) -> str | None:
        """HypoPG's schema, when the role may call it: the session resolves names in pg_catalog only,
        so its calls name it. (privileges.access says what to grant when it may not.)"""
        row = self.session.conn.execute(sql("privileges_hypopg")).fetchone()
        return row[0] if row and row[1] and not row[2] else None

    def _hypopg(self, template: str) -> pgsql.Composed:
        """`template` with {} for HypoPG's schema, marked as the observatory's own."""
        return pgsql.SQL(OWN_MARKER + template).format(pgsql.Identifier(self._hypopg_schema or "public"))

    def plan(self, statement: ForeignStatement) -> Plan:
        """The estimated plan of the statement as the server would run it now.

        Raises Refused (from the session) for a statement that must not be planned.
        """
        reading = reading_form(statement)
        try:
            tree, text = self.session.explain(reading)
        except psycopg.errors.QueryCanceled:
            limit = self.session.limits.statement_ms / 1000
            raise PlanError(f"cancelled: planning it took longer than {limit:g} s") from None
        except psycopg.errors.InsufficientPrivilege as err:
            raise PlanError(
                f"{first_line(err)}: {denied(self.session.conn, reading.kind == 'select')}"
            ) from None
        except psycopg.Error as err:
            raise PlanError(first_line(err)) from None
        return Plan(float(tree[0]["Plan"]["Total Cost"]), frozenset(_index_names(tree)), text, tree)

    @contextmanager
    def hypothetical(self, candidates: Sequence[Candidate]) -> Iterator[list[str]]:
        """Hypothetical indexes for the block; yields their names as plans will show them."""
        names: list[str] = []
        for candidate in candidates:
            self._refuse_untrusted_keys(candidate)
        try:
            with self.session.conn.cursor() as cur:
                for candidate in candidates:
                    create = self._hypopg("SELECT indexname FROM {}.hypopg_create_index(%s)")
                    try:
                        cur.execute(create, (candidate.create_sql(False),))
                    except psycopg.Error as err:  # HypoPG refused it, or the session is gone
                        raise PlanError(f"no hypothetical index: {first_line(err)}") from None
                    names.append(cur.fetchone()[0])
            yield names
        finally:
            if not self.session.lost:
                self.session.conn.execute(self._hypopg("SELECT {}.hypopg_reset()"))

    def _refuse_untrusted_keys(self, candidate: Candidate) -> None:
        """Expression keys are sqlglot's rendering of the statement's text, and the planner folds
        index expressions: what they call is checked like a statement before HypoPG sees them."""
        if not any(candidate.expressions):
            return
        pairs = zip(candidate.keys, candidate.expressions, strict=True)
        keys = [f"({key})" for key, is_expr in pairs if is_expr]
        try:
            self.session.refuse_untrusted(check(f"SELECT {', '.join(keys)} FROM {candidate.quoted_table}"))
        except Refused as err:
            raise PlanError(f"index keys {', '.join(candidate.keys)}: {err}") from None

    def plan_with(self, statement: ForeignStatement, candidate: Candidate) -> tuple[Plan, bool]:
        """The plan with one hypothetical index, and whether the plan uses it."""
        with self.hypothetical([candidate]) as (name,):
            plan = self.plan(statement)
            return plan, plan.uses(name)


def _index_names(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if "Index Name" in node:
            yield node["Index Name"]
        for value in node.values():
            yield from _index_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _index_names(item)
