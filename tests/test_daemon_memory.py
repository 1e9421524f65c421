"""The daemon's memory: a target waiting for its next cycle keeps none of its last one, and the heap's
free pages go back to the system (bench/fleet.py measures the whole daemon over 120 targets)."""

from __future__ import annotations

import gc
import re
import threading
import time
from pathlib import Path

import pytest

import collectors.scheduler as scheduler_mod
from collectors.scheduler import Scheduler
from dashboard.core import memory
from dashboard.core.records import Cycle
from dashboard.servers.throwaway import ThrowawayRedis
from dashboard.store import Store
from tests.support.stores import make_config


def _rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def _cycles_of(target: str) -> list[Cycle]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, Cycle) and o.target == target]


def _until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_waiting_target_keeps_none_of_its_last_cycle(
    store: Store, redis_server: ThrowawayRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its thread waits out the interval holding nothing: the local that kept each target's last
    cycle (1,552 points for each of 100 PostgreSQL targets in the fleet bench) until the next one."""
    trims: list[float] = []
    monkeypatch.setattr(scheduler_mod, "BEAT_EVERY_S", 0.1)
    monkeypatch.setattr(scheduler_mod, "TRIM_EVERY", 0.3)
    monkeypatch.setattr(memory, "trim", lambda real=memory.trim: trims.append(time.monotonic()) or real())
    config = make_config(store.url, [{"name": "kept", "url": redis_server.url, "interval": "60s"}], "redis")
    scheduler = Scheduler(config, store)
    saved = threading.Event()
    scheduler.writer.on_saved = lambda cycle: saved.set()
    thread = threading.Thread(target=scheduler.run_forever)
    thread.start()
    try:
        assert saved.wait(20), "no cycle saved"
        _until(lambda: not scheduler.writer.pending())
        # The writer's thread lets go of its last batch within a second (its queue's timeout).
        _until(lambda: not _cycles_of("kept"), timeout=5)
        _until(lambda: len(trims) >= 2)  # the main loop gives the free pages back, every TRIM_EVERY
    finally:
        scheduler.stop()
        thread.join(timeout=20)
    assert not thread.is_alive()


def test_trim_gives_freed_pages_back() -> None:
    """200 MB of blocks allocated in a thread (its own malloc arena), freed but for one in 64: glibc
    keeps the pages (the survivors pin each heap's top), malloc_trim returns them."""

    def churn() -> None:
        blocks = [bytes(2000) for _ in range(100_000)]
        survivors.extend(blocks[::64])
        blocks.clear()

    survivors: list[bytes] = []
    memory.trim()
    before = _rss_mib()
    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    kept = _rss_mib()
    assert memory.trim() is True
    after = _rss_mib()
    assert kept - before > 150, (before, kept)  # freed, yet still resident
    assert kept - after > 100, (before, kept, after)
    assert len(survivors) == 1563
