"""The collector daemon: every target on its own interval, each in its own thread.

A target that fails is retried with exponential backoff and never delays the others. Collectors hand
their cycles to the one writer thread (`CycleWriter`), which saves them in batches. Beside collection
it schedules the daemon's jobs (`collectors.jobs`): retention once an hour, and the index advisor of
each PostgreSQL target that asks for it.

A process collects a target only while it holds the target's lock in the store (`dashboard.store.locks`):
two processes diffing one server's counters against their own last reads would count its activity
twice. `run_once` leaves out a target another process holds (`held_elsewhere` says who); the daemon
waits for it and takes it over as soon as it is free.

Daemons configured with the same targets split them: each joins its group in the store (`locks.join`)
and takes at most its share, ceil(targets / live daemons). A daemon over its share (a new one joined)
hands over the targets whose lock key is highest, each after its cycles are saved (the next holder
reads the state saved), and takes none again for HANDOVER_PAUSE; a daemon that dies leaves its locks
free and the others' shares grow. A lone daemon's share is every target: it collects all, as before.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy.exc

from collectors.base import Collector, Sampling
from collectors.cycle_writer import UNAVAILABLE, CycleWriter, brief
from collectors.jobs.advisor import advise_target
from collectors.jobs.alerts import AlertsJob, notifier_for, prometheus_query
from collectors.jobs.retention import PRUNE_EVERY, prune
from dashboard.core import memory
from dashboard.core.config import Config, PostgresTarget
from dashboard.core.records import Cycle
from dashboard.core.sources import SOURCES, configured
from dashboard.store import Store
from dashboard.store.locks import BEAT_EVERY_S, group_key, lock_key, target_locks

log = logging.getLogger("observatory.collect")
MAX_BACKOFF = 300.0
LOCK_RETRY = 2.0  # seconds between tries of a target's lock another process holds
HANDOVER_PAUSE = 2 * LOCK_RETRY  # a target handed over is not taken back before the others try it
LEASE_RETRY = 0.5  # seconds between tries of a target's lease while its earlier cycles are pending
HANDOVER_WAIT = 30.0  # longest wait for a handed-over target's cycles to be saved (else kept for now)
LIVE_TTL = 1.0  # seconds the count of live daemons is reused
FIRST_CYCLE_STAGGER = 0.05  # seconds between the targets' first cycles: 120 targets start over 6 s
# Seconds between giving the heap's free pages back (glibc keeps them in its arenas, one per few of
# the daemon's hundreds of threads): see bench/README.md, fleet, Memory.
TRIM_EVERY = 60.0
ALERTS_LOCK = ("alerts", "evaluator")  # taken like a target's: the one process that evaluates and notifies


def build_collectors(config: Config, store: Store) -> list[Collector]:
    """One collector per configured target, of every registered source."""
    collectors: list[Collector] = []
    for source in SOURCES:
        module, _, name = source.collector.partition(":")
        collector_class = getattr(importlib.import_module(module), name)
        collectors += [collector_class(target, store) for target in configured(config, source.kind)]
    return collectors


def backoff(interval: float, failures: int) -> float:
    """Seconds until the next try of a target that failed `failures` times in a row."""
    if failures <= 0:
        return interval
    return min(max(interval, MAX_BACKOFF), min(interval, 5.0) * 2 ** (failures - 1))


class Scheduler:
    def __init__(
        self,
        config: Config,
        store: Store,
        collectors: Sequence[Collector] | None = None,
        clock: Callable[[], float] = time.time,
        notifier: Any = None,
        jobs: Sequence[Callable[[threading.Event], None]] = (),
    ) -> None:
        self.config = config
        self.store = store
        self.collectors = list(collectors) if collectors is not None else build_collectors(config, store)
        self.clock = clock
        self.stop_event = threading.Event()
        self._by_target = {(c.kind, c.name): c for c in self.collectors}
        self._resync: set[tuple[str, str]] = set()  # targets whose state must be reloaded
        self.writer = CycleWriter(store, on_saved=self._saved, on_dropped=self._dropped)
        self.locks = target_locks(store.url)
        self.held_elsewhere: dict[tuple[str, str], str] = {}  # run_once: the targets left out, and why
        self.group = group_key(list(self._by_target))  # the daemons configured with the same targets
        self._share_mutex = threading.Lock()  # one thread at a time checks the share and takes a lock
        self._handed_over: dict[tuple[str, str], float] = {}  # target -> monotonic time it was let go
        self._live: tuple[float, int] = (-math.inf, 1)  # (when counted, live daemons)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # in the store's leases
        self._leases: dict[tuple[str, str], int] = {}  # target -> the epoch its cycles are saved under
        self._lease_failing: dict[tuple[str, str], str] = {}  # target -> why the store refused its lease
        notifier = notifier if notifier is not None else notifier_for(config, store, clock)
        self.alerts = AlertsJob(config, store, prometheus_query(self._prometheus_query, clock), notifier)
        # Jobs the composer adds (the CLI: the weekly review's sending), each run in a thread of its
        # own until the daemon stops: the collectors cannot import what they need (the analyses).
        self.jobs = list(jobs)

    def _prometheus_query(self, target: str, expr: str, ts: int) -> list[dict[str, Any]]:
        collector = self._by_target.get(("prometheus", target))
        if collector is None:
            raise RuntimeError(f"no Prometheus target named {target!r}")
        return collector.query(expr, ts)  # type: ignore[attr-defined]

    def evaluate_alerts(self, keep_lock: bool = True) -> bool:
        """Every alerting rule once (after a round of cycles), if this process holds the store's
        alerting lock: one evaluator and one notifier per store, however many daemons collect into
        it. A failure is logged, never raised. Whether it evaluated."""
        had = self.locks.holds(*ALERTS_LOCK)
        holder = self._try_lock_named(*ALERTS_LOCK)
        if holder is not None:
            log.debug("alerts: evaluated by another process (%s)", holder)
            return False
        try:
            self.alerts.run(int(self.clock()))
        except UNAVAILABLE as err:  # a locked or full store: one line, the next round tries again
            log.error("alerts: not evaluated: the store is unavailable: %s", brief(err))
        except Exception:
            log.exception("alerts: evaluation crashed")
        finally:
            if not keep_lock and not had:
                self.locks.release(*ALERTS_LOCK)
        return True

    def collect(self, collector: Collector) -> Cycle:
        self._resync_if_due(collector)
        return collector.collect(int(self.clock()))

    def run_once(self) -> list[Cycle]:
        """One cycle of every target whose lock and lease this process holds or can take,
        concurrently, saved in one batch; returns the cycles in target order (a cycle that could
        not be saved is marked down, saying why). The others are in `held_elsewhere`, with who
        holds them. The locks taken here are released once the cycles are saved."""
        self.held_elsewhere, mine, taken = {}, [], []
        held_before = any(self.locks.holds(c.kind, c.name) for c in self.collectors)
        for collector in self.collectors:
            had = self.locks.holds(collector.kind, collector.name)
            holder = self._try_lock(collector)
            if holder is not None:
                self.held_elsewhere[(collector.kind, collector.name)] = holder
                continue
            if not had:
                taken.append(collector)
            # Fenced like a daemon's: a daemon that had the target before saves nothing it collected
            # under its older lease (it reloads the state this run saves).
            if self._lease(collector) is None:
                why = self._lease_failing.get((collector.kind, collector.name), "the store refused it")
                self.held_elsewhere[(collector.kind, collector.name)] = f"its lease could not be taken: {why}"
                continue
            mine.append(collector)
        try:
            return self._collect_and_save(mine)
        finally:
            if held_before:
                for collector in taken:
                    self.locks.release(collector.kind, collector.name)
            else:
                self.locks.close()  # and its connection to the store

    def _try_lock(self, collector: Collector) -> str | None:
        """None when this process may collect the target; else who holds its lock, or why it could
        not be taken."""
        return self._try_lock_named(collector.kind, collector.name)

    def _try_lock_named(self, kind: str, name: str) -> str | None:
        try:
            holder = self.locks.try_lock(kind, name)
        except Exception as err:
            return f"its lock could not be taken: {type(err).__name__}: {str(err).splitlines()[0]}"
        return None if holder is None else f"held by {holder}"

    def _collect_and_save(self, collectors: list[Collector]) -> list[Cycle]:
        if not collectors:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(collectors))) as pool:
            cycles = list(pool.map(self.collect, collectors))
        for cycle in cycles:
            cycle.lease = self._leases.get((cycle.kind, cycle.target))
        for collector in collectors:
            collector.close()
        failed = self.writer.write_now(cycles)
        for cycle, err in failed:
            self._dropped(cycle, str(err))
            self._resync_if_due(self._by_target[(cycle.kind, cycle.target)])
        for cycle in cycles:
            if all(cycle is not f for f, _ in failed):
                self._saved(cycle)
        return cycles

    def _saved(self, cycle: Cycle) -> None:
        _log_cycle(self._by_target[(cycle.kind, cycle.target)], cycle)

    def _dropped(self, cycle: Cycle, why: str) -> None:
        """The collector's state has moved past what the store holds: it reloads it, once none of
        its cycles is pending (its next cycle would otherwise count theirs again)."""
        log.error("%s/%s: cycle not saved: %s", cycle.kind, cycle.target, why)
        self._resync.add((cycle.kind, cycle.target))
        self._leases.pop((cycle.kind, cycle.target), None)  # taken again, the state reloaded after
        cycle.status.state, cycle.status.error = "down", f"cycle not saved: {why}"

    def _resync_if_due(self, collector: Collector) -> None:
        key = (collector.kind, collector.name)
        if key in self._resync and not self.writer.pending(*key):
            self._resync.discard(key)
            collector.forget_state()

    def run_forever(self) -> None:
        threads = [
            threading.Thread(
                target=self._loop, args=(c, i * FIRST_CYCLE_STAGGER), name=f"{c.kind}/{c.name}", daemon=True
            )
            for i, c in enumerate(self.collectors)
        ]
        threads += self._job_threads()
        writer_stop = threading.Event()  # set after the collectors stopped, so their last cycles are saved
        writer = threading.Thread(target=self.writer.run, args=(writer_stop,), name="writer", daemon=True)
        self.locks.join(self.group)
        self.locks.start_beating()  # the main loop below beats
        self._register_targets()
        for thread in (writer, *threads):
            thread.start()
        trimmed = time.monotonic()
        try:
            while not self.stop_event.wait(BEAT_EVERY_S):
                self.locks.beat()  # from this thread: a daemon frozen whole stops, and loses its locks
                if time.monotonic() - trimmed >= TRIM_EVERY:
                    memory.trim()
                    trimmed = time.monotonic()
        finally:
            self.stop_event.set()
            for thread in threads:
                thread.join(timeout=10)
            writer_stop.set()
            writer.join(timeout=30)
            if self.writer.pending():  # a collector still busy past its join, or the store away
                log.error("store: %d cycles not saved at exit", self.writer.pending())
            for collector in self.collectors:
                collector.close()
            self.close_notifications()
            self.locks.close()  # after the last save: the next holder reads the state saved

    def stop(self) -> None:
        self.stop_event.set()

    def _register_targets(self) -> None:
        """Every target's row, before the threads start: on a SQLite store (one write lock), 120
        threads each creating its row beside the first cycles' saves timed out on the lock."""
        try:
            self.store.ensure_targets(self._by_target)
        except UNAVAILABLE as err:  # the threads create them as they go
            log.error("store: targets not registered yet: %s", brief(err))

    def close_notifications(self, timeout: float = 10.0) -> None:
        """Let the notifications under way finish (bounded), then stop their workers."""
        if self.alerts.notifier is not None:
            self.alerts.notifier.close(timeout)

    def _loop(self, collector: Collector, first_wait: float = 0.0) -> None:
        failures, collecting, waiting = 0, False, False
        key = (collector.kind, collector.name)
        self.stop_event.wait(first_wait)  # staggered: the first cycles do not all land at once
        while not self.stop_event.is_set():
            if collecting and self._over_share(key) and self._hand_over(collector):
                collecting, waiting = False, False
                continue
            holder = self._try_lock(collector) if collecting else self._take(collector)
            if holder is not None:  # another process collects it: wait until it stops
                if collecting:  # lost while the store was away: the state kept here is out of date
                    self._resync.add(key)
                    self._leases.pop(key, None)
                if not waiting:
                    log.warning("%s/%s: waiting: %s", collector.kind, collector.name, holder)
                collecting, waiting = False, True
                self.stop_event.wait(LOCK_RETRY)
                continue
            if waiting:
                log.info("%s/%s: lock taken, collecting", collector.kind, collector.name)
            collecting, waiting = True, False
            lease = self._lease(collector)
            if lease is None:
                self.stop_event.wait(LEASE_RETRY)
                continue
            started = time.monotonic()
            failures = self._cycle(collector, lease, failures)
            wait = backoff(collector.interval, failures) - (time.monotonic() - started)
            self.stop_event.wait(max(0.0, wait))

    def _cycle(self, collector: Collector, lease: int, failures: int) -> int:
        """One cycle handed to the writer; the failures in a row after it. The cycle is this frame's
        alone: as a local of `_loop` every target's last cycle stayed alive through its wait, saved
        long before (bench/fleet.py: 157,000 points, a third of a MB a PostgreSQL target)."""
        try:
            cycle = self.collect(collector)
            cycle.lease = lease
            self.writer.submit(cycle)
            return failures + 1 if cycle.status.state == "down" else 0
        except Exception:  # a bug in one collector must not end its thread silently
            log.exception("%s/%s: cycle crashed", collector.kind, collector.name)
            return failures + 1

    def _lease(self, collector: Collector) -> int | None:
        """The epoch this daemon saves the target's cycles under, taken in the store when it takes
        the target (again): None while its earlier cycles are still pending (they are saved or
        refused first) or the store cannot be written. A lease taken anew reloads the state from the
        store: another daemon may have gone on from it meanwhile."""
        key = (collector.kind, collector.name)
        if key in self._leases:
            return self._leases[key]
        if self.writer.pending(*key):
            return None
        try:
            lease = self.store.take_lease(*key, self.holder)
        except Exception as err:  # away, read-only, a grant lost: retried; never the thread's end
            if key not in self._lease_failing:  # once, not at every retry; a bug with its traceback
                store_said = isinstance(err, sqlalchemy.exc.SQLAlchemyError)
                (log.warning if store_said else log.exception)(
                    "%s/%s: lease not taken yet: %s", *key, brief(err)
                )
            self._lease_failing[key] = str(brief(err))
            return None
        self._lease_failing.pop(key, None)
        self._resync.discard(key)
        collector.forget_state()
        self._leases[key] = lease
        return lease

    # -- sharing the targets with the other daemons of the group ---------------------------------
    def live_daemons(self) -> int:
        counted, live = self._live
        if time.monotonic() - counted > LIVE_TTL:
            live = max(1, self.locks.live(self.group))
            self._live = (time.monotonic(), live)
        return live

    def share(self) -> int:
        """The most targets this daemon may hold: ceil(targets / live daemons of its group)."""
        return math.ceil(len(self.collectors) / self.live_daemons())

    def _held(self) -> list[tuple[str, str]]:
        return [key for key in self._by_target if self.locks.holds(*key)]

    def _over_share(self, key: tuple[str, str]) -> bool:
        """Whether the target is one this daemon should let go: past its share, by lock key."""
        kept = sorted(self._held(), key=lambda k: lock_key(*k))[: self.share()]
        return key not in kept

    def _take(self, collector: Collector) -> str | None:
        """Take the target's lock if this daemon has room for it: None, or why not."""
        key = (collector.kind, collector.name)
        with self._share_mutex:
            if time.monotonic() - self._handed_over.get(key, -math.inf) < HANDOVER_PAUSE:
                return "handed over to another daemon a moment ago"
            held, share = len(self._held()), self.share()
            if held >= share:
                total, live = len(self.collectors), self._live[1]
                return f"this daemon has its share ({held} of {total} targets, {live} daemons)"
            return self._try_lock(collector)

    def _hand_over(self, collector: Collector) -> bool:
        """Let the target go once its cycles are saved; False when they could not be (kept for now)."""
        key = (collector.kind, collector.name)
        deadline = time.monotonic() + HANDOVER_WAIT
        while self.writer.pending(*key) and time.monotonic() < deadline and not self.stop_event.is_set():
            self.stop_event.wait(0.1)
        if self.writer.pending(*key) or self.stop_event.is_set():
            return False
        self.locks.release(*key)
        self._leases.pop(key, None)
        self._handed_over[key] = time.monotonic()
        self._resync.add(key)  # the next holder moves its state on: reload it if taken back
        collector.close()
        log.info(
            "%s/%s: handed over: %d daemons share the targets, %d each",
            collector.kind, collector.name, self._live[1], self.share(),
        )  # fmt: skip
        return True

    # -- jobs -------------------------------------------------------------------------------
    def _job_threads(self) -> list[threading.Thread]:
        """Retention, and the advisor of each PostgreSQL target with `advise` on."""
        jobs = [
            threading.Thread(target=self._retention_loop, name="retention", daemon=True),
            threading.Thread(target=self._alerts_loop, name="alerts", daemon=True),
        ]
        jobs += [
            threading.Thread(target=self._advise_loop, args=(t,), name=f"advise/{t.name}", daemon=True)
            for t in self.config.targets.postgres
            if t.advise
        ]
        jobs += [
            threading.Thread(target=job, args=(self.stop_event,), name=_name(job), daemon=True)
            for job in self.jobs
        ]
        jobs += [
            threading.Thread(target=self._sample_loop, args=(c,), name=f"sample/{c.name}", daemon=True)
            for c in self.collectors
            if isinstance(c, Sampling)
        ]
        return jobs

    def _retention_loop(self) -> None:
        while not self.stop_event.is_set():
            prune(self.store, self.config.retention, int(self.clock()))
            self.stop_event.wait(PRUNE_EVERY)

    def _alerts_loop(self) -> None:
        self.stop_event.wait(min(self.config.alerts.evaluation_interval, 15.0))  # after the first cycles
        while not self.stop_event.is_set():
            self.evaluate_alerts()
            self.stop_event.wait(self.config.alerts.evaluation_interval)

    def _sample_loop(self, collector: Sampling) -> None:
        """Wait events and lock waits between the cycles, while this process collects the target."""
        try:
            while not self.stop_event.wait(collector.sample_every):
                if not self.locks.holds(collector.kind, collector.name):
                    collector.close_sampler()  # another process collects it: its samples, not ours
                    continue
                try:
                    collector.sample_waits()
                except Exception:  # a bug: logged, and the next sample is tried
                    log.exception("%s/%s: wait sample crashed", collector.kind, collector.name)
        finally:
            collector.close_sampler()

    def _advise_loop(self, target: PostgresTarget) -> None:
        self.stop_event.wait(min(30.0, target.interval * 2))  # after the first cycles recorded statements
        while not self.stop_event.is_set():
            if not self.locks.holds("postgres", target.name):  # another process collects it
                self.stop_event.wait(LOCK_RETRY)
                continue
            try:
                for datname, error in advise_target(self.store, target, self.config.advisor).items():
                    if error:
                        log.warning("postgres/%s: advisor on %s: %s", target.name, datname, error)
            except Exception:
                log.exception("postgres/%s: advisor crashed", target.name)
            self.stop_event.wait(target.advise_interval)


def _name(job: Callable) -> str:
    return getattr(job, "__name__", type(job).__name__)


def _log_cycle(collector: Collector, cycle: Cycle) -> None:
    st = cycle.status
    if st.state == "down":
        log.warning("%s/%s: down: %s (%s)", collector.kind, collector.name, st.error, "; ".join(st.hints))
    else:
        moved = f", {len(cycle.deltas)} statements moved" if collector.kind == "postgres" else ""
        log.info(
            "%s/%s: %s in %.0f ms%s, %d points%s",
            collector.kind, collector.name, st.state, cycle.duration_ms, moved,
            len(cycle.points), f" ({st.error})" if st.error else "",
        )  # fmt: skip
