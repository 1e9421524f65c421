"""Turning cumulative counters into per-interval deltas, without negatives or spikes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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
    seen: set[StatementKey] | None = None,
) -> tuple[list[StatementDelta], list[StatementEntry], list[StatementKey]]:
    """Compare a snapshot with the previous state.

    Returns (deltas of entries that moved, entries whose state must be saved, keys that vanished).
    An entry absent before, absent from the last snapshot (evicted) or reset starts from zero, so
    its delta is its whole counters. Without a baseline (first cycle) nothing is a delta.
    `seen`, when given, holds every key of the server's snapshot: `snapshot` may then omit the
    entries already known to be unchanged.
    """
    deltas: list[StatementDelta] = []
    changed: list[StatementEntry] = []
    present: set[StatementKey] = set() if seen is None else seen
    for entry in snapshot:
        if seen is None:
            present.add(entry.key)
        before = previous.get(entry.key)
        if not has_baseline:
            changed.append(entry)
            continue
        if before is None or not before[1] or reset_all or len(before[0]) != len(entry.counters):
            moved = entry.counters
        else:
            moved = tuple(c - p for c, p in zip(entry.counters, before[0], strict=True))
            if any(d < 0 for d in moved):  # reset of this entry alone: it restarted from zero
                moved = entry.counters
        if any(moved):
            deltas.append(StatementDelta(entry.key, moved))
            changed.append(entry)
        elif before is None or not before[1]:
            changed.append(entry)  # came back without activity: mark it present again
    vanished = [key for key, (_, was_there) in previous.items() if was_there and key not in present]
    return deltas, changed, vanished
