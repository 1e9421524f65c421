"""Helpers of the Redis collector tests: a target's entry in the config and what the store holds for it."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import redis

from dashboard.store import Store
from dashboard.store.reads import Window, series_frame
from tests.support.stores import only_value

EVERYTHING = Window(0, 4_000_000_000)


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def target(url: str, name: str = "cache-1", **extra) -> dict:
    return {"name": name, "url": url, "interval": "15s", "timeout": "2s", **extra}


def series(store: Store, name: str, labels: str | None = None, target_name: str = "cache-1") -> pd.DataFrame:
    """Stored points of one series (raw level): ts, labels, sum (a counter's delta or a gauge)."""
    tid = store.target_id("redis", target_name)
    frame = series_frame(store.engine, [tid], [name], EVERYTHING, "raw")
    return frame if labels is None else frame[frame["labels"] == labels]


def at(store: Store, name: str, ts: int, labels: str = "", target_name: str = "cache-1") -> float:
    """The value stored for one series at one cycle (a counter's delta, a gauge's reading)."""
    return only_value(series(store, name, labels, target_name), ts, f"{name} {labels}")


def nearest_rank(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def fill_queues(r: redis.Redis, now: int) -> dict:
    """BullMQ-, RQ- and Celery-shaped queues written with real commands; returns what to expect."""
    expected: dict = {}
    # BullMQ "email": 5 waiting (LPUSH: the oldest at the tail), 2 active, 3 delayed, 2 prioritized,
    # 1 waiting on children, a paused list with one older job, and a paused flag in meta.
    for job in range(1, 6):
        r.hset(f"bull:email:{job}", mapping={"name": "send", "timestamp": (now - 300 + job) * 1000})
        r.lpush("bull:email:wait", job)
    r.lpush("bull:email:active", "a1", "a2")
    r.zadd("bull:email:delayed", {f"d{n}": ((now + 60) * 1000) * 0x1000 + n for n in range(3)})
    r.zadd("bull:email:prioritized", {"p1": 1, "p2": 2})
    r.zadd("bull:email:waiting-children", {"parent": 0})
    r.hset("bull:email:p0", mapping={"timestamp": (now - 400) * 1000})
    r.lpush("bull:email:paused", "p0")
    r.hset("bull:email:meta", mapping={"paused": 1, "opts.maxLenEvents": 10000})
    expected["bullmq_oldest"] = 400
    # RQ "default": 4 queued (RPUSH: the oldest at the head), registries scored by expiry.
    for n in range(4):
        enqueued = datetime.fromtimestamp(now - 120 + n, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        r.hset(f"rq:job:j{n}", mapping={"enqueued_at": enqueued, "status": "queued"})
        r.rpush("rq:queue:default", f"j{n}")
    r.zadd("rq:wip:default", {"w1": now + 180, "w2": now + 180})
    r.zadd("rq:finished:default", {f"f{n}": now + 500 for n in range(5)})
    r.zadd("rq:failed:default", {"x1": now + 3600})
    r.zadd("rq:deferred:default", {"df": -1})
    r.zadd("rq:scheduled:default", {"s1": now + 60, "s2": now + 120})
    expected["rq_oldest"] = 120
    # Celery "celery": kombu's list plus priority lists (separator \x06\x16), and unacked.
    r.lpush("celery", *[f'{{"n": {n}}}' for n in range(6)])
    r.lpush("celery\x06\x163", "m1", "m2")
    r.lpush("celery\x06\x169", "m3")
    r.hset("unacked", mapping={"tag1": "m", "tag2": "m", "tag3": "m"})
    return expected
