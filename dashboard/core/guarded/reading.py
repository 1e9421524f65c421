"""Statements planned as the SELECT that finds their rows, so planning needs no write privilege.

EXPLAIN checks the privileges a statement would need to run (the executor is started, though not
run): UPDATE, DELETE and INSERT need the write privilege, `SELECT ... FOR UPDATE` (and the other
locking clauses) the UPDATE privilege. What an index changes in them is how their rows are found, so:
- an UPDATE or DELETE is planned as `SELECT target, <SET values> FROM target, <FROM or USING items>
  WHERE ...` with its WITH. The whole row keeps the visit to each row that the write makes (an
  index-only scan cannot give it); the SET values keep their subqueries costed and every placeholder
  numbered and typed as before (a generic plan needs `$1` to `$n` without a gap); RETURNING is
  dropped;
- an `INSERT ... SELECT` is planned as its SELECT; INSERT ... VALUES finds no rows and stays as written;
- locking clauses (`FOR UPDATE`, `FOR KEY SHARE OF x`) are dropped: they lock the rows found.

The SELECT is built on PostgreSQL's own parse tree (pglast), printed by pglast, and checked again by
`check()` like any foreign statement before it reaches the server.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, SubLinkType
from pglast.stream import RawStream
from pglast.visitors import Visitor

from dashboard.core.guarded.statement import ForeignStatement, Refused, check


@lru_cache(maxsize=256)  # the advisor plans each statement once per candidate index
def reading_form(statement: ForeignStatement) -> ForeignStatement:
    """`statement` itself, or the SELECT that finds the rows it would write or lock."""
    node = parse_sql(statement.text)[0].stmt
    if isinstance(node, ast.UpdateStmt | ast.DeleteStmt):
        reading = _finding_rows(node)
    elif isinstance(node, ast.InsertStmt):
        reading = _insert_source(node)
    else:
        reading = node
    if reading is None:
        return statement
    unlocked = _Unlock()
    unlocked(reading)
    if reading is node and not unlocked.found:
        return statement  # nothing to change
    return check(RawStream()(reading))


def _finding_rows(node: ast.UpdateStmt | ast.DeleteStmt) -> ast.SelectStmt:
    if isinstance(node.whereClause, ast.CurrentOfExpr):
        raise Refused("WHERE CURRENT OF names a cursor of another session: it cannot be planned here")
    target = node.relation
    name = target.alias.aliasname if target.alias else target.relname
    row = ast.ColumnRef(fields=(ast.String(sval=name),))  # the whole row: a view has no ctid
    extra = node.fromClause if isinstance(node, ast.UpdateStmt) else node.usingClause
    return ast.SelectStmt(
        targetList=(ast.ResTarget(val=row), *_set_values(node, name)),
        fromClause=(target, *(extra or ())),
        whereClause=node.whereClause,
        withClause=node.withClause,
    )


def _insert_source(node: ast.InsertStmt) -> ast.SelectStmt | None:
    """The SELECT of `INSERT ... SELECT` with the INSERT's WITH; None for VALUES or DEFAULT VALUES."""
    source = node.selectStmt
    if not isinstance(source, ast.SelectStmt) or source.valuesLists:
        return None
    if node.withClause and source.withClause:
        return None  # two WITH lists to merge: planned as written (it needs INSERT then)
    source.withClause = source.withClause or node.withClause
    _Untyped()(source)
    return source


class _Unlock(Visitor):
    """Drops every locking clause, counting them."""

    found = 0

    def visit_SelectStmt(self, ancestors: object, node: ast.SelectStmt) -> None:
        if node.lockingClause:
            self.found += 1
            node.lockingClause = None


def _set_values(node: ast.UpdateStmt | ast.DeleteStmt, name: str) -> list[ast.ResTarget]:
    """Each `SET col = value` as the output column `t.col IS NOT DISTINCT FROM value`: a placeholder
    in it takes the column's type, as in the UPDATE, and a subscript (`SET tags[$1] = $2`) keeps its
    own. `SET (a, b) = (SELECT ...)` is an EXISTS of its subquery (a column cannot hold two; the
    plan still costs it); `SET (a, b) = ($1, $2)` compares each column with its item."""
    found = []
    for item in getattr(node, "targetList", None) or ():
        value = item.val
        if isinstance(value, ast.MultiAssignRef):
            if isinstance(value.source, ast.SubLink):
                if value.colno == 1:
                    exists = ast.SubLink(
                        subLinkType=SubLinkType.EXISTS_SUBLINK, subselect=value.source.subselect
                    )
                    found.append(ast.ResTarget(val=exists))
                continue
            if not isinstance(value.source, ast.RowExpr):
                continue
            value = value.source.args[value.colno - 1]
        if isinstance(value, ast.SetToDefault):
            continue
        column: ast.Node = ast.ColumnRef(fields=(ast.String(sval=name), ast.String(sval=item.name)))
        if item.indirection:
            column = ast.A_Indirection(arg=column, indirection=item.indirection)
        same = ast.A_Expr(
            kind=A_Expr_Kind.AEXPR_NOT_DISTINCT, name=(ast.String(sval="="),), lexpr=column, rexpr=value
        )
        found.append(ast.ResTarget(val=same))
    return found


class _Untyped(Visitor):
    """`INSERT ... SELECT $1, x FROM ... WHERE y = $1`: a placeholder alone in a SELECT's output
    becomes text before WHERE gives it its type, which the INSERT does not do. Each one that is
    used elsewhere too is output as NULL (same number of columns; still numbered by its other use)."""

    def __call__(self, node: ast.Node) -> None:
        self.uses = Counter(p.number for p in _params(node))
        super().__call__(node)

    def visit_SelectStmt(self, ancestors: object, node: ast.SelectStmt) -> None:
        if node.targetList:
            node.targetList = tuple(
                ast.ResTarget(val=ast.A_Const(isnull=True), name=t.name) if self._repeated(t.val) else t
                for t in node.targetList
            )

    def _repeated(self, value: object) -> bool:
        return isinstance(value, ast.ParamRef) and self.uses[value.number] > 1


def _params(node: ast.Node) -> list[ast.ParamRef]:
    found: list[ast.ParamRef] = []

    class Collect(Visitor):
        def visit_ParamRef(self, ancestors: object, param: ast.ParamRef) -> None:
            found.append(param)

    Collect()(node)
    return found
