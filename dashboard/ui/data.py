"""The pages' data layer: one shared read-only engine and cached wrappers around store reads.

Pages never see SQL or engines: they call these functions with `Target`s and a `Window`. The
cached functions underneath take the store URL and plain ints, so entries are shared by every
session of the app and a different store (another OBSERVATORY_CONFIG) never reads another's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from dashboard.analysis import redis as redis_views
from dashboard.analysis import services as service_views
from dashboard.analysis import slo
from dashboard.core import config as config_mod
from dashboard.core import metrics
from dashboard.core.prometheus_preset import series_for
from dashboard.store import reads
from dashboard.store.engine import make_engine
from dashboard.store.migrations import current_version, migrate
from dashboard.store.reads import Window
from dashboard.ui.frame import Target

TTL = 30  # seconds: about one collection interval
ENTRIES = 64
STATEMENT_TOTALS = ("pg.statements.calls", "pg.statements.exec_ms", "pg.statements.rows")
BLOCKS = ("pg.db.blks_hit", "pg.db.blks_read")
CYCLES = "pg.statements.calls"  # written once per successful cycle: the grid statements live on
OVERVIEW_SERIES = (*STATEMENT_TOTALS, *BLOCKS, "pg.connections")
STALE_CYCLES = 3  # a target not scraped for this many intervals is flagged: is the collector running?
ORDERS = reads.ORDERS
REDIS_SERIES = (
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
REDIS_COMMAND_SERIES = (*redis_views.COMMAND_COUNTERS, "redis.cmd.latency_us")
REDIS_QUEUE_SERIES = (
    "redis.queue.depth",
    "redis.queue.completed",
    "redis.queue.failed",
    "redis.queue.oldest_age_s",
    "redis.queue.wait_ms",
    "redis.queue.run_ms",
    "redis.queue.paused",
)


def config() -> config_mod.Config:
    """$OBSERVATORY_CONFIG, else ./observatory.yaml, else the defaults (raises ConfigError)."""
    explicit = os.environ.get(config_mod.ENV_FILE) or None
    try:
        mtime = os.stat(explicit or config_mod.DEFAULT_FILE).st_mtime_ns
    except OSError:
        mtime = None
    return _config(explicit, mtime)


@st.cache_resource(ttl=TTL, max_entries=8, show_spinner=False)
def _config(explicit: str | None, mtime: int | None) -> config_mod.Config:
    # Keyed by the file's mtime: an edited file is read again. Config is frozen, so sharing is safe.
    return config_mod.load(explicit)


def store_url() -> str:
    return config().store


# -- engine -------------------------------------------------------------------------------------
def _dispose(engine: Engine) -> None:
    engine.dispose()


@st.cache_resource(ttl=86400, max_entries=4, on_release=_dispose, show_spinner=False)
def _engine(url: str) -> Engine:
    _ensure_schema(url)
    return make_engine(url, readonly=True)


def _ensure_schema(url: str) -> None:
    """Give a store nobody has written yet its empty tables, so the pages render 'no data'."""
    reader = make_engine(url, readonly=True)
    try:
        with reader.connect() as conn:
            found = current_version(conn)
    finally:
        reader.dispose()
    if found is None:
        writer = make_engine(url)
        try:
            migrate(writer)
        finally:
            writer.dispose()


def engine() -> Engine:
    return _engine(store_url())


def _level(window: Window, buckets: int) -> str:
    return reads.choose_level(window, int(time.time()), config().retention, buckets)


# -- targets ------------------------------------------------------------------------------------
@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _statuses(url: str) -> pd.DataFrame:
    return reads.target_statuses(_engine(url))


def _configured(kind: str) -> list:
    """The config's targets of a kind ("postgres", "redis")."""
    return list(getattr(config().targets, kind, []))


def statuses(kind: str = "postgres") -> pd.DataFrame:
    """Every target of `kind`: the store's, plus configured ones never collected (state None)."""
    frame = _statuses(store_url())
    frame = frame[frame["kind"] == kind]
    configured = [t.name for t in _configured(kind)]
    missing = [n for n in configured if n not in set(frame["name"])]
    extra = pd.DataFrame({"name": missing, "kind": kind, "samples": 0, "failures": 0})
    extra["hints"] = [["run `observatory collect` (or `observatory up`) to start collecting"]] * len(extra)
    frame = pd.concat([frame, extra], ignore_index=True) if missing else frame.reset_index(drop=True)
    frame["configured"] = frame["name"].isin(configured)
    intervals = {t.name: t.interval for t in _configured(kind)}
    limit = frame["name"].map(intervals).fillna(60.0) * STALE_CYCLES
    frame["stale"] = (time.time() - frame["last_attempt"]) > limit
    return frame


def targets(kind: str | None = None) -> list[Target]:
    """The targets the store holds data for, of one kind or all (the sidebar's choices)."""
    frame = _statuses(store_url())
    if kind is not None:
        frame = frame[frame["kind"] == kind]
    return [Target(int(r.target_id), str(r.name), str(r.kind)) for r in frame.itertuples()]


def has_data(kind: str | None = None) -> bool:
    """Whether anything was collected (from targets of `kind`, or of any kind)."""
    frame = _statuses(store_url())
    if kind is not None:
        frame = frame[frame["kind"] == kind]
    return bool(len(frame)) and int(frame["samples"].sum()) > 0


# -- series -------------------------------------------------------------------------------------
@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _series(url: str, ids: tuple[int, ...], names: tuple[str, ...], start: int, end: int, level: str):
    return reads.series_frame(_engine(url), ids, names, Window(start, end), level)


def series(targets: Sequence[Target], names: Sequence[str], window: Window) -> pd.DataFrame:
    """Chart points of the named series, with a `target` (name) column."""
    return _series_of(targets, names, window, _level(window, reads.CHART_BUCKETS))


def _series_of(targets: Sequence[Target], names: Sequence[str], window: Window, level: str):
    ids = tuple(sorted(t.id for t in targets))
    frame = _series(store_url(), ids, tuple(sorted(names)), window.start, window.end, level)
    frame["target"] = frame["target_id"].map({t.id: t.name for t in targets})
    return _covered_width(frame, level, targets)


def _interval(target: Target) -> float:
    found = [t.interval for t in _configured(target.kind) if t.name == target.name]
    return found[0] if found else float(reads.RAW_SECONDS)


def _covered_width(frame: pd.DataFrame, level: str, targets: Sequence[Target]) -> pd.DataFrame:
    """Hourly and daily buckets: `width` becomes the time the bucket's cycles covered.

    The current bucket is still filling, and a target may start, stop or fail mid-bucket; dividing
    by the whole bucket would show a rate that drops at the right edge of every chart. A bucket's
    `count` is the number of cycles that wrote to it, each covering one interval of its target.
    """
    if level == "raw" or frame.empty:
        return frame
    intervals = {t.id: _interval(t) for t in targets}
    interval = frame["target_id"].map(intervals).fillna(float(reads.RAW_SECONDS))
    frame["width"] = (frame["count"] * interval).clip(upper=frame["width"]).astype(float)
    return frame


def summary(targets: Sequence[Target], window: Window) -> pd.DataFrame:
    """Per target over the window: query time, calls, rows, calls/s, mean time, cache hit ratio.

    Rates divide by the time the collector actually covered, not by the whole window, so a target
    added an hour ago does not show a 24-hour average diluted by the hours before it existed.
    """
    level = _level(window, reads.TOTALS_BUCKETS)
    frame = _series_of(targets, (*STATEMENT_TOTALS, *BLOCKS), window, level)
    sums = frame.pivot_table(index="target", columns="name", values="sum", aggfunc="sum")
    sums = sums.reindex(index=[t.name for t in targets], columns=[*STATEMENT_TOTALS, *BLOCKS])
    covered = frame[frame["name"] == CYCLES].groupby("target")["width"].sum().clip(upper=window.seconds)
    out = pd.DataFrame(index=sums.index)
    out["exec_ms"] = sums["pg.statements.exec_ms"].fillna(0.0)
    out["calls"] = sums["pg.statements.calls"].fillna(0.0)
    out["rows"] = sums["pg.statements.rows"].fillna(0.0)
    out["seconds"] = covered.reindex(out.index).fillna(0.0)
    out["calls_per_s"] = out["calls"] / out["seconds"].where(out["seconds"] > 0)
    out["mean_ms"] = out["exec_ms"] / out["calls"].where(out["calls"] > 0)
    blocks = sums["pg.db.blks_hit"] + sums["pg.db.blks_read"]
    out["hit_ratio"] = sums["pg.db.blks_hit"] / blocks.where(blocks > 0)
    return out


# -- statements ---------------------------------------------------------------------------------
@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _totals(url: str, ids: tuple[int, ...], start: int, end: int, level: str, filters: tuple) -> pd.DataFrame:
    database, user, text, order, limit = filters
    return reads.statement_totals(
        _engine(url),
        ids,
        Window(start, end),
        level,
        database=database,
        user=user,
        text=text,
        order=order,
        limit=limit,
    )


def top_statements(
    targets: Sequence[Target],
    window: Window,
    *,
    database: str | None = None,
    user: str | None = None,
    text: str | None = None,
    order: str = "exec_ms",
    limit: int = 100,
) -> pd.DataFrame:
    """The top statements over the window (reads.statement_totals), with a `target` column."""
    ids = tuple(sorted(t.id for t in targets))
    level = _level(window, reads.TOTALS_BUCKETS)
    filters = (database, user, text or None, order, limit)
    frame = _totals(store_url(), ids, window.start, window.end, level, filters)
    frame["target"] = frame["target_id"].map({t.id: t.name for t in targets})
    return frame


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _statement_series(url: str, ids: tuple[int, ...], start: int, end: int, level: str) -> pd.DataFrame:
    return reads.statement_series(_engine(url), ids, Window(start, end), level)


def sparklines(statement_ids: Sequence[int], targets: Sequence[Target], window: Window) -> dict[int, list]:
    """Query time per bucket of each statement, zero where it did not run (one read for all)."""
    if not len(statement_ids):
        return {}
    level = _level(window, reads.TOTALS_BUCKETS)
    ids = tuple(sorted(int(i) for i in statement_ids))
    frame = _statement_series(store_url(), ids, window.start, window.end, level)
    grid = _cycles(targets, window, level)["ts"]
    wide = frame.pivot_table(index="ts", columns="statement_id", values="exec_ms", aggfunc="sum")
    wide = wide.reindex(index=wide.index.union(grid), columns=list(ids)).fillna(0.0)
    return {sid: wide[sid].round(3).tolist() for sid in ids}


def _cycles(targets: Sequence[Target], window: Window, level: str) -> pd.DataFrame:
    """When the targets were collected (ts, width): a statement absent there did not run."""
    return _series_of(targets, (CYCLES,), window, level)[["ts", "width"]]


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _statement(url: str, statement_id: int) -> dict | None:
    return reads.statement_info(_engine(url), statement_id)


def statement(statement_id: int) -> dict | None:
    """Everything known about one statement (text, target, min/max/mean/stddev...), or None."""
    return _statement(store_url(), int(statement_id))


def statement_timeline(statement_id: int, target: Target, window: Window) -> pd.DataFrame:
    """Per-bucket counters of one statement on the target's cycle grid (zeros where idle)."""
    level = _level(window, reads.CHART_BUCKETS)
    frame = _statement_series(store_url(), (int(statement_id),), window.start, window.end, level)
    # One target: its cycles have unique times. Widths come from the cycles, so the statement's
    # rates share the Overview's notion of covered time.
    cycles = _cycles([target], window, level).set_index("ts")["width"]
    counters = list(reads.STATEMENT_COUNTERS)
    frame = frame.set_index("ts")[counters].reindex(cycles.index.union(frame["ts"])).fillna(0.0)
    widths = cycles.reindex(frame.index)
    frame["width"] = widths.fillna(widths.median()).fillna(float(reads.RAW_SECONDS))
    return frame.reset_index()


def statement_summary(statement_id: int, window: Window) -> dict[str, float]:
    """One statement's totals over the window: calls, time, rows, blocks and derived figures."""
    level = _level(window, reads.TOTALS_BUCKETS)
    frame = _statement_series(store_url(), (int(statement_id),), window.start, window.end, level)
    sums = {c: float(frame[c].sum()) for c in reads.STATEMENT_COUNTERS}
    calls, blocks = sums["calls"], sums["shared_hit"] + sums["shared_read"]
    sums["mean_ms"] = sums["exec_ms"] / calls if calls else float("nan")
    sums["rows_per_call"] = sums["rows"] / calls if calls else float("nan")
    sums["hit_ratio"] = sums["shared_hit"] / blocks if blocks else float("nan")
    return sums


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _filters(url: str, ids: tuple[int, ...]) -> tuple[list[str], list[str]]:
    return reads.statement_filters(_engine(url), ids)


def filters(targets: Sequence[Target]) -> tuple[list[str], list[str]]:
    """The databases and users statements were recorded for."""
    return _filters(store_url(), tuple(sorted(t.id for t in targets)))


# -- index advice -------------------------------------------------------------------------------
@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _advice(url: str, ids: tuple[int, ...]) -> list[dict]:
    return reads.latest_advice(_engine(url), ids)


def advice(targets: Sequence[Target]) -> list[dict]:
    """The index advisor's latest report per target and database, newest first: dicts of target,
    target_id, datname, ts, duration_ms and report (see dashboard.advisor.advise)."""
    if not targets:
        return []
    return _advice(store_url(), tuple(sorted(t.id for t in targets)))


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _statement_ids(url: str, target_id: int, datname: str | None, texts: tuple[str, ...]) -> dict[str, int]:
    return reads.statement_ids_by_text(_engine(url), target_id, texts, datname=datname)


def statement_ids(target_id: int, datname: str | None, texts: Sequence[str]) -> dict[str, int]:
    """Text -> statement id, for the texts the store holds (links from a report to query detail)."""
    return _statement_ids(store_url(), int(target_id), datname, tuple(sorted(set(texts))))


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _statement_advice(url: str, target_id: int, datname: str | None, text: str) -> dict | None:
    report = next((r for r in _advice(url, (target_id,)) if r["datname"] == datname), None)
    if report is None or not text:
        return None
    found = {"target": report["target"], "datname": report["datname"], "ts": report["ts"]}
    for rank, suggestion in enumerate(report["report"].get("suggestions", []), start=1):
        if text in suggestion["statements"]:
            return {**found, "suggestion": suggestion, "rank": rank}
    for skipped in report["report"].get("skipped", []):
        if skipped["statement"] == text:
            return {**found, "skipped": skipped["reason"]}
    return None


def statement_advice(target_id: int, datname: str | None, text: str | None) -> dict | None:
    """What the latest advisor report of the statement's database says about it: a dict with
    target, datname, ts and either `suggestion` (and its `rank`) or `skipped` (the reason); None
    when there is no report or the report does not mention the statement."""
    return _statement_advice(store_url(), int(target_id), datname, text or "")


# -- Redis ----------------------------------------------------------------------------------------
def redis_series(target: Target, window: Window) -> pd.DataFrame:
    """The node's cache, memory, client and replication series at chart resolution."""
    return series([target], REDIS_SERIES, window)


def redis_figures(target: Target, window: Window) -> dict[str, object]:
    """The node's metrics row over the window (redis_views.node_figures)."""
    return redis_views.node_figures(redis_series(target, window))


def redis_commands(target: Target, window: Window) -> pd.DataFrame:
    """commandstats over the window per command (redis_views.command_table), slowest per call first."""
    level = _level(window, reads.TOTALS_BUCKETS)
    return redis_views.command_table(_series_of([target], REDIS_COMMAND_SERIES, window, level))


def redis_queue_series(target: Target, window: Window) -> pd.DataFrame:
    """The node's job-queue series at chart resolution (empty when it has no queues configured)."""
    return series([target], REDIS_QUEUE_SERIES, window)


def redis_queue_summary(target: Target, window: Window) -> pd.DataFrame:
    """One row per queue (redis_views.queue_summary)."""
    return redis_views.queue_summary(redis_queue_series(target, window))


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _slowlog(url: str, ids: tuple[int, ...], start: int, end: int, limit: int) -> pd.DataFrame:
    return reads.slowlog_entries(_engine(url), ids, Window(start, end), limit)


def slowlog(targets: Sequence[Target], window: Window, limit: int = 200) -> pd.DataFrame:
    """Slow-log entries in the window, slowest first: target, ts, duration_us, command, client."""
    if not targets:
        return pd.DataFrame(columns=["target", "ts", "duration_us", "command", "client"])
    return _slowlog(store_url(), tuple(sorted(t.id for t in targets)), window.start, window.end, limit)


# -- Prometheus (Services) ------------------------------------------------------------------------
LATEST_SECONDS = 3600  # how far back the scorecard looks for a series' latest reading


def prom_configured(target: Target) -> dict[str, config_mod.Series]:
    """The series the target records (its preset's and its own), by name. A target no longer in
    the configuration keeps the units and targets its collector last recorded."""
    found = [t for t in _configured("prometheus") if t.name == target.name]
    if found:
        return series_for(found[0])
    recorded = prom_details(target).get("series") or {}
    return {
        name: config_mod.Series(expr=d.get("expr") or "?", unit=d.get("unit") or "", target=d.get("target"))
        for name, d in recorded.items()
        if isinstance(d, dict)
    }


def prom_series(target: Target, window: Window) -> pd.DataFrame:
    """The target's recorded series (`prom.series`) at chart resolution."""
    return series([target], (metrics.PROM_SERIES,), window)


def slo_scorecard(target: Target, window: Window) -> pd.DataFrame:
    """One row per series with a target: latest reading, the window's value, pass/fail and the
    worst hour (slo.scorecard)."""
    hourly = _series_of([target], (metrics.PROM_SERIES,), window, "hourly")
    recent = Window(max(window.start, window.end - LATEST_SECONDS), window.end)
    latest = _series_of([target], (metrics.PROM_SERIES,), recent, "raw")
    return slo.scorecard(prom_series(target, window), hourly, latest, prom_configured(target), window.start)


def service_line(target: Target, name: str, window: Window) -> pd.DataFrame:
    """One recorded series as a long frame (ts, series, value) in its display unit (ratios in %)."""
    unit = prom_configured(target).get(name, config_mod.Series(expr="-")).unit
    return slo.series_lines(prom_series(target, window), name, slo.display_scale(unit)[0])


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _details(url: str, target_id: int) -> dict:
    return reads.target_details(_engine(url), target_id)


def prom_details(target: Target) -> dict:
    """The collector's details of the target's last successful cycle: series, alerts, targets."""
    return _details(store_url(), int(target.id))


def prom_alerts(target: Target) -> pd.DataFrame:
    """Prometheus' firing and pending alerts at the last cycle (service_views.alerts_table)."""
    return service_views.alerts_table(prom_details(target))


def prom_down_targets(target: Target) -> pd.DataFrame:
    """Prometheus' scrape targets that were not up at the last cycle."""
    return service_views.down_targets(prom_details(target))


def prom_state(target: Target) -> dict[str, int]:
    """Counts of firing and pending alerts and of scrape targets up and down at the last cycle."""
    return service_views.state_counts(prom_details(target))


def prom_series_errors(target: Target) -> dict[str, str]:
    """Series whose last evaluation failed, with the collector's message."""
    return service_views.series_errors(prom_details(target))


def statement_mean_line(statement_id: int, target: Target, window: Window, label: str) -> pd.DataFrame:
    """A statement's mean time per bucket as a long frame (for the Services overlay)."""
    return service_views.mean_time(statement_timeline(statement_id, target, window), label)


def redis_hit_rate_line(target: Target, window: Window, label: str) -> pd.DataFrame:
    """A Redis node's keyspace hit rate per bucket in % (for the Services overlay)."""
    long = redis_views.hit_rate(redis_series(target, window))
    return long.assign(series=label, value=long["value"] * 100)


# -- advising on a pasted statement -------------------------------------------------------------
def advise_pasted(target: str, datname: str, statement: str) -> dict:
    """Advise on one statement now, in the named database of a configured PostgreSQL target.

    The statement is checked before anything connects (one statement, of a kind the planner may
    cost); then it goes through the guarded session like the daemon's advisor: read-only, rolled
    back, a hypothetical index living only in that session.
    """
    from dashboard.core.guarded import Refused, check

    try:
        check(statement)
    except Refused as err:
        return {"error": f"Not advised: {err}"}
    return _advise_pasted(target, datname, statement.strip())


@st.cache_data(ttl=300, max_entries=32, show_spinner="Asking the planner ...")
def _advise_pasted(target: str, datname: str, statement: str) -> dict:
    from psycopg.conninfo import make_conninfo

    from dashboard.advisor.database import AdviseError, advise_database

    configured = {t.name: t for t in config().targets.postgres}
    if target not in configured:
        return {"error": f"{target} is not a PostgreSQL target of the configuration"}
    t = configured[target]
    try:
        dsn = make_conninfo(t.dsn, dbname=datname)
        return advise_database(
            dsn,
            queries=[statement],
            password_env=t.password_env,
            health=False,
            allow_privileged=t.advise_privileged,
        )
    except (AdviseError, ValueError) as err:
        return {"error": str(err)}


def target_database(target: str) -> str | None:
    """The database a configured PostgreSQL target's DSN names."""
    from psycopg.conninfo import conninfo_to_dict

    configured = {t.name: t for t in config().targets.postgres}
    return conninfo_to_dict(configured[target].dsn).get("dbname") if target in configured else None
