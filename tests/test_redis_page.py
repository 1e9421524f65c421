"""The Redis page through AppTest, and its figures (dashboard.analysis.redis) on real stored data.

The store is built the way the daemon builds it: a throwaway redis-server, real hits and misses, a
slow EVAL, BullMQ-shaped queues written with real commands, and three collector cycles.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import redis
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.analysis import redis as redis_views
from dashboard.core import config as config_mod
from dashboard.servers.throwaway import ThrowawayRedis
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.reads import Window, series_frame
from dashboard.ui import frame as ui
from tests.conftest import collect_once

APP = "../dashboard/app.py"  # AppTest resolves it against this file's folder
REDIS = "../pages/redis.py"
OVERVIEW = "../pages/overview.py"
NODE = "cache-1"
BUSY_LOOP = "local i = 0 while i < 5000000 do i = i + 1 end return i"  # ~25 ms of Lua: in the slow log
EVERYTHING = Window(0, 4_000_000_000)
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


def redis_store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Build once per session (the browser test uses it too): {url, config, times, now}."""
    folder = tmp_path_factory.getbasetemp() / "redis-page"
    made = folder / "made.json"
    if made.exists():
        return json.loads(made.read_text())
    folder.mkdir(exist_ok=True)
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
        hits, misses = LOOKUPS[0]
        for i in range(hits):
            r.get(f"user:{i}")
        for i in range(misses):
            r.get(f"absent:{i}")
        r.eval(BUSY_LOOP, 0)
        times = _finish_jobs(r, (t1 + 1) * 1000)
        assert collect_once(config, store, t2)[0].status.state == "ok"
        hits, misses = LOOKUPS[1]
        for i in range(hits):
            r.get(f"user:{i}")
        for i in range(misses):
            r.get(f"absent:{i}")
        assert collect_once(config, store, t3)[0].status.state == "ok"
        store.close()
    config_file = folder / "observatory.yaml"
    config_file.write_text(
        f"store: {url}\ntargets:\n  redis:\n    - name: {NODE}\n      url: {target['url']}\n"
        "      interval: 15s\n      queues: {bullmq: [email]}\n"
    )
    found = {"url": url, "config": str(config_file), "times": times, "now": now}
    made.write_text(json.dumps(found))
    return found


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return redis_store(tmp_path_factory)


@pytest.fixture(scope="module")
def stored(populated: dict):
    """The node's stored series (raw level), as the page's data layer reads them."""
    engine = make_engine(populated["url"], readonly=True)
    try:
        names = (
            *("redis.keyspace.hits", "redis.keyspace.misses", "redis.ops", "redis.memory.used_bytes"),
            *("redis.memory.max_bytes", "redis.cmd.calls", "redis.cmd.usec", "redis.cmd.failed_calls"),
            *("redis.cmd.rejected_calls", "redis.cmd.latency_us", "redis.replication.connected_replicas"),
            *("redis.queue.depth", "redis.queue.completed", "redis.queue.failed", "redis.queue.oldest_age_s"),
            *("redis.queue.wait_ms", "redis.queue.run_ms", "redis.queue.paused"),
        )
        return series_frame(engine, [1], names, EVERYTHING, "raw")
    finally:
        engine.dispose()


def nearest_rank(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# -- the figures, on real stored data ---------------------------------------------------------------
def test_hit_rate_per_bucket_and_over_the_window(stored, populated) -> None:
    now = populated["now"]
    per_bucket = redis_views.hit_rate(stored).set_index("ts")["value"]
    assert per_bucket.to_dict() == pytest.approx({now - 15: 80 / 100, now: 70 / 80})
    figures = redis_views.node_figures(stored)
    assert figures["hit_rate"] == pytest.approx(150 / 180)
    assert figures["lookups"] == 180
    assert figures["role"] == "primary" and figures["replicas"] == 0
    assert figures["samples"] == 3 and figures["ops_per_s"] > 0
    assert math.isnan(figures["used_pct"])  # no maxmemory on the throwaway server


def test_command_means_come_from_the_deltas(stored) -> None:
    table = redis_views.command_table(stored).set_index("command")
    calls = stored[(stored["name"] == "redis.cmd.calls") & (stored["labels"] == "cmd=get")]["sum"].sum()
    usec = stored[(stored["name"] == "redis.cmd.usec") & (stored["labels"] == "cmd=get")]["sum"].sum()
    assert table.loc["get", "calls"] == calls == 180
    assert table.loc["get", "mean_us"] == pytest.approx(usec / calls)
    assert table.index[0] == "eval"  # the slowest per call first
    assert table.loc["eval", "mean_us"] >= 10_000
    assert table["share"].sum() == pytest.approx(1.0)
    assert table.loc["get", "p99_us"] > 0  # latencystats (Redis 7)


def test_queue_summary_and_series(stored, populated) -> None:
    summary = redis_views.queue_summary(stored)
    assert summary[["queue", "lib"]].values.tolist() == [["email", "bullmq"]]
    row = summary.iloc[0]
    assert (row["waiting"], row["active"], row["delayed"]) == (WAITING, ACTIVE, DELAYED)
    assert (row["completed"], row["failed"]) == (COMPLETED, FAILED)
    assert row["failure_rate"] == pytest.approx(FAILED / (COMPLETED + FAILED))
    assert row["oldest_age_s"] == pytest.approx(120 - 1)  # job 1, as of the last cycle
    waits, runs = zip(*populated["times"], strict=True)
    assert row["wait_p95_ms"] == nearest_rank(list(waits), 0.95)  # one interval with completions
    assert row["run_p95_ms"] == nearest_rank(list(runs), 0.95)
    assert not row["paused"]
    depths = redis_views.queue_depths(stored, "bullmq", "email")
    assert set(depths["series"]) == {"wait", "active", "delayed"}  # states never used are left out
    assert not set(depths["series"]) & redis_views.FINISHED_STATES
    now = populated["now"]
    throughput = redis_views.queue_throughput(stored, "bullmq", "email")
    done = throughput[throughput["ts"] == now - 15].set_index("series")["value"]
    assert done.to_dict() == pytest.approx({"completed": COMPLETED * 60 / 15, "failed": FAILED * 60 / 15})
    failure = redis_views.queue_failure_rate(stored, "bullmq", "email").set_index("ts")["value"]
    assert failure[now - 15] == pytest.approx(100 * FAILED / (COMPLETED + FAILED))
    assert math.isnan(failure[now])  # nothing finished: a gap, not 0 %
    assert set(redis_views.queue_times(stored, "bullmq", "email")["series"]) == {
        "wait p50",
        "wait p95",
        "run p50",
        "run p95",
    }


# -- the page ---------------------------------------------------------------------------------------
def open_page(monkeypatch: pytest.MonkeyPatch, config_file: str | Path, page: str = REDIS) -> AppTest:
    monkeypatch.setenv("OBSERVATORY_CONFIG", str(config_file))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_empty_store_explains_how_to_add_redis(monkeypatch, tmp_path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    config_file = tmp_path / "observatory.yaml"
    config_file.write_text(f"store: sqlite:///{empty}\n")
    at = open_page(monkeypatch, config_file)
    message = texts(at.info)
    assert "No Redis target" in message and "targets:\n  redis:" in message
    assert not at.metric and not at.dataframe


def test_configured_but_never_collected(monkeypatch, tmp_path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    config_file = tmp_path / "observatory.yaml"
    config_file.write_text(
        f"store: sqlite:///{empty}\ntargets:\n  redis:\n    - name: cache-9\n      url: redis://127.0.0.1:1/0\n"
    )
    at = open_page(monkeypatch, config_file)
    assert "No Redis data yet" in texts(at.info)
    assert ui.md_escape("cache-9") in texts(at.markdown)  # its health card, the name escaped
    assert "never collected" in texts(at.markdown)


def test_page_shows_the_node(monkeypatch, populated) -> None:
    at = open_page(monkeypatch, populated["config"])
    metrics = {m.label: m for m in at.metric}
    assert metrics["Hit rate"].value == "83.33 %"
    assert metrics["Hit rate"].delta == "-6.7 pp vs 90 % target"
    assert metrics["Memory used"].delta == "no maxmemory"
    assert metrics["Replication role"].value == "primary"
    assert len(at.get("plotly_chart")) >= 5 + 4  # node charts, then the queue's
    tables = [d.value for d in at.dataframe]
    slow = next(t for t in tables if "duration_ms" in t.columns)
    assert slow["command"].iloc[0].startswith("EVAL ") and "5000000" in slow["command"].iloc[0]
    assert slow["duration_ms"].iloc[0] >= 10
    commands = next(t for t in tables if "mean_us" in t.columns)
    assert commands["command"].iloc[0] == "eval"
    queues = next(t for t in tables if "waiting" in t.columns)
    assert queues["queue"].tolist() == ["email"]
    assert queues["waiting"].tolist() == [WAITING]
    assert queues["failed"].tolist() == [FAILED]
    assert "Queues" in texts(at.subheader) and "Collector health" in texts(at.subheader)
    assert ui.md_escape(NODE) in texts(at.markdown)


def test_postgres_pages_on_a_redis_only_store(monkeypatch, populated) -> None:
    at = open_page(monkeypatch, populated["config"], OVERVIEW)
    assert at.multiselect[0].value == [NODE]  # the sidebar lists every kind
    assert "No data yet" in texts(at.info)  # no PostgreSQL target: the Overview says how to add one
    at.switch_page(REDIS).run()
    at.multiselect[0].unselect(NODE).run()
    assert not at.exception
    assert "no Redis target is selected" in texts(at.info)


def test_a_window_without_data(monkeypatch, populated) -> None:
    monkeypatch.setenv("OBSERVATORY_CONFIG", populated["config"])
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["window"] = "custom"
    at.query_params["range"] = ["2024-03-01", "2024-03-05"]
    at.run()
    at.switch_page(REDIS).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Nothing collected in this window." in texts(at.caption)
    assert not at.metric and not at.dataframe
