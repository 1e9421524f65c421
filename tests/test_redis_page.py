"""The Redis page through AppTest, and its figures (dashboard.analysis.redis) on real stored data.

The store is built the way the daemon builds it: a throwaway redis-server, real hits and misses, a
slow EVAL, BullMQ-shaped queues written with real commands, and three collector cycles.
"""

from __future__ import annotations

import math

import pytest

from dashboard.analysis import redis as redis_views
from dashboard.store.engine import make_engine
from dashboard.store.reads import Window, series_frame, target_statuses
from dashboard.ui import frame as ui
from tests.support.apptest import (
    charts,
    empty_store_config,
    no_exception,
    open_app,
    open_page,
    page_file,
    texts,
)
from tests.support.redis_node import ACTIVE, COMPLETED, DELAYED, FAILED, NODE, WAITING

EVERYTHING = Window(0, 4_000_000_000)


@pytest.fixture(scope="module")
def stored(redis_populated: dict):
    """The node's stored series (raw level), read as the analyses' Reader reads them (reads.series_frame)."""
    engine = make_engine(redis_populated["url"], readonly=True)
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
def test_hit_rate_per_bucket_and_over_the_window(stored, redis_populated) -> None:
    now = redis_populated["now"]
    per_bucket = redis_views.hit_rate(stored).set_index("ts")["value"]
    assert per_bucket.to_dict() == pytest.approx({now - 15: 80 / 100, now: 70 / 80})
    figures = redis_views.node_figures(stored)
    assert figures.hit_rate == pytest.approx(150 / 180)
    assert figures.lookups == 180
    assert figures.role == "primary" and figures.replicas == 0
    assert figures.samples == 3 and figures.ops_per_s > 0
    assert math.isnan(figures.used_pct)  # no maxmemory on the throwaway server


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


def test_queue_summary_and_series(stored, redis_populated) -> None:
    summary = redis_views.queue_summary(stored)
    assert summary[["queue", "lib"]].values.tolist() == [["email", "bullmq"]]
    row = summary.iloc[0]
    assert (row["waiting"], row["active"], row["delayed"]) == (WAITING, ACTIVE, DELAYED)
    assert (row["completed"], row["failed"]) == (COMPLETED, FAILED)
    assert row["failure_rate"] == pytest.approx(FAILED / (COMPLETED + FAILED))
    assert row["oldest_age_s"] == pytest.approx(120 - 1)  # job 1, as of the last cycle
    waits, runs = zip(*redis_populated["times"], strict=True)
    assert row["wait_p95_ms"] == nearest_rank(list(waits), 0.95)  # one interval with completions
    assert row["run_p95_ms"] == nearest_rank(list(runs), 0.95)
    assert not row["paused"]
    depths = redis_views.queue_depths(stored, "bullmq", "email")
    assert set(depths["series"]) == {"wait", "active", "delayed"}  # states never used are left out
    assert not set(depths["series"]) & redis_views.FINISHED_STATES
    now = redis_populated["now"]
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
def test_empty_store_explains_how_to_add_redis(monkeypatch, tmp_path) -> None:
    at = open_page(monkeypatch, empty_store_config(tmp_path), "redis")
    no_exception(at)
    message = texts(at.info)
    assert "No Redis target" in message and "targets:\n  redis:" in message
    assert not at.metric and not at.dataframe


def test_configured_but_never_collected(monkeypatch, tmp_path) -> None:
    config_file = empty_store_config(
        tmp_path, "targets:\n  redis:\n    - name: cache-9\n      url: redis://127.0.0.1:1/0\n"
    )
    at = open_page(monkeypatch, config_file, "redis")
    no_exception(at)
    assert "No Redis data yet" in texts(at.info)
    assert ui.md_escape("cache-9") in texts(at.markdown)  # its health card, the name escaped
    assert "never collected" in texts(at.markdown)


def test_page_shows_the_node(monkeypatch, redis_populated) -> None:
    at = open_page(monkeypatch, redis_populated["config"], "redis")
    no_exception(at)
    metrics = {m.label: m for m in at.metric}
    assert metrics["Hit rate"].value == "83.33 %"
    assert metrics["Hit rate"].delta == "-6.7 pp vs 90 % target"
    assert metrics["Memory used"].delta == "no maxmemory"
    assert metrics["Replication role"].value == "primary"
    titles = [c["title"] for c in charts(at)]
    assert titles[:5] == [
        "Hit rate",
        "Operations per second",
        "Memory",
        "Evictions and expirations",
        "Clients",
    ]
    assert "Jobs by state" not in titles  # a queue's charts are drawn once its expander is opened
    engine = make_engine(redis_populated["url"], readonly=True)
    try:
        (node_id,) = target_statuses(engine)["target_id"].tolist()
    finally:
        engine.dispose()
    at.session_state[f"queue:{node_id}:bullmq:email"] = True
    at.run()
    titles = [c["title"] for c in charts(at)]
    assert titles[5:] == [
        "Jobs by state",
        "Finished jobs",
        "Failure rate",
        "Oldest waiting job",
        "Wait and run time",
    ]
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


def test_postgres_pages_on_a_redis_only_store(monkeypatch, redis_populated) -> None:
    at = open_page(monkeypatch, redis_populated["config"], "overview")
    no_exception(at)
    assert at.button_group(key="targets").value == [NODE]  # the sidebar lists every kind
    assert "No data yet" in texts(at.info)  # no PostgreSQL target: the Overview says how to add one
    at.switch_page(page_file("redis")).run()
    at.button_group(key="targets").unselect(NODE).run()
    assert not at.exception
    assert "no Redis target is selected" in texts(at.info)


def test_a_window_without_data(monkeypatch, redis_populated) -> None:
    at = open_app(monkeypatch, redis_populated["config"], window="custom", range=["2024-03-01", "2024-03-05"])
    at.switch_page(page_file("redis")).run()
    no_exception(at)
    assert "Nothing collected in this window." in texts(at.caption)
    assert not at.metric and not at.dataframe
