"""Statements: the top ones of a window, one statement's history and figures, and what the index
advisor said about them (the Queries, Query detail and Indexes pages)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dashboard.analysis.overview import CYCLES
from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core.advice import StatementAdvice, StoredAdvice
from dashboard.core.records import StatementInfo
from dashboard.store import reads
from dashboard.store.reads import Window

ORDERS = reads.ORDERS


def _ids(targets: Sequence[Target]) -> tuple[int, ...]:
    return tuple(sorted(t.id for t in targets))


def top_statements(
    reader: Reader,
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
    level = reader.level(window, reads.TOTALS_BUCKETS)
    where = reads.StatementFilter(database, user, text or None, order, limit)
    frame = reader.store.statement_totals(_ids(targets), window, level, where)
    frame["target"] = frame["target_id"].map({t.id: t.name for t in targets})
    return frame


def cycles(reader: Reader, targets: Sequence[Target], window: Window, level: str) -> pd.DataFrame:
    """When the targets were collected (ts, width): a statement absent there did not run."""
    return reader.series(targets, (CYCLES,), window, level)[["ts", "width"]]


def sparklines(
    reader: Reader, statement_ids: Sequence[int], targets: Sequence[Target], window: Window
) -> dict[int, list]:
    """Query time per bucket of each statement, zero where it did not run (one read for all)."""
    if not len(statement_ids):
        return {}
    level = reader.level(window, reads.TOTALS_BUCKETS)
    ids = tuple(sorted(int(i) for i in statement_ids))
    frame = reader.store.statement_series(ids, window, level)
    grid = cycles(reader, targets, window, level)["ts"]
    wide = frame.pivot_table(index="ts", columns="statement_id", values="exec_ms", aggfunc="sum")
    wide = wide.reindex(index=wide.index.union(grid), columns=list(ids)).fillna(0.0)
    return {sid: wide[sid].round(3).tolist() for sid in ids}


def statement(reader: Reader, statement_id: int) -> StatementInfo | None:
    """Everything known about one statement (text, target, min/max/mean/stddev...), or None."""
    return reader.store.statement(int(statement_id))


def statement_timeline(reader: Reader, statement_id: int, target: Target, window: Window) -> pd.DataFrame:
    """Per-bucket counters of one statement on the target's cycle grid (zeros where idle)."""
    level = reader.level(window, reads.CHART_BUCKETS)
    frame = reader.store.statement_series((int(statement_id),), window, level)
    # One target: its cycles have unique times. Widths come from the cycles, so the statement's
    # rates share the Overview's notion of covered time.
    grid = cycles(reader, [target], window, level).set_index("ts")["width"]
    counters = list(reads.STATEMENT_COUNTERS)
    frame = frame.set_index("ts")[counters].reindex(grid.index.union(frame["ts"])).fillna(0.0)
    widths = grid.reindex(frame.index)
    frame["width"] = widths.fillna(widths.median()).fillna(float(reads.RAW_SECONDS))
    return frame.reset_index()


def statement_summary(reader: Reader, statement_id: int, window: Window) -> dict[str, float]:
    """One statement's totals over the window: calls, time, rows, blocks and derived figures."""
    level = reader.level(window, reads.TOTALS_BUCKETS)
    frame = reader.store.statement_series((int(statement_id),), window, level)
    sums = {c: float(frame[c].sum()) for c in reads.STATEMENT_COUNTERS}
    calls, blocks = sums["calls"], sums["shared_hit"] + sums["shared_read"]
    sums["mean_ms"] = sums["exec_ms"] / calls if calls else float("nan")
    sums["rows_per_call"] = sums["rows"] / calls if calls else float("nan")
    sums["hit_ratio"] = sums["shared_hit"] / blocks if blocks else float("nan")
    return sums


def filters(reader: Reader, targets: Sequence[Target]) -> tuple[list[str], list[str]]:
    """The databases and users statements were recorded for."""
    return reader.store.filters(_ids(targets))


# -- index advice -------------------------------------------------------------------------------
def advice(reader: Reader, targets: Sequence[Target]) -> list[StoredAdvice]:
    """The index advisor's latest report per target and database, newest first."""
    if not targets:
        return []
    return reader.store.advice(_ids(targets))


def statement_ids(
    reader: Reader, target_id: int, datname: str | None, texts: Sequence[str]
) -> dict[str, int]:
    """Text -> statement id, for the texts the store holds (links from a report to query detail)."""
    return reader.store.statement_ids(int(target_id), datname, tuple(sorted(set(texts))))


def statement_advice(
    reader: Reader, target_id: int, datname: str | None, text: str | None
) -> StatementAdvice | None:
    """What the latest advisor report of the statement's database says about it: the suggestion
    that serves it (and its rank) or why it got none; None when there is no report or the report
    does not mention the statement."""
    reports = reader.store.advice((int(target_id),))
    stored = next((r for r in reports if r.datname == datname), None)
    if stored is None or not text:
        return None
    found = StatementAdvice(stored.target, stored.datname, stored.ts)
    for rank, suggestion in enumerate(stored.report.suggestions, start=1):
        if text in suggestion.statements:
            return found._replace(suggestion=suggestion, rank=rank)
    for skipped in stored.report.skipped:
        if skipped.statement == text:
            return found._replace(skipped=skipped.reason)
    return None
