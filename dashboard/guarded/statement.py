"""What a foreign statement is, as PostgreSQL's own parser reads it, before any server sees it.

Foreign SQL is text the project did not write: statements pasted by a user or recorded by
`pg_stat_statements` from anyone who can connect. `check()` lets through exactly one statement of a
kind the planner may cost (SELECT, WITH, VALUES, TABLE, INSERT, UPDATE, DELETE, MERGE) and refuses
everything else with the reason. pglast embeds libpg_query, the server's parser, so a statement is
split and classified exactly as the server would; sqlglot, which reads some text leniently, only
ever sees statements this module accepted.

It also names what the statement calls (functions, operators, casts) and reads (relations), so the
session can refuse to plan statements that would run someone else's code inside the planner.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.parser import ParseError, scan

MAX_CHARS = 100_000  # pg_stat_statements keeps whole texts; generated SQL past this is not advised on
MAX_DEPTH = 32  # nested parentheses, subqueries or expressions: sqlglot recurses once a level or more
MAX_BOOLEAN = 200  # AND/OR terms: sqlglot's analysis of a flat chain grows with its square
MAX_TOKENS = 20_000

_KINDS: dict[type, str] = {
    ast.SelectStmt: "select",
    ast.InsertStmt: "insert",
    ast.UpdateStmt: "update",
    ast.DeleteStmt: "delete",
    ast.MergeStmt: "merge",
}
ALLOWED = "SELECT, WITH, VALUES, TABLE, INSERT, UPDATE, DELETE or MERGE"
# Operators the planner applies without the statement naming them: sorting, grouping, joining,
# IN lists and LIKE. Selectivity estimation calls an operator's function on constants while planning.
Name = tuple[str, str]  # (schema, name); schema '' when unqualified
IMPLICIT_OPERATORS: frozenset[Name] = frozenset(
    ("", op) for op in ("=", "<>", "<", ">", "<=", ">=", "~~", "~~*", "!~~", "!~~*")
)


class Refused(ValueError):
    """The text is not one statement the advisor may plan: the message says why, for people."""


@dataclass(frozen=True)
class ForeignStatement:
    text: str  # the one statement, without surrounding comments, blanks or semicolon
    kind: str  # select | insert | update | delete | merge
    params: int  # the highest $n placeholder
    # (schema, name) as written, schema '' when unqualified (resolved through search_path)
    functions: frozenset[Name]  # ('', 'lower'), ('public', 'f')
    operators: frozenset[Name]  # implicit comparison operators included
    types: frozenset[Name]  # cast targets: ('pg_catalog', 'int4'), ('public', 'mood')
    relations: frozenset[str]  # as written: 'orders', 'sales."Order"' (CTE names too)


def check_text(text: object) -> str:
    """The text, or Refused when it is not text a person could have typed: bytes, NUL, bad UTF-8."""
    if not isinstance(text, str):
        raise Refused(f"a statement must be text, not {type(text).__name__}")
    if "\x00" in text:
        raise Refused("the statement contains a NUL byte: PostgreSQL text cannot hold one")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused("the statement is not valid UTF-8 (it holds undecodable bytes)") from None
    if len(text) > MAX_CHARS:
        raise Refused(f"the statement is {len(text):,} characters long: at most {MAX_CHARS:,} are analysed")
    return text


def check(text: object) -> ForeignStatement:
    """The one statement in `text` if the planner may cost it; Refused with the reason otherwise."""
    text = check_text(text)
    _check_bounds(text)
    try:
        raw = parse_sql(text)
    except ParseError as err:
        raise Refused(f"not valid SQL for PostgreSQL: {err}") from None
    except RecursionError:
        raise Refused(f"nested too deeply to analyse (at most {MAX_DEPTH} levels)") from None
    if not raw:
        raise Refused("empty: no statement to advise on")
    if len(raw) > 1:
        raise Refused(f"{len(raw)} statements: give one statement at a time")
    node = raw[0].stmt
    kind = _KINDS.get(type(node))
    if kind is None:
        raise Refused(f"{_name(node)} is not planned here: only {ALLOWED} statements are")
    if isinstance(node, ast.SelectStmt) and _creates_table(node):
        raise Refused("SELECT ... INTO creates a table: only queries and DML are planned")
    walked = _walk(node)
    return ForeignStatement(text=_one(text, raw[0]), kind=kind, **walked)


def analysable(text: str) -> str | None:
    """None when sqlglot may analyse `text` in bounded time; else why not (for a 'skipped' list)."""
    try:
        _check_bounds(check_text(text))
    except Refused as err:
        return str(err)
    return None


def _check_bounds(text: str) -> None:
    """Depth, boolean terms and tokens, from the server's scanner: flat, fast, no recursion."""
    try:
        tokens = scan(text)
    except ParseError as err:
        raise Refused(f"not valid SQL for PostgreSQL: {err}") from None
    if len(tokens) > MAX_TOKENS:
        raise Refused(f"{len(tokens):,} tokens: at most {MAX_TOKENS:,} are analysed")
    depth = deepest = boolean = 0
    for token in tokens:
        if token.name in ("ASCII_40", "ASCII_91"):  # ( [
            depth += 1
            deepest = max(deepest, depth)
        elif token.name in ("ASCII_41", "ASCII_93"):
            depth -= 1
        elif token.name in ("AND", "OR"):
            boolean += 1
    if deepest > MAX_DEPTH:
        raise Refused(f"nested {deepest} levels deep: at most {MAX_DEPTH} are analysed")
    if boolean > MAX_BOOLEAN:
        raise Refused(f"{boolean:,} AND/OR terms: at most {MAX_BOOLEAN} are analysed")


def _one(text: str, raw: ast.RawStmt) -> str:
    """The statement's own text: libpg_query's locations count UTF-8 bytes."""
    data = text.encode("utf-8")
    start = raw.stmt_location or 0
    end = start + raw.stmt_len if raw.stmt_len else len(data)
    return data[start:end].decode("utf-8").strip().rstrip(";").strip()


def _name(node: ast.Node) -> str:
    """'CREATE TABLE', 'COPY', 'SET' ... for the refusal message."""
    name = type(node).__name__.removesuffix("Stmt")
    words = "".join(f" {c}" if c.isupper() else c for c in name).strip().upper()
    return {"VARIABLE SET": "SET", "VARIABLE SHOW": "SHOW", "TRANSACTION": "a transaction command"}.get(
        words, words
    )


def _creates_table(node: ast.SelectStmt) -> bool:
    return any(isinstance(n, ast.SelectStmt) and n.intoClause for n in _nodes(node))


def _walk(node: ast.Node) -> dict:
    """What the statement calls and reads; iterative, so depth cannot exhaust Python's stack."""
    functions, operators, types, relations = set(), set(IMPLICIT_OPERATORS), set(), set()
    params = 0
    for n in _nodes(node):
        if isinstance(n, ast.FuncCall):
            functions.add(_name_of(n.funcname))
        elif isinstance(n, ast.A_Expr) and n.name:
            operators.add(_name_of(n.name))
        elif isinstance(n, ast.TypeName) and n.names:
            types.add(_name_of(n.names))
        elif isinstance(n, ast.RangeVar):
            parts = (n.catalogname, n.schemaname, n.relname)
            relations.add(".".join(_quote(p) for p in parts if p))
        elif isinstance(n, ast.ParamRef):
            params = max(params, n.number)
    return {
        "params": params,
        "functions": frozenset(functions),
        "operators": frozenset(operators),
        "types": frozenset(types),
        "relations": frozenset(relations),
    }


def _nodes(root: ast.Node):
    """Every node under `root`, depth first, without recursion."""
    stack: list[object] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, ast.Node):
            yield item
            stack.extend(getattr(item, slot) for slot in item.__slots__)


def _name_of(names: tuple) -> Name:
    parts = [getattr(n, "sval", "") for n in names]
    return ("", parts[-1]) if len(parts) == 1 else (parts[-2], parts[-1])


def _quote(identifier: str) -> str:
    """As to_regclass() reads a name: lower-case plain identifiers bare, anything else quoted."""
    if identifier.isidentifier() and identifier == identifier.lower() and identifier.isascii():
        return identifier
    return '"' + identifier.replace('"', '""') + '"'
