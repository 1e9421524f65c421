"""Statements planned as the SELECT that finds their rows, so planning needs no write privilege.

EXPLAIN checks the privileges a statement would need to run (the executor is started, though not
run): UPDATE, DELETE and INSERT need the write privilege, `SELECT ... FOR UPDATE` (and the other
locking clauses) the UPDATE privilege. What an index changes in them is how their rows are found, so:
- an UPDATE or DELETE is planned as `SELECT target.ctid, <SET values> FROM target, <FROM or USING
  items> WHERE ...` with its WITH. `ctid` keeps the visit to each row that the write makes (an
  index-only scan cannot give it); the SET values keep their subqueries costed and every placeholder
  numbered as before (a generic plan needs `$1` to `$n` without a gap); RETURNING is dropped;
- an `INSERT ... SELECT` is planned as its SELECT; other INSERTs find no rows and stay as written;
- locking clauses (`FOR UPDATE`, `FOR KEY SHARE OF x`) are dropped: they lock the rows found.

The SELECT is built on PostgreSQL's own parse tree (pglast), printed by pglast, and checked again by
`check()` like any foreign statement before it reaches the server.
"""

from __future__ import annotations

from functools import lru_cache

from pglast import ast, parse_sql
from pglast.enums import SubLinkType
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
    row = ast.ColumnRef(fields=(ast.String(sval=name), ast.String(sval="ctid")))
    extra = node.fromClause if isinstance(node, ast.UpdateStmt) else node.usingClause
    return ast.SelectStmt(
        targetList=(ast.ResTarget(val=row), *_set_expressions(node)),
        fromClause=(target, *(extra or ())),
        whereClause=node.whereClause,
        withClause=node.withClause,
    )


def _insert_source(node: ast.InsertStmt) -> ast.SelectStmt | None:
    """The SELECT of `INSERT ... SELECT` with the INSERT's WITH; None for any other INSERT."""
    source = node.selectStmt
    if not isinstance(source, ast.SelectStmt) or not source.fromClause:
        return None  # VALUES, DEFAULT VALUES: no rows to find
    if node.withClause and source.withClause:
        return None  # two WITH lists to merge: planned as written (it needs INSERT then)
    source.withClause = source.withClause or node.withClause
    return source


class _Unlock(Visitor):
    """Drops every locking clause, counting them."""

    found = 0

    def visit_SelectStmt(self, ancestors: object, node: ast.SelectStmt) -> None:
        if node.lockingClause:
            self.found += 1
            node.lockingClause = None


def _set_expressions(node: ast.UpdateStmt | ast.DeleteStmt) -> list[ast.ResTarget]:
    """An UPDATE's SET values as output columns; `SET (a, b) = <source>` gives its source once."""
    values: list[ast.Node] = []
    for item in getattr(node, "targetList", None) or ():
        value = item.val
        if not isinstance(value, ast.MultiAssignRef):
            values.append(value)
        elif value.colno == 1:
            values += _columns(value.source)
    return [ast.ResTarget(val=v) for v in values if not isinstance(v, ast.SetToDefault)]


def _columns(source: ast.Node) -> list[ast.Node]:
    """The source of `SET (a, b) = ...` as output columns: a row's items one by one (a row of bare
    placeholders has no type to take); a subquery as an EXISTS of itself (a column cannot hold two,
    and the plan still costs it)."""
    if isinstance(source, ast.RowExpr):
        return list(source.args or ())
    if isinstance(source, ast.SubLink):
        return [ast.SubLink(subLinkType=SubLinkType.EXISTS_SUBLINK, subselect=source.subselect)]
    return [source]
