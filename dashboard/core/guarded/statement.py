"""What a foreign statement is, as PostgreSQL's own parser reads it, before any server sees it.

Foreign SQL is text the project did not write: statements pasted by a user or recorded by
`pg_stat_statements` from anyone who can connect. `check()` lets through exactly one statement of a
kind the planner may cost (SELECT, WITH, VALUES, TABLE, INSERT, UPDATE, DELETE, MERGE) and refuses
everything else with the reason. pglast embeds libpg_query, the server's parser, so a statement is
split and classified exactly as the server would; sqlglot, which reads some text leniently, only
ever sees statements this module accepted.

It also collects every name the statement writes and the relations it reads, so the session can
refuse to plan statements that could run someone else's code inside the planner. Names are taken
from every string in the parse tree, whatever the syntax that holds them: a function is reached as
`f(x)`, `x.f` or `(row).f`, an operator inside `x OP ANY (subquery)` as well as `x OP y`, and a type
in a cast; a literal caught as a name too only makes the check more careful.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.parser import ParseError, scan

from dashboard.core.guarded.placeholders import Span, as_casts, typed_placeholder

MAX_CHARS = 100_000  # pg_stat_statements keeps whole texts; generated SQL past this is not advised on
MAX_DEPTH = 32  # nested parentheses, subqueries or expressions: sqlglot recurses once a level or more
MAX_BOOLEAN = 200  # AND/OR terms: sqlglot's analysis of a flat chain grows with its square
MAX_TOKENS = 20_000
MAX_TREE_DEPTH = 150  # of PostgreSQL's parse tree: chains like `x IS NULL IS NULL ...` nest one a term
# Tables, CTEs, subqueries and functions in FROM: planning 400 chained CTEs takes 7 s, in a loop that
# never looks at a cancel request; 100 of them (200 items) take 50 ms.
MAX_FROM_ITEMS = 200

_KINDS: dict[type, str] = {
    ast.SelectStmt: "select",
    ast.InsertStmt: "insert",
    ast.UpdateStmt: "update",
    ast.DeleteStmt: "delete",
    ast.MergeStmt: "merge",
}
ALLOWED = "SELECT, WITH, VALUES, TABLE, INSERT, UPDATE, DELETE or MERGE"
# Built-ins that run SQL given as a string (the planner may call the STABLE ones while estimating):
# what that SQL reads and calls is out of sight of any check.
RUNS_SQL = frozenset(
    f"{kind}_to_{form}"
    for kind in ("table", "query", "cursor", "schema", "database")
    for form in ("xml", "xmlschema", "xml_and_xmlschema")
) | {"ts_stat", "ts_rewrite"}
# Built-ins that run a type's code (a domain's CHECK, its input function) for a type given by OID:
# the type need not be named, so no check can see it.
RUNS_TYPE_CODE = frozenset(
    f"{kind}_{io}" for kind in ("domain", "record", "array", "range", "multirange") for io in ("in", "recv")
) | {"pg_input_is_valid", "pg_input_error_info"}


class Refused(ValueError):
    """The text is not one statement the advisor may plan: the message says why, for people."""


@dataclass(frozen=True)
class ForeignStatement:
    text: str  # the one statement, without surrounding comments, blanks or semicolon
    kind: str  # select | insert | update | delete | merge
    params: int  # the highest $n placeholder
    names: frozenset[str]  # every string of the parse tree: identifiers, operators, literals
    relations: frozenset[str]  # relations as written, for to_regclass(): 'orders', '"S"."Order"'
    literals: frozenset[str] = frozenset()  # strings found only as constants ('system', 'user')
    # What running it changes, wherever it is written (a writing CTE too): '' nothing, 'lock' rows
    # (FOR UPDATE/SHARE), 'delete' rows, 'write' rows' values (INSERT, UPDATE, MERGE: defaults,
    # checks and index expressions are computed).
    changes: str = ""

    @property
    def called(self) -> frozenset[str]:
        """The names a call or an operator could be written with: every string but the constants.
        (A constant only names a function when SQL runs it as text: refused before this.)"""
        return self.names - self.literals


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
    raw = _parse(check_text(text))
    if not raw:
        raise Refused("empty: no statement to advise on")
    if len(raw) > 1:
        raise Refused(f"{len(raw)} statements: give one statement at a time")
    node = raw[0].stmt
    kind = _KINDS.get(type(node))
    if kind is None:
        raise Refused(f"{_name(node)} is not planned here: only {ALLOWED} statements are")
    walked = _walk(node)
    if walked.pop("creates_table"):
        raise Refused("SELECT ... INTO creates a table: only queries and DML are planned")
    for hidden, what in (
        (RUNS_SQL, "runs SQL named in a string"),
        (RUNS_TYPE_CODE, "runs a type's code chosen by OID"),
    ):
        called = sorted(walked["names"] & hidden)
        if called:
            raise Refused(f"{called[0]} {what}, which no check can see: not planned")
    spans = walked.pop("typed_placeholders")
    if spans:
        return _with_casts(text, raw[0], spans, ForeignStatement(text="", kind=kind, **walked))
    return ForeignStatement(text=_one(text, raw[0]), kind=kind, **walked)


def _with_casts(text: str, raw: ast.RawStmt, spans: list[Span], read: ForeignStatement) -> ForeignStatement:
    """The statement with `interval $1` written `$1::interval`, so the server can plan it; parsed
    again to be sure the rewrite gives the very tree that was checked (locations aside)."""
    rewritten = as_casts(text, spans)
    try:  # the bounds held for the original; each rewrite adds a `::` token
        again = parse_sql(rewritten) if rewritten is not None else ()
    except ParseError:
        again = ()
    if len(again) != 1 or _located_nowhere(again[0].stmt) != _located_nowhere(raw.stmt):
        raise Refused("its typed placeholders (such as interval $1) could not be rewritten as casts")
    return ForeignStatement(
        _one(rewritten, again[0]), read.kind, read.params, read.names, read.relations, read.literals,
        read.changes,
    )  # fmt: skip


def _located_nowhere(node: ast.Node) -> object:
    """The tree as nested dicts and tuples without its locations, for comparing two parses."""

    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "location"}
        if isinstance(value, tuple | list):
            return tuple(strip(v) for v in value)
        return value

    return strip(node(skip_none=True))


# Statements that only steer a session or its transaction: microseconds each, and as many as the
# queries they wrap (the weekly review leaves them out of the DB query p95).
_SESSION_CONTROL = (
    ast.TransactionStmt, ast.VariableSetStmt, ast.VariableShowStmt, ast.DiscardStmt,
    ast.DeallocateStmt, ast.ListenStmt, ast.UnlistenStmt, ast.NotifyStmt,
)  # fmt: skip


def is_session_control(text: str) -> bool:
    """True for one BEGIN, COMMIT, ROLLBACK, SAVEPOINT, SET, SHOW, RESET, DISCARD, DEALLOCATE,
    LISTEN, UNLISTEN or NOTIFY; False for anything else (CALL, COPY, DO, VACUUM do work)."""
    try:
        raw = parse_sql(check_text(text))
    except (Refused, ParseError, RecursionError):
        return False
    return len(raw) == 1 and isinstance(raw[0].stmt, _SESSION_CONTROL)


def is_utility(text: str) -> bool:
    """True for one statement of a kind that has no plan (BEGIN, COMMIT, SET, DDL ...): a recorded
    workload's statements the advisor need not even list."""
    try:
        raw = parse_sql(check_text(text))
    except (Refused, ParseError, RecursionError):
        return False
    return len(raw) == 1 and type(raw[0].stmt) not in _KINDS


def analysable(text: str) -> str | None:
    """None when sqlglot may analyse `text` in bounded time; else why not (for a 'skipped' list)."""
    try:
        for raw in _parse(check_text(text)):
            _walk(raw.stmt)
    except Refused as err:
        return str(err)
    return None


def _parse(text: str) -> tuple[ast.RawStmt, ...]:
    """The server's parse of `text`, once the flat bounds hold (scanned first: fast, no recursion)."""
    _check_tokens(text)
    try:
        return parse_sql(text)
    except ParseError as err:
        raise Refused(f"not valid SQL for PostgreSQL: {err}") from None
    except RecursionError:
        raise Refused(f"nested too deeply to analyse (at most {MAX_DEPTH} levels)") from None


def _check_tokens(text: str) -> None:
    """Tokens, bracket depth and boolean terms, from the server's scanner."""
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
    """The statement's own text. libpg_query counts UTF-8 bytes; pglast gives every location (here and
    in the tree) in characters of the Python string."""
    start = raw.stmt_location or 0
    end = start + raw.stmt_len if raw.stmt_len else len(text)
    return text[start:end].strip().rstrip(";").strip()


# Parse nodes whose class name does not say the command as people write it.
_COMMANDS = {
    "IndexStmt": "CREATE INDEX",
    "CreateStmt": "CREATE TABLE",
    "ViewStmt": "CREATE VIEW",
    "RuleStmt": "CREATE RULE",
    "CreateTableAsStmt": "CREATE TABLE AS",
    "VariableSetStmt": "SET",
    "VariableShowStmt": "SHOW",
    "TransactionStmt": "a transaction command",
}


def _name(node: ast.Node) -> str:
    """'CREATE INDEX', 'COPY', 'SET' ... for the refusal message."""
    kind = type(node).__name__
    if isinstance(node, ast.VacuumStmt):
        return "VACUUM" if node.is_vacuumcmd else "ANALYZE"
    if kind in _COMMANDS:
        return _COMMANDS[kind]
    name = kind.removesuffix("Stmt")
    return "".join(f" {c}" if c.isupper() else c for c in name).strip().upper()


_CHANGES = {
    ast.LockingClause: "lock",
    ast.DeleteStmt: "delete",
    ast.InsertStmt: "write",
    ast.UpdateStmt: "write",
    ast.MergeStmt: "write",
}
_FROM_ITEMS = (ast.RangeVar, ast.RangeSubselect, ast.RangeFunction, ast.CommonTableExpr, ast.SubLink)


def _walk(root: ast.Node) -> dict:
    """Names, relations and placeholders of the tree, with its bounds checked; iterative, so no
    depth exhausts Python's stack."""
    names: set[str] = set()
    constants: set[str] = set()  # strings inside constants (A_Const)
    relations: set[str] = set()
    params = from_items = 0
    creates_table = False
    changes: set[str] = set()
    typed: list[Span] = []  # `interval $1`: see placeholders.py
    stack: list[tuple[object, int]] = [(root, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend((i, depth) for i in item)
            continue
        if not isinstance(item, ast.Node):
            continue
        if depth > MAX_TREE_DEPTH:
            raise Refused(f"its expressions nest over {MAX_TREE_DEPTH} deep: too deep to analyse")
        if isinstance(item, ast.String):
            names.add(item.sval)
        elif isinstance(item, ast.A_Const) and isinstance(item.val, ast.String):
            constants.add(item.val.sval)
        elif isinstance(item, ast.RangeVar):
            relations.add(written_name(item))
        elif isinstance(item, ast.ParamRef):
            params = max(params, item.number)
        elif isinstance(item, ast.SelectStmt) and item.intoClause:
            creates_table = True
        elif span := typed_placeholder(item):
            typed.append(span)
        if type(item) in _CHANGES:
            changes.add(_CHANGES[type(item)])
        if isinstance(item, _FROM_ITEMS):
            from_items += 1
            if from_items > MAX_FROM_ITEMS:
                raise Refused(f"over {MAX_FROM_ITEMS} tables, subqueries and CTEs: too many to plan safely")
        stack.extend((getattr(item, slot), depth + 1) for slot in item.__slots__)
    # A constant's string is a name too (the check of what planning runs stays careful), and a
    # literal only when no identifier, operator or type is written the same.
    literals = constants - _non_constant_strings(root, constants)
    return {
        "params": params,
        "names": frozenset(names),
        "literals": frozenset(literals),
        "changes": max(changes, key=("lock", "delete", "write").index, default=""),
        "relations": frozenset(relations),
        "creates_table": creates_table,
        "typed_placeholders": typed,
    }


def _non_constant_strings(root: ast.Node, among: set[str]) -> set[str]:
    """Which of `among` also appear as a string outside any constant."""
    found: set[str] = set()
    if not among:
        return found
    stack: list[object] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, ast.A_Const):
            continue  # its own string is the constant
        elif isinstance(item, ast.String):
            if item.sval in among:
                found.add(item.sval)
        elif isinstance(item, ast.Node):
            stack.extend(getattr(item, slot) for slot in item.__slots__)
    return found


def written_name(relation: ast.RangeVar) -> str:
    """A relation as the statement writes it, the way to_regclass() reads it: '"S"."Order"'."""
    parts = (relation.catalogname, relation.schemaname, relation.relname)
    return ".".join(_quote(p) for p in parts if p)


def _quote(identifier: str) -> str:
    """As to_regclass() reads a name: lower-case plain identifiers bare, anything else quoted."""
    if identifier.isidentifier() and identifier == identifier.lower() and identifier.isascii():
        return identifier
    return '"' + identifier.replace('"', '""') + '"'
