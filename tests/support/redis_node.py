"""A store of real Redis cycles: a throwaway redis-server, real hits and misses, a slow EVAL,
BullMQ-shaped queues written with real commands, and three collector cycles.

Built once a session by the `redis_populated` fixture (tests/conftest.py), for the Redis page's
tests and the browser tests.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from dashboard.core import config as config_mod
from dashboard.servers.throwaway import ThrowawayRedis
from dashboard.store import Store
from tests.support.stores import collect_once

NODE = "cache-1"
BUSY_LOOP = "local i = 0 while i < 5000000 do i = i + 1 end return i"  # ~25 ms of Lua: in the slow log
# (hits, misses) between cycles 1 and 2, then 2 and 3: 150 of 180 lookups hit, 83.33 %.
LOOKUPS = ((80, 20), (70, 10))
WAITING, ACTIVE, DELAYED = 5, 2, 3
COMPLETED, FAILED = 12, 3  # finished between cycles 1 and 2


def _bullmq_queue(r: redis.Redis, now: int) -> None:
    """Queue "email" in BullMQ's layout: waiting jobs (LPUSH: oldest at the tail) with their
    hashes, active jobs, delayed jobs scored (timestamp + delay) * 0x1000 + seq."""
    for job in range(1, WAITING + 1):
        r.hset(f"bull:email:{job}", mapping={"name": "welcome", "timestamp": (now - 120 + job) * 1000})
        r.lpush("bull:email:wait", job)
    r.lpush("bull:email:active", "a1", "a2")
    r.zadd("bull:email:delayed", {f"d{n}": (now * 1000 + 60_000) * 0x1000 + n for n in range(DELAYED)})


def _finish_jobs(r: redis.Redis, start_ms: int) -> list[tuple[int, int]]:
    """COMPLETED + FAILED jobs finished after `start_ms`; returns the completed ones' (wait, run) ms."""
    times = []
    for n in range(COMPLETED + FAILED):
        created = start_ms + n * 100
        processed, finished = created + 200 * (n + 1), created + 200 * (n + 1) + 30 * (n % 5 + 1)
        outcome = "completed" if n < COMPLETED else "failed"
        fields = {"timestamp": created, "processedOn": processed, "finishedOn": finished, "atm": 1}
        if outcome == "failed":
            fields["failedReason"] = "SMTP 451: try again later"
        r.hset(f"bull:email:j{n}", mapping=fields)
        r.zadd(f"bull:email:{outcome}", {f"j{n}": finished})
        if outcome == "completed":
            times.append((processed - created, finished - processed))
    return times


def _look_up(r: redis.Redis, hits: int, misses: int) -> None:
    """Reads of keys that exist, then of keys that do not."""
    for i in range(hits):
        r.get(f"user:{i}")
    for i in range(misses):
        r.get(f"absent:{i}")


def redis_store(folder: Path) -> dict:
    """The store (in `folder`) and its config: {url, config, times, now}."""
    url = f"sqlite:///{folder / 'store.db'}"
    now = int(time.time())
    t1, t2, t3 = now - 30, now - 15, now
    with ThrowawayRedis() as server:
        r = redis.Redis.from_url(server.url, decode_responses=True)
        r.mset({f"user:{i}": f"profile-{i}" for i in range(100)})
        _bullmq_queue(r, now)
        target = {"name": NODE, "url": server.url, "interval": "15s", "queues": {"bullmq": ["email"]}}
        config = config_mod.from_dict({"store": url, "targets": {"redis": [target]}})
        store = Store(url)
        assert collect_once(config, store, t1)[0].status.state == "ok"
        _look_up(r, *LOOKUPS[0])
        r.eval(BUSY_LOOP, 0)
        times = _finish_jobs(r, (t1 + 1) * 1000)
        assert collect_once(config, store, t2)[0].status.state == "ok"
        _look_up(r, *LOOKUPS[1])
        assert collect_once(config, store, t3)[0].status.state == "ok"
        store.close()
    config_file = folder / "observatory.yaml"
    config_file.write_text(
        f"store: {url}\ntargets:\n  redis:\n    - name: {NODE}\n      url: {target['url']}\n"
        "      interval: 15s\n      queues: {bullmq: [email]}\n"
    )
    return {"url": url, "config": str(config_file), "times": times, "now": now}
