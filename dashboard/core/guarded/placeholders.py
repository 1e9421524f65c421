"""Typed literals whose literal `pg_stat_statements` replaced, written back as casts the server reads.

`pg_stat_statements` records `now() - interval '7 days'` as `now() - interval $1`, `date '2026-11-30'`
as `date $1`: the literal becomes a placeholder but the type name in front of it stays. libpg_query
(pglast) reads that as a cast of `$1`, so normalized texts parse; the server's grammar does not, and
planning them fails with `syntax error at or near "$1"`. Written as `$1::interval` they mean the same
and plan. On an ERP workload these are the date-range statements, often the most expensive ones.

Only the span from the type name to the placeholder is rewritten, from the scanner's tokens (so a
comment inside the span is dropped, never moved in front of the rest of a line). The caller parses
the result again and requires the same tree (statement.py).
"""

from __future__ import annotations

from typing import NamedTuple

from pglast import ast
from pglast.parser import scan

_COMMENTS = frozenset({"C_COMMENT", "SQL_COMMENT"})
# `char 'x'` is bpchar of any length, `'x'::char` is char(1); the same for bit. Written by the
# catalog name, a cast takes no default length.
_NO_DEFAULT_LENGTH = {"bpchar": "pg_catalog.bpchar", "bit": "pg_catalog.bit"}


class Span(NamedTuple):
    type_at: int  # where the type name starts (pglast's offsets count characters, not bytes)
    param_at: int  # where the placeholder starts
    type_sql: str | None  # the type to write instead of the text's, when they differ


def typed_placeholder(node: ast.Node) -> Span | None:
    """The span of `typename $n` when `node` is one, else None. The parser gives a cast written
    `$1::int` or `CAST($1 AS int)` a location; the typed-literal form `int $1` has none."""
    if not isinstance(node, ast.TypeCast) or not isinstance(node.arg, ast.ParamRef):
        return None
    if node.location not in (None, -1) or node.typeName is None:
        return None
    type_at, param_at = node.typeName.location, node.arg.location
    if type_at is None or param_at is None or not 0 <= type_at < param_at:
        return None
    names = [n.sval for n in node.typeName.names or () if isinstance(n, ast.String)]
    plain = names[:1] == ["pg_catalog"] and not node.typeName.typmods
    return Span(type_at, param_at, _NO_DEFAULT_LENGTH.get(names[-1]) if plain and names else None)


def as_casts(text: str, spans: list[Span]) -> str | None:
    """`text` with each `typename $n` of `spans` written `$n::typename`; None when the spans do not
    fall on the scanner's tokens as expected, or nest (`foo(date $2) $1`: not one a normalized
    statement holds)."""
    tokens = scan(text)
    at = {t.start: i for i, t in enumerate(tokens)}
    ordered = sorted(spans, reverse=True)  # from the end: earlier offsets stay true
    for later, span in zip([None, *ordered], ordered, strict=False):
        first, param = at.get(span.type_at), at.get(span.param_at)
        nested = later is not None and later.type_at < span.param_at
        if first is None or param is None or tokens[param].name != "PARAM" or nested:
            return None
        end = tokens[param].end + 1
        words = [t for t in tokens[first:param] if t.name not in _COMMENTS]
        type_sql = span.type_sql or _joined(text, words)
        text = text[: span.type_at] + text[span.param_at : end] + "::" + type_sql + text[end:]
    return text


def _joined(text: str, words: list) -> str:
    """The tokens' text, one space where the statement had a gap (whitespace or a comment)."""
    out = ""
    for previous, word in zip([None, *words], words, strict=False):
        gap = previous is not None and word.start > previous.end + 1
        out += (" " if gap else "") + text[word.start : word.end + 1]
    return out
