"""The collector daemon: every target on its own interval, each in its own thread.

A target that fails is retried with exponential backoff and never delays the others. Collectors hand
their cycles to the one writer thread (`CycleWriter`), which saves them in batches. Beside collection
it schedules the daemon's jobs (`collectors.jobs`): retention once an hour, and the index advisor of
each PostgreSQL target that asks for it.

A process collects a target only while it holds the target's lock in the store (`dashboard.store.locks`):
two processes diffing one server's counters against their own last reads would count its activity
twice. `run_once` leaves out a target another process holds (`held_elsewhere` says who); the daemon
waits for it and takes it over as soon as it is free.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from collectors.base import Collector, Sampling
from collectors.cycle_writer import CycleWriter
from collectors.jobs.advisor import advise_target
from collectors.jobs.alerts import AlertsJob, notifier_for, prometheus_query
from collectors.jobs.retention import PRUNE_EVERY, prune
from dashboard.core.config import Config, PostgresTarget
from dashboard.core.records import Cycle
from dashboard.core.sources import SOURCES, configured
from dashboard.store import Store
from dashboard.store.locks import target_locks

log = logging.getLogger("observatory.collect")
MAX_BACKOFF = 300.0
LOCK_RETRY = 2.0  # seconds between tries of a target's lock another process holds
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
        """One cycle of every target whose lock this process holds or can take, concurrently, saved
        in one batch; returns the cycles in target order (a cycle that could not be saved is marked
        down, saying why). The others are in `held_elsewhere`, with who holds them. The locks taken
        here are released once the cycles are saved."""
        self.held_elsewhere, mine, taken = {}, [], []
        held_before = any(self.locks.holds(c.kind, c.name) for c in self.collectors)
        for collector in self.collectors:
            had = self.locks.holds(collector.kind, collector.name)
            holder = self._try_lock(collector)
            if holder is not None:
                self.held_elsewhere[(collector.kind, collector.name)] = holder
                continue
            mine.append(collector)
            if not had:
                taken.append(collector)
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
        cycle.status.state, cycle.status.error = "down", f"cycle not saved: {why}"

    def _resync_if_due(self, collector: Collector) -> None:
        key = (collector.kind, collector.name)
        if key in self._resync and not self.writer.pending(*key):
            self._resync.discard(key)
            collector.forget_state()

    def run_forever(self) -> None:
        threads = [
            threading.Thread(target=self._loop, args=(c,), name=f"{c.kind}/{c.name}", daemon=True)
            for c in self.collectors
        ]
        threads += self._job_threads()
        writer_stop = threading.Event()  # set after the collectors stopped, so their last cycles are saved
        writer = threading.Thread(target=self.writer.run, args=(writer_stop,), name="writer", daemon=True)
        for thread in (writer, *threads):
            thread.start()
        try:
            while not self.stop_event.wait(1.0):
                pass
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

    def close_notifications(self, timeout: float = 10.0) -> None:
        """Let the notifications under way finish (bounded), then stop their workers."""
        if self.alerts.notifier is not None:
            self.alerts.notifier.close(timeout)

    def _loop(self, collector: Collector) -> None:
        failures, collecting, waiting = 0, False, False
        while not self.stop_event.is_set():
            holder = self._try_lock(collector)
            if holder is not None:  # another process collects it: wait until it stops
                if collecting:  # lost while the store was away: the state kept here is out of date
                    self._resync.add((collector.kind, collector.name))
                if not waiting:
                    log.warning("%s/%s: waiting: %s", collector.kind, collector.name, holder)
                collecting, waiting = False, True
                self.stop_event.wait(LOCK_RETRY)
                continue
            if waiting:
                log.info("%s/%s: lock taken, collecting", collector.kind, collector.name)
            collecting, waiting = True, False
            started = time.monotonic()
            try:
                cycle = self.collect(collector)
                self.writer.submit(cycle)
                failures = failures + 1 if cycle.status.state == "down" else 0
            except Exception:  # a bug in one collector must not end its thread silently
                log.exception("%s/%s: cycle crashed", collector.kind, collector.name)
                failures += 1
            wait = backoff(collector.interval, failures) - (time.monotonic() - started)
            self.stop_event.wait(max(0.0, wait))

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
