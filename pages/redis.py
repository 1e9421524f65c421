"""Redis: per node, the cache hit rate against its target, throughput, memory, clients and
replication; the slowest commands, the slow log and the job queues; collector health last."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard.analysis import objectives, redis, redis_reads
from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core import metrics
from dashboard.ui import cached, charts, page_frame, plots
from dashboard.ui import frame as ui

CONFIGURE = """```yaml
targets:
  redis:
    - name: cache-1
      url: redis://127.0.0.1:6379/0   # rediss:// for TLS; password_env: NAME keeps the password out
      interval: 15s
      queues: {bullmq: [email, reports], rq: [default], celery: [celery]}   # optional
```"""
NO_REDIS = f"""**No Redis target.** Name the Redis nodes to watch under `targets.redis` in
`observatory.yaml` (or the file `$OBSERVATORY_CONFIG` names), one entry per node, with the job
queues each one holds:
{CONFIGURE}
Then run `observatory collect` (or `observatory up` for the collector and this app together)."""
NO_REDIS_DATA = """**No Redis data yet.** Run `observatory collect` (or `observatory up`) to collect the
Redis targets of the configuration. Data shows here after the second collection cycle (counters are
differences between two cycles)."""
TARGET = objectives.CACHE_HIT_RATE

COMMAND_COLUMNS = {
    "command": st.column_config.TextColumn("command", width="small"),
    "calls": st.column_config.NumberColumn("calls", format="%d"),
    "mean_us": st.column_config.NumberColumn("mean per call", format="%.1f µs", help="Δusec / Δcalls"),
    "share": st.column_config.ProgressColumn(
        "share of time", min_value=0.0, max_value=1.0, format="percent", width="small"
    ),
    "total_ms": st.column_config.NumberColumn("total time", format="%.2f ms"),
    "failed": st.column_config.NumberColumn("failed", format="%d", help="calls that returned an error"),
    "rejected": st.column_config.NumberColumn(
        "rejected", format="%d", help="calls refused before running (ACL, OOM, wrong arity ...)"
    ),
    "p50_us": st.column_config.NumberColumn(
        "p50", format="%.1f µs", help="latencystats (Redis 7+): since the server started"
    ),
    "p99_us": st.column_config.NumberColumn(
        "p99", format="%.1f µs", help="latencystats (Redis 7+): since the server started"
    ),
}
SLOWLOG_COLUMNS = {
    "time": st.column_config.DatetimeColumn("time", format="YYYY-MM-DD HH:mm:ss", timezone="UTC"),
    "duration_ms": st.column_config.NumberColumn("duration", format="%.2f ms", width="small"),
    "command": st.column_config.TextColumn("command", width="large"),
    "client": st.column_config.TextColumn("client"),
}
QUEUE_COLUMNS = {
    "queue": st.column_config.TextColumn("queue"),
    "lib": st.column_config.TextColumn("library", width="small"),
    "waiting": st.column_config.NumberColumn(
        "waiting", format="%d", help="BullMQ wait + paused + prioritized; RQ and Celery queued (now)"
    ),
    "active": st.column_config.NumberColumn("active", format="%d", help="being processed (now)"),
    "delayed": st.column_config.NumberColumn("delayed", format="%d", help="BullMQ delayed, RQ scheduled"),
    "completed": st.column_config.NumberColumn("completed", format="%d", help="in the window"),
    "failed": st.column_config.NumberColumn("failed", format="%d", help="in the window"),
    "failure_rate": st.column_config.NumberColumn("failure rate", format="percent"),
    "oldest_age_s": st.column_config.NumberColumn(
        "oldest waiting", format="%.0f s", help="age of the oldest job"
    ),
    "wait_p95_ms": st.column_config.NumberColumn(
        "wait p95",
        format="%.0f ms",
        help="job created to last start (BullMQ, jobs completed in the window): delays and backoff count",
    ),
    "run_p95_ms": st.column_config.NumberColumn(
        "run p95", format="%.0f ms", help="start to finish, jobs completed in the window (BullMQ)"
    ),
}


def known(value: object) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def figures(f: redis.NodeFigures) -> None:
    """The metrics row: cache, throughput and memory, then evictions, clients and replication."""
    cols = st.columns(4)
    rate = f.hit_rate
    if known(rate):
        cols[0].metric(
            "Hit rate",
            ui.fmt_pct(rate),
            f"{(rate - TARGET) * 100:+.1f} pp vs {TARGET * 100:.0f} % target",
            help="keyspace hits / (hits + misses) of the window; the collector's own reads are left out",
            border=True,
        )
    else:
        cols[0].metric("Hit rate", "–", help="no key was looked up in this window", border=True)
    cols[1].metric("Operations per second", ui.fmt_count(f.ops_per_s, 1), border=True)
    if known(f.max_bytes) and f.max_bytes > 0:
        memory_note = f"{f.used_pct:.1%} of {ui.fmt_bytes(f.max_bytes)} maxmemory"
    else:
        memory_note = "no maxmemory"
    cols[2].metric(
        "Memory used",
        ui.fmt_bytes(f.used_bytes),
        memory_note,
        delta_color="off",
        delta_arrow="off",
        help=f"RSS {ui.fmt_bytes(f.rss_bytes)}",
        border=True,
    )
    frag = f.fragmentation
    cols[3].metric(
        "Fragmentation ratio",
        f"{frag:.2f}" if known(frag) else "–",
        help="RSS / used memory: above 1.5 memory is fragmented, below 1 part of it is swapped out",
        border=True,
    )
    cols = st.columns(4)
    cols[0].metric(
        "Evicted keys",
        ui.fmt_count(f.evicted, 1),
        f"{ui.fmt_count(f.expired, 1)} expired",
        delta_color="off",
        delta_arrow="off",
        help="keys removed to stay under maxmemory in the window (expired: reached their TTL)",
        border=True,
    )
    rejected = f.rejected if known(f.rejected) else 0
    cols[1].metric(
        "Clients connected / blocked",
        f"{ui.fmt_count(f.connected, 0)} / {ui.fmt_count(f.blocked, 0)}",
        f"{rejected:.0f} connections rejected" if rejected else None,
        delta_color="inverse",
        border=True,
    )
    cols[2].metric(
        "Replication role", f.role or "–", role_note(f), delta_color="off", delta_arrow="off", border=True
    )
    cols[3].metric(
        "Replication lag",
        ui.fmt_bytes(f.lag_bytes) if known(f.lag_bytes) else "–",
        help="bytes the furthest replica is behind the primary (master_repl_offset - its offset)",
        border=True,
    )


def role_note(f: redis.NodeFigures) -> str | None:
    if f.role == "replica":
        return "link to the primary up" if f.link_up == 1 else "link to the primary down"
    if f.role == "primary" and known(f.replicas):
        return f"{f.replicas:.0f} replica{'s' if f.replicas != 1 else ''}"
    return None


@cached.view
def node_view(reader: Reader, target: Target, window) -> tuple[redis.NodeFigures, list[charts.Chart]]:
    """The node's figures and charts, made once for every session (cached.view)."""
    f = redis_reads.node_figures(reader, target, window)
    return f, timeline(redis_reads.node_series(reader, target, window)) if f.samples else []


def timeline(frame: pd.DataFrame) -> list[charts.Chart]:
    keys = {metrics.REDIS_KEYS_EVICTED: "evicted", metrics.REDIS_KEYS_EXPIRED: "expired"}
    shown = [
        charts.hit_rate_line(redis.hit_rate(frame), target=TARGET),
        charts.lines(redis.rates(frame, {metrics.REDIS_OPS: "ops/s"}), "Operations per second", "ops/s"),
        charts.lines(redis.memory(frame), "Memory", "MiB", dashed=("maxmemory",)),
        charts.lines(redis.rates(frame, keys), "Evictions and expirations", "keys/s"),
        charts.lines(redis.clients(frame), "Clients", "clients"),
    ]
    lag = redis.by_label(frame, metrics.REDIS_REPLICATION_LAG_BYTES, "replica")
    if len(lag):
        shown.append(charts.lines(lag, "Replication lag per replica", "bytes"))
    return shown


def commands(reader: Reader, target: Target, window) -> None:
    st.markdown("**Slowest commands**")
    table = redis_reads.commands(reader, target, window)
    if table.empty:
        st.caption("No command statistics in this window.")
        return
    shown = table.assign(total_ms=table["usec"] / 1000)
    columns = [c for c in COMMAND_COLUMNS if c not in ("p50_us", "p99_us") or shown[c].notna().any()]
    ui.table(shown[columns], COMMAND_COLUMNS, max_height=400)
    st.caption(
        "INFO commandstats over the window, slowest per call first; the collector's own INFO, SLOWLOG "
        "and queue reads are among them."
    )


def slow_log(reader: Reader, target: Target, window) -> None:
    st.markdown("**Slow log**")
    entries = redis_reads.slowlog(reader, [target], window)
    if entries.empty:
        st.caption("No command was slower than slowlog-log-slower-than (10 ms by default) in this window.")
        return
    shown = pd.DataFrame(
        {
            "time": pd.to_datetime(entries["ts"], unit="s", utc=True),
            "duration_ms": entries["duration_us"] / 1000,
            "command": entries["command"],
            "client": entries["client"],
        }
    )
    ui.table(shown, SLOWLOG_COLUMNS, max_height=400)
    entries_text = f"{len(shown)} entr{'ies' if len(shown) != 1 else 'y'}"
    st.caption(f"{entries_text}, slowest first; arguments cut to 64 characters, 10 arguments at most.")


@cached.view
def queue_view(reader: Reader, target: Target, window) -> tuple[pd.DataFrame, list[tuple[str, str, list]]]:
    """The queues' summary, and each queue's (library, name, charts), made once for every session."""
    frame = redis.queue_points(redis_reads.queue_series(reader, target, window))
    found = redis.queues(frame)
    if not found:
        return pd.DataFrame(), []
    return redis_reads.queue_summary(reader, target, window), [
        (lib, queue, queue_charts(frame, lib, queue)) for lib, queue in found
    ]


def queue_charts(frame: pd.DataFrame, lib: str, queue: str) -> list[charts.Chart]:
    depths = redis.queue_depths(frame, lib, queue)
    shown = [
        charts.stacked_area(depths, "Jobs by state", "jobs", charts.QUEUE_STATE_COLORS),
        charts.lines(redis.queue_throughput(frame, lib, queue), "Finished jobs", "jobs/min"),
        charts.lines(redis.queue_failure_rate(frame, lib, queue), "Failure rate", "%"),
        charts.lines(redis.queue_age(frame, lib, queue), "Oldest waiting job", "seconds"),
    ]
    times = redis.queue_times(frame, lib, queue)
    if len(times):
        shown.append(charts.lines(times, "Wait and run time", "ms", dashed=("wait p95", "run p95")))
    return shown


def queues(reader: Reader, target: Target, window) -> None:
    summary, found = queue_view(target, window)
    if not found:
        return
    st.subheader("Queues")
    ui.table(summary[list(QUEUE_COLUMNS)], QUEUE_COLUMNS, max_height=400)
    paused = summary.loc[summary["paused"], "queue"].tolist()
    if paused:
        st.warning(
            f"Paused: {', '.join(map(ui.md_escape, paused))} (workers take no job until it is resumed)",
            icon=":material/pause:",
        )
    st.caption(
        "Each queue's charts: jobs by state, finished jobs, failure rate, oldest job, wait and run time."
    )
    for lib, queue, shown in found:
        label = f"**{ui.md_escape(queue)}** · {ui.md_escape(lib)}"
        box = st.expander(label, key=queue_key(target, lib, queue), on_change="rerun")
        if box.open:  # drawn on demand: five charts a queue, a frame each, for the browser (issue 11)
            with box:
                plots.show(shown, window)


def queue_key(target: Target, lib: str, queue: str) -> str:
    """The key of a queue's expander: what keeps it open across reruns and windows."""
    return f"queue:{target.id}:{lib}:{queue}"


def node(reader: Reader, target: Target, window) -> None:
    f, shown = node_view(target, window)
    if not f.samples:
        st.caption("Nothing collected in this window.")
    else:
        figures(f)
        plots.show(shown, window)
    commands(reader, target, window)
    slow_log(reader, target, window)
    queues(reader, target, window)


st.title("Redis")
_, _, statuses = page_frame.per_target(
    cached.reader(),
    "redis",
    none=NO_REDIS,
    no_data=NO_REDIS_DATA,
    caption=f"Redis nodes, {{window}} · times in UTC · hit rate target {TARGET * 100:.0f} %",
    draw=node,
)
ui.health(statuses)
