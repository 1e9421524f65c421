"""Turning cumulative counters into per-interval deltas, without negatives or spikes."""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from dashboard.core.records import StatementKey

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


class Advance(NamedTuple):
    """What a snapshot changed, a row or flag per entry given."""

    deltas: np.ndarray  # activity since the last counters
    moved: np.ndarray  # has activity to record
    save: np.ndarray  # its state must be saved (moved, new, or back)
    new: np.ndarray  # never seen before


class LastCounters:
    """Every known entry's last cumulative counters, as the rows of one float64 matrix.

    A cycle compares a few hundred moved entries with their last counters. Kept as tuples of
    Python floats scattered over the heap, each comparison chased a dozen pointers through memory
    the server's scan had just evicted from the cache (about 2 us an entry, measured); rows of one
    matrix are gathered and subtracted at once.
    """

    def __init__(self, width: int, saved: Previous | None = None) -> None:
        self.width = width
        self._index: dict[StatementKey, int] = {}
        self._values = np.zeros((64, width))
        self._present = np.zeros(64, dtype=bool)
        for key, (counters, present) in (saved or {}).items():
            if len(counters) == width:  # saved by a version that stored other counters: unknown
                self._remember([key], np.array([counters], dtype=float), present=present)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def get(self, key: StatementKey) -> tuple[tuple[float, ...], bool] | None:
        """The last counters of an entry and whether it was on the server then."""
        row = self._index.get(key)
        if row is None:
            return None
        return tuple(self._values[row].tolist()), bool(self._present[row])

    def present_keys(self) -> list[StatementKey]:
        return [key for key, row in self._index.items() if self._present[row]]

    def advance(
        self,
        keys: Sequence[StatementKey],
        current: np.ndarray,
        *,
        has_baseline: bool,
        reset_all: bool = False,
    ) -> Advance:
        """Compare entries' counters (a row of `current` per key) with their last ones, then
        remember the new ones. The entries not given are those known to be unchanged.

        An
        entry absent before, absent from the last snapshot (evicted) or reset starts from zero, so
        its delta is its whole counters; so does every entry after a reset of all statistics.
        Without a baseline (first cycle) nothing moved: it is only a baseline.
        """
        rows = np.fromiter((self._index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        known = rows >= 0
        at = np.where(known, rows, 0)
        baseline = known & self._present[at] & (not reset_all)
        deltas = current - np.where(baseline[:, None], self._values[at], 0.0)
        restarted = (deltas < 0).any(axis=1)  # reset of this entry alone: it counts from zero
        deltas[restarted] = current[restarted]
        if has_baseline:
            moved = deltas.any(axis=1)
            save = moved | ~baseline  # new, or back: saved as present again even if idle
        else:
            moved, save = np.zeros(len(keys), dtype=bool), np.ones(len(keys), dtype=bool)
        self._remember(keys, current, present=True)
        return Advance(deltas, moved, save, ~known)

    def vanished(self, present: Container[StatementKey]) -> list[StatementKey]:
        """Entries present before and absent from the server now (evicted, or reset alone); they
        are remembered as absent, so that if they come back they count from zero."""
        gone = [key for key in self.present_keys() if key not in present]
        for key in gone:
            self._present[self._index[key]] = False
        return gone

    def _remember(self, keys: Sequence[StatementKey], values: np.ndarray, *, present: bool) -> None:
        rows = []
        for key in keys:
            row = self._index.get(key)
            if row is None:
                row = self._index[key] = len(self._index)
            rows.append(row)
        if len(self._index) > len(self._present):
            self._grow(2 * len(self._index))
        self._values[rows] = values
        self._present[rows] = present

    def _grow(self, size: int) -> None:
        self._values = np.concatenate([self._values, np.zeros((size - len(self._values), self.width))])
        self._present = np.concatenate([self._present, np.zeros(size - len(self._present), dtype=bool)])
