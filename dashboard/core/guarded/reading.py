"""UPDATE and DELETE planned as the SELECT that finds their rows, so planning needs no write privilege.

EXPLAIN of an UPDATE or DELETE checks the write privilege (the executor is started, though not run).
What an index changes in them is how their rows are found: the same target, FROM or USING items,
WHERE and WITH. So they are planned as `SELECT target.ctid, <SET expressions> FROM target, <items>
WHERE ...`:
- `ctid` keeps the visit to each row that the write makes (an index-only scan cannot give it);
- the SET expressions keep their subqueries costed and every placeholder numbered as before (a
  generic plan needs `$1` to `$n` without a gap);
- RETURNING is dropped: it reads the rows already found.

The SELECT is built on PostgreSQL's own parse tree (pglast), printed by pglast, and checked again by
`check()` like any foreign statement before it reaches the server.
"""

from __future__ import annotations

from pglast import ast, parse_sql
from pglast.enums import SubLinkType
from pglast.stream import RawStream

from dashboard.core.guarded.statement import ForeignStatement, Refused, check


def reading_form(statement: ForeignStatement) -> ForeignStatement:
    """`statement` itself, or for an UPDATE or DELETE the SELECT that reads what it would write."""
    if statement.kind not in ("update", "delete"):
        return statement
    node = parse_sql(statement.text)[0].stmt
    if isinstance(node.whereClause, ast.CurrentOfExpr):
        raise Refused("WHERE CURRENT OF names a cursor of another session: it cannot be planned here")
    target = node.relation
    name = target.alias.aliasname if target.alias else target.relname
    row = ast.ColumnRef(fields=(ast.String(sval=name), ast.String(sval="ctid")))
    extra = node.fromClause if isinstance(node, ast.UpdateStmt) else node.usingClause
    select = ast.SelectStmt(
        targetList=(ast.ResTarget(val=row), *_set_expressions(node)),
        fromClause=(target, *(extra or ())),
        whereClause=node.whereClause,
        withClause=node.withClause,
    )
    return check(RawStream()(select))


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
