"""The Overview's figures: per PostgreSQL target, its activity over a window and over time."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core import metrics
from dashboard.store import reads
from dashboard.store.rates import rate
from dashboard.store.reads import Window

STATEMENT_TOTALS = (metrics.PG_STATEMENTS_CALLS, metrics.PG_STATEMENTS_EXEC_MS, metrics.PG_STATEMENTS_ROWS)
BLOCKS = (metrics.PG_DB_BLKS_HIT, metrics.PG_DB_BLKS_READ)
SUMMARY_SERIES = (*STATEMENT_TOTALS, *BLOCKS)
CYCLES = metrics.PG_STATEMENTS_CALLS  # written once per successful cycle: the grid statements live on
OVERVIEW_SERIES = (*STATEMENT_TOTALS, *BLOCKS, metrics.PG_CONNECTIONS)


def activity(reader: Reader, targets: Sequence[Target], window: Window) -> pd.DataFrame:
    """The Overview's series (OVERVIEW_SERIES) at chart resolution, with a `target` column."""
    return reader.series(targets, OVERVIEW_SERIES, window)


def summary(reader: Reader, targets: Sequence[Target], window: Window) -> pd.DataFrame:
    """Per target over the window: query time, calls, rows, calls/s, mean time, cache hit ratio.

    Rates divide by the time the collector actually covered, not by the whole window, so a target
    added an hour ago does not show a 24-hour average diluted by the hours before it existed.
    """
    frame = reader.series(targets, SUMMARY_SERIES, window, reader.level(window, reads.TOTALS_BUCKETS))
    sums = frame.pivot_table(index="target", columns="name", values="sum", aggfunc="sum")
    sums = sums.reindex(index=[t.name for t in targets], columns=list(SUMMARY_SERIES))
    covered = frame[frame["name"] == CYCLES].groupby("target")["width"].sum().clip(upper=window.seconds)
    out = pd.DataFrame(index=sums.index)
    out["exec_ms"] = sums[metrics.PG_STATEMENTS_EXEC_MS].fillna(0.0)
    out["calls"] = sums[metrics.PG_STATEMENTS_CALLS].fillna(0.0)
    out["rows"] = sums[metrics.PG_STATEMENTS_ROWS].fillna(0.0)
    out["seconds"] = covered.reindex(out.index).fillna(0.0)
    out["calls_per_s"] = rate(out["calls"], out["seconds"])
    out["mean_ms"] = out["exec_ms"] / out["calls"].where(out["calls"] > 0)
    blocks = sums[metrics.PG_DB_BLKS_HIT] + sums[metrics.PG_DB_BLKS_READ]
    out["hit_ratio"] = sums[metrics.PG_DB_BLKS_HIT] / blocks.where(blocks > 0)
    return out
