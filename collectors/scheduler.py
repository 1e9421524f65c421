"""The collector daemon: every target on its own interval, each in its own thread.

A target that fails is retried with exponential backoff and never delays the others; a cycle that
cannot be saved is logged and its collector reloads its state from the store, so nothing is counted
twice. Retention runs once an hour.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from collectors.advisor_job import advise_target
from collectors.base import Collector
from collectors.postgres import PostgresCollector
from collectors.prometheus import PrometheusCollector
from collectors.redis import RedisCollector
from dashboard.config import Config, PostgresTarget
from dashboard.store import Store
from dashboard.store.records import Cycle

log = logging.getLogger("observatory.collect")
MAX_BACKOFF = 300.0
PRUNE_EVERY = 3600.0


def build_collectors(config: Config, store: Store) -> list[Collector]:
    postgres = [PostgresCollector(t, store) for t in config.targets.postgres]
    redis = [RedisCollector(t, store) for t in config.targets.redis]
    return [*postgres, *redis, *(PrometheusCollector(t, store) for t in config.targets.prometheus)]


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
    ) -> None:
        self.config = config
        self.store = store
        self.collectors = list(collectors) if collectors is not None else build_collectors(config, store)
        self.clock = clock
        self.stop_event = threading.Event()

    def run_cycle(self, collector: Collector) -> Cycle:
        """Collect one target and save the cycle; a save failure is logged, never raised."""
        cycle = collector.collect(int(self.clock()))
        try:
            self.store.write_cycle(cycle)
        except Exception as err:  # a store problem must not stop the daemon
            log.error("%s/%s: cycle not saved: %s", collector.kind, collector.name, err)
            collector.forget_state()
            cycle.status.state, cycle.status.error = "down", f"cycle not saved: {err}"
            return cycle
        _log_cycle(collector, cycle)
        return cycle

    def run_once(self) -> list[Cycle]:
        """One cycle of every target, concurrently; returns the cycles in target order."""
        if not self.collectors:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(self.collectors))) as pool:
            cycles = list(pool.map(self.run_cycle, self.collectors))
        for collector in self.collectors:
            collector.close()
        return cycles

    def run_forever(self) -> None:
        threads = [
            threading.Thread(target=self._loop, args=(c,), name=f"{c.kind}/{c.name}", daemon=True)
            for c in self.collectors
        ]
        threads.append(threading.Thread(target=self._maintenance, name="retention", daemon=True))
        threads += [
            threading.Thread(target=self._advise_loop, args=(t,), name=f"advise/{t.name}", daemon=True)
            for t in self.config.targets.postgres
            if t.advise
        ]
        for thread in threads:
            thread.start()
        try:
            while not self.stop_event.wait(1.0):
                pass
        finally:
            self.stop_event.set()
            for thread in threads:
                thread.join(timeout=10)
            for collector in self.collectors:
                collector.close()

    def stop(self) -> None:
        self.stop_event.set()

    def _loop(self, collector: Collector) -> None:
        failures = 0
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                cycle = self.run_cycle(collector)
                failures = failures + 1 if cycle.status.state == "down" else 0
            except Exception:  # a bug in one collector must not end its thread silently
                log.exception("%s/%s: cycle crashed", collector.kind, collector.name)
                failures += 1
            wait = backoff(collector.interval, failures) - (time.monotonic() - started)
            self.stop_event.wait(max(0.0, wait))

    def _advise_loop(self, target: PostgresTarget) -> None:
        self.stop_event.wait(min(30.0, target.interval * 2))  # after the first cycles recorded statements
        while not self.stop_event.is_set():
            try:
                for datname, error in advise_target(self.store, target, self.config.advisor).items():
                    if error:
                        log.warning("postgres/%s: advisor on %s: %s", target.name, datname, error)
            except Exception:
                log.exception("postgres/%s: advisor crashed", target.name)
            self.stop_event.wait(target.advise_interval)

    def _maintenance(self) -> None:
        while not self.stop_event.is_set():
            try:
                deleted = self.store.prune(self.config.retention, int(self.clock()))
                if any(deleted.values()):
                    log.info("retention: deleted %s", {k: n for k, n in deleted.items() if n})
            except Exception as err:
                log.error("retention failed: %s", err)
            self.stop_event.wait(PRUNE_EVERY)


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
