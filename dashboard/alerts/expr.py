"""The small expression language of `source: store` rules, read into a typed tree.

    expr      := operand OP number                     OP: > >= < <= == !=
    operand   := FUNC "(" duration "," series ")"       FUNC: avg_over max_over min_over delta rate
               | series
    series    := name [ "{" label MATCH "string" ("," label MATCH "string")* "}" ]   MATCH: = !=

`name` is a series as the store names it (`redis.memory.used_pct`, `pg.connections`) or a derived
one (dashboard/alerts/series.py: `redis.hit_rate`, `pg.cache_hit_ratio`, ...). Every label of a
series can be matched, and `target` matches the target's name. Anything else is an `ExprError`
that names the column, as PromQL's errors do.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from dashboard.core.config import parse_duration

FUNCTIONS = ("avg_over", "max_over", "min_over", "delta", "rate")
COMPARISONS = (">=", "<=", "==", "!=", ">", "<")
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<duration>\d+(?:\.\d+)?(?:ms|s|m|h|d))(?![A-Za-z0-9_.])
    | (?P<number>-?\d+(?:\.\d+)?(?:e-?\d+)?)(?![A-Za-z0-9_.])
    | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<op>>=|<=|==|!=|=|>|<)
    | (?P<punct>[(){},])
    )""",
    re.X | re.A,  # ASCII digits and names only: '١٠' is no number here
)
MAX_LENGTH = 2_000


class ExprError(ValueError):
    """A rule's expression that cannot be read: the message names the column (1-based)."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column


class Matcher(NamedTuple):
    label: str
    equal: bool  # = (True) or != (False)
    value: str


class Selector(NamedTuple):
    name: str
    matchers: tuple[Matcher, ...]


class Expr(NamedTuple):
    function: str | None  # None: the last value
    window: float | None  # seconds, for a function
    selector: Selector
    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        return {
            ">": value > self.threshold,
            ">=": value >= self.threshold,
            "<": value < self.threshold,
            "<=": value <= self.threshold,
            "==": value == self.threshold,
            "!=": value != self.threshold,
        }[self.op]


class _Token(NamedTuple):
    kind: str
    text: str
    column: int


def _tokens(text: str) -> list[_Token]:
    found, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if not match or match.end() == at:
            column = at + len(text[at:]) - len(text[at:].lstrip()) + 1
            raise ExprError(f"unexpected character {text[column - 1]!r}", column)
        kind = match.lastgroup or ""
        found.append(_Token(kind, match.group(kind), match.start(kind) + 1))
        at = match.end()
    return found


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, kind: str, text: str | None = None, what: str | None = None) -> _Token:
        token = self.peek()
        if token is None or token.kind != kind or (text is not None and token.text != text):
            wanted = what or (repr(text) if text else kind)
            where = token.column if token else len(self.text) + 1
            got = f"{token.text!r}" if token else "the end"
            raise ExprError(f"expected {wanted}, found {got}", where)
        self.at += 1
        return token


def parse(text: str) -> Expr:
    """The expression's tree, or ExprError naming the column of the first problem."""
    if len(text) > MAX_LENGTH:
        raise ExprError(f"longer than {MAX_LENGTH:,} characters", MAX_LENGTH + 1)
    reader = _Reader(text)
    first = reader.take("name", what="a series name or one of " + ", ".join(FUNCTIONS))
    function = window = None
    if first.text in FUNCTIONS and reader.peek() is not None and reader.peek().text == "(":  # type: ignore[union-attr]
        function = first.text
        reader.take("punct", "(")
        window = _duration(reader.take("duration", what="a window such as 5m"))
        reader.take("punct", ",")
        selector = _selector(reader, reader.take("name", what="a series name"))
        reader.take("punct", ")")
    else:
        selector = _selector(reader, first)
    op = reader.take("op", what="a comparison (> >= < <= == !=)")
    if op.text not in COMPARISONS:
        raise ExprError(f"{op.text!r} is not a comparison: use > >= < <= == !=", op.column)
    threshold = float(reader.take("number", what="a number").text)
    extra = reader.peek()
    if extra is not None:
        raise ExprError(f"unexpected {extra.text!r} after the comparison", extra.column)
    return Expr(function, window, selector, op.text, threshold)


def _duration(token: _Token) -> float:
    try:
        return parse_duration(token.text)
    except ValueError as err:
        raise ExprError(str(err), token.column) from None


def _selector(reader: _Reader, name: _Token) -> Selector:
    if name.text in FUNCTIONS:
        raise ExprError(f"{name.text} needs its arguments: {name.text}(5m, series)", name.column)
    matchers: list[Matcher] = []
    token = reader.peek()
    if token is not None and token.text == "{":
        reader.take("punct", "{")
        while True:
            label = reader.take("name", what="a label name")
            op = reader.take("op", what="= or !=")
            if op.text not in ("=", "!="):
                raise ExprError(f"{op.text!r} cannot match a label: use = or !=", op.column)
            value = reader.take("string", what='a quoted value such as "cache-1"')
            matchers.append(Matcher(label.text, op.text == "=", _unquote(value.text)))
            closing = reader.take("punct", what="',' or '}'")
            if closing.text == "}":
                break
            if closing.text != ",":
                raise ExprError(f"expected ',' or '}}', found {closing.text!r}", closing.column)
    return Selector(name.text, tuple(matchers))


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])
