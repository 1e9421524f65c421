"""`observatory advise --query-file PATH`: the statements of a SQL file, as PostgreSQL splits them.

The file is split by PostgreSQL's own parser (pglast embeds libpg_query), so a `;` inside a string,
a quoted identifier, a dollar-quoted body or a comment never ends a statement. Every statement is
advised on: those the planner cannot cost (CREATE TABLE, CREATE INDEX, SET, BEGIN, COMMIT ...) are
listed as skipped with the reason, never a failure. Nothing in the file is run: its statements are
planned against the database as it is, so a CI job applies its migrations first, then advises.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pglast.parser import ParseError, scan, split

STDIN = "-"


class QueryFileError(ValueError):
    """The file cannot be read or parsed: the one-line message names it and, if it parsed, where."""


def read_statements(path: str) -> list[str]:
    """The statements of the file at `path` (`-`: standard input), without comments or semicolons."""
    name = "standard input" if path == STDIN else path
    try:
        text = sys.stdin.read() if path == STDIN else Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise QueryFileError(f"--query-file {name}: cannot read it: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise QueryFileError(
            f"--query-file {name}: not UTF-8 text: {err.reason} at byte {err.start}"
        ) from None
    try:
        statements = list(split(text))
    except ParseError as err:
        message, offset = (*err.args, 0)[:2]  # offset: characters from the start of the text
        raise QueryFileError(f"--query-file {name}: {_position(text, offset)}: {message}") from None
    if not statements:
        raise QueryFileError(f"--query-file {name}: no SQL statement in it")
    return [_without_trailing_comments(s) for s in statements]


def _without_trailing_comments(statement: str) -> str:
    """The last statement of a file runs to its end: comments after it are not part of it."""
    ends = [t.end for t in scan(statement) if t.name not in ("C_COMMENT", "SQL_COMMENT")]
    return statement[: ends[-1] + 1] if ends else statement  # pglast's offsets count characters


def _position(text: str, offset: int) -> str:
    """'line 3, column 7' for a 0-based character offset."""
    offset = min(max(offset, 0), len(text))
    line_start = text.rfind("\n", 0, offset) + 1
    return f"line {text.count(chr(10), 0, offset) + 1}, column {offset - line_start + 1}"
