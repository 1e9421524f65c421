"""What the Redis page reads for a node: its series, and the figures dashboard.analysis.redis makes
of them (metrics row, commandstats table, job queues), plus the slow log."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dashboard.analysis import redis
from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core import metrics
from dashboard.store import reads
from dashboard.store.reads import Window

NODE_SERIES = (
    metrics.REDIS_KEYSPACE_HITS,
    metrics.REDIS_KEYSPACE_MISSES,
    metrics.REDIS_OPS,
    metrics.REDIS_MEMORY_USED_BYTES,
    metrics.REDIS_MEMORY_RSS_BYTES,
    metrics.REDIS_MEMORY_MAX_BYTES,
    metrics.REDIS_MEMORY_FRAGMENTATION_RATIO,
    metrics.REDIS_KEYS_EVICTED,
    metrics.REDIS_KEYS_EXPIRED,
    metrics.REDIS_CLIENTS_CONNECTED,
    metrics.REDIS_CLIENTS_BLOCKED,
    metrics.REDIS_CLIENTS_REJECTED,
    metrics.REDIS_REPLICATION_CONNECTED_REPLICAS,
    metrics.REDIS_REPLICATION_LAG_BYTES,
    metrics.REDIS_REPLICATION_LINK_UP,
)
COMMAND_SERIES = (*redis.COMMAND_COUNTERS, metrics.REDIS_CMD_LATENCY_US)
QUEUE_SERIES = (
    metrics.REDIS_QUEUE_DEPTH,
    metrics.REDIS_QUEUE_COMPLETED,
    metrics.REDIS_QUEUE_FAILED,
    metrics.REDIS_QUEUE_OLDEST_AGE_S,
    metrics.REDIS_QUEUE_WAIT_MS,
    metrics.REDIS_QUEUE_RUN_MS,
    metrics.REDIS_QUEUE_PAUSED,
)
SLOWLOG_COLUMNS = ["target", "ts", "duration_us", "command", "client"]


def node_series(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """The node's cache, memory, client and replication series at chart resolution."""
    return reader.series([target], NODE_SERIES, window)


def node_figures(reader: Reader, target: Target, window: Window) -> redis.NodeFigures:
    """The node's metrics row over the window (redis.node_figures)."""
    return redis.node_figures(node_series(reader, target, window))


def commands(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """commandstats over the window per command (redis.command_table), slowest per call first."""
    level = reader.level(window, reads.TOTALS_BUCKETS)
    return redis.command_table(reader.series([target], COMMAND_SERIES, window, level))


def queue_series(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """The node's job-queue series at chart resolution (empty when it has no queues configured)."""
    return reader.series([target], QUEUE_SERIES, window)


def queue_summary(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """One row per queue (redis.queue_summary)."""
    return redis.queue_summary(queue_series(reader, target, window))


def slowlog(reader: Reader, targets: Sequence[Target], window: Window, limit: int = 200) -> pd.DataFrame:
    """Slow-log entries in the window, slowest first: target, ts, duration_us, command, client."""
    if not targets:
        return pd.DataFrame(columns=SLOWLOG_COLUMNS)
    return reader.store.slowlog(tuple(sorted(t.id for t in targets)), window, limit)


def hit_rate_line(reader: Reader, target: Target, window: Window, label: str) -> pd.DataFrame:
    """A node's keyspace hit rate per bucket in % (for the Services overlay)."""
    long = redis.hit_rate(node_series(reader, target, window))
    return long.assign(series=label, value=long["value"] * 100)
