"""Readable SQL for the pages: pg_stat_statements' normalized text, pretty-printed with sqlglot.

Formatting must never change what the statement says. sqlglot regenerates the text from its syntax
tree, which rewrites some things (DDL types such as `serial`, literal case such as
date_trunc('hour')), so only queries are formatted, and the result is kept only when it carries
the same placeholders and string literals as the original; otherwise the original text is shown.
"""

from __future__ import annotations

import logging
import re
from collections import Counter

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.tokens import TokenType

from dashboard.core.guarded import analysable

DIALECT = "postgres"
MAX_CHARS = 20_000  # longer texts (huge IN lists, generated SQL) are shown as they are
_QUERIES = (exp.Query, exp.Insert, exp.Update, exp.Delete, exp.Merge)
# sqlglot 30 fails to tokenize "$1,$2" (a placeholder, a comma, and a placeholder with no space),
# which pg_stat_statements keeps whenever the application wrote "f(1,2)".
_TIGHT_PLACEHOLDER = re.compile(r"(\$\d+),(?=\$)")
_PLACEHOLDER = re.compile(r"\$\d+")


def format_sql(text: str) -> str:
    """Pretty-printed `text`, or `text` itself when it cannot be formatted faithfully."""
    if not text or len(text) > MAX_CHARS or analysable(text) is not None:
        return text  # sqlglot's time and recursion grow with depth and AND/OR chains: bounded first
    source = _TIGHT_PLACEHOLDER.sub(r"\1, ", text)
    try:
        trees = _parse(source)
        if not trees or not all(isinstance(tree, _QUERIES) for tree in trees):
            return text
        pretty = ";\n".join(tree.sql(dialect=DIALECT, pretty=True) for tree in trees)
        return pretty if _same_values(source, pretty) else text
    except (SqlglotError, RecursionError):
        return text


def _parse(text: str) -> list[exp.Expression]:
    # sqlglot logs a warning for every statement it falls back to a bare Command for; those
    # statements are not formatted anyway, so the warning is noise in the app's log.
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        trees = sqlglot.parse(text, read=DIALECT, error_level=ErrorLevel.RAISE)
    finally:
        logger.setLevel(level)
    return [tree for tree in trees if tree is not None]


def _same_values(before: str, after: str) -> bool:
    """True when both texts hold the same placeholders and string literals."""
    return _values(before) == _values(after)


def _values(text: str) -> Counter[str]:
    tokens = sqlglot.tokenize(text, read=DIALECT)
    strings = Counter(f"'{t.text}'" for t in tokens if t.token_type == TokenType.STRING)
    return strings + Counter(_PLACEHOLDER.findall(text))


def one_line(text: str | None, width: int = 80) -> str:
    """The statement on one line, cut to `width` characters (tables, chart labels)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
