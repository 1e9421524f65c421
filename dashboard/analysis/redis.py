"""The Redis page's figures, computed from stored series: pure pandas, no Streamlit, no store.

Frames in are `series_frame` frames of one node (ts, name, labels, sum, count, width): a counter's
`sum` is its activity in the bucket (its rate is `rates.rate(sum, width)`), a gauge's mean is
sum / count. Labels are the collector's "k=v,..." strings (dashboard.core.metrics). Frames out are
either summaries or "long" frames (ts, series, value) that dashboard.ui.charts draws. What the page
reads for a node is in dashboard.analysis.redis_reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import pandas as pd

from dashboard.core import metrics
from dashboard.store.rates import rate

MIB = 2**20
# Sets that keep finished jobs (BullMQ removeOnComplete/removeOnFail, RQ registries until they
# expire): history, not work. Left out of the depth charts, where they would dwarf the queue.
FINISHED_STATES = frozenset({"completed", "failed", "finished"})
# Which depth states count as waiting, running and delayed, per queue library.
WAITING = {"bullmq": ("wait", "paused", "prioritized"), "rq": ("queued",), "celery": ("queued",)}
ACTIVE = {"bullmq": ("active",), "rq": ("started",)}
DELAYED = {"bullmq": ("delayed",), "rq": ("scheduled",)}
STATE_ORDER = ("wait", "queued", "prioritized", "paused", "active", "started", "delayed", "scheduled",
               "waiting-children", "deferred")  # fmt: skip
LONG_COLUMNS = ["ts", "series", "value"]
COMMAND_COUNTERS = (metrics.REDIS_CMD_CALLS, metrics.REDIS_CMD_USEC, metrics.REDIS_CMD_FAILED_CALLS,
                    metrics.REDIS_CMD_REJECTED_CALLS)  # fmt: skip


def _named(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame[frame["name"] == name]


def _mean(points: pd.DataFrame) -> pd.Series:
    return points["sum"] / points["count"].where(points["count"] > 0)


def _empty_long() -> pd.DataFrame:
    return pd.DataFrame(columns=LONG_COLUMNS)


def total(frame: pd.DataFrame, name: str) -> float:
    """A counter's activity over the whole frame (all labels); NaN when the series is absent."""
    points = _named(frame, name)
    return float(points["sum"].sum()) if len(points) else math.nan


def latest(frame: pd.DataFrame, name: str) -> float:
    """A gauge's value in the frame's last bucket (summed over labels); NaN when absent."""
    points = _named(frame, name)
    if points.empty:
        return math.nan
    last = points[points["ts"] == points["ts"].max()]
    return float(_mean(last).sum())


def latest_by_label(frame: pd.DataFrame, name: str, key: str) -> dict[str, float]:
    """A labelled gauge's values in its last bucket, by the value of label `key`."""
    points = _named(frame, name)
    if points.empty:
        return {}
    last = points[points["ts"] == points["ts"].max()]
    return {
        metrics.decode(lb).get(key, lb): float(v) for lb, v in zip(last["labels"], _mean(last), strict=True)
    }


def covered_seconds(frame: pd.DataFrame, name: str = metrics.REDIS_OPS) -> float:
    """The time the collector's readings of a counter cover (the sum of the buckets' widths)."""
    points = _named(frame, name)
    return float(points.groupby("ts")["width"].max().sum()) if len(points) else 0.0


# -- time series (long frames for the charts) ----------------------------------------------------------
def hit_rate(frame: pd.DataFrame) -> pd.DataFrame:
    """Δhits / (Δhits + Δmisses) per bucket, 0..1; buckets without a lookup are left out."""
    wide = _per_bucket(frame, [metrics.REDIS_KEYSPACE_HITS, metrics.REDIS_KEYSPACE_MISSES])
    lookups = wide[metrics.REDIS_KEYSPACE_HITS] + wide[metrics.REDIS_KEYSPACE_MISSES]
    value = wide[metrics.REDIS_KEYSPACE_HITS] / lookups.where(lookups > 0)
    out = pd.DataFrame({"ts": wide.index, "series": "hit rate", "value": value.to_numpy()})
    return out.dropna(subset=["value"]).reset_index(drop=True)


def rates(frame: pd.DataFrame, names: Mapping[str, str], per: float = 1.0) -> pd.DataFrame:
    """Counters (labels summed) as rates per `per` seconds; `names` maps series name -> line label."""
    parts = []
    for name, label in names.items():
        points = _named(frame, name)
        if points.empty:
            continue
        bucket = points.groupby("ts").agg(sum=("sum", "sum"), width=("width", "max"))
        parts.append(
            pd.DataFrame(
                {"ts": bucket.index, "series": label, "value": rate(bucket["sum"], bucket["width"], per)}
            )
        )
    return _concat(parts)


def gauges(frame: pd.DataFrame, names: Mapping[str, str], scale: float = 1.0) -> pd.DataFrame:
    """Gauges (labels summed) as their mean per bucket times `scale`, one line per name."""
    parts = []
    for name, label in names.items():
        points = _named(frame, name)
        if points.empty:
            continue
        value = points.assign(value=_mean(points)).groupby("ts")["value"].sum() * scale
        parts.append(pd.DataFrame({"ts": value.index, "series": label, "value": value.to_numpy()}))
    return _concat(parts)


def by_label(frame: pd.DataFrame, name: str, key: str, scale: float = 1.0) -> pd.DataFrame:
    """A labelled gauge, one line per value of label `key` (replication lag per replica)."""
    points = _named(frame, name)
    if points.empty:
        return _empty_long()
    series = points["labels"].map(lambda lb: metrics.decode(lb).get(key, lb))
    out = pd.DataFrame({"ts": points["ts"], "series": series, "value": _mean(points) * scale})
    return out.reset_index(drop=True)


def memory(frame: pd.DataFrame) -> pd.DataFrame:
    """Used memory, RSS and maxmemory (when set) in MiB."""
    names = {metrics.REDIS_MEMORY_USED_BYTES: "used", metrics.REDIS_MEMORY_RSS_BYTES: "RSS"}
    if latest(frame, metrics.REDIS_MEMORY_MAX_BYTES) > 0:
        names[metrics.REDIS_MEMORY_MAX_BYTES] = "maxmemory"
    return gauges(frame, names, 1 / MIB)


def clients(frame: pd.DataFrame) -> pd.DataFrame:
    """Connected and blocked clients (mean per bucket) and rejected connections per second."""
    names = {metrics.REDIS_CLIENTS_CONNECTED: "connected", metrics.REDIS_CLIENTS_BLOCKED: "blocked"}
    connected = gauges(frame, names)
    rejected = rates(frame, {metrics.REDIS_CLIENTS_REJECTED: "rejected/s"})
    return _concat([connected, rejected])


def _per_bucket(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    picked = frame[frame["name"].isin(names)]
    wide = picked.pivot_table(index="ts", columns="name", values="sum", aggfunc="sum")
    return wide.reindex(columns=names).fillna(0.0)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else _empty_long()


# -- the node's figures over the window -----------------------------------------------------------------
class NodeFigures(NamedTuple):
    """What the metrics row shows: totals over the window for counters, the last reading for gauges
    (NaN when a series is absent). hit_rate and used_pct are ratios (0..1, NaN when unknown)."""

    samples: int  # buckets read
    seconds: float  # the time the readings cover
    hit_rate: float
    lookups: float  # hits + misses
    ops_per_s: float
    used_bytes: float
    rss_bytes: float
    max_bytes: float
    used_pct: float
    fragmentation: float
    evicted: float
    expired: float
    connected: float
    blocked: float
    rejected: float
    role: str | None  # "primary" (it reports replicas), "replica" (it reports its link) or None
    replicas: float
    link_up: float
    lag_bytes: float  # the largest lag of the primary's replicas


def node_figures(frame: pd.DataFrame) -> NodeFigures:
    """The node's metrics row over the frame's window."""
    hits, misses = total(frame, metrics.REDIS_KEYSPACE_HITS), total(frame, metrics.REDIS_KEYSPACE_MISSES)
    lookups = (0.0 if math.isnan(hits) else hits) + (0.0 if math.isnan(misses) else misses)
    seconds = covered_seconds(frame)
    ops = total(frame, metrics.REDIS_OPS)
    used = latest(frame, metrics.REDIS_MEMORY_USED_BYTES)
    maxmemory = latest(frame, metrics.REDIS_MEMORY_MAX_BYTES)
    lags = latest_by_label(frame, metrics.REDIS_REPLICATION_LAG_BYTES, "replica")
    link = latest(frame, metrics.REDIS_REPLICATION_LINK_UP)
    replicas = latest(frame, metrics.REDIS_REPLICATION_CONNECTED_REPLICAS)
    role = "replica" if not math.isnan(link) else ("primary" if not math.isnan(replicas) else None)
    return NodeFigures(
        samples=int(frame["ts"].nunique()) if len(frame) else 0,
        seconds=seconds,
        hit_rate=hits / lookups if lookups > 0 else math.nan,
        lookups=lookups,
        ops_per_s=rate(ops, seconds),
        used_bytes=used,
        rss_bytes=latest(frame, metrics.REDIS_MEMORY_RSS_BYTES),
        max_bytes=maxmemory,
        used_pct=used / maxmemory if maxmemory > 0 else math.nan,
        fragmentation=latest(frame, metrics.REDIS_MEMORY_FRAGMENTATION_RATIO),
        evicted=total(frame, metrics.REDIS_KEYS_EVICTED),
        expired=total(frame, metrics.REDIS_KEYS_EXPIRED),
        connected=latest(frame, metrics.REDIS_CLIENTS_CONNECTED),
        blocked=latest(frame, metrics.REDIS_CLIENTS_BLOCKED),
        rejected=total(frame, metrics.REDIS_CLIENTS_REJECTED),
        role=role,
        replicas=replicas,
        link_up=link,
        lag_bytes=max(lags.values()) if lags else math.nan,
    )


# -- commandstats ---------------------------------------------------------------------------------------
def command_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per command over the window: calls, usec, mean_us (Δusec / Δcalls), share of the time of
    all commands, failed and rejected calls, and p50_us / p99_us (latencystats: since the server
    started, the last reading). Commands that ran in the window only; the slowest per call first."""
    columns = ["command", "calls", "usec", "mean_us", "share", "failed", "rejected", "p50_us", "p99_us"]
    counters = frame[frame["name"].isin(COMMAND_COUNTERS)]
    if counters.empty:
        return pd.DataFrame(columns=columns)
    counters = counters.assign(command=counters["labels"].map(lambda lb: metrics.decode(lb).get("cmd", lb)))
    sums = counters.pivot_table(index="command", columns="name", values="sum", aggfunc="sum")
    sums = sums.reindex(columns=list(COMMAND_COUNTERS)).fillna(0.0)
    out = pd.DataFrame(
        {
            "calls": sums[metrics.REDIS_CMD_CALLS],
            "usec": sums[metrics.REDIS_CMD_USEC],
            "failed": sums[metrics.REDIS_CMD_FAILED_CALLS],
            "rejected": sums[metrics.REDIS_CMD_REJECTED_CALLS],
        }
    )
    out = out[out["calls"] > 0]
    out["mean_us"] = out["usec"] / out["calls"]
    grand = out["usec"].sum()
    out["share"] = out["usec"] / grand if grand > 0 else 0.0
    quantiles = _named(frame, metrics.REDIS_CMD_LATENCY_US)
    if len(quantiles):
        last = quantiles.sort_values("ts").groupby("labels").tail(1)
        parsed = last["labels"].map(metrics.decode)
        q = pd.DataFrame(
            {
                "command": parsed.map(lambda d: d.get("cmd")),
                "quantile": parsed.map(lambda d: d.get("quantile")),
                "value": _mean(last),
            }
        )
        wide = q.pivot_table(index="command", columns="quantile", values="value", aggfunc="last")
        out["p50_us"] = wide["p50"].reindex(out.index) if "p50" in wide else math.nan
        out["p99_us"] = wide["p99"].reindex(out.index) if "p99" in wide else math.nan
    else:
        out["p50_us"] = out["p99_us"] = math.nan
    out = out.reset_index().rename(columns={"index": "command"})
    return out.sort_values(["mean_us", "calls"], ascending=False)[columns].reset_index(drop=True)


# -- job queues -----------------------------------------------------------------------------------------
def queue_points(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's queue points with their lib, queue, state and quantile labels as columns. The
    queue functions below take either the stored frame or this one: a page that draws several
    queues parses the labels once (the Redis page spent 0.1 s doing it a dozen times)."""
    if "lib" in frame.columns:
        return frame
    points = frame[frame["name"].str.startswith(metrics.REDIS_QUEUE)]
    # Each label set decoded once, then looked up per point: a page calls this a dozen times.
    parsed = {lb: metrics.decode(lb) for lb in points["labels"].unique()}
    labels = points["labels"]
    return points.assign(
        **{
            key: labels.map({lb: d.get(key, default) for lb, d in parsed.items()})
            for key, default in (("lib", ""), ("queue", ""), ("state", None), ("quantile", None))
        }
    )


def queues(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(lib, queue) of every queue with points in the frame, by library then name."""
    points = queue_points(frame)
    points = points[points["queue"] != ""]
    return sorted(set(zip(points["lib"], points["queue"], strict=True)))


def _one_queue(frame: pd.DataFrame, lib: str, queue: str) -> pd.DataFrame:
    points = queue_points(frame)
    return points[(points["lib"] == lib) & (points["queue"] == queue)]


def queue_depths(frame: pd.DataFrame, lib: str, queue: str) -> pd.DataFrame:
    """Jobs per state over time (mean per bucket); series = state. Finished-job sets are left out,
    and so are states that stayed empty all window (unless every state did)."""
    points = _one_queue(frame, lib, queue)
    points = points[(points["name"] == metrics.REDIS_QUEUE_DEPTH) & ~points["state"].isin(FINISHED_STATES)]
    if points.empty:
        return _empty_long()
    used = points.groupby("state")["max"].max() > 0
    if used.any():
        points = points[points["state"].map(used)]
    out = pd.DataFrame({"ts": points["ts"], "series": points["state"], "value": _mean(points)})
    rank = out["series"].map({s: i for i, s in enumerate(STATE_ORDER)}).fillna(len(STATE_ORDER))
    return (
        out.assign(rank=rank)
        .sort_values(["rank", "series", "ts"])
        .drop(columns="rank")
        .reset_index(drop=True)
    )


def queue_throughput(frame: pd.DataFrame, lib: str, queue: str) -> pd.DataFrame:
    """Completed and failed jobs per minute."""
    points = _one_queue(frame, lib, queue)
    names = {metrics.REDIS_QUEUE_COMPLETED: "completed", metrics.REDIS_QUEUE_FAILED: "failed"}
    return rates(points, names, per=60.0)


def queue_failure_rate(frame: pd.DataFrame, lib: str, queue: str) -> pd.DataFrame:
    """failed / (completed + failed) per bucket, in %; NaN (a gap) where nothing finished."""
    points = _one_queue(frame, lib, queue)
    wide = _per_bucket(points, [metrics.REDIS_QUEUE_COMPLETED, metrics.REDIS_QUEUE_FAILED])
    done = wide[metrics.REDIS_QUEUE_COMPLETED] + wide[metrics.REDIS_QUEUE_FAILED]
    value = wide[metrics.REDIS_QUEUE_FAILED] / done.where(done > 0) * 100
    return pd.DataFrame({"ts": wide.index, "series": "failure rate", "value": value.to_numpy()})


def queue_age(frame: pd.DataFrame, lib: str, queue: str) -> pd.DataFrame:
    """The oldest waiting job's age in seconds."""
    return gauges(_one_queue(frame, lib, queue), {metrics.REDIS_QUEUE_OLDEST_AGE_S: "oldest waiting job"})


def queue_times(frame: pd.DataFrame, lib: str, queue: str) -> pd.DataFrame:
    """Wait and run time quantiles of the jobs completed in each interval (ms): wait p50, wait p95,
    run p50, run p95, NaN (a gap) in the queue's cycles without completions (BullMQ only: other
    libraries record no job times)."""
    points = _one_queue(frame, lib, queue)
    grid = pd.Index(sorted(set(points["ts"])), name="ts")  # the queue's cycles: gaps where none finished
    parts = []
    for name, what in ((metrics.REDIS_QUEUE_WAIT_MS, "wait"), (metrics.REDIS_QUEUE_RUN_MS, "run")):
        for quantile in ("p50", "p95"):
            picked = points[(points["name"] == name) & (points["quantile"] == quantile)]
            if len(picked):
                value = _mean(picked).groupby(picked["ts"]).mean().reindex(grid)
                parts.append(
                    pd.DataFrame({"ts": grid, "series": f"{what} {quantile}", "value": value.to_numpy()})
                )
    return _concat(parts)


def _weighted_time(points: pd.DataFrame, name: str, completed: pd.Series) -> float:
    """The window's figure for a per-interval quantile: the intervals' values weighted by the jobs
    completed in them (an interval's quantile speaks for that many jobs)."""
    picked = points[(points["name"] == name) & (points["quantile"] == "p95")]
    if picked.empty:
        return math.nan
    values = _mean(picked).groupby(picked["ts"]).mean()
    weights = completed.reindex(values.index).fillna(0.0)
    if weights.sum() <= 0:
        return float(values.mean())
    return float((values * weights).sum() / weights.sum())


def _states(by_state: Mapping[str, float], names: tuple[str, ...]) -> float:
    """The jobs in these states; NaN when the library has none of them."""
    found = [by_state[s] for s in names if s in by_state]
    return float(sum(found)) if found else math.nan


def queue_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per queue: queue, lib, waiting, active, delayed (the last reading), completed and
    failed in the window, failure_rate (failed / finished, 0..1), oldest_age_s (last reading),
    wait_p95_ms and run_p95_ms (the window's per-interval p95s weighted by completions), paused.

    waiting = BullMQ wait + paused + prioritized lists (jobs a worker could take), RQ and Celery
    queued; active = BullMQ active, RQ started; delayed = BullMQ delayed, RQ scheduled. A state the
    library does not have is NaN."""
    columns = ["queue", "lib", "waiting", "active", "delayed", "completed", "failed", "failure_rate",
               "oldest_age_s", "wait_p95_ms", "run_p95_ms", "paused"]  # fmt: skip
    rows = []
    frame = queue_points(frame)
    for lib, queue in queues(frame):
        points = _one_queue(frame, lib, queue)
        depth = points[points["name"] == metrics.REDIS_QUEUE_DEPTH]
        last = depth[depth["ts"] == depth["ts"].max()] if len(depth) else depth
        by_state = dict(zip(last["state"], _mean(last), strict=True))
        completed = total(points, metrics.REDIS_QUEUE_COMPLETED)
        failed = total(points, metrics.REDIS_QUEUE_FAILED)
        finished = (0.0 if math.isnan(completed) else completed) + (0.0 if math.isnan(failed) else failed)
        per_interval = _named(points, metrics.REDIS_QUEUE_COMPLETED).groupby("ts")["sum"].sum()
        rows.append(
            {
                "queue": queue,
                "lib": lib,
                "waiting": _states(by_state, WAITING.get(lib, ())),
                "active": _states(by_state, ACTIVE.get(lib, ())),
                "delayed": _states(by_state, DELAYED.get(lib, ())),
                "completed": completed,
                "failed": failed,
                "failure_rate": (0.0 if math.isnan(failed) else failed) / finished
                if finished > 0
                else math.nan,
                "oldest_age_s": latest(points, metrics.REDIS_QUEUE_OLDEST_AGE_S),
                "wait_p95_ms": _weighted_time(points, metrics.REDIS_QUEUE_WAIT_MS, per_interval),
                "run_p95_ms": _weighted_time(points, metrics.REDIS_QUEUE_RUN_MS, per_interval),
                "paused": latest(points, metrics.REDIS_QUEUE_PAUSED) > 0,
            }
        )
    return pd.DataFrame(rows, columns=columns)
