"""Redis INFO (and CLUSTER INFO) read into points: which fields become which series, counters
diffed against the last reading, the replica lags, keyspace and latency percentiles.

The series and their labels are listed in ``collectors.redis.collector``'s docstring.
"""

from __future__ import annotations

from typing import Any

from collectors.deltas import counter_delta
from collectors.redis.batch import State
from dashboard.core import metrics
from dashboard.core.records import Point

INFO_GAUGES = {
    "used_memory": metrics.REDIS_MEMORY_USED_BYTES,
    "used_memory_rss": metrics.REDIS_MEMORY_RSS_BYTES,
    "used_memory_peak": "redis.memory.peak_bytes",
    "mem_fragmentation_ratio": metrics.REDIS_MEMORY_FRAGMENTATION_RATIO,
    "maxmemory": metrics.REDIS_MEMORY_MAX_BYTES,
    "connected_clients": metrics.REDIS_CLIENTS_CONNECTED,
    "blocked_clients": metrics.REDIS_CLIENTS_BLOCKED,
    "maxclients": "redis.clients.max",
    "rdb_last_save_time": "redis.persistence.rdb_last_save_time",
    "rdb_changes_since_last_save": "redis.persistence.rdb_changes_since_save",
    "aof_enabled": "redis.persistence.aof_enabled",
    "connected_slaves": metrics.REDIS_REPLICATION_CONNECTED_REPLICAS,
    "master_repl_offset": "redis.replication.offset",
}
INFO_COUNTERS = {
    "total_commands_processed": metrics.REDIS_OPS,
    "total_connections_received": "redis.clients.received",
    "rejected_connections": metrics.REDIS_CLIENTS_REJECTED,
    "keyspace_hits": metrics.REDIS_KEYSPACE_HITS,
    "keyspace_misses": metrics.REDIS_KEYSPACE_MISSES,
    "evicted_keys": metrics.REDIS_KEYS_EVICTED,
    "expired_keys": metrics.REDIS_KEYS_EXPIRED,
    "total_net_input_bytes": "redis.net.input_bytes",
    "total_net_output_bytes": "redis.net.output_bytes",
    "used_cpu_sys": "redis.cpu.sys_seconds",
    "used_cpu_user": "redis.cpu.user_seconds",
}
INFO_FLAGS = {  # status strings as 1/0
    "rdb_last_bgsave_status": ("redis.persistence.rdb_last_bgsave_ok", "ok"),
    "aof_last_write_status": ("redis.persistence.aof_last_write_ok", "ok"),
    "master_link_status": (metrics.REDIS_REPLICATION_LINK_UP, "up"),
}
# The series the collector's own queue reads count in (their tally: RedisDetails.own_hits, own_misses).
OWN_HITS, OWN_MISSES = metrics.REDIS_KEYSPACE_HITS, metrics.REDIS_KEYSPACE_MISSES
CMD_COUNTERS = ("calls", "usec", "rejected_calls", "failed_calls")
CMD_QUANTILES = ("p50", "p99")
CLUSTER_GAUGES = {
    "cluster_slots_assigned": "redis.cluster.slots_assigned",
    "cluster_slots_ok": "redis.cluster.slots_ok",
    "cluster_slots_pfail": "redis.cluster.slots_pfail",
    "cluster_slots_fail": "redis.cluster.slots_fail",
    "cluster_known_nodes": "redis.cluster.known_nodes",
    "cluster_size": "redis.cluster.size",
}


# -- gauges -----------------------------------------------------------------------------------------
def info_gauges(info: dict[str, Any]) -> list[Point]:
    """Memory, clients, persistence and replication gauges, the replica lags, keyspace and latency."""
    points = [Point(name, float(info[key])) for key, name in INFO_GAUGES.items() if _is_number(info.get(key))]
    used, maxmemory = info.get("used_memory"), info.get("maxmemory")
    if _is_number(used) and _is_number(maxmemory) and maxmemory > 0:
        points.append(Point("redis.memory.used_pct", 100.0 * used / maxmemory))
    points += [
        Point(name, float(str(info[key]) == good)) for key, (name, good) in INFO_FLAGS.items() if key in info
    ]
    return points + _replica_lags(info) + _keyspace(info) + _latency_stats(info)


def _replica_lags(info: dict[str, Any]) -> list[Point]:
    """On a primary: bytes each replica is behind (slave0:ip=..,port=..,offset=..)."""
    offset, points = info.get("master_repl_offset"), []
    for n, replica in _sections(info, "slave"):
        if (
            n.isdigit()
            and isinstance(replica, dict)
            and _is_number(offset)
            and _is_number(replica.get("offset"))
        ):
            labels = metrics.encode({"replica": f"{replica.get('ip')}:{replica.get('port')}"})
            lag = float(offset - replica["offset"])
            points.append(Point(metrics.REDIS_REPLICATION_LAG_BYTES, lag, "gauge", labels))
    return points


def _keyspace(info: dict[str, Any]) -> list[Point]:
    points = []
    for db, stats in _sections(info, "db"):
        if db.isdigit() and isinstance(stats, dict):
            keys = [k for k in ("keys", "expires") if k in stats]
            points += [
                Point(f"redis.db.{k}", float(stats[k]), "gauge", metrics.encode({"db": db})) for k in keys
            ]
    return points


def _latency_stats(info: dict[str, Any]) -> list[Point]:
    points = []
    for cmd, quantiles in _sections(info, "latency_percentiles_usec_"):
        if isinstance(quantiles, dict):
            points += [
                Point(
                    metrics.REDIS_CMD_LATENCY_US,
                    float(quantiles[q]),
                    "gauge",
                    metrics.encode({"cmd": cmd, "quantile": q}),
                )
                for q in CMD_QUANTILES
                if q in quantiles
            ]
    return points


def _sections(info: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    """INFO fields named prefix + suffix (cmdstat_get, db0, slave0) as (suffix, value)."""
    return [(k.removeprefix(prefix), v) for k, v in info.items() if k.startswith(prefix)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- counters ---------------------------------------------------------------------------------------
def info_counters(
    info: dict[str, Any], state: State, restarted: bool, known: bool, own: dict[str, float]
) -> list[Point]:
    """INFO's counters and the per-command ones (cmdstat_*). `known`: the server was read before,
    so a series new since then starts from zero; `own`: the collector's own lookups per series."""
    points = [
        counter_point(state, name, "", info[key], restarted, known, own.get(name, 0.0))
        for key, name in INFO_COUNTERS.items()
        if key in info
    ]
    for cmd, stats in _sections(info, "cmdstat_"):
        for counter in CMD_COUNTERS:
            if counter in stats:
                name, labels = metrics.REDIS_CMD + counter, metrics.encode({"cmd": cmd})
                points.append(counter_point(state, name, labels, stats[counter], restarted, known))
    return points


def counter_point(
    state: State, name: str, labels: str, value: Any, reset: bool, known: bool, own: float = 0.0
) -> Point:
    """A counter and its delta since the last reading, less `own` (the collector's lookups)."""
    key = (name, labels)
    current = float(value)
    previous = state.counters.get(key, 0.0 if known else None)
    delta = counter_delta(previous, current, reset=reset)
    if delta is not None and own and not reset and previous is not None and current >= previous:
        delta = max(0.0, delta - own)  # the collector's own lookups are not the workload
    state.counters[key] = current
    return Point(name, current, "counter", labels, delta)


def cluster_points(raw: Any) -> list[Point]:
    """CLUSTER INFO's reply as gauges."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    points = [Point("redis.cluster.state_ok", float(fields.get("cluster_state", "").strip() == "ok"))]
    points += [Point(n, float(fields[k])) for k, n in CLUSTER_GAUGES.items() if k in fields]
    return points
