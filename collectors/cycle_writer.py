"""The daemon's one writer: collector threads hand it their cycles, it saves them in batches.

A collector's cycle ends when its snapshot is handed over, so a slow store (a shared PostgreSQL
across the network) never delays a collection, and the cycles of every target that queued up in
the meantime are saved in one transaction. While the store cannot be written, cycles stay queued
and are retried with backoff, so nothing is lost, up to `max_backlog` cycles. A cycle the store
keeps refusing (bad data, not an outage of the store) is dropped and logged, and
its collector reloads its state from the store once nothing of its target is pending, so nothing
is counted twice. A target's cycles are saved in the order they were collected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import sqlalchemy.exc

from dashboard.core.records import Cycle
from dashboard.store import Store
from dashboard.store.writer import LeaseLost

log = logging.getLogger("observatory.collect")
MAX_ATTEMPTS = 3  # refusals of one cycle (not outages of the store) before it is dropped
# The store is away, locked or full (DB-API OperationalError): the cycle is fine, wait and retry.
UNAVAILABLE = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
MAX_RETRY_WAIT = 60.0
# Rows one transaction saves at most (a cycle is never split). A SQLite store has one write lock:
# a daemon's 120 first cycles in one batch held it for minutes, and every other write (the advisor,
# the alerts, a `collect --once`) failed with "database is locked" meanwhile.
MAX_BATCH_ROWS = 20_000


class HeldBack(Exception):
    """Not tried: an earlier cycle of the same target is not saved yet, and must go first."""


class CycleWriter:
    def __init__(
        self,
        store: Store,
        *,
        max_backlog: int = 10_000,
        on_saved: Callable[[Cycle], None] = lambda _cycle: None,
        on_dropped: Callable[[Cycle, str], None] = lambda _cycle, _why: None,
    ) -> None:
        self.store = store
        self.max_backlog = max_backlog
        self.on_saved = on_saved
        self.on_dropped = on_dropped
        self._queue: deque[Cycle] = deque()
        self._batch: list[Cycle] = []  # being saved now
        self._attempts: dict[int, int] = {}  # id(cycle) -> refusals while the store was up
        self._ready = threading.Condition()

    # -- the collectors' side ---------------------------------------------------------------
    def submit(self, cycle: Cycle) -> None:
        with self._ready:
            self._queue.append(cycle)
            if len(self._queue) > self.max_backlog:
                self._drop(self._queue.popleft(), f"the store was unavailable for {self.max_backlog} cycles")
            self._ready.notify_all()

    def pending(self, kind: str | None = None, target: str | None = None) -> int:
        """Cycles submitted and not yet saved or dropped: all, or those of one target."""
        with self._ready:
            waiting = [*self._queue, *self._batch]
        return sum(1 for c in waiting if kind is None or (c.kind, c.target) == (kind, target))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted cycle is saved or dropped; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while self._queue or self._batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._ready.wait(left)
            return True

    # -- the writer thread ------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Save batches until `stop` is set, then try once more to save what is left."""
        wait = 0.0
        while not stop.is_set():
            batch = self._take(timeout=1.0)
            if not batch:
                continue
            try:
                saved = self.save(batch)
            except Exception:  # a bug must not end the thread. The batch may be partly saved:
                log.exception("store: %d cycles in doubt", len(batch))  # not again, then
                for cycle in batch:
                    self._drop(cycle, "in doubt after an unexpected error")
                self._requeue([])
                saved = False
            wait = 0.0 if saved else min(MAX_RETRY_WAIT, max(1.0, 2 * wait))
            if wait:
                stop.wait(wait)
        while leftover := self._take(timeout=0):
            if not self.save(leftover):
                log.error("store: %d cycles not saved at shutdown", self.pending())
                return

    def save(self, batch: Sequence[Cycle]) -> bool:
        """Save a batch (one transaction; cycle by cycle if that fails). Cycles that could not be
        saved go back to the front of the queue. Returns whether everything was saved."""
        failed = self.write_now(batch)
        saved = [c for c in batch if all(c is not f for f, _ in failed)]
        for cycle in saved:
            self._attempts.pop(id(cycle), None)
            _notify(self.on_saved, cycle)
        retry = self._triage(failed)
        self._requeue(retry)
        return not retry

    def _requeue(self, cycles: Sequence[Cycle]) -> None:
        """Put cycles back at the front of the queue, in their order; the batch is over."""
        with self._ready:
            self._queue.extendleft(reversed(cycles))
            self._batch = []
            self._ready.notify_all()

    def _take(self, timeout: float) -> list[Cycle]:
        with self._ready:
            if not self._queue and timeout:
                self._ready.wait(timeout)
            self._batch, rows = [], 0
            while self._queue and (not self._batch or rows + _rows(self._queue[0]) <= MAX_BATCH_ROWS):
                rows += _rows(self._queue[0])
                self._batch.append(self._queue.popleft())
            return list(self._batch)

    def write_now(self, batch: Sequence[Cycle]) -> list[tuple[Cycle, Exception]]:
        """Save a batch in one transaction, or cycle by cycle if that fails; returns the cycles
        that could not be saved, with why. A target's cycles are saved in order: after one fails,
        its later ones are held back (each cycle's state must not be overwritten by an older one)."""
        try:
            self.store.write_cycles(batch)
            return []
        except UNAVAILABLE as err:  # locked, full or away: each cycle alone would wait as long again
            return [(cycle, brief(err)) for cycle in batch]
        except Exception:
            pass
        failed: list[tuple[Cycle, Exception]] = []
        stuck: set[tuple[str, str]] = set()
        for cycle in batch:
            if (cycle.kind, cycle.target) in stuck:
                failed.append((cycle, HeldBack()))
                continue
            try:
                self.store.write_cycle(cycle)
            except Exception as err:
                failed.append((cycle, brief(err)))
                stuck.add((cycle.kind, cycle.target))
        return failed

    def _triage(self, failed: list[tuple[Cycle, Exception]]) -> list[Cycle]:
        """The failed cycles to retry. One the store refuses (its data, not the store's state, is
        the problem) is dropped after MAX_ATTEMPTS; while the store is unavailable, none is."""
        retry = []
        for cycle, err in failed:
            if isinstance(err, LeaseLost):  # never valid again: the target went on without it
                self._drop(cycle, str(err))
                continue
            if not isinstance(err, (HeldBack, *UNAVAILABLE)):
                self._attempts[id(cycle)] = self._attempts.get(id(cycle), 0) + 1
            if self._attempts.get(id(cycle), 0) >= MAX_ATTEMPTS:
                self._drop(cycle, f"the store refused it {MAX_ATTEMPTS} times: {err}")
            else:
                retry.append(cycle)
        outage = [err for _, err in failed if isinstance(err, UNAVAILABLE)]
        if outage:
            log.error("store: %d cycles not saved yet, will retry: %s", len(failed), outage[0])
        return retry

    def _drop(self, cycle: Cycle, why: str) -> None:
        self._attempts.pop(id(cycle), None)
        log.error("%s/%s: cycle of %d dropped: %s", cycle.kind, cycle.target, cycle.ts, why)
        _notify(self.on_dropped, cycle, why)


def _rows(cycle: Cycle) -> int:
    """About the rows saving the cycle writes: its status and each statement, delta and point."""
    return 1 + len(cycle.entries) + len(cycle.deltas) + len(cycle.points) + len(cycle.slowlog)


def brief(err: Exception) -> Exception:
    """The same error, its message cut to the driver's one line: without the statement, its
    parameters (a status row's text) and SQLAlchemy's link, which made a locked or full store's
    error a dozen lines in every log and `collect --once` line. Same class: outage or refusal."""
    if isinstance(err, sqlalchemy.exc.StatementError):
        err.statement, err.params, err.code = None, None, None  # type: ignore[assignment]
    return err


def _notify(callback: Callable[..., None], *args: object) -> None:
    try:
        callback(*args)
    except Exception:  # the callers' logging or state reload must not undo a save
        log.exception("store: a writer callback failed")
