"""A Redis workload for the demo, used the way the seed's system uses Redis: a cache and job queues.

**Cache** (cache-aside in front of the ERP database): web threads look up `cache:product:<id>` and
`cache:customer:<id>`; on a miss they load the row (from PostgreSQL when a dsn is given, else a
synthetic one) and `SET ... EX ttl`. Key popularity is Zipf-like and the popular set drifts every
minute or so (trending items), so the hit rate sits around 85-95 % and dips when the trend moves.
`prepare_server` gives the node a small maxmemory (8 MiB, volatile-lru): the cache no longer fits
and Redis evicts its least recently used keys. volatile-lru rather than allkeys-lru because the node
also holds the queues, whose keys have no TTL and must never be evicted (BullMQ's own advice is
noeviction on a queue node).

**Job queues** in BullMQ's layout (`bull:<queue>:...`), written with the commands BullMQ's scripts
run: a producer adds jobs (a hash with name, data, opts, timestamp, delay, atm; LPUSH to `wait`, or
ZADD to `delayed` scored (timestamp + delay) * 0x1000 + (id & 0xfff) when delayed); workers LMOVE
`wait` -> `active` (the oldest job is at the tail), set processedOn, run for a realistic time and
either ZADD the job to `completed` scored by finishedOn, or record failedReason and atm and retry
with exponential backoff (round(2^(attempts-1) * delay)) through `delayed`, or, out of attempts,
ZADD it to `failed`; a promoter moves due delayed jobs to `wait`. `completed` and `failed` keep the
newest `keep` jobs (removeOnComplete / removeOnFail: older ones and their hashes are deleted), the
events stream is capped, so the node's memory stays bounded however long the demo runs. The email
provider has an occasional incident (a burst of SMTP 451 failures); some reports export the whole
customer leaderboard (ZRANGE 0 -1 over 10k members), which lands in the slow log.

Every thread sleeps on one Event and every command has a 2 s socket timeout: stop() returns within
seconds. No pytest import: the demo and the tests both use this module.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import random
import threading
import time
from bisect import bisect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import redis

log = logging.getLogger("observatory.redis_workload")

PREFIX = "bull"
MAXMEMORY = "8mb"
MAXMEMORY_POLICY = "volatile-lru"
SLOWLOG_SLOWER_THAN_US = 2000  # the demo's slow-log threshold (Redis default: 10 ms)
LEADERBOARD = "leaderboard:customers"
LEADERS = 10_000  # members: a full ZRANGE takes a few ms
TREND_EVERY = 75.0  # seconds between moves of the popular set
# Due delayed jobs to wait, atomically and at most ARGV[2] at a time (BullMQ does it in its scripts).
PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], 0, ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('LPUSH', KEYS[2], id)
end
return #due
"""


def prepare_server(url: str) -> None:
    """The demo node's settings: a small maxmemory so the cache evicts, a slow-log threshold that
    catches the reports' exports, and the latency monitor on."""
    with redis.Redis.from_url(url, socket_timeout=5) as client:
        client.config_set("maxmemory", MAXMEMORY)
        client.config_set("maxmemory-policy", MAXMEMORY_POLICY)
        client.config_set("slowlog-log-slower-than", str(SLOWLOG_SLOWER_THAN_US))
        client.config_set("latency-monitor-threshold", "5")


def now_ms() -> int:
    return int(time.time() * 1000)


# -- the cache ----------------------------------------------------------------------------------------
class Zipf:
    """Ranks 0..n-1 drawn with probability proportional to 1 / (rank + 1) ** s (O(log n) a draw)."""

    def __init__(self, n: int, s: float) -> None:
        self.cumulative = list(itertools.accumulate(1.0 / (r + 1) ** s for r in range(n)))

    def draw(self, rng: random.Random) -> int:
        return min(bisect(self.cumulative, rng.random() * self.cumulative[-1]), len(self.cumulative) - 1)


@dataclass(frozen=True)
class Family:
    """A kind of cached object: its key prefix, how many exist, how skewed their popularity is,
    the SQL that loads one, its size in the cache and its TTL range."""

    name: str
    count: int
    skew: float
    sql: str
    pad: int
    ttl: tuple[int, int]
    warm: int  # the most popular ones, cached at start: the cache starts near maxmemory


FAMILIES = (
    Family(
        "product",
        2_000,
        1.05,
        "SELECT id, sku, name, category, price, stock FROM products WHERE id = %s",
        500,
        (120, 600),
        1000,
    ),
    Family(
        "customer",
        20_000,
        1.15,
        "SELECT id, email, name, country, segment FROM customers WHERE id = %s",
        900,
        (300, 900),
        4000,
    ),
)


# -- job queues -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueSpec:
    """One BullMQ queue: its job names, arrival rate at peak (jobs/s), workers, run time (median
    seconds), failure odds and reasons, attempts and backoff, and the share of delayed jobs."""

    name: str
    jobs: tuple[str, ...]
    rate: float
    workers: int
    run_median: float
    fail: float
    reasons: tuple[str, ...]
    attempts: int
    backoff_ms: int
    delayed_share: float
    delay_s: tuple[float, float]
    fatal: float = 0.0  # odds of an error no retry can fix (BullMQ's UnrecoverableError)
    fatal_reason: str = ""


QUEUES = {
    "email": QueueSpec(
        "email",
        ("welcome", "receipt", "password-reset", "newsletter"),
        rate=7.0,
        workers=2,
        run_median=0.22,
        fail=0.04,
        reasons=("SMTP 451 4.7.1 try again later", "SMTP 421 service not available", "connect ETIMEDOUT"),
        attempts=3,
        backoff_ms=1000,
        delayed_share=0.12,
        delay_s=(5.0, 30.0),
        fatal=0.015,
        fatal_reason="SMTP 550 5.1.1 mailbox unavailable",
    ),
    "reports": QueueSpec(
        "reports",
        ("daily-sales", "top-products", "customer-export"),
        rate=0.6,
        workers=1,
        run_median=1.1,
        fail=0.06,
        reasons=("canceling statement due to statement timeout", "could not connect to server"),
        attempts=2,
        backoff_ms=5000,
        delayed_share=0.05,
        delay_s=(10.0, 40.0),
        fatal=0.03,
        fatal_reason="report template missing",
    ),
}


class RedisWorkload:
    """Cache clients, a job producer, workers and a delayed-job promoter; start() and stop()."""

    def __init__(
        self,
        url: str,
        *,
        dsn: str | None = None,
        queues: tuple[str | QueueSpec, ...] = ("email", "reports"),
        rate: float = 150.0,
        period: float = 360.0,
        keep: int = 500,
        incident_every: float = 240.0,
        seed: int = 11,
    ) -> None:
        """`url`: the Redis node; `dsn`: the ERP database cache misses load from (None: synthetic
        rows); `queues`: names in QUEUES or QueueSpecs; `rate`: cache lookups per second at peak;
        `period`: seconds of one compressed day;
        `keep`: completed and failed jobs kept per queue (removeOnComplete / removeOnFail)."""
        self.url = url
        self.dsn = dsn
        self.specs = [q if isinstance(q, QueueSpec) else QUEUES[q] for q in queues]
        self.rate = rate
        self.period = period
        self.keep = keep
        self.incident_every = incident_every
        self.seed = seed
        self.stopping = threading.Event()
        self.client = redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
        self._zipf = {f.name: Zipf(f.count, f.skew) for f in FAMILIES}
        self._trend = dict.fromkeys((f.name for f in FAMILIES), 0)
        self._threads: list[threading.Thread] = []
        self._counts: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._started = 0.0

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> RedisWorkload:
        self._started = time.monotonic()
        self._seed_data()
        threads: list[tuple[str, Callable[..., None], tuple]] = [
            (f"redis-web-{n}", self._web, (n,)) for n in range(2)
        ]
        threads.append(("redis-producer", self._producer, ()))
        for spec in self.specs:
            threads += [
                (f"redis-{spec.name}-worker-{n}", self._worker, (spec, n)) for n in range(spec.workers)
            ]
            threads.append((f"redis-{spec.name}-promoter", self._promoter, (spec,)))
        for name, target, args in threads:
            thread = threading.Thread(
                target=self._guarded, args=(name, target, *args), name=name, daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every thread (each sleeps on one Event, each command times out after 2 s)."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(redis.RedisError):
            self.client.close()

    def __enter__(self) -> RedisWorkload:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _guarded(self, name: str, target: Callable[..., None], *args: Any) -> None:
        """Run a loop; an error backs off and restarts it, so a Redis restart does not end the demo."""
        failures = 0
        while not self.stopping.is_set():
            try:
                target(*args)
                return
            except (redis.RedisError, OSError) as err:
                if self.stopping.is_set():
                    return
                self.note_error(name, err)
                failures += 1
                self.stopping.wait(min(10.0, 0.5 * 2**failures))

    # -- accounting ---------------------------------------------------------------------------------
    def intensity(self, now: float | None = None) -> float:
        """0.2 .. 1.0 along a sinusoid of `period` seconds, like the database workload's day."""
        elapsed = (time.monotonic() if now is None else now) - self._started
        return 0.6 + 0.4 * math.sin(2 * math.pi * elapsed / self.period)

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self._counts[what] += n

    def note_error(self, where: str, err: Exception) -> None:
        kind = type(err).__name__
        with self._lock:
            self._errors[kind] += 1
            first = self._errors[kind] == 1
        if first:  # once per kind
            log.warning(
                "redis workload: %s failed: %s: %s", where, kind, (str(err).strip().splitlines() or [""])[0]
            )

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counts, errors = dict(self._counts), dict(self._errors)
        lookups = counts.get("hits", 0) + counts.get("misses", 0)
        return {
            "counts": counts,
            "errors": errors,
            "hit_rate": counts.get("hits", 0) / lookups if lookups else None,
            "intensity": round(self.intensity(), 2),
        }

    # -- seed data ----------------------------------------------------------------------------------
    def _seed_data(self) -> None:
        """Queue metadata, the leaderboard, and a warm cache (the cache warmer after a deploy)."""
        pipe = self.client.pipeline(transaction=False)
        for spec in self.specs:
            pipe.hset(
                f"{PREFIX}:{spec.name}:meta", mapping={"opts.maxLenEvents": 10000, "version": "bullmq:5.34.0"}
            )
        rng = random.Random(self.seed)
        for start in range(0, LEADERS, 2000):
            pipe.zadd(
                LEADERBOARD,
                {
                    f"customer:{c}": round(rng.paretovariate(1.5) * 100, 2)
                    for c in range(start + 1, start + 2001)
                },
            )
        pipe.execute()
        rows = self._load_many()
        pipe = self.client.pipeline(transaction=False)
        for family in FAMILIES:
            for rank in range(family.warm):  # the most popular ones
                key_id = rank + 1
                pipe.set(
                    f"cache:{family.name}:{key_id}",
                    self._value(family, rows.get((family.name, key_id)), key_id),
                    ex=rng.randint(*family.ttl),
                )
        pipe.execute()

    def _load_many(self) -> dict[tuple[str, int], dict]:
        if not self.dsn:
            return {}
        found: dict[tuple[str, int], dict] = {}
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                for family in FAMILIES:
                    sql = family.sql.replace("WHERE id = %s", "WHERE id <= %s")
                    cur = conn.execute(sql, (family.warm,))
                    names = [c.name for c in cur.description or []]
                    for row in cur:
                        found[(family.name, int(row[0]))] = dict(zip(names, row, strict=True))
        except psycopg.Error as err:
            self.note_error("cache warm-up", err)
        return found

    # -- the cache: web threads ---------------------------------------------------------------------
    def _web(self, index: int) -> None:
        rng = random.Random(self.seed * 100 + index)
        conn: psycopg.Connection | None = None
        next_trend = time.monotonic() + TREND_EVERY
        try:
            while not self.stopping.is_set():
                if index == 0 and time.monotonic() >= next_trend:  # one thread moves the trend
                    for family in FAMILIES:
                        with self._lock:
                            self._trend[family.name] += rng.randint(family.count // 50, family.count // 12)
                    next_trend += TREND_EVERY
                family = FAMILIES[0] if rng.random() < 0.45 else FAMILIES[1]
                key_id = (self._zipf[family.name].draw(rng) + self._trend[family.name]) % family.count + 1
                key = f"cache:{family.name}:{key_id}"
                if self.client.get(key) is not None:
                    self.count("hits")
                else:
                    self.count("misses")
                    row, conn = self._load(family, key_id, conn)
                    self.client.set(key, self._value(family, row, key_id), ex=rng.randint(*family.ttl))
                per_thread = max(1.0, self.rate * self.intensity() / 2)
                self.stopping.wait(rng.expovariate(per_thread))
        finally:
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()

    def _load(
        self, family: Family, key_id: int, conn: psycopg.Connection | None
    ) -> tuple[dict | None, psycopg.Connection | None]:
        """The row behind a missed key (None: make one up); the connection to keep using."""
        if not self.dsn:
            return None, None
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
            cur = conn.execute(family.sql, (key_id,))
            row = cur.fetchone()
            names = [c.name for c in cur.description or []]
            return (dict(zip(names, row, strict=True)) if row else None), conn
        except psycopg.Error as err:
            if not self.stopping.is_set():
                self.note_error("cache fill", err)
            return None, None

    @staticmethod
    def _value(family: Family, row: dict | None, key_id: int) -> str:
        data = {k: str(v) for k, v in (row or {"id": key_id, "name": f"{family.name} {key_id}"}).items()}
        data["cached_at"] = str(now_ms())
        data["blurb"] = f"{family.name}-{key_id} " * (family.pad // (len(family.name) + 8))
        return json.dumps(data)

    # -- queues: producer -----------------------------------------------------------------------------
    def _producer(self) -> None:
        rng = random.Random(self.seed + 1)
        tick = 0.1
        while not self.stopping.wait(tick):
            for spec in self.specs:
                arrivals = _poisson(rng, spec.rate * self.intensity() * tick)
                for _ in range(arrivals):
                    delay = 0
                    if rng.random() < spec.delayed_share:
                        delay = int(rng.uniform(*spec.delay_s) * 1000)
                    self.add_job(spec, rng.choice(spec.jobs), {"customer": rng.randint(1, 20_000)}, delay)

    def add_job(self, spec: QueueSpec, name: str, data: dict, delay_ms: int = 0) -> str:
        """BullMQ's addJob: the job hash, then `wait` (LPUSH) or `delayed`, and an `added` event."""
        base = f"{PREFIX}:{spec.name}"
        job_id = str(self.client.incr(f"{base}:id"))
        ts = now_ms()
        opts = {
            "attempts": spec.attempts,
            "backoff": {"type": "exponential", "delay": spec.backoff_ms},
            "delay": delay_ms,
            "removeOnComplete": self.keep,
            "removeOnFail": self.keep,
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(
            f"{base}:{job_id}",
            mapping={"name": name, "data": json.dumps(data), "opts": json.dumps(opts), "timestamp": ts,
                     "delay": delay_ms, "priority": 0, "atm": 0, "ats": 0},
        )  # fmt: skip
        if delay_ms:
            pipe.zadd(f"{base}:delayed", {job_id: delayed_score(ts + delay_ms, job_id)})
        else:
            pipe.lpush(f"{base}:wait", job_id)
        pipe.xadd(
            f"{base}:events", {"event": "added", "jobId": job_id, "name": name}, maxlen=1000, approximate=True
        )
        pipe.execute()
        self.count(f"{spec.name} added")
        return job_id

    # -- queues: workers ------------------------------------------------------------------------------
    def _worker(self, spec: QueueSpec, index: int) -> None:
        rng = random.Random(self.seed * 1000 + self.specs.index(spec) * 10 + index)
        base = f"{PREFIX}:{spec.name}"
        while not self.stopping.is_set():
            job_id = self.client.lmove(f"{base}:wait", f"{base}:active", "RIGHT", "LEFT")
            if job_id is None:
                self.stopping.wait(0.1)
                continue
            job = f"{base}:{job_id}"
            started = now_ms()
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(job, "processedOn", started)
            pipe.hincrby(job, "ats", 1)
            pipe.hget(job, "atm")
            pipe.hget(job, "name")
            pipe.set(f"{job}:lock", f"worker-{index}", px=30_000)
            _, _, attempts_made, name, _ = pipe.execute()
            if self.stopping.wait(self._run_time(spec, name, rng)):
                self._give_back(base, job_id)  # stopped mid-job: back to the head of the line
                return
            if name == "customer-export":
                self.client.zrange(LEADERBOARD, 0, -1, withscores=True)  # the whole board: a slow command
            elif name == "receipt":
                self.client.zincrby(
                    LEADERBOARD, round(rng.uniform(5, 400), 2), f"customer:{rng.randint(1, LEADERS)}"
                )
            made = int(attempts_made or 0) + 1
            luck = rng.random()
            if luck < spec.fatal:
                self._fail(spec, base, job_id, made, spec.fatal_reason, retry=False)
            elif luck < spec.fatal + self._failure_odds(spec):
                self._fail(spec, base, job_id, made, rng.choice(spec.reasons), retry=made < spec.attempts)
            else:
                self._complete(base, job_id, made)

    def _run_time(self, spec: QueueSpec, name: str | None, rng: random.Random) -> float:
        seconds = rng.lognormvariate(math.log(spec.run_median), 0.6)
        return min(seconds * (2.5 if name == "customer-export" else 1.0), 10 * spec.run_median)

    def _failure_odds(self, spec: QueueSpec) -> float:
        """The provider's incidents: for 20 s every `incident_every` seconds, email fails a lot."""
        elapsed = time.monotonic() - self._started
        in_incident = spec.name == "email" and elapsed % self.incident_every > self.incident_every - 20
        return 0.45 if in_incident else spec.fail

    def _complete(self, base: str, job_id: str, made: int) -> None:
        finished = now_ms()
        pipe = self.client.pipeline(transaction=True)
        pipe.lrem(f"{base}:active", -1, job_id)
        pipe.zadd(f"{base}:completed", {job_id: finished})
        pipe.hset(
            f"{base}:{job_id}", mapping={"finishedOn": finished, "atm": made, "returnvalue": '{"ok":true}'}
        )
        pipe.delete(f"{base}:{job_id}:lock")
        pipe.xadd(f"{base}:events", {"event": "completed", "jobId": job_id}, maxlen=1000, approximate=True)
        pipe.execute()
        self._trim(base, "completed")
        self.count(f"{base.split(':')[-1]} completed")

    def _fail(self, spec: QueueSpec, base: str, job_id: str, made: int, reason: str, retry: bool) -> None:
        finished = now_ms()
        job = f"{base}:{job_id}"
        pipe = self.client.pipeline(transaction=True)
        pipe.lrem(f"{base}:active", -1, job_id)
        pipe.delete(f"{job}:lock")
        if retry:  # again later: exponential backoff through the delayed set
            backoff = round(2 ** (made - 1) * spec.backoff_ms)
            pipe.hset(job, mapping={"atm": made, "failedReason": reason, "delay": backoff})
            pipe.zadd(f"{base}:delayed", {job_id: delayed_score(finished + backoff, job_id)})
            pipe.xadd(f"{base}:events", {"event": "delayed", "jobId": job_id}, maxlen=1000, approximate=True)
            outcome = "retried"
        else:
            pipe.hset(job, mapping={"atm": made, "failedReason": reason, "finishedOn": finished})
            pipe.zadd(f"{base}:failed", {job_id: finished})
            event = {"event": "failed", "jobId": job_id, "failedReason": reason}
            pipe.xadd(f"{base}:events", event, maxlen=1000, approximate=True)
            outcome = "failed"
        pipe.execute()
        if outcome == "failed":
            self._trim(base, "failed")
        self.count(f"{spec.name} {outcome}")

    def _give_back(self, base: str, job_id: str) -> None:
        with contextlib.suppress(redis.RedisError):
            pipe = self.client.pipeline(transaction=True)
            pipe.lrem(f"{base}:active", -1, job_id)
            pipe.rpush(f"{base}:wait", job_id)
            pipe.delete(f"{base}:{job_id}:lock")
            pipe.execute()

    def _trim(self, base: str, state: str) -> None:
        """removeOnComplete / removeOnFail: keep the newest `keep` jobs, delete the rest and their hashes."""
        key = f"{base}:{state}"
        extra = self.client.zcard(key) - self.keep
        if extra <= 0:
            return
        old = self.client.zrange(key, 0, extra - 1)
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(key, *old)
        pipe.delete(*(f"{base}:{job_id}" for job_id in old))
        pipe.execute()

    # -- queues: promoter -----------------------------------------------------------------------------
    def _promoter(self, spec: QueueSpec) -> None:
        """Due delayed jobs (their score's time part has passed) go to `wait`, oldest first."""
        base = f"{PREFIX}:{spec.name}"
        promote = self.client.register_script(PROMOTE)
        while not self.stopping.wait(0.2):
            due = delayed_score(now_ms() + 1, "0") - 1
            moved = promote(keys=[f"{base}:delayed", f"{base}:wait"], args=[due, 100])
            if moved:
                self.count(f"{spec.name} promoted", int(moved))


def delayed_score(due_ms: int, job_id: str) -> int:
    """BullMQ's delayed-set score: the due time in ms times 0x1000, plus the id's low 12 bits."""
    low = int(job_id) & 0xFFF if job_id.isdigit() else 0
    return due_ms * 0x1000 + low


def _poisson(rng: random.Random, mean: float) -> int:
    """Arrivals in one tick (Knuth's method: fine for the small means used here)."""
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
