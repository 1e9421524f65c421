"""Asking PostgreSQL's planner what a statement costs, with and without hypothetical indexes.

Statements with `$1` placeholders get a generic plan (PREPARE under force_generic_plan); a
statement must be PREPAREd after the hypothetical index exists or it keeps its cached plan.
HypoPG's indexes live only in this session; nothing is ever created for real.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from dashboard.advisor.candidates import Candidate

_PARAM = re.compile(r"\$(\d+)")


class PlanError(ValueError):
    """The planner refused the statement: the message says why."""


@dataclass(frozen=True)
class Plan:
    cost: float
    indexes: frozenset[str]  # index names the plan uses
    text: str  # EXPLAIN's text form, for people

    def uses(self, index_name: str) -> bool:
        return index_name in self.indexes


class Planner:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.hypopg = self._has_hypopg()
        with conn.cursor() as cur:
            cur.execute("SET plan_cache_mode = force_generic_plan")

    def _has_hypopg(self) -> bool:
        with self.conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'")
            return cur.fetchone() is not None

    def plan(self, statement: str) -> Plan:
        """The estimated plan of the statement as the server would run it now."""
        params = max((int(n) for n in _PARAM.findall(statement)), default=0)
        prepared = False
        try:
            with self.conn.cursor() as cur:
                explain = statement
                if params:
                    cur.execute(f"PREPARE observatory_advise AS {statement}")
                    prepared = True
                    explain = f"EXECUTE observatory_advise({', '.join(['NULL'] * params)})"
                cur.execute(f"EXPLAIN (FORMAT JSON) {explain}")
                tree = cur.fetchone()[0]
                cur.execute(f"EXPLAIN {explain}")
                text = "\n".join(row[0] for row in cur.fetchall())
        except psycopg.Error as err:
            raise PlanError(str(err).strip().splitlines()[0]) from None
        finally:
            if prepared:  # prepared statements outlive transactions: always let it go
                self.conn.execute("DEALLOCATE observatory_advise")
        return Plan(float(tree[0]["Plan"]["Total Cost"]), frozenset(_index_names(tree)), text)

    @contextmanager
    def hypothetical(self, candidates: Sequence[Candidate]) -> Iterator[list[str]]:
        """Hypothetical indexes for the block; yields their names as plans will show them."""
        names: list[str] = []
        try:
            with self.conn.cursor() as cur:
                for candidate in candidates:
                    cur.execute(
                        "SELECT indexname FROM hypopg_create_index(%s)", (candidate.create_sql(False),)
                    )
                    names.append(cur.fetchone()[0])
            yield names
        finally:
            with self.conn.cursor() as cur:
                cur.execute("SELECT hypopg_reset()")

    def plan_with(self, statement: str, candidate: Candidate) -> tuple[Plan, bool]:
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
