"""Redis job-queue reads: depths, throughput, oldest-job age and wait/run times of BullMQ, RQ and
Celery queues.

The reads ride in the collector's cycle pipeline (``collectors.redis.collector``), plus one more round
trip for the job hashes they pointed at. Every command is O(1) or bounded (O(log N) + a LIMIT): LLEN, ZCARD,
HLEN, HGET, LINDEX, ZCOUNT, ZRANGEBYSCORE ... LIMIT 0 100 and HMGET; never KEYS, SCAN, SMEMBERS,
HGETALL or an unbounded LRANGE. The keyspace hits and misses these reads cause are tallied
(``QueueReads.own_lookups``) so that the collector can subtract them from the stored hit rate.

Queue layouts read:

- BullMQ ``{prefix}:{queue}:``: lists wait, active, paused (LLEN); sorted sets delayed,
  prioritized, waiting-children, completed, failed (ZCARD); hash meta (HGET paused). Completed and
  failed are scored by finish time (ms), so the jobs finished in (previous cycle, this cycle] are a
  ZCOUNT. The oldest waiting job is at the tail of wait (LPUSH in, RPOPLPUSH out): LINDEX -1, then
  HGET its hash's timestamp. Wait time (processedOn - timestamp) and run time (finishedOn -
  processedOn) come from the hashes of at most 100 of the newly completed jobs (ZRANGEBYSCORE ...
  LIMIT 0 100, then HMGET). Jobs removed at once (removeOnComplete) are not seen.
- RQ: list ``rq:queue:{name}`` (state queued; RPUSH in, LPOP out, so the oldest is at index 0 and
  its ``rq:job:{id}`` hash has enqueued_at) and registries ``rq:wip|finished|failed|deferred|
  scheduled:{name}`` (states started, finished, failed, deferred, scheduled). RQ scores its
  registries by expiry time, not finish time, so completed/failed per interval is the growth of
  ZCARD(finished|failed), never negative: a lower bound when entries expire in the same interval.
- Celery (kombu's Redis transport): list ``{queue}`` plus priority lists ``{queue}\\x06\\x16{n}``
  for n in 1..9 (state queued, summed), hash ``unacked`` (HLEN). kombu messages carry no enqueue
  time, so there is no oldest-job age for Celery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from collectors.redis.batch import Batch, Problems, Read, State, reply_text
from dashboard.core import metrics
from dashboard.core.config import RedisQueues
from dashboard.core.records import Point

JOB_SAMPLE = 100  # newly completed BullMQ jobs read per queue and cycle, for wait/run times
CELERY_SEP = "\x06\x16"  # kombu's default priority separator
CELERY_PRIORITIES = range(1, 10)
BULLMQ_LISTS = ("wait", "active", "paused")
BULLMQ_ZSETS = ("delayed", "prioritized", "waiting-children", "completed", "failed")
RQ_REGISTRIES = {  # job state -> registry key
    "started": "wip",
    "finished": "finished",
    "failed": "failed",
    "deferred": "deferred",
    "scheduled": "scheduled",
}
QUANTILES = (("p50", 0.50), ("p95", 0.95))


@dataclass
class _Queue:
    lib: str
    name: str
    depth: dict[str, list[int]] = field(default_factory=dict)  # state -> reads summed
    reads: dict[str, int] = field(default_factory=dict)  # what -> read

    @property
    def labels(self) -> str:
        return self.labels_with()

    def labels_with(self, **more: str) -> str:
        """The queue's labels, then `more` (state=..., quantile=...)."""
        return metrics.encode({"lib": self.lib, "queue": self.name, **more})


@dataclass
class _JobReads:
    """A queue's reads in the second round trip."""

    oldest: list[int] = field(default_factory=list)  # enqueue time of the oldest waiting jobs
    finished: list[int] = field(default_factory=list)  # timestamps of newly completed jobs


class QueueReads:
    """Every queue read of a cycle: bounded commands in the cycle's pipeline, then one more round
    trip for the job hashes those reads pointed at."""

    def __init__(self, batch: Batch, config: RedisQueues, since: int | None, now: int) -> None:
        self.batch = batch
        self.jobs: Batch | None = None
        self.window = (since * 1000, now * 1000) if since is not None else None  # BullMQ's ms scores
        self.prefix = config.bullmq_prefix
        self.queues = [self._bullmq(q) for q in config.bullmq]
        self.queues += [self._rq(q) for q in config.rq]
        self.queues += [self._celery(q) for q in config.celery]
        self.unacked = batch.add("size", "HLEN", "unacked") if config.celery else None

    def _bullmq(self, name: str) -> _Queue:
        q, base, add = _Queue("bullmq", name), f"{self.prefix}:{name}", self.batch.add
        for state in BULLMQ_LISTS:
            q.depth[state] = [add("size", "LLEN", f"{base}:{state}")]
        for state in BULLMQ_ZSETS:
            q.depth[state] = [add("size", "ZCARD", f"{base}:{state}")]
        add("size", "HLEN", f"{base}:meta")  # tells whether the HGET below was a hit
        q.reads["paused"] = add("key", "HGET", f"{base}:meta", "paused")
        q.reads["oldest"] = add("value", "LINDEX", f"{base}:wait", -1)
        q.reads["oldest_paused"] = add("value", "LINDEX", f"{base}:paused", -1)
        if self.window:
            low, high = f"({self.window[0]}", str(self.window[1])
            for what in ("completed", "failed"):
                q.reads[what] = add("key", "ZCOUNT", f"{base}:{what}", low, high)
            q.reads["finished_ids"] = add(
                "key", "ZRANGEBYSCORE", f"{base}:completed", low, high, "LIMIT", 0, JOB_SAMPLE
            )
        return q

    def _rq(self, name: str) -> _Queue:
        q = _Queue("rq", name)
        q.depth["queued"] = [self.batch.add("size", "LLEN", f"rq:queue:{name}")]
        for state, registry in RQ_REGISTRIES.items():
            q.depth[state] = [self.batch.add("size", "ZCARD", f"rq:{registry}:{name}")]
        q.reads["oldest"] = self.batch.add("value", "LINDEX", f"rq:queue:{name}", 0)
        return q

    def _celery(self, name: str) -> _Queue:
        q = _Queue("celery", name)
        keys = [name, *(f"{name}{CELERY_SEP}{n}" for n in CELERY_PRIORITIES)]
        q.depth["queued"] = [self.batch.add("size", "LLEN", key) for key in keys]
        return q

    # -- after the round trip ---------------------------------------------------------------
    def finish(self, client: redis.Redis, state: State, now: int, problems: Problems) -> list[Point]:
        results = self.batch.results
        for read, result in zip(self.batch.reads, results, strict=True):
            if read.key is not None and isinstance(result, Exception):
                problems.refused.append(queue_refusal(read, result))
        points: list[Point] = []
        for q, jobs in zip(self.queues, self._job_reads(client), strict=True):
            points += self._depths(q)
            points += self._throughput(q, state)
            points += self._ages(q, jobs, now)
        if self.unacked is not None and not isinstance(results[self.unacked], Exception):
            celery = metrics.encode({"lib": "celery"})
            points.append(Point("redis.queue.unacked", float(results[self.unacked]), "gauge", celery))
        return points

    def _result(self, index: int | None) -> Any:
        value = None if index is None else self.batch.results[index]
        return None if isinstance(value, Exception) else value

    def _depths(self, q: _Queue) -> list[Point]:
        points = []
        for state, reads in q.depth.items():
            values = [self._result(i) for i in reads]
            if all(v is not None for v in values):
                points.append(
                    Point(metrics.REDIS_QUEUE_DEPTH, float(sum(values)), "gauge", q.labels_with(state=state))
                )
        if q.lib == "bullmq" and "paused" in q.reads:
            paused = self._result(q.reads["paused"])
            points.append(
                Point(
                    metrics.REDIS_QUEUE_PAUSED,
                    float(reply_text(paused or b"0") in ("1", "true")),
                    "gauge",
                    q.labels,
                )
            )
        return points

    def _throughput(self, q: _Queue, state: State) -> list[Point]:
        points = []
        if q.lib == "bullmq":  # finished in (previous cycle, this cycle]: exact
            for what in ("completed", "failed"):
                count = self._result(q.reads.get(what))
                if count is not None:
                    points.append(Point(metrics.REDIS_QUEUE + what, None, "counter", q.labels, float(count)))
        elif q.lib == "rq":  # registries scored by expiry: their growth, never negative
            for what, registry in (("completed", "finished"), ("failed", "failed")):
                size = self._result(q.depth[registry][0])
                if size is not None:
                    key = (metrics.REDIS_QUEUE + what, q.labels)
                    previous = state.counters.get(key)
                    delta = None if previous is None else max(0.0, size - previous)
                    state.counters[key] = float(size)
                    points.append(Point(key[0], float(size), "counter", q.labels, delta))
        return points

    # -- job hashes: the second round trip --------------------------------------------------
    def _job_reads(self, client: redis.Redis) -> list[_JobReads]:
        """HGET/HMGET of the jobs the first reads found, all in one pipeline; per queue."""
        jobs = Batch(client)
        found = []
        for q in self.queues:
            base = f"{self.prefix}:{q.name}:" if q.lib == "bullmq" else "rq:job:"
            enqueued = "timestamp" if q.lib == "bullmq" else "enqueued_at"
            reads = _JobReads()
            for what in ("oldest", "oldest_paused"):
                job_id = self._result(q.reads.get(what))
                if job_id is not None:
                    reads.oldest.append(jobs.add("value", "HGET", base + reply_text(job_id), enqueued))
            for job_id in self._result(q.reads.get("finished_ids")) or []:
                fields = ("timestamp", "processedOn", "finishedOn")
                reads.finished.append(jobs.add("value", "HMGET", base + reply_text(job_id), *fields))
            found.append(reads)
        jobs.run()
        self.jobs = jobs
        return found

    def _ages(self, q: _Queue, reads: _JobReads, now: int) -> list[Point]:
        if q.lib == "celery" or self.jobs is None:
            return []  # kombu messages carry no enqueue time
        results = self.jobs.results
        enqueued = [t for t in (_job_time(results[i]) for i in reads.oldest) if t is not None]
        age = max(0.0, now - min(enqueued)) if enqueued else 0.0
        points = [Point(metrics.REDIS_QUEUE_OLDEST_AGE_S, age, "gauge", q.labels)]
        waits, runs = [], []
        for i in reads.finished:
            if isinstance(results[i], Exception):
                continue
            created, processed, finished = (_float(v) for v in results[i])
            if created is not None and processed is not None:
                waits.append(processed - created)
            if processed is not None and finished is not None:
                runs.append(finished - processed)
        for name, values in ((metrics.REDIS_QUEUE_WAIT_MS, waits), (metrics.REDIS_QUEUE_RUN_MS, runs)):
            if values:
                points += [
                    Point(name, quantile(values, share), "gauge", q.labels_with(quantile=label))
                    for label, share in QUANTILES
                ]
        return points

    def own_lookups(self) -> tuple[int, int]:
        sizes = {
            r.key: int(v)
            for r, v in zip(self.batch.reads, self.batch.results, strict=True)
            if r.lookup == "size" and r.key is not None and isinstance(v, int)
        }
        hits, misses = self.batch.own_lookups(sizes)
        if self.jobs is not None:
            more = self.jobs.own_lookups(sizes)
            hits, misses = hits + more[0], misses + more[1]
        return hits, misses


def _float(value: Any) -> float | None:
    try:
        return float(reply_text(value)) if value is not None else None
    except ValueError:
        return None


def _job_time(value: Any) -> float | None:
    """Unix seconds of a job's enqueue time: BullMQ's ms timestamp or RQ's ISO enqueued_at."""
    if value is None:
        return None
    number = _float(value)
    if number is not None:
        return number / 1000
    try:
        parsed = datetime.fromisoformat(reply_text(value).removesuffix("Z"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def quantile(values: list[float], share: float) -> float:
    """Nearest-rank quantile (p95 of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(share * len(ordered)) - 1)])


def queue_refusal(read: Read, err: Exception) -> tuple[str, str]:
    message = f"{read.command} {read.key}: {err}"
    if str(err).startswith("WRONGTYPE"):
        return message, (
            f"{read.key} is not the type the queue library uses: check the queue names and bullmq_prefix"
        )
    if isinstance(err, redis.exceptions.NoPermissionError):
        return message, "the Redis user may not read the queue keys: grant read access to them (ACL ~pattern)"
    return message, f"{read.command} failed on the queue keys: queue metrics incomplete"
