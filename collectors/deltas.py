"""Turning cumulative counters into per-interval deltas, without negatives or spikes."""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from operator import sub

from dashboard.store.records import StatementDelta, StatementEntry, StatementKey

Previous = Mapping[StatementKey, tuple[tuple[float, ...], bool]]  # counters, present


def counter_delta(previous: float | None, current: float, *, reset: bool = False) -> float | None:
    """Activity since the previous reading; None without a baseline.

    A counter that went down was reset (server restart, stats reset): everything it now holds
    happened since, so the delta is its current value rather than a negative number.
    """
    if previous is None:
        return None
    if reset or current < previous:
        return current
    return current - previous


def statement_deltas(
    previous: Previous,
    snapshot: Iterable[StatementEntry],
    *,
    has_baseline: bool,
    reset_all: bool = False,
) -> tuple[list[StatementDelta], list[StatementEntry]]:
    """Compare the entries of a snapshot with the previous state.

    Returns (deltas of entries that moved, entries whose state must be saved). An entry absent
    before, absent from the last snapshot (evicted) or reset starts from zero, so its delta is its
    whole counters. Without a baseline (first cycle) nothing is a delta. `snapshot` may omit the
    entries known to be unchanged.
    """
    deltas: list[StatementDelta] = []
    changed: list[StatementEntry] = []
    for entry in snapshot:
        before = previous.get(entry.key)
        if not has_baseline:
            changed.append(entry)
            continue
        if before is None or not before[1] or reset_all or len(before[0]) != len(entry.counters):
            moved = entry.counters
        else:
            moved = tuple(map(sub, entry.counters, before[0]))
            if min(moved) < 0:  # reset of this entry alone: it restarted from zero
                moved = entry.counters
        if any(moved):
            deltas.append(StatementDelta(entry.key, moved))
            changed.append(entry)
        elif before is None or not before[1]:
            changed.append(entry)  # came back without activity: mark it present again
    return deltas, changed


def vanished_keys(
    previous: Previous, present: Container[StatementKey], among: Iterable[StatementKey] | None = None
) -> list[StatementKey]:
    """Entries present before and absent from the server now (evicted, or reset alone); only those
    `among` the given keys when the caller knows where to look."""
    keys = previous.keys() if among is None else among
    return [key for key in keys if key in previous and previous[key][1] and key not in present]
