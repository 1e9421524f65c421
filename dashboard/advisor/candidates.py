"""Index candidates for one table's use by one statement, ordered the way a DBA orders them.

Equality columns first, most selective first (from pg_stats), then one range or sort column; after
a (nearly) unique equality column nothing more, since it leaves one row. Infix searches (LIKE '%x%',
ILIKE) get a trigram GIN index, proposed after the B-trees. The planner, not this module, has the
last word (see planner.py): here we only propose a few shapes worth proving, the short forms
included so the shortest good one can win, and drop those an existing index already serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dashboard.advisor.catalog import ColumnStats, Index, Relation
from dashboard.advisor.shapes import EQUALITY, TableUse, Term

DEFAULT_EQ_SEL = 0.005  # PostgreSQL's own guess for "col = const" without statistics
UNSELECTIVE = 0.5  # an equality that keeps more than half the rows is not worth a key column
MAX_EQ_KEYS = 3
TRIGRAM_OPCLASSES = frozenset({"gin_trgm_ops", "gist_trgm_ops"})  # pg_trgm's: they serve LIKE/ILIKE
# gin_trgm_ops indexes text; character(n) has no implicit cast it accepts ("does not accept data type")
_TEXT_TYPES = ("text", "character varying")


@dataclass(frozen=True)
class Candidate:
    table: str  # schema.table
    quoted_table: str
    keys: tuple[str, ...]  # column names (exact) or expressions (SQL)
    desc: tuple[bool, ...]
    expressions: tuple[bool, ...]
    method: Literal["btree", "gin"] = "btree"
    opclass: str | None = None  # of every key: 'gin_trgm_ops' for a trigram index

    def key_sql(self, opclass_schema: str | None = None) -> list[str]:
        out = []
        opclass = f"{opclass_schema}.{self.opclass}" if opclass_schema and self.opclass else self.opclass
        for key, desc, is_expr in zip(self.keys, self.desc, self.expressions, strict=True):
            text = f"({key})" if is_expr else _quote(key)
            text = f"{text} {opclass}" if opclass else text
            out.append(f"{text} DESC" if desc else text)
        return out

    @property
    def columns(self) -> list[str]:
        """Keys as shown to people: 'city_id', 'lower(email)', 'created_at DESC', 'email gin_trgm_ops'."""
        shown = [f"{k} {self.opclass}" if self.opclass else k for k in self.keys]
        return [f"{k} DESC" if d else k for k, d in zip(shown, self.desc, strict=True)]

    @property
    def extension(self) -> str | None:
        """The extension its operator class comes from, which must exist before the index."""
        return "pg_trgm" if self.opclass in TRIGRAM_OPCLASSES else None

    def create_sql(self, concurrently: bool = True, opclass_schema: str | None = None) -> str:
        """`opclass_schema`: where the operator class's extension is (not always on the search_path)."""
        how = "CONCURRENTLY " if concurrently else ""
        using = f" USING {self.method}" if self.method != "btree" else ""
        keys = ", ".join(self.key_sql(opclass_schema))
        return f"CREATE INDEX {how}ON {self.quoted_table}{using} ({keys})"

    def is_prefix_of(self, other: Candidate) -> bool:
        n = len(self.keys)
        return (
            self.table == other.table
            and (self.method, self.opclass) == (other.method, other.opclass)
            and n <= len(other.keys)
            and self.keys == other.keys[:n]
            and self.desc == other.desc[:n]
        )


def _quote(identifier: str) -> str:
    if identifier.isidentifier() and identifier == identifier.lower():
        return identifier
    return '"' + identifier.replace('"', '""') + '"'


def selectivity(term: Term, stats: ColumnStats | None, rows: int) -> float:
    """Fraction of rows an equality-like condition keeps, from the planner's statistics."""
    if stats is None or term.expression:
        return DEFAULT_EQ_SEL
    null_frac = stats.null_frac or 0.0
    if term.kind == "null":
        return null_frac or DEFAULT_EQ_SEL
    if term.value is not None and term.value in stats.mcv:
        return stats.mcv[term.value]
    distinct = stats.n_distinct
    if distinct is None or distinct == 0:
        return DEFAULT_EQ_SEL
    distinct_abs = distinct if distinct > 0 else -distinct * max(rows, 1)
    rest = max(0.0, 1.0 - null_frac - sum(stats.mcv.values()))
    rare = max(distinct_abs - len(stats.mcv), 1)
    # An unknown value ($1) can be a common one: weigh by the most common frequency too.
    typical = rest / rare if term.value is not None else max(rest / rare, stats.top_freq or 0.0)
    sel = typical * (3 if term.kind == "in" else 1)
    return min(1.0, max(sel, 1.0 / max(rows, 1)))


def propose(use: TableUse, rel: Relation) -> list[Candidate]:
    """The shapes worth proving for this table, best guess first, deduplicated: B-trees, then
    trigram indexes (which HypoPG cannot build, so they are only taken when no B-tree is proven)."""
    eqs = _ranked_equalities(use, rel)
    # A (nearly) unique leading column leaves one row: a second key, a range or a sort column
    # after it would only make the index bigger.
    unique = bool(eqs) and is_nearly_unique(eqs[0], rel)
    base = eqs[:1] if unique else eqs[:MAX_EQ_KEYS]
    ranges = [t for t in use.terms if t.kind in ("range", "like")]
    sort = _sort_keys(use)
    shapes: list[list[Term]] = []
    if not unique:
        for lead in _widest_first(base):  # (a, b, range) and the shorter (a, range), ...
            if ranges:
                shapes.append(lead + ranges[:1])
            if sort:
                shapes.append(lead + [t for t in sort if t.sql not in {e.sql for e in lead}])
    shapes += [base[:n] for n in range(len(base), 0, -1)]
    shapes += [[t] for t in eqs[1:] + ranges[:2]]
    if sort:
        shapes.append(sort)
    seen: list[Candidate] = []
    for terms in shapes:
        candidate = _candidate(rel, terms)
        if terms and candidate not in seen:
            seen.append(candidate)
    return seen + _trigram_candidates(use, rel)


def _widest_first(base: list[Term]) -> list[list[Term]]:
    """All the equality keys, then the most selective one alone (when there are several)."""
    return [base, base[:1]] if len(base) > 1 else [base]


def is_nearly_unique(term: Term, rel: Relation) -> bool:
    """An equality on a column with about one row per value (catalog.Relation.nearly_unique)."""
    return term.kind in ("eq", "in", "join") and not term.expression and rel.nearly_unique(term.sql)


def _trigram_candidates(use: TableUse, rel: Relation) -> list[Candidate]:
    """`col gin_trgm_ops` for each infix search on a text column (not on expressions: the
    expression's type is unknown here, and gin_trgm_ops needs text)."""
    found = []
    for term in use.terms:
        stats = rel.columns.get(term.sql)
        if term.kind != "infix" or term.expression or stats is None:
            continue
        if stats.type.split("(")[0] in _TEXT_TYPES:
            candidate = _candidate(rel, [term], method="gin", opclass="gin_trgm_ops")
            if candidate not in found:
                found.append(candidate)
    return found


def _ranked_equalities(use: TableUse, rel: Relation) -> list[Term]:
    by_column: dict[str, tuple[float, Term]] = {}
    for term in use.terms:
        if term.kind not in EQUALITY:
            continue
        sel = selectivity(term, rel.columns.get(term.sql), rel.reltuples)
        if sel > UNSELECTIVE:
            continue
        if term.sql not in by_column or sel < by_column[term.sql][0]:
            by_column[term.sql] = (sel, term)
    return [term for _, term in sorted(by_column.values(), key=lambda pair: pair[0])]


def _sort_keys(use: TableUse) -> list[Term]:
    """Sort terms, directions normalised so the first key ascends (a B-tree scans both ways)."""
    sort = [t for t in use.terms if t.kind == "sort"]
    if not sort:
        return []
    flip = sort[0].desc
    return [Term(t.sql, "sort", t.expression, desc=t.desc != flip) for t in sort]


def _candidate(
    rel: Relation, terms: list[Term], method: Literal["btree", "gin"] = "btree", opclass: str | None = None
) -> Candidate:
    return Candidate(
        table=rel.qualified,
        quoted_table=rel.quoted,
        keys=tuple(t.sql for t in terms),
        desc=tuple(t.desc if t.kind == "sort" else False for t in terms),
        expressions=tuple(t.expression for t in terms),
        method=method,
        opclass=opclass,
    )


def serving_index(candidate: Candidate, indexes: list[Index]) -> Index | None:
    """An existing valid index that already gives what the candidate would: a B-tree whose leading
    keys match, or for a trigram candidate any GIN or GiST trigram index on the column."""
    if candidate.method != "btree":
        return _serving_trigram(candidate, indexes)
    for index in indexes:
        if index.method != "btree" or not index.valid or index.predicate:
            continue
        keys = tuple(_plain(k) for k in index.keys)
        n = len(candidate.keys)
        if len(keys) < n:
            continue
        wanted = tuple(_plain(k) for k in candidate.keys)
        if keys[:n] == wanted or (
            not any(candidate.desc)
            and n > 1
            and set(keys[: n - 1]) == set(wanted[: n - 1])
            and keys[n - 1] == wanted[n - 1]
        ):
            return index
    return None


def _serving_trigram(candidate: Candidate, indexes: list[Index]) -> Index | None:
    wanted = _plain(candidate.keys[0])
    for index in indexes:
        if index.method not in ("gin", "gist") or not index.valid or index.predicate:
            continue
        # GIN (and GiST) search any key column, not only the first.
        keys = zip(index.keys, index.opclasses, strict=False)
        if any(_plain(key) == wanted and opclass in TRIGRAM_OPCLASSES for key, opclass in keys):
            return index
    return None


def _plain(key: str) -> str:
    """Compare 'lower((email)::text)' and 'lower(email)', '"Id"' and 'Id' alike."""
    text = key.strip().strip('"').lower()
    for noise in ("::text", "::character varying", "(", ")", " "):
        text = text.replace(noise, "")
    return text
