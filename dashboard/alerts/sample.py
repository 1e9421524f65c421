"""One value of an expression's operand, with its labels (what a rule compares)."""

from __future__ import annotations

from typing import NamedTuple


class Sample(NamedTuple):
    labels: dict[str, str]
    value: float
