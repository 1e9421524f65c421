"""The one rate rule: a stored counter's delta divided by the time its cycles covered.

A stored point holds a counter's activity (`sum`) over a span of time; `width` is that span in
seconds, and every rate the observatory shows is `rate(sum, width)`:

- raw level: the time since the series' previous reading (a cycle can come late or fail, and a
  target can be stopped for a while);
- hourly and daily buckets: the time the bucket's cycles covered, `count` x the target's interval,
  never more than the bucket. The current bucket is still filling, and a target may start, stop or
  fail mid-bucket: dividing by the whole bucket would show a rate that drops at the right edge of
  every chart. Without the targets' intervals (a reader with no configuration) a bucket's width is
  the whole bucket.

The store's reads set `width` (`widths`); the analyses and the charts divide by it (`rate`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from dashboard.store.schema import BUCKET_SECONDS

RAW_SECONDS = 60  # the nominal width of a raw bucket (the default interval)


def widths(
    frame: pd.DataFrame, level: str, keys: Sequence[str], intervals: Mapping[int, float] | None = None
) -> pd.Series:
    """The `width` of each point of a frame read at `level`; `keys` name one series' points
    (raw gaps are taken within a series), `intervals` maps target ids to their intervals."""
    if level != "raw":
        bucket = BUCKET_SECONDS[level]
        if not intervals or not len(frame):
            return pd.Series(bucket, index=frame.index)
        interval = frame["target_id"].map(intervals).fillna(float(RAW_SECONDS))
        return (frame["count"] * interval).clip(upper=bucket).astype(float)
    gaps = frame.groupby(list(keys))["ts"].diff() if len(frame) else frame["ts"]
    # A series' first point has no previous point in the frame: assume its usual gap, not 60 s
    # (a target collected every 5 min would otherwise start every chart 5x too high).
    usual = gaps.groupby([frame[k] for k in keys]).transform("median") if len(frame) else gaps
    return gaps.fillna(usual).fillna(RAW_SECONDS).clip(lower=1)


def rate(delta: pd.Series | float, width: pd.Series | float, per: float = 1.0) -> pd.Series | float:
    """`delta` per `per` seconds over `width` seconds; NaN where no time was covered."""
    if isinstance(width, pd.Series):
        return delta / width.where(width > 0) * per
    return delta / width * per if width > 0 else math.nan
