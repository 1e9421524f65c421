"""The index advisor: from statements to the few indexes that make the workload fastest.

For each statement: read its shape, propose candidates per table, prove each with HypoPG (the
planner's cost with the hypothetical index against without), keep the best. Then merge across the
workload (one index serving three statements beats three; never an index and its prefix) and rank
by the time saved per day against the cost of maintaining the index on writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dashboard.advisor.candidates import Candidate, propose, serving_index
from dashboard.advisor.catalog import Catalog, Relation
from dashboard.advisor.planner import Plan, PlanError, Planner
from dashboard.advisor.shapes import EQUALITY, ShapeError, TableUse, shape
from dashboard.core.advice import IndexSuggestion, SkippedStatement
from dashboard.core.guarded import ForeignStatement, GuardedSession, Refused, Unsafe, check, first_line

# Skipped statements whose reason begins so were not checked for a missing index: they could not be
# read or planned here (a missing grant or relation, a user's function), so no one can say.
UNCHECKED = ("not analysed", "the planner cannot plan it", "not planned")


@dataclass(frozen=True)
class Options:
    min_table_rows: int = 1000  # smaller tables are read whole faster than through an index
    min_reduction: float = 0.25  # keep an index only if it cuts the statement's cost this much
    min_cost: float = 50.0  # statements the planner already finds this cheap are left alone
    write_ms: float = 0.01  # estimated time to maintain one index for one changed row
    near_best: float = 1.1  # a shorter index within 10 % of the best one's cost wins


@dataclass(frozen=True)
class StatementInput:
    text: str
    calls_per_day: float | None = None
    mean_ms: float | None = None


@dataclass
class Proposal:
    """One statement's best index on one table."""

    candidate: Candidate
    statement: StatementInput
    before: Plan
    after: Plan | None  # None when unproven (no HypoPG)
    why: str

    @property
    def reduction(self) -> float | None:
        if self.after is None or self.before.cost <= 0:
            return None
        return max(0.0, 1.0 - self.after.cost / self.before.cost)

    @property
    def saved_ms_per_day(self) -> float | None:
        s, r = self.statement, self.reduction
        if r is None or s.calls_per_day is None or s.mean_ms is None:
            return None
        return s.calls_per_day * s.mean_ms * r


@dataclass
class Suggestion:
    candidate: Candidate
    relation: Relation
    proposals: list[Proposal] = field(default_factory=list)
    missing_extension: str | None = None  # the index's operator class needs it: created first
    extension_schema: str | None = None  # where that extension is, when it is installed

    @property
    def proven(self) -> bool:
        return all(p.after is not None for p in self.proposals)

    @property
    def saved_ms_per_day(self) -> float | None:
        saved = [p.saved_ms_per_day for p in self.proposals]
        return None if any(s is None for s in saved) else sum(saved)  # type: ignore[misc]

    @property
    def writes_per_day(self) -> float:
        # At least a day: right after a bulk load an hour's rate would dwarf any saving.
        days = max((time.time() - self.relation.stats_since) / 86400, 1.0)
        return self.relation.writes / days

    @property
    def net_ms_per_day(self) -> float | None:
        saved = self.saved_ms_per_day
        return None if saved is None else saved - self.writes_per_day * Options.write_ms

    def to_record(self) -> IndexSuggestion:
        """As the report carries it."""
        first = self.proposals[0]
        return IndexSuggestion(
            table=self.candidate.table,
            columns=self.candidate.columns,
            create_sql=self.create_sql(),
            statements=[p.statement.text for p in self.proposals],
            cost_before=round(sum(p.before.cost for p in self.proposals), 2),
            cost_after=_round(sum(p.after.cost for p in self.proposals) if self.proven else None),
            proven=self.proven,
            saved_ms_per_day=_round(self.saved_ms_per_day),
            writes_per_day=round(self.writes_per_day, 1),
            table_rows=self.relation.reltuples,
            reason=self.reason(),
            plan_before=first.before.text,
            plan_after=first.after.text if first.after else None,
        )

    def create_sql(self) -> str:
        """The statements to run, each ending in ';': the extension first when it is missing."""
        setup = (
            f"CREATE EXTENSION IF NOT EXISTS {self.missing_extension};\n" if self.missing_extension else ""
        )
        return f"{setup}{self.candidate.create_sql(opclass_schema=self.extension_schema)};"

    def reason(self) -> str:
        n = len(self.proposals)
        served = f"serves {n} statement{'s' if n != 1 else ''}"
        why = "; ".join(dict.fromkeys(p.why for p in self.proposals))
        if self.proven:
            before = sum(p.before.cost for p in self.proposals)
            after = sum(p.after.cost for p in self.proposals if p.after)
            change = (after - before) / before
            proof = f"planner cost {before:,.0f} -> {after:,.0f} ({change:+.0%}), proven with HypoPG"
        elif self.candidate.method != "btree":
            proof = (
                f"estimated: HypoPG cannot create {self.candidate.method.upper()} indexes, so the planner "
                "could not cost it; chosen because no B-tree serves the search"
            )
        else:
            proof = "unproven: HypoPG is not installed (CREATE EXTENSION hypopg), estimated from statistics"
        if self.missing_extension:
            proof += f"; {self.missing_extension} is not installed in this database: created first"
        return f"{why}; {served}; {proof}; {self.relation.reltuples:,} rows"


@dataclass
class Advice:
    suggestions: list[Suggestion]  # ranked
    skipped: list[SkippedStatement]
    hypopg: bool
    # The plan of each statement planned as the database is (no hypothetical index), by its text.
    plans: dict[str, Plan] = field(default_factory=dict)


class Advisor:
    def __init__(self, session: GuardedSession, options: Options | None = None) -> None:
        self.session = session
        self.options = options or Options()
        self.catalog = Catalog(session)
        self.planner = Planner(session)
        self.relations: dict[str, Relation] = {}  # by 'schema.name', as statements resolved them
        self.checked: dict[str, ForeignStatement] = {}  # by the text given: what the guard let through
        self.plans: dict[str, Plan] = {}  # by the text given: its plan without hypothetical indexes

    def advise(self, statements: list[StatementInput]) -> Advice:
        proposals: list[Proposal] = []
        skipped: list[SkippedStatement] = []
        for statement in statements:
            if self.session.lost:  # a statement ran past the deadline and the session was given up
                lost = "not analysed: the session was lost"
                skipped.append(SkippedStatement(statement=statement.text, reason=lost))
                continue
            try:
                found, reason = self._statement(statement)
            except Unsafe as err:  # its message begins "not planned: ..."
                found, reason = [], str(err)
            except Refused as err:
                found, reason = [], f"refused: {err}"
            except RecursionError:
                found, reason = [], "not analysed: nested too deeply"
            except Exception as err:  # one odd statement never fails the database's report
                found, reason = [], f"not analysed: {type(err).__name__}: {first_line(err)}"
            proposals += found
            if not found:
                skipped.append(SkippedStatement(statement=statement.text, reason=reason))
        suggestions = self._merge(proposals)
        suggestions.sort(
            key=lambda s: (
                -(s.net_ms_per_day or 0),
                -sum(p.before.cost - (p.after or p.before).cost for p in s.proposals),
            )
        )
        plans = {s.text: self.plans[s.text] for s in statements if s.text in self.plans}
        return Advice(suggestions, skipped, self.planner.hypopg, plans)

    # -- one statement ---------------------------------------------------------------------
    def _statement(self, statement: StatementInput) -> tuple[list[Proposal], str]:
        foreign = check(statement.text)  # PostgreSQL's parser: one statement, a plannable kind
        self.session.refuse_untrusted(foreign)
        self.checked[statement.text] = foreign
        try:
            parsed, relations = shape(foreign.text, self.catalog)
        except ShapeError as err:
            return [], f"not analysed: {err}"
        self.relations.update(relations)
        if parsed.kind not in ("select", "update", "delete", "insert"):
            return [], f"not a statement the advisor reads ({foreign.kind})"
        uses = [u for u in parsed.tables.values() if u.terms]
        if not uses:
            return [], "no filter, join or sort that an index could serve"
        small = [
            relations[u.table] for u in uses if relations[u.table].reltuples < self.options.min_table_rows
        ]
        if len(small) == len(uses):
            return [], "; ".join(
                f"{r.qualified} is too small to matter ({r.reltuples:,} rows)" for r in small
            )
        try:
            before = self.planner.plan(foreign)
        except PlanError as err:
            return [], f"the planner cannot plan it: {err}"
        self.plans[statement.text] = before
        if before.cost < self.options.min_cost:
            using = f" using {', '.join(sorted(before.indexes))}" if before.indexes else ""
            return [], f"already cheap: planner cost {before.cost:,.1f}{using}"
        found, reasons = [], []
        for use in uses:
            proposal, reason = self._table(statement, use, relations[use.table], before)
            if proposal:
                found.append(proposal)
            else:
                reasons.append(reason)
        return found, "; ".join(reasons)

    def _table(
        self, statement: StatementInput, use: TableUse, rel: Relation, before: Plan
    ) -> tuple[Proposal | None, str]:
        if not rel.indexable:
            return None, f"{rel.qualified} cannot be indexed here ({_KIND.get(rel.kind, rel.kind)})"
        if rel.reltuples < self.options.min_table_rows:
            return None, f"{rel.qualified} is too small to matter ({rel.reltuples:,} rows)"
        candidates = propose(use, rel)
        if not candidates:
            return None, f"no selective predicate on {rel.qualified}"
        fresh = [c for c in candidates if serving_index(c, rel.indexes) is None]
        if not fresh:
            index = serving_index(candidates[0], rel.indexes)
            return None, f"already indexed by {index.name if index else 'an existing index'}"
        if not self.planner.hypopg:
            btrees = [c for c in fresh if c.method == "btree"]
            if not btrees:  # a trigram index only where the plan does not already use an index
                return self._unproven(statement, use, rel, before, fresh)
            return Proposal(btrees[0], statement, before, None, _why(btrees[0], use, rel)), ""
        return self._prove(statement, use, rel, before, fresh)

    def _prove(
        self,
        statement: StatementInput,
        use: TableUse,
        rel: Relation,
        before: Plan,
        candidates: list[Candidate],
    ) -> tuple[Proposal | None, str]:
        good: list[tuple[Plan, Candidate]] = []
        for candidate in (c for c in candidates if c.method == "btree"):  # what HypoPG can build
            try:
                plan, used = self.planner.plan_with(self.checked[statement.text], candidate)
            except PlanError:
                continue
            if used and plan.cost <= before.cost * (1 - self.options.min_reduction):
                good.append((plan, candidate))
        if not good:
            return self._unproven(statement, use, rel, before, candidates)
        best = min(plan.cost for plan, _ in good)
        near = [
            (len(c.keys), plan.cost, plan, c)
            for plan, c in good
            if plan.cost <= best * self.options.near_best + 1
        ]
        _, _, plan, chosen = min(near, key=lambda t: (t[0], t[1]))
        return Proposal(chosen, statement, before, plan, _why(chosen, use, rel)), ""

    def _unproven(
        self,
        statement: StatementInput,
        use: TableUse,
        rel: Relation,
        before: Plan,
        candidates: list[Candidate],
    ) -> tuple[Proposal | None, str]:
        """No B-tree is proven (or, without HypoPG, none is left to propose): a trigram index for an
        infix search, unless the plan already reads this table through an index (the search then
        only filters the rows that index finds)."""
        used_now = sorted(i for i in before.indexes)
        trigrams = [c for c in candidates if c.method != "btree"]
        mine = {index.name.rsplit(".", 1)[-1].strip('"') for index in rel.indexes}
        if trigrams and not mine & before.indexes:
            return Proposal(trigrams[0], statement, before, None, _why(trigrams[0], use, rel)), ""
        if used_now:
            return None, f"already served by {', '.join(used_now)} on {rel.qualified}"
        return (
            None,
            f"no index on {rel.qualified} cuts its cost by {self.options.min_reduction:.0%} or more",
        )

    # -- the workload ----------------------------------------------------------------------
    def _merge(self, proposals: list[Proposal]) -> list[Suggestion]:
        """One suggestion per index; an index whose keys prefix another's folds into it."""
        by_candidate: dict[Candidate, Suggestion] = {}
        for p in sorted(proposals, key=lambda p: -len(p.candidate.keys)):
            target = next(
                (c for c in by_candidate if p.candidate.is_prefix_of(c) or _same_equalities(p.candidate, c)),
                None,
            )
            if target is not None and target != p.candidate:
                p = self._reprove(p, target)
            key = target or p.candidate
            if key not in by_candidate:
                installed = self.catalog.extensions.get(key.extension or "")
                by_candidate[key] = Suggestion(
                    key,
                    self.relations[key.table],
                    missing_extension=None if installed or not key.extension else key.extension,
                    extension_schema=installed,
                )
            by_candidate[key].proposals.append(p)
        return list(by_candidate.values())

    def _reprove(self, p: Proposal, wider: Candidate) -> Proposal:
        """The statement served by the wider index: measure it, so the figures stay honest."""
        if p.after is None:
            return Proposal(wider, p.statement, p.before, None, p.why)
        try:
            plan, _ = self.planner.plan_with(self.checked[p.statement.text], wider)
        except PlanError:
            plan = p.after
        return Proposal(wider, p.statement, p.before, plan, p.why)


_KIND = {"v": "a view", "f": "a foreign table", "S": "a sequence", "c": "a composite type"}


def _same_equalities(a: Candidate, b: Candidate) -> bool:
    """(a, b) and (b, a) serve the same pure-equality lookups: keep one."""
    return (
        a.table == b.table
        and a.method == b.method == "btree"
        and not any(a.desc + b.desc)
        and len(a.keys) == len(b.keys)
        and set(a.keys) == set(b.keys)
    )


def _why(candidate: Candidate, use: TableUse, rel: Relation) -> str:
    kinds = {t.sql: t.kind for t in use.terms}
    words = {"eq": "equality", "in": "IN list", "null": "IS NULL", "join": "join key", "range": "range",
             "like": "LIKE prefix", "infix": "LIKE/ILIKE search (trigram)", "sort": "sort",
             "group": "grouping"}  # fmt: skip
    parts = [f"{words.get(kinds.get(k, ''), 'key')} on {k}" for k in candidate.keys]
    if use.limit and any(kinds.get(k) == "sort" for k in candidate.keys):
        parts.append("ORDER BY ... LIMIT stops early")
    why = ", then ".join(parts)
    lead = [k for k in candidate.keys if kinds.get(k) in EQUALITY]
    if len(candidate.keys) == 1 and lead and rel.nearly_unique(lead[0]):
        return f"{why} (about one row per value: no more columns needed)"
    if len(lead) > 1:
        distinct = ", ".join(f"{k} {_distinct(rel, k)}" for k in lead)
        return f"{why}; equality columns most selective first, from pg_stats ({distinct})"
    return why


def _distinct(rel: Relation, column: str) -> str:
    """'~1,000 values' from pg_stats' n_distinct (negative: a fraction of the rows)."""
    stats = rel.columns.get(column)
    n = stats.n_distinct if stats else None
    if not n:
        return "(no statistics)"
    return f"~{round(n if n > 0 else -n * rel.reltuples):,} values"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
