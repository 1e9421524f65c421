"""The Overview's figures: per PostgreSQL target, its activity over a window and over time."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.store import reads
from dashboard.store.rates import rate
from dashboard.store.reads import Window

STATEMENT_TOTALS = ("pg.statements.calls", "pg.statements.exec_ms", "pg.statements.rows")
BLOCKS = ("pg.db.blks_hit", "pg.db.blks_read")
SUMMARY_SERIES = (*STATEMENT_TOTALS, *BLOCKS)
CYCLES = "pg.statements.calls"  # written once per successful cycle: the grid statements live on
OVERVIEW_SERIES = (*STATEMENT_TOTALS, *BLOCKS, "pg.connections")


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
    out["exec_ms"] = sums["pg.statements.exec_ms"].fillna(0.0)
    out["calls"] = sums["pg.statements.calls"].fillna(0.0)
    out["rows"] = sums["pg.statements.rows"].fillna(0.0)
    out["seconds"] = covered.reindex(out.index).fillna(0.0)
    out["calls_per_s"] = rate(out["calls"], out["seconds"])
    out["mean_ms"] = out["exec_ms"] / out["calls"].where(out["calls"] > 0)
    blocks = sums["pg.db.blks_hit"] + sums["pg.db.blks_read"]
    out["hit_ratio"] = sums["pg.db.blks_hit"] / blocks.where(blocks > 0)
    return out
