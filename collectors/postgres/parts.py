"""The health parts of a PostgreSQL target: each read on its own interval (`health:` in the
target's config), in the same pipeline and cycle as the rest, so through the same cycle writer.

A part is a query per server version (`sql/<name>.<major>.sql`, or `sql/<name>.sql`) and a function
from its rows to the cycle's points and its snapshot of "now" (`PostgresDetails.<name>`). A part
reads only what pg_monitor may read. The parts themselves are in `collectors/postgres/health/`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from collectors.deltas import counter_delta
from dashboard.core.health import Snapshot
from dashboard.core.records import Point


class PartRead(NamedTuple):
    points: list[Point]
    snapshot: Snapshot | None  # kept in PostgresDetails.<name> until the part is read again


class Part(NamedTuple):
    name: str  # its SQL file, its key under `health:` and its field of PostgresDetails
    # (rows, now) -> what the cycle keeps; with `counters`, (rows, now, last): `last` is the
    # collector's cumulative values by (series, labels), for counter_point() to take deltas from.
    read: Callable[..., PartRead]
    counters: bool = False


def counter_point(
    name: str, value: float, labels: str, last: dict[tuple[str, str], float], *, reset: bool = False
) -> Point:
    """A counter's point with its delta since the last reading (None the first time, or after the
    server's counters went back: a restart or a stats reset), and `last` moved on."""
    key = (name, labels)
    delta = counter_delta(last.get(key), value, reset=reset)
    last[key] = value
    return Point(name, value, "counter", labels, delta)


def due(parts: tuple[Part, ...], last: dict[str, int], intervals: Any, now: int) -> list[Part]:
    """The parts whose interval has passed since they were last read (all of them at first)."""
    return [p for p in parts if p.name not in last or now - last[p.name] >= getattr(intervals, p.name)]
