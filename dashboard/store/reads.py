"""The readers' queries: what the pages and the CLI ask of the store.

A query over a window reads the level its caller chose with `choose_level`: the finest level that
still holds the window's start and gives at most so many buckets (CHART_BUCKETS points a chart line,
TOTALS_BUCKETS buckets a per-statement aggregation), so a 30-day view never scans raw rows. Results
are pandas frames with Unix-second `ts` columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import NamedTuple

import pandas as pd
from pydantic import ValidationError
from sqlalchemy import Engine, Float, case, cast, func, literal, select

from dashboard.core import sources
from dashboard.core.advice import AdviceReport, StoredAdvice
from dashboard.core.config import Retention
from dashboard.core.details import Details
from dashboard.core.health.chains import BlockingChain
from dashboard.core.records import StatementInfo
from dashboard.store.rates import RAW_SECONDS, widths
from dashboard.store.schema import (
    BUCKET_SECONDS,
    POINTS,
    STATEMENT_COUNTERS,
    STMT,
    advice,
    index_catalog,
    index_catalog_reads,
    index_suggestions,
    leases,
    series,
    slowlog,
    statement_plans,
    statements,
    target_status,
    targets,
)
from dashboard.store.schema import blocking_chains as blocking_chains_table

CHART_BUCKETS = 1500  # most points a chart line gets
TOTALS_BUCKETS = 120  # most buckets a per-statement aggregation scans
ORDERS = {
    "exec_ms": "total time",
    "mean_ms": "mean time",
    "calls": "calls",
    "rows": "rows",
    "shared_read": "shared blocks read",
    "temp_written": "temp blocks written",
}


@dataclass(frozen=True)
class Window:
    start: int
    end: int

    @property
    def seconds(self) -> int:
        return self.end - self.start


class StatementFilter(NamedTuple):
    """Which statements `statement_totals` ranks, and how many by what: plain values, so that a cache
    can key its entries by it."""

    database: str | None = None
    user: str | None = None
    text: str | None = None  # contained in the statement's text, case-insensitive
    order: str = "exec_ms"  # a key of ORDERS
    limit: int = 100


def choose_level(window: Window, now: int, retention: Retention, max_buckets: int) -> str:
    """The finest level that still holds the window's start and gives at most `max_buckets`."""
    kept = {"raw": retention.raw, "hourly": retention.hourly, "daily": retention.daily}
    spans = {"raw": RAW_SECONDS, **BUCKET_SECONDS}
    for level in ("raw", "hourly"):
        covers = window.start >= now - kept[level]
        if covers and window.seconds / spans[level] <= max_buckets:
            return level
    return "daily"


def _aligned_start(window: Window, level: str) -> int:
    width = BUCKET_SECONDS.get(level)
    return window.start - window.start % width if width else window.start


# -- targets ----------------------------------------------------------------------------------
def target_statuses(engine: Engine) -> pd.DataFrame:
    """One row per target: its state, last success and error, hints, and samples stored."""
    st = target_status.c
    query = (
        select(
            targets.c.id.label("target_id"),
            targets.c.kind,
            targets.c.name,
            st.state,
            st.last_attempt,
            st.last_success,
            st.last_error,
            st.hints,
            st.failures,
            st.server_version,
            st.duration_ms,
            func.coalesce(st.samples, 0).label("samples"),
        )
        .select_from(targets.outerjoin(target_status, target_status.c.target_id == targets.c.id))
        .order_by(targets.c.kind, targets.c.name)
    )
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["hints"] = frame["hints"].map(lambda h: json.loads(h) if h else [])
    return frame


def lease_holders(engine: Engine) -> dict[int, str]:
    """target_id -> the daemon (host:pid:id) that took its lease last: the one collecting it while
    it runs, or the last one that did."""
    with engine.connect() as conn:
        return dict(conn.execute(select(leases.c.target_id, leases.c.holder)).all())


# -- series -----------------------------------------------------------------------------------
def series_frame(
    engine: Engine,
    target_ids: Sequence[int],
    names: Sequence[str],
    window: Window,
    level: str,
    intervals: Mapping[int, float] | None = None,
) -> pd.DataFrame:
    """Points of the named series: ts, target_id, name, labels, sum, count, min, max, width.

    For counters `sum` is the activity in the bucket (its rate is `rates.rate(sum, width)`); for
    gauges `sum / count` is the mean. `width` is the time the point covers (`rates.widths`): at the
    raw level the time since the previous point, in a bucket the time its cycles covered given the
    targets' `intervals` (target id -> seconds), or the whole bucket without them.
    """
    table = POINTS[level]
    if level == "raw":
        value_cols = [
            table.c.value.label("sum"),
            literal(1).label("count"),
            table.c.value.label("min"),
            table.c.value.label("max"),
        ]
    else:
        value_cols = [table.c.sum, table.c["count"], table.c.min, table.c.max]
    query = (
        select(table.c.ts, series.c.target_id, series.c.name, series.c.labels, series.c.kind, *value_cols)
        .join(series, series.c.id == table.c.series_id)
        .where(
            series.c.target_id.in_(list(target_ids)),
            series.c.name.in_(list(names)),
            table.c.ts >= _aligned_start(window, level),
            table.c.ts <= window.end,
        )
        .order_by(table.c.ts)
    )
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["width"] = widths(frame, level, ["target_id", "name", "labels"], intervals)
    return frame


# -- statements -------------------------------------------------------------------------------
def statement_totals(
    engine: Engine,
    target_ids: Sequence[int],
    window: Window,
    level: str,
    *,
    database: str | None = None,
    user: str | None = None,
    text: str | None = None,
    order: str = "exec_ms",
    limit: int = 100,
) -> pd.DataFrame:
    """Top statements over the window with their derived figures, sorted by `order`.

    Two passes, for speed: SQLite's GROUP BY sorts whole rows, so summing all 13 counters of every
    statement in the window costs about twice as much as summing the two or three that rank them
    (calls, exec_ms and the `order` column). The first pass ranks every statement on those; the
    second sums all counters of the `limit` top ones only. Same rows, values and order as summing
    everything at once (bench/store_history.py measures it).
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}")
    table = STMT[level]
    in_window = (
        table.c.target_id.in_(list(target_ids)),
        table.c.ts >= _aligned_start(window, level),
        table.c.ts <= window.end,
    )
    ranking = ["calls", "exec_ms"]  # mean_ms = exec_ms / calls; the grand total is of exec_ms
    if order in STATEMENT_COUNTERS and order not in ranking:
        ranking.append(order)
    rank_query = (
        select(table.c.statement_id, *[func.sum(table.c[name]).label(name) for name in ranking])
        .where(*in_window)
        .group_by(table.c.statement_id)
    )
    s = statements.c
    meta_query = select(
        s.id.label("statement_id"), s.target_id, s.queryid, s.datname, s.rolname, s.toplevel
    ).where(s.target_id.in_(list(target_ids)))
    if database:
        meta_query = meta_query.where(s.datname == database)
    if user:
        meta_query = meta_query.where(s.rolname == user)
    if text:
        meta_query = meta_query.where(func.lower(s.query).contains(text.lower(), autoescape=True))
    with engine.connect() as conn:
        ranks = pd.read_sql(rank_query, conn)
        meta_rows = pd.read_sql(meta_query, conn)
        grand_total = float(ranks["exec_ms"].sum()) if len(ranks) else 0.0
        ranked = ranks.merge(meta_rows[["statement_id"]], on="statement_id")
        ranked["key"] = _mean_ms(ranked) if order == "mean_ms" else ranked[order]
        top = ranked.sort_values("key", ascending=False).head(limit)["statement_id"].tolist()
        # With nothing to show, still read one statement: the empty frame gets the column types.
        wanted = top or ranks["statement_id"].head(1).tolist()
        sums = [func.sum(table.c[name]).label(name) for name in STATEMENT_COUNTERS]
        agg_query = (
            select(table.c.statement_id, *sums)
            .where(table.c.statement_id.in_([int(i) for i in wanted]), *in_window)
            .group_by(table.c.statement_id)
        )
        agg = pd.read_sql(agg_query, conn)
    ranking_order = pd.DataFrame({"statement_id": pd.Series(top, dtype=agg["statement_id"].dtype)})
    frame = ranking_order.merge(agg.merge(meta_rows, on="statement_id"), on="statement_id")
    frame = _derive(frame, grand_total)
    frame["query"] = frame["statement_id"].map(statement_texts(engine, frame["statement_id"].tolist()))
    return frame


def _mean_ms(frame: pd.DataFrame) -> pd.Series:
    calls = frame["calls"].where(frame["calls"] > 0)
    return (frame["exec_ms"] / calls).fillna(0.0)


def _derive(frame: pd.DataFrame, grand_total: float) -> pd.DataFrame:
    calls = frame["calls"].where(frame["calls"] > 0)
    blocks = frame["shared_hit"] + frame["shared_read"]
    frame["mean_ms"] = _mean_ms(frame)
    frame["rows_per_call"] = (frame["rows"] / calls).fillna(0.0)
    frame["hit_ratio"] = (frame["shared_hit"] / blocks.where(blocks > 0)).astype(float)
    frame["share"] = frame["exec_ms"] / grand_total if grand_total else 0.0
    return frame


def statement_texts(engine: Engine, statement_ids: Sequence[int]) -> dict[int, str]:
    if not statement_ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(statements.c.id, statements.c.query).where(
                statements.c.id.in_([int(i) for i in statement_ids])
            )
        )
        return {r.id: r.query or "(text not available)" for r in rows}


def statement_series(
    engine: Engine, statement_ids: Sequence[int], window: Window, level: str
) -> pd.DataFrame:
    """Per-bucket counters of the given statements (sparklines, query detail charts)."""
    table = STMT[level]
    query = (
        select(table.c.statement_id, table.c.ts, *[table.c[n] for n in STATEMENT_COUNTERS])
        .where(
            table.c.statement_id.in_([int(i) for i in statement_ids]),  # numpy ints don't bind
            table.c.ts >= _aligned_start(window, level),
            table.c.ts <= window.end,
        )
        .order_by(table.c.statement_id, table.c.ts)
    )
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["width"] = widths(frame, level, ["statement_id"])
    return _derive(frame, float(frame["exec_ms"].sum()) if len(frame) else 0.0)


def statement_info(engine: Engine, statement_id: int) -> StatementInfo | None:
    """Everything known about one statement, its target's name included; None if there is none."""
    own = [statements.c[f.name] for f in fields(StatementInfo) if f.name in statements.c]
    query = (
        select(*own, targets.c.name.label("target"), targets.c.kind)
        .join(targets, targets.c.id == statements.c.target_id)
        .where(statements.c.id == int(statement_id))
    )
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return StatementInfo(**row) if row else None


def statement_filters(engine: Engine, target_ids: Sequence[int]) -> tuple[list[str], list[str]]:
    """The databases and users that statements were recorded for (filter choices)."""
    s = statements.c
    where = s.target_id.in_(list(target_ids))
    with engine.connect() as conn:
        dbs = conn.execute(select(s.datname).where(where, s.datname.is_not(None)).distinct()).scalars()
        databases = sorted(dbs)
        roles = conn.execute(select(s.rolname).where(where, s.rolname.is_not(None)).distinct()).scalars()
        users = sorted(roles)
    return databases, users


def latest_advice(engine: Engine, target_ids: Sequence[int]) -> list[StoredAdvice]:
    """The advisor's latest report for each database of the targets, newest first. Row by row: a
    report that cannot be read is an error report saying so (`AdviceReport.from_stored`)."""
    query = (
        select(targets.c.name.label("target"), advice.c.target_id, advice.c.datname, advice.c.ts,
               advice.c.duration_ms, advice.c.report)
        .join(targets, targets.c.id == advice.c.target_id)
        .where(advice.c.target_id.in_([int(i) for i in target_ids]))
        .order_by(advice.c.ts.desc())
    )  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [StoredAdvice(**{**row, "report": AdviceReport.from_stored(row["report"])}) for row in rows]


def statement_ids_by_text(
    engine: Engine, target_id: int, texts: Sequence[str], datname: str | None = None
) -> dict[str, int]:
    """The ids of the target's statements with these exact texts (advisor reports name statements
    by text), optionally in one database. Where several match (users, nesting levels), the
    top-level one that ran last wins."""
    if not texts:
        return {}
    s = statements.c
    query = select(s.id, s.query).where(s.target_id == int(target_id), s.query.in_(list(set(texts))))
    if datname is not None:
        query = query.where(s.datname == datname)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(s.toplevel, s.last_seen, s.id)).all()
    return {r.query: r.id for r in rows}


def slowlog_entries(
    engine: Engine, target_ids: Sequence[int], window: Window, limit: int = 200
) -> pd.DataFrame:
    """Slow-log entries in the window, slowest first: target, ts, duration_us, command, client."""
    query = (
        select(targets.c.name.label("target"), slowlog.c.ts, slowlog.c.duration_us, slowlog.c.command,
               slowlog.c.client)
        .join(targets, targets.c.id == slowlog.c.target_id)
        .where(slowlog.c.target_id.in_([int(i) for i in target_ids]), slowlog.c.ts >= window.start,
               slowlog.c.ts <= window.end)
        .order_by(slowlog.c.duration_us.desc())
        .limit(limit)
    )  # fmt: skip
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def blocking_chains(engine: Engine, target_id: int, window: Window, limit: int = 200) -> list[BlockingChain]:
    """The blocking chains of a target that overlap the window, the latest first (at most `limit`);
    a row this version cannot read is left out."""
    c = blocking_chains_table.c
    query = (
        select(c.chain)
        .where(c.target_id == int(target_id), c.last_seen >= window.start, c.started <= window.end)
        .order_by(c.started.desc(), c.root_pid)
        .limit(limit)
    )
    with engine.connect() as conn:
        texts = conn.execute(query).scalars().all()
    chains = []
    for text in texts:
        try:
            chains.append(BlockingChain.model_validate_json(text))
        except ValidationError:
            continue
    return chains


def target_details(engine: Engine, target_id: int) -> Details | None:
    """A target's details of its last successful cycle (target_status.details), parsed with the
    model its kind's source registers; None if none were stored (or empty or unreadable ones)."""
    query = (
        select(targets.c.kind, target_status.c.details)
        .join(target_status, target_status.c.target_id == targets.c.id)
        .where(targets.c.id == int(target_id))
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    source = sources.BY_KIND.get(row.kind) if row is not None else None
    return source.details.from_stored(row.details) if source is not None else None


def first_ts(engine: Engine) -> int | None:
    """When the store's history starts (first cycle of any target)."""
    with engine.connect() as conn:
        return conn.execute(select(func.min(targets.c.created_at))).scalar()


def statement_window_totals(
    engine: Engine, target_ids: Sequence[int], window: Window, level: str
) -> pd.DataFrame:
    """Every statement of the targets that ran in the window (not ranked, not capped: the weekly
    review compares them all), one row each: statement_id, target_id, datname, first_seen,
    stddev_ms (as the server last reported it), query (its text, None if not collected), the sums
    of calls, exec_ms, rows and shared_read,
    and the moments of its per-bucket means m = exec_ms / calls over the buckets with calls:
    `buckets` (how many), `calls_sq` (the sum of calls squared) and `exec_sq_per_call` (the sum of
    calls * m^2 = exec_ms^2 / calls), from which a caller gets the calls-weighted spread of the
    bucket means without reading every bucket."""
    table = STMT[level]
    c = table.c
    ran = c.calls > 0
    calls = cast(c.calls, Float)  # squares of big counts overflow BIGINT; a float is exact enough here
    query = (
        select(
            c.statement_id,
            *[func.sum(c[name]).label(name) for name in ("calls", "exec_ms", "rows", "shared_read")],
            func.sum(case((ran, 1), else_=0)).label("buckets"),
            func.sum(calls * calls).label("calls_sq"),
            func.sum(case((ran, c.exec_ms * c.exec_ms / calls), else_=0.0)).label("exec_sq_per_call"),
        )
        .where(
            c.target_id.in_([int(i) for i in target_ids]),
            c.ts >= _aligned_start(window, level),
            c.ts <= window.end,
        )
        .group_by(c.statement_id)
        .having(func.sum(c.calls) > 0)
    )
    s = statements.c
    meta_query = select(
        s.id.label("statement_id"), s.target_id, s.datname, s.first_seen, s.stddev_ms, s.query
    ).where(s.target_id.in_([int(i) for i in target_ids]))
    with engine.connect() as conn:
        sums = pd.read_sql(query, conn)
        meta_rows = pd.read_sql(meta_query, conn)
    return meta_rows.merge(sums, on="statement_id")


def index_catalog_rows(engine: Engine, target_ids: Sequence[int]) -> pd.DataFrame:
    """Every index the targets' catalog reads saw (index_catalog), one row each: target_id, datname,
    index_name, table_name, definition, keys (a list), first_seen, previous_read (None: there at
    the first read, so not known to be new), last_seen, and its database's last_read (an index
    whose last_seen is older is gone)."""
    c, r = index_catalog.c, index_catalog_reads.c
    query = (
        select(c.target_id, c.datname, c.index_name, c.table_name, c.definition,
               c.key_columns.label("keys"), c.first_seen, c.previous_read, c.last_seen, r.last_read)
        .join(index_catalog_reads, (r.target_id == c.target_id) & (r.datname == c.datname))
        .where(c.target_id.in_([int(i) for i in target_ids]))
        .order_by(c.target_id, c.datname, c.first_seen, c.index_name)
    )  # fmt: skip
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["keys"] = frame["keys"].map(lambda text: json.loads(text) if text else [])
    return frame


def index_suggestion_rows(engine: Engine, target_ids: Sequence[int]) -> pd.DataFrame:
    """Every index the advisor suggested for the targets (index_suggestions): target_id, datname,
    table_name, keys (a list, as the suggestion shows them), create_sql, proven, first_suggested,
    last_suggested."""
    c = index_suggestions.c
    query = select(
        c.target_id,
        c.datname,
        c.table_name,
        c.key_columns.label("keys"),
        c.create_sql,
        c.proven,
        c.first_suggested,
        c.last_suggested,
    ).where(c.target_id.in_([int(i) for i in target_ids]))
    with engine.connect() as conn:
        frame = pd.read_sql(query.order_by(c.first_suggested), conn)
    frame["keys"] = frame["keys"].map(json.loads)
    return frame


def plans_since(engine: Engine, target_id: int, datname: str, since: int) -> pd.DataFrame:
    """The advisor's plan rows of one database of a target still current at or after `since`
    (last_seen >= since): text_hash, first_seen, last_seen, plan (EXPLAIN's JSON), oldest first."""
    c = statement_plans.c
    query = (
        select(c.text_hash, c.first_seen, c.last_seen, c.plan)
        .where(c.target_id == int(target_id), c.datname == datname, c.last_seen >= int(since))
        .order_by(c.last_seen, c.id)
    )
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


__all__ = [
    "CHART_BUCKETS",
    "ORDERS",
    "RAW_SECONDS",
    "TOTALS_BUCKETS",
    "StatementFilter",
    "Window",
    "choose_level",
    "first_ts",
    "index_catalog_rows",
    "index_suggestion_rows",
    "latest_advice",
    "plans_since",
    "series_frame",
    "slowlog_entries",
    "statement_filters",
    "statement_ids_by_text",
    "statement_info",
    "statement_series",
    "statement_texts",
    "statement_totals",
    "statement_window_totals",
    "target_details",
    "target_statuses",
]
