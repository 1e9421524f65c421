"""What the Redis page reads for a node: its series, and the figures dashboard.analysis.redis makes
of them (metrics row, commandstats table, job queues), plus the slow log."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dashboard.analysis import redis as redis_views
from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.store import reads
from dashboard.store.reads import Window

NODE_SERIES = (
    "redis.keyspace.hits",
    "redis.keyspace.misses",
    "redis.ops",
    "redis.memory.used_bytes",
    "redis.memory.rss_bytes",
    "redis.memory.max_bytes",
    "redis.memory.fragmentation_ratio",
    "redis.keys.evicted",
    "redis.keys.expired",
    "redis.clients.connected",
    "redis.clients.blocked",
    "redis.clients.rejected",
    "redis.replication.connected_replicas",
    "redis.replication.lag_bytes",
    "redis.replication.link_up",
)
COMMAND_SERIES = (*redis_views.COMMAND_COUNTERS, "redis.cmd.latency_us")
QUEUE_SERIES = (
    "redis.queue.depth",
    "redis.queue.completed",
    "redis.queue.failed",
    "redis.queue.oldest_age_s",
    "redis.queue.wait_ms",
    "redis.queue.run_ms",
    "redis.queue.paused",
)
SLOWLOG_COLUMNS = ["target", "ts", "duration_us", "command", "client"]


def node_series(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """The node's cache, memory, client and replication series at chart resolution."""
    return reader.series([target], NODE_SERIES, window)


def node_figures(reader: Reader, target: Target, window: Window) -> redis_views.NodeFigures:
    """The node's metrics row over the window (redis_views.node_figures)."""
    return redis_views.node_figures(node_series(reader, target, window))


def commands(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """commandstats over the window per command (redis_views.command_table), slowest per call first."""
    level = reader.level(window, reads.TOTALS_BUCKETS)
    return redis_views.command_table(reader.series([target], COMMAND_SERIES, window, level))


def queue_series(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """The node's job-queue series at chart resolution (empty when it has no queues configured)."""
    return reader.series([target], QUEUE_SERIES, window)


def queue_summary(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """One row per queue (redis_views.queue_summary)."""
    return redis_views.queue_summary(queue_series(reader, target, window))


def slowlog(reader: Reader, targets: Sequence[Target], window: Window, limit: int = 200) -> pd.DataFrame:
    """Slow-log entries in the window, slowest first: target, ts, duration_us, command, client."""
    if not targets:
        return pd.DataFrame(columns=SLOWLOG_COLUMNS)
    return reader.store.slowlog(tuple(sorted(t.id for t in targets)), window, limit)


def hit_rate_line(reader: Reader, target: Target, window: Window, label: str) -> pd.DataFrame:
    """A node's keyspace hit rate per bucket in % (for the Services overlay)."""
    long = redis_views.hit_rate(node_series(reader, target, window))
    return long.assign(series=label, value=long["value"] * 100)
