"""Sample values for a statement's $1..$n, so a recorded statement can be run with EXPLAIN ANALYZE.

A placeholder compared with a column (`col = $1`, `lower(col) = lower($1)`, `col IN ($1, $2)`,
`col > $1`) gets the column's most common value from pg_stats (else a histogram bound); `LIMIT $1`
gets 20 and `OFFSET $1` 0; an interval 1 day. The rest stay empty for the user to fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pglast import ast, parse_sql
from psycopg import Connection

from dashboard.core.guarded import ForeignStatement
from dashboard.core.guarded.statement import written_name
from dashboard.core.sqlfiles import SqlFiles

FIXED = {"limit": "20", "offset": "0"}
BY_TYPE = {"interval": "1 day", "bool": "true", "boolean": "true"}


@dataclass(frozen=True)
class Use:
    """Where a placeholder appears: the column it is compared with, or a clause."""

    number: int
    column: str | None = None
    qualifier: str | None = None  # the table or alias before the column, if written
    fixed: str | None = None


def uses(statement: ForeignStatement) -> list[Use]:
    """Each placeholder's first use the samples can serve, in $n order."""
    found: dict[int, Use] = {}
    for use in _walk(parse_sql(statement.text)[0].stmt):
        found.setdefault(use.number, use)
    return [found[n] for n in sorted(found)]


def _walk(root: ast.Node) -> list[Use]:
    found: list[Use] = []
    stack: list[object] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(reversed(item))
            continue
        if not isinstance(item, ast.Node):
            continue
        if isinstance(item, ast.SelectStmt):
            for clause, value in (("limit", item.limitCount), ("offset", item.limitOffset)):
                if (n := _param(value)) is not None:
                    found.append(Use(n, fixed=FIXED[clause]))
        elif isinstance(item, ast.A_Expr):
            found.extend(_compared(item))
        elif isinstance(item, ast.TypeCast) and (n := _param(item.arg)) is not None:
            typename = item.typeName.names[-1].sval if item.typeName and item.typeName.names else ""
            if typename in BY_TYPE:
                found.append(Use(n, fixed=BY_TYPE[typename]))
        stack.extend(getattr(item, slot) for slot in reversed(item.__slots__))
    return found


def _compared(expr: ast.A_Expr) -> list[Use]:
    """`col OP $n`, `$n OP col`, `col IN ($n, ...)`, each side possibly wrapped in a function call."""
    sides = [(expr.lexpr, expr.rexpr), (expr.rexpr, expr.lexpr)]
    for column_side, other in sides:
        column = _column(column_side)
        if column is None:
            continue
        values = other if isinstance(other, list | tuple) else [other]
        numbers = [n for v in values if (n := _param(v)) is not None]
        return [Use(n, column=column[1], qualifier=column[0]) for n in numbers]
    return []


def _unwrap(node: object) -> object:
    """The argument of a cast or of a one-argument function (lower(x), x::text)."""
    while True:
        if isinstance(node, ast.TypeCast):
            node = node.arg
        elif isinstance(node, ast.FuncCall) and node.args and len(node.args) == 1:
            node = node.args[0]
        else:
            return node


def _param(node: object) -> int | None:
    node = _unwrap(node)
    return node.number if isinstance(node, ast.ParamRef) else None


def _column(node: object) -> tuple[str | None, str] | None:
    node = _unwrap(node)
    if not isinstance(node, ast.ColumnRef) or not node.fields:
        return None
    names = [f.sval for f in node.fields if isinstance(f, ast.String)]
    if len(names) != len(node.fields) or not names:
        return None  # `t.*`
    return (names[-2] if len(names) > 1 else None), names[-1]


def aliases(statement: ForeignStatement) -> dict[str, str]:
    """Alias or table name -> the relation as written ('orders', 'sales.orders')."""
    found: dict[str, str] = {}
    stack: list[object] = [parse_sql(statement.text)[0].stmt]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, ast.Node):
            if isinstance(item, ast.RangeVar):
                found[item.alias.aliasname if item.alias else item.relname] = written_name(item)
            stack.extend(getattr(item, slot) for slot in item.__slots__)
    return found


sql = SqlFiles(Path(__file__).with_name("sql"))


def sample_values(
    conn: Connection, statement: ForeignStatement, oids: dict[str, int | None]
) -> tuple[str | None, ...]:
    """Values for $1..$n (None where nothing is known). `oids`: the statement's relations as
    written -> their OIDs (the session resolves them along the statement's search_path)."""
    written = aliases(statement)
    values: list[str | None] = [None] * statement.params
    for use in uses(statement):
        if use.fixed is not None:
            values[use.number - 1] = use.fixed
            continue
        where = [written[use.qualifier]] if use.qualifier in written else list(written.values())
        relations = [oid for name in where if (oid := oids.get(name)) is not None]
        if relations and use.column:
            row = conn.execute(sql("sample_value"), {"relations": relations, "column": use.column}).fetchone()
            values[use.number - 1] = row[0] if row else None
    return tuple(values)
