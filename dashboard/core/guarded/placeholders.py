"""Typed literals whose literal `pg_stat_statements` replaced, written back as casts the server reads.

`pg_stat_statements` records `now() - interval '7 days'` as `now() - interval $1`, `date '2026-11-30'`
as `date $1`: the literal becomes a placeholder but the type name in front of it stays. libpg_query
(pglast) reads that as a cast of `$1`, so normalized texts parse; the server's grammar does not, and
planning them fails with `syntax error at or near "$1"`. Written as `$1::interval` they mean the same
and plan. On an ERP workload these are the date-range statements, often the most expensive ones.

Only the span from the type name to the placeholder is rewritten, from the scanner's tokens (so a
comment inside the span is dropped, never moved in front of the rest of a line).
"""

from __future__ import annotations

from pglast import ast
from pglast.parser import scan

_COMMENTS = frozenset({"C_COMMENT", "SQL_COMMENT"})


def typed_placeholder(node: ast.Node) -> tuple[int, int] | None:
    """(type name's offset, placeholder's offset) when `node` is `typename $n`, else None. pglast
    gives offsets in characters of the Python string (libpg_query's count bytes).

    The parser gives a cast written `$1::int` or `CAST($1 AS int)` a location; the typed-literal
    form `int $1` has none.
    """
    if not isinstance(node, ast.TypeCast) or not isinstance(node.arg, ast.ParamRef):
        return None
    if node.location not in (None, -1) or node.typeName is None:
        return None
    type_at, param_at = node.typeName.location, node.arg.location
    if type_at is None or param_at is None or not 0 <= type_at < param_at:
        return None
    return type_at, param_at


def as_casts(text: str, spans: list[tuple[int, int]]) -> str | None:
    """`text` with each `typename $n` of `spans` written `$n::typename`; None if the scanner does
    not find a placeholder where the parser put one."""
    tokens = scan(text)  # offsets in characters, like the tree's
    for type_at, param_at in sorted(spans, reverse=True):  # from the end: earlier offsets stay true
        words = [t for t in tokens if type_at <= t.start < param_at and t.name not in _COMMENTS]
        param = next((t for t in tokens if t.start == param_at and t.name == "PARAM"), None)
        if param is None:
            return None
        cast = text[param.start : param.end + 1] + "::" + _joined(text, words)
        text = text[:type_at] + cast + text[param.end + 1 :]
    return text


def _joined(text: str, words: list) -> str:
    """The tokens' text, one space where the statement had a gap (whitespace or a comment)."""
    out = ""
    for previous, word in zip([None, *words], words, strict=False):
        gap = previous is not None and word.start > previous.end + 1
        out += (" " if gap else "") + text[word.start : word.end + 1]
    return out
