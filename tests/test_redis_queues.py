"""The Redis collector's job-queue reads against a real redis-server: BullMQ, RQ and Celery depths,
throughput, ages and wait/run times."""

from __future__ import annotations

import time

import pytest
import redis

from dashboard.servers.throwaway import ThrowawayRedis
from dashboard.store import Store
from tests.support.redis_target import at, client, fill_queues, nearest_rank, target
from tests.support.stores import collect_once, make_config


def finish_bullmq_jobs(r: redis.Redis, times: list[tuple[str, int, int, int, str]]) -> None:
    """Jobs as BullMQ leaves them: a hash with timestamp/processedOn/finishedOn (ms), scored in
    the completed or failed set by finish time."""
    for job, created, processed, finished, outcome in times:
        r.hset(
            f"bull:email:{job}",
            mapping={"timestamp": created, "processedOn": processed, "finishedOn": finished},
        )
        r.zadd(f"bull:email:{outcome}", {job: finished})


def test_queue_depths_throughput_ages_and_times(redis_server: ThrowawayRedis, store: Store) -> None:
    r = client(redis_server.url)
    t1 = int(time.time()) - 120
    t2, t3 = t1 + 60, t1 + 120
    expected = fill_queues(r, t2)
    queues = {"bullmq": ["email"], "rq": ["default"], "celery": ["celery"]}
    config = make_config(store.url, [target(redis_server.url, queues=queues)], kind="redis")
    # Finished before the first cycle: in the sets, never counted as this interval's.
    old = (t1 - 90) * 1000
    finish_bullmq_jobs(r, [(f"old{n}", old, old + 10_000, old + 20_000, "completed") for n in range(3)])
    collect_once(config, store, t1)
    # 20 completions and 4 failures in (t1, t2]; 2 more completions in (t2, t3].
    done = []
    for n in range(20):
        created = (t1 + 1) * 1000 + n * 100
        processed = created + 250 * (n + 1)  # waits 250 .. 5000 ms
        done.append((f"c{n}", created, processed, processed + 40 * (n % 7 + 1), "completed"))
    done += [(f"f{n}", (t1 + 2) * 1000, (t1 + 3) * 1000, (t1 + 4) * 1000, "failed") for n in range(4)]
    done += [(f"late{n}", t2 * 1000 + 1, t2 * 1000 + 2, t2 * 1000 + 500, "completed") for n in range(2)]
    finish_bullmq_jobs(r, done)
    r.zadd("rq:finished:default", {f"f{n}": t2 + 500 for n in range(5, 8)})  # 3 more finished
    r.zadd("rq:failed:default", {"x2": t2 + 3600})
    assert collect_once(config, store, t2)[0].status.state == "ok"

    bull = "lib=bullmq,queue=email"
    depths = {"wait": 5, "active": 2, "paused": 1, "delayed": 3, "prioritized": 2}
    depths |= {"waiting-children": 1, "completed": 25, "failed": 4}
    for state, depth in depths.items():
        assert at(store, "redis.queue.depth", t2, f"{bull},state={state}") == depth, state
    assert at(store, "redis.queue.paused", t2, bull) == 1
    assert at(store, "redis.queue.completed", t2, bull) == 20  # the two "late" ones are t3's
    assert at(store, "redis.queue.failed", t2, bull) == 4
    assert at(store, "redis.queue.oldest_age_s", t2, bull) == expected["bullmq_oldest"]
    in_window = [d for d in done if d[4] == "completed" and d[3] <= t2 * 1000]
    waits = [p - c for _, c, p, _, _ in in_window]
    runs = [f - p for _, _, p, f, _ in in_window]
    for label, share in (("p50", 0.5), ("p95", 0.95)):
        assert at(store, "redis.queue.wait_ms", t2, f"{bull},quantile={label}") == nearest_rank(waits, share)
        assert at(store, "redis.queue.run_ms", t2, f"{bull},quantile={label}") == nearest_rank(runs, share)

    rq = "lib=rq,queue=default"
    depths = {"queued": 4, "started": 2, "finished": 8, "failed": 2, "deferred": 1, "scheduled": 2}
    for state, depth in depths.items():
        assert at(store, "redis.queue.depth", t2, f"{rq},state={state}") == depth, state
    assert at(store, "redis.queue.completed", t2, rq) == 3
    assert at(store, "redis.queue.failed", t2, rq) == 1
    assert at(store, "redis.queue.oldest_age_s", t2, rq) == pytest.approx(expected["rq_oldest"], abs=0.01)

    assert at(store, "redis.queue.depth", t2, "lib=celery,queue=celery,state=queued") == 9
    assert at(store, "redis.queue.unacked", t2, "lib=celery") == 3

    # Next interval: the two late completions, once; RQ's registry shrinks (expired entries
    # cleaned up): no negative throughput.
    r.zrem("rq:finished:default", "f0", "f1", "f2", "f3")
    r.rpop("bull:email:wait")  # a worker took job 1: job 2 is now the oldest waiting
    r.delete("bull:email:paused")
    assert collect_once(config, store, t3)[0].status.state == "ok"
    assert at(store, "redis.queue.completed", t3, bull) == 2
    assert at(store, "redis.queue.failed", t3, bull) == 0
    assert at(store, "redis.queue.completed", t3, rq) == 0
    assert at(store, "redis.queue.oldest_age_s", t3, bull) == t3 - (t2 - 300 + 2)
    assert at(store, "redis.queue.wait_ms", t3, f"{bull},quantile=p50") == 1
    assert at(store, "redis.queue.run_ms", t3, f"{bull},quantile=p95") == 498
