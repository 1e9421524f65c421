"""What a statement asks of each table: the columns it filters, joins, sorts and groups on.

sqlglot parses the statement (PostgreSQL dialect, `$1` placeholders included); `qualify` resolves
every column to its table through aliases, CTEs and subqueries; views are expanded to their
definitions first so their base tables are what gets indexed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.pushdown_predicates import pushdown_predicates
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.schema import MappingSchema

from dashboard.advisor.catalog import Catalog, Relation
from dashboard.core.guarded import analysable
from dashboard.core.guarded.statement import MAX_CHARS, MAX_FROM_ITEMS

MAX_COLUMNS = 2_000  # NATURAL JOIN of 5 tables of 400 columns: 1.5 s of sqlglot

# like: a prefix pattern a B-tree serves; infix: any other LIKE/ILIKE search, for a trigram index.
Kind = Literal["eq", "in", "null", "range", "like", "infix", "join", "sort", "group"]
EQUALITY: frozenset[str] = frozenset({"eq", "in", "null", "join"})
_RANGE = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between)


class ShapeError(ValueError):
    """The statement cannot be read: the message says why, for the 'skipped' list."""


@dataclass(frozen=True)
class Term:
    """One column (or expression, e.g. `lower(email)`) a table is used by."""

    sql: str  # column name, or the expression's SQL with bare column names
    kind: Kind
    expression: bool = False
    desc: bool = False  # sort terms only
    value: str | None = None  # eq: the literal compared with, when there is one (selectivity)


@dataclass
class TableUse:
    table: str  # schema.table as written after qualification
    terms: list[Term] = field(default_factory=list)
    limit: bool = False  # ORDER BY ... LIMIT in the scope that sorts this table

    def add(self, term: Term) -> None:
        if term not in self.terms:
            self.terms.append(term)


@dataclass
class Shape:
    text: str
    kind: str  # select | update | delete | insert | other
    tables: dict[str, TableUse] = field(default_factory=dict)

    def use(self, table: str) -> TableUse:
        return self.tables.setdefault(table, TableUse(table))


def parse(text: str) -> exp.Expression:
    """sqlglot's tree of `text`, or ShapeError; text past the guard's bounds is never handed to it."""
    too_big = analysable(text)
    if too_big:
        raise ShapeError(too_big)
    try:
        tree = sqlglot.parse_one(_spaced_params(text), read="postgres")
    except RecursionError:
        raise ShapeError("nested too deeply for sqlglot") from None
    except SqlglotError as err:
        raise ShapeError(f"sqlglot cannot parse it: {str(err).splitlines()[0][:200]}") from None
    if tree is None:
        raise ShapeError("empty statement")
    return tree


def _spaced_params(text: str) -> str:
    # pg_stat_statements writes `$1,$2`; sqlglot 30 cannot tokenize a parameter followed by a comma,
    # nor `($1::text[])[$4]` (it reads `$1 ... [$` as the start of a dollar-quoted string).
    return text.replace(",$", ", $").replace("[$", "[ $")


def shape(text: str, catalog: Catalog) -> tuple[Shape, dict[str, Relation]]:
    """The statement's use of each base table, and the relations it reads (by 'schema.name')."""
    tree = parse(text)
    for lock in list(tree.find_all(exp.Lock)):  # FOR UPDATE OF x: names aliases, asks nothing of indexes
        lock.pop()
    _plain_comparisons(tree)
    relations: dict[str, Relation] = {}
    _resolve(tree, catalog, relations, depth=0, budget=_Budget())
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for rel in relations.values():
        schema.setdefault(rel.schema, {})[rel.name] = {col: st.type for col, st in rel.columns.items()}
    try:
        tree = qualify(
            tree,
            # Catalog names are exact; only the statement's unquoted identifiers get folded.
            schema=MappingSchema(schema, dialect="postgres", normalize=False),
            dialect="postgres",
            validate_qualify_columns=False,
            quote_identifiers=False,
        )
        if not any(cte.args.get("materialized") for cte in tree.find_all(exp.CTE)):
            # PostgreSQL pushes conditions into subqueries, views and inlined CTEs; so do we.
            tree = pushdown_predicates(tree)
    except RecursionError:
        raise ShapeError("nested too deeply for sqlglot") from None
    except SqlglotError as err:
        raise ShapeError(f"cannot resolve its columns: {str(err).splitlines()[0][:200]}") from None
    result = Shape(text=text, kind=_kind(tree))
    if isinstance(tree, exp.Update | exp.Delete):
        _dml_target(tree, result)
    for scope in traverse_scope(tree):
        _scope_terms(scope, result)
    return result, relations


_COMPARISONS = {"=": exp.EQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}


def _plain_comparisons(tree: exp.Expression) -> None:
    """`a OPERATOR(pg_catalog.=) $1` (how PostgreSQL writes its own foreign key checks) as `a = $1`:
    the built-in operator, named by its schema."""
    for node in list(tree.find_all(exp.Operator)):
        schema, _, name = str(node.args.get("operator", "")).rpartition(".")
        if schema in ("", "pg_catalog") and name in _COMPARISONS:
            node.replace(_COMPARISONS[name](this=node.this, expression=node.expression))


@dataclass
class _Budget:
    """What one statement may cost sqlglot in all, views expanded: relations met, columns they bring
    (NATURAL JOIN and USING make sqlglot's work grow with their square), view text parsed."""

    relations: int = 0
    columns: int = 0
    chars: int = 0

    def spend(self, rel: Relation) -> None:
        self.relations += 1
        self.columns += len(rel.columns)
        self.chars += len(rel.viewdef or "") if rel.kind == "v" else 0
        if self.relations > MAX_FROM_ITEMS:
            raise ShapeError(f"its views expand to over {MAX_FROM_ITEMS} relations: too many to analyse")
        if self.columns > MAX_COLUMNS:
            raise ShapeError(f"its relations bring over {MAX_COLUMNS:,} columns: too many to analyse")
        if self.chars > MAX_CHARS:
            raise ShapeError(f"its views' definitions add up to over {MAX_CHARS:,} characters")


def _resolve(
    tree: exp.Expression, catalog: Catalog, relations: dict[str, Relation], depth: int, budget: _Budget
) -> None:
    """Name every relation by its schema and expand views into their definitions, within `budget`
    (counted across every level: views of views can multiply what one name brings)."""
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        if not table.name or (not table.db and table.name in ctes):
            continue
        written = ".".join(part.sql("postgres") for part in table.parts)
        rel = catalog.relation(written)
        if rel is None:
            raise ShapeError(f"relation {written} does not exist in this database")
        budget.spend(rel)
        alias = table.alias_or_name
        if rel.kind == "v" and rel.viewdef and depth < 5:
            body = parse(rel.viewdef.rstrip().rstrip(";"))
            _resolve(body, catalog, relations, depth + 1, budget)
            table.replace(exp.Subquery(this=body, alias=exp.TableAlias(this=exp.to_identifier(alias))))
            continue
        relations[rel.qualified] = rel
        table.set("db", exp.to_identifier(rel.schema, quoted=True))
        table.set("this", exp.to_identifier(rel.name, quoted=True))
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))


def _kind(tree: exp.Expression) -> str:
    for cls, name in (
        (exp.Select, "select"),
        (exp.Update, "update"),
        (exp.Delete, "delete"),
        (exp.Insert, "insert"),
    ):
        if isinstance(tree, cls):
            return name
    if isinstance(tree, exp.Union | exp.Intersect | exp.Except):
        return "select"
    utility = (
        exp.Set,
        exp.Command,
        exp.Create,
        exp.Drop,
        exp.Alter,
        exp.Transaction,
        exp.Commit,
        exp.Rollback,
    )
    if isinstance(tree, utility):
        return "utility"

    return "other"


def _table_name(table: exp.Table) -> str:
    return f"{table.db}.{table.name}" if table.db else table.name


def _dml_target(tree: exp.Update | exp.Delete, result: Shape) -> None:
    """UPDATE and DELETE find their rows through WHERE: those columns belong to the target."""
    target = tree.this if isinstance(tree.this, exp.Table) else tree.find(exp.Table)
    where = tree.args.get("where")
    if target is None or where is None:
        return
    alias = target.alias_or_name
    sources = {alias: _table_name(target), target.name: _table_name(target)}
    for conjunct in _conjuncts(where.this):
        _classify(conjunct, sources, result, unqualified=_table_name(target))


def _scope_terms(scope: Scope, result: Shape) -> None:
    select = scope.expression
    if not isinstance(select, exp.Select):
        return
    sources = {alias: _table_name(src) for alias, src in scope.sources.items() if isinstance(src, exp.Table)}
    if not sources:
        return
    for conjunct in _scope_conditions(select):
        _classify(conjunct, sources, result)
    _sort_terms(select, sources, result)
    group = select.args.get("group")
    if group:
        for item in group.expressions:
            owner = _owner(item, sources)
            if owner:
                result.use(owner).add(_term(item, "group"))


def _scope_conditions(select: exp.Select) -> list[exp.Expression]:
    found = []
    where = select.args.get("where")
    if where is not None:
        found += _conjuncts(where.this)
    for join in select.args.get("joins") or []:
        on = join.args.get("on")
        if on is not None:
            found += _conjuncts(on)
    return found


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if isinstance(node, exp.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def _owner(node: exp.Expression, sources: dict[str, str], unqualified: str | None = None) -> str | None:
    """The one base table all of `node`'s columns come from, or None."""
    owners = set()
    for column in node.find_all(exp.Column):
        if column.table:
            owners.add(sources.get(column.table))
        elif unqualified:
            owners.add(unqualified)
        else:
            owners.add(None)
    return owners.pop() if len(owners) == 1 else None


def _is_value(node: exp.Expression) -> bool:
    """A constant, a parameter or an expression of them (no column of any table)."""
    return node.find(exp.Column) is None and node.find(exp.Select) is None


def _term(node: exp.Expression, kind: Kind, desc: bool = False, value: exp.Expression | None = None) -> Term:
    bare = node.copy()
    for column in bare.find_all(exp.Column):
        column.set("table", None)
    is_column = isinstance(bare, exp.Column)
    literal = value.this if isinstance(value, exp.Literal) else None
    return Term(
        sql=bare.name if is_column else bare.sql("postgres").lower(),
        kind=kind,
        expression=not is_column,
        desc=desc,
        value=literal,
    )


def _classify(
    node: exp.Expression, sources: dict[str, str], result: Shape, unqualified: str | None = None
) -> None:
    """Add what one AND-ed condition asks of a table; ORs and NOTs give nothing indexable."""
    owner = lambda n: _owner(n, sources, unqualified)  # noqa: E731
    if isinstance(node, exp.EQ):
        left, right = node.left, node.right
        for side, other in ((left, right), (right, left)):
            if side.find(exp.Column) and owner(side) and _is_value(other):
                result.use(owner(side)).add(_term(side, "eq", value=other))
                return
        if owner(left) and owner(right) and owner(left) != owner(right):
            result.use(owner(left)).add(_term(left, "join"))
            result.use(owner(right)).add(_term(right, "join"))
        return
    if isinstance(node, exp.In) and owner(node.this) and not node.args.get("is_not"):
        result.use(owner(node.this)).add(_term(node.this, "in"))
        return
    is_null = (
        isinstance(node, exp.Is) and isinstance(node.expression, exp.Null) and not node.args.get("negate")
    )
    if is_null and owner(node.this):
        result.use(owner(node.this)).add(_term(node.this, "null"))
        return
    if isinstance(node, _RANGE):
        _range(node, owner, result)
        return
    search = node.this if isinstance(node, exp.Escape) else node
    if isinstance(search, exp.Like | exp.ILike) and owner(search.this) and not search.args.get("negate"):
        kind = _search_kind(search, escaped=search is not node)
        if kind:
            result.use(owner(search.this)).add(_term(search.this, kind))


def _range(node: exp.Expression, owner, result: Shape) -> None:
    if isinstance(node, exp.Between):
        if owner(node.this) and _is_value(node.args["low"]) and _is_value(node.args["high"]):
            result.use(owner(node.this)).add(_term(node.this, "range"))
        return
    for side, other in ((node.left, node.right), (node.right, node.left)):
        if side.find(exp.Column) and owner(side) and _is_value(other):
            result.use(owner(side)).add(_term(side, "range"))
            return


def _search_kind(node: exp.Like | exp.ILike, escaped: bool) -> Kind | None:
    """`LIKE 'abc%'` is a B-tree prefix search ("like"). `LIKE '%abc%'`, `ILIKE` (`~~`, `~~*`) and a
    pattern not known here are infix searches ("infix") that only a trigram index serves.

    A `$1` pattern is what pg_stat_statements records for every literal, so it stands for patterns
    we cannot see: like PgHero, we read it as a search a trigram index serves. A trigram index also
    serves prefix patterns, so it is right whichever pattern the application sends; a B-tree would
    be wrong for the infix ones (and never serves ILIKE), and it cannot be proven for an unknown one.
    """
    pattern = node.expression
    if not _is_value(pattern):
        return None  # compared with a column of another table: a join, no search
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return "infix"
    text = pattern.this
    if isinstance(node, exp.Like) and not escaped and not text.startswith(("%", "_")):
        return "like"
    # pg_trgm extracts no trigram from a pattern without 3 plain characters in a row: the index
    # would be read whole.
    longest = max((len(part) for part in re.split(r"[%_\\]", text)), default=0)
    return "infix" if longest >= 3 else None


def _sort_terms(select: exp.Select, sources: dict[str, str], result: Shape) -> None:
    order = select.args.get("order")
    if not order:
        return
    projections = {p.alias_or_name: p for p in select.expressions}
    terms: list[tuple[str, Term]] = []
    for ordered in order.expressions:
        node = ordered.this
        if isinstance(node, exp.Literal) and node.is_int:  # ORDER BY 1
            index = int(node.this) - 1
            if not 0 <= index < len(select.expressions):
                return
            node = select.expressions[index].unalias()
        elif isinstance(node, exp.Column) and not node.table and node.name in projections:
            node = projections[node.name].unalias()
        table = _owner(node, sources)
        if table is None or not node.find(exp.Column):
            return  # sorting on something no single index can give (now(), several tables)
        terms.append((table, _term(node, "sort", desc=bool(ordered.args.get("desc")))))
    tables = {table for table, _ in terms}
    if len(tables) != 1:
        return
    use = result.use(tables.pop())
    use.limit = use.limit or select.args.get("limit") is not None
    for _, term in terms:
        use.add(term)
