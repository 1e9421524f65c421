"""Chart builders: the store's and the analyses' frames in, `Chart` records out (no Streamlit, no store).

A `Chart` is plain data: Unix-second x values, one list of values per series, a title and a unit.
`dashboard.ui.plots` draws a page's charts with uPlot in one frame; nothing here knows how. Plotly
was the drawing library before (issue 11): its 4.7 MB of JavaScript alone made a page take twice as
long as an empty one to open.

Series frames carry per-bucket `sum`, `count` and `width` (seconds): a counter's rate is
`rates.rate(sum, width)` (dashboard.store.rates), a gauge's mean is sum / count. Times are shown in
UTC; the seed's targets (dashboard.analysis.objectives) are ratios, drawn in %. Values that are
missing (a bucket without calls) are None: a gap, not a zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import pandas as pd

from dashboard.analysis import objectives
from dashboard.analysis.sqltext import one_line
from dashboard.core import metrics
from dashboard.store.rates import rate

QUEUE_STATE_COLORS = {
    "wait": "#1565c0",
    "queued": "#1565c0",
    "prioritized": "#5e35b1",
    "paused": "#9e9e9e",
    "active": "#2e7d32",
    "started": "#2e7d32",
    "delayed": "#ef6c00",
    "scheduled": "#ef6c00",
    "waiting-children": "#8d6e63",
    "deferred": "#8d6e63",
}
CONNECTION_COLORS = {
    "active": "#2e7d32",
    "idle": "#9e9e9e",
    "idle in transaction": "#ef6c00",
    "idle in transaction (aborted)": "#c62828",
}
TARGET_COLOR = "#c62828"
ALERT_STATE_COLORS = {"firing": "#c62828", "pending": "#ef6c00"}
OVERLAY_COLORS = ("#1565c0", "#ef6c00")  # the service series (left axis), the other one (right axis)


class Series(NamedTuple):
    label: str
    x: list[int]  # Unix seconds, ascending: the times this series was read at (bars: empty)
    values: list[float | None]  # one per x (bars: one per bar); None is a gap in the line
    color: str | None = None  # None: the palette's next
    dash: bool = False  # a limit or a target, not a measurement
    right: bool = False  # on the right-hand axis (the overlay's second series)


class Chart(NamedTuple):
    title: str
    unit: str
    x: list[int]  # the union of the series' times; empty for bars
    series: list[Series]  # empty: "no data in this window"
    kind: str = "line"  # "line", "area" (stacked, in the order given) or "bars"
    y_min: float | None = None  # None: from the values (and from zero unless noted)
    y_max: float | None = None
    right_unit: str = ""  # the right-hand axis' unit, when a series has right=True
    labels: tuple[str, ...] = ()  # bars: the bar's name
    notes: tuple[str, ...] = ()  # bars: shown beside the value

    @property
    def empty(self) -> bool:
        return not self.series


def _values(column: pd.Series) -> list[float | None]:
    return [finite(v) for v in column.tolist()]


def finite(value: object) -> float | None:
    """`value` as a float, or None (a gap; for an axis bound: automatic) when NaN, infinite or None."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def from_long(long: pd.DataFrame, title: str, unit: str, **options) -> Chart:
    """A chart of a long frame (ts, series, value): one series per `series`, in order of appearance,
    each on its own times. Two targets read seconds apart keep their lines (charts.js joins them,
    spanning the other's times); a NaN value stays a gap, and rows of one series at one time are
    summed, NaN only when they all are."""
    long = long.dropna(subset=["series"])
    if long.empty:
        return Chart(title, unit, [], [], **_chart_options(options))
    names = long["series"].map(str)
    sums = long.groupby([names, long["ts"]], sort=False)["value"].sum(min_count=1)
    colors: Mapping[str, str] = options.pop("colors", {})
    dashed: tuple[str, ...] = options.pop("dashed", ())
    series = []
    for name in dict.fromkeys(names):
        part = sums.loc[name].sort_index()
        series.append(
            Series(name, [int(t) for t in part.index], _values(part), colors.get(name), name in dashed)
        )
    return Chart(title, unit, _union(series), series, **options)


def _readings(long: pd.DataFrame) -> list[float]:
    """The frame's finite values (what an axis range is made of)."""
    return [v for v in _values(long["value"]) if v is not None]


def _chart_options(options: dict) -> dict:
    return {k: v for k, v in options.items() if k not in ("colors", "dashed")}


def _union(series: list[Series]) -> list[int]:
    return sorted({t for s in series for t in s.x})


def _with_line(chart: Chart, label: str, value: float) -> Chart:
    """`chart` with a dashed horizontal line at `value` (a target, a limit), named in the legend."""
    if chart.empty:
        return chart
    line = Series(label, chart.x, [value] * len(chart.x), TARGET_COLOR, dash=True)
    return chart._replace(series=[*chart.series, line])


# -- store series (Overview) --------------------------------------------------------------------
def rate_lines(frame: pd.DataFrame, name: str, title: str, unit: str, per: float = 1.0) -> Chart:
    """A counter as a rate per `per` seconds, one line per target (labels summed)."""
    points = _per_target(frame, [name])
    points["value"] = rate(points[name], points["width"], per)
    return _target_lines(points, title, unit)


def ratio_lines(
    frame: pd.DataFrame, numerator: str, denominator: list[str], title: str, unit: str, scale: float = 1.0
) -> Chart:
    """numerator / sum(denominator) per bucket and target (mean time, cache hit ratio)."""
    points = _per_target(frame, list(dict.fromkeys([numerator, *denominator])))
    below = points[denominator].sum(axis=1)
    points["value"] = points[numerator] / below.where(below > 0) * scale
    return _target_lines(points, title, unit)


def hit_ratio_lines(frame: pd.DataFrame, title: str = "Buffer cache hit ratio") -> Chart:
    """blks_hit / (blks_hit + blks_read) in %.

    From the seed's target, 90 % (or lower when needed), to 100 %: a zero-based axis flattens a drop
    from 99.9 % to 98 %, which matters, while an automatic one turns a 0.01 % wobble into a cliff.
    """
    hit, read = metrics.PG_DB_BLKS_HIT, metrics.PG_DB_BLKS_READ
    chart = ratio_lines(frame, hit, [hit, read], title, "%", 100)
    values = [v for s in chart.series for v in s.values if v is not None]
    if not values:
        return chart
    floor = objectives.BUFFER_HIT_RATIO * 100
    return chart._replace(y_min=min(floor, math.floor(min(values))), y_max=100.5)


def connections_area(frame: pd.DataFrame, title: str = "Connections by state") -> Chart:
    """Stacked areas of the mean number of connections per state (sum / count per bucket)."""
    points = frame[frame["name"] == metrics.PG_CONNECTIONS].copy()
    if points.empty:
        return Chart(title, "connections", [], [])
    points["series"] = points["labels"].map(lambda lb: metrics.decode(lb).get("state", lb))
    points["value"] = points["sum"] / points["count"].where(points["count"] > 0)
    long = points.groupby(["ts", "series"], as_index=False)["value"].sum()
    known = [s for s in CONNECTION_COLORS if s in set(long["series"])]
    order = known + sorted(set(long["series"]) - set(known))
    long = long.assign(series=pd.Categorical(long["series"], order)).sort_values(["series", "ts"])
    long["series"] = long["series"].astype(str)
    return from_long(long, title, "connections", kind="area", colors=CONNECTION_COLORS)


def _per_target(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """One row per (target, ts): each named series summed over its labels, plus the width."""
    picked = frame[frame["name"].isin(names)]
    wide = picked.pivot_table(index=["target", "ts"], columns="name", values="sum", aggfunc="sum")
    wide = wide.reindex(columns=names).fillna(0.0)
    widths = picked.groupby(["target", "ts"])["width"].max()
    return wide.join(widths).reset_index()


def _target_lines(points: pd.DataFrame, title: str, unit: str) -> Chart:
    return from_long(points.rename(columns={"target": "series"})[["ts", "series", "value"]], title, unit)


# -- statements (Queries, Query detail) ---------------------------------------------------------
def top_queries_bar(frame: pd.DataFrame, title: str = "Top queries by total time") -> Chart:
    """Horizontal bars of total time (s) of the given statements, in the frame's order."""
    if frame.empty:
        return Chart(title, "s", [], [], kind="bars")
    seconds = _values(frame["exec_ms"] / 1000)
    return Chart(
        title,
        "s",
        [],
        [Series("total time", [], seconds)],
        kind="bars",
        labels=tuple(f"#{r.statement_id} {one_line(r.query, 60)}" for r in frame.itertuples()),
        notes=tuple(f"{r.calls:,} calls · {r.mean_ms:.2f} ms mean" for r in frame.itertuples()),
    )


def statement_rates(
    frame: pd.DataFrame, columns: Mapping[str, str], title: str, unit: str, per: float = 60.0
) -> Chart:
    """Counters of one statement as rates per `per` seconds, one line per column (label)."""
    if frame.empty:
        return Chart(title, unit, [], [])
    x = [int(t) for t in frame["ts"]]
    series = [Series(label, x, _values(rate(frame[c], frame["width"], per))) for c, label in columns.items()]
    return Chart(title, unit, x, series)


def statement_mean(frame: pd.DataFrame, title: str = "Mean time") -> Chart:
    """exec_ms / calls per bucket; buckets without calls are gaps, not zeros."""
    if frame.empty:
        return Chart(title, "ms", [], [])
    mean = frame["exec_ms"] / frame["calls"].where(frame["calls"] > 0)
    x = [int(t) for t in frame["ts"]]
    return Chart(title, "ms", x, [Series("mean", x, _values(mean))])


# -- long frames: ts, series, value (Redis, Services) --------------------------------------------
def lines(long: pd.DataFrame, title: str, unit: str, *, dashed: tuple[str, ...] = ()) -> Chart:
    """One line per `series`; the series named in `dashed` are drawn dashed (limits)."""
    if long.empty:
        return Chart(title, unit, [], [])
    return from_long(long, title, unit, dashed=dashed)


def hit_rate_line(
    long: pd.DataFrame, title: str = "Hit rate", target: float = objectives.CACHE_HIT_RATE
) -> Chart:
    """A 0..1 ratio per bucket in %, with the `target` ratio as a dashed line; the axis starts at
    the target (or lower when needed), as for the buffer cache."""
    if long.empty:
        return Chart(title, "%", [], [])
    target *= 100
    chart = from_long(long.assign(value=long["value"] * 100), title, "%")
    low = math.floor(min([target, *(v * 100 for v in _readings(long))])) - 2
    return _with_line(chart, f"target {target:g} %", target)._replace(y_min=max(0, low), y_max=100.5)


def stacked_area(long: pd.DataFrame, title: str, unit: str, colors: Mapping[str, str] | None = None) -> Chart:
    """Stacked areas, one per `series` (jobs per state), in the order the frame lists them."""
    if long.empty:
        return Chart(title, unit, [], [])
    return from_long(long, title, unit, kind="area", colors=colors or {})


def slo_lines(
    long: pd.DataFrame, title: str, unit: str, target: tuple[str, float] | None = None, label: str = ""
) -> Chart:
    """A recorded series (a line per label set) with its target as a dashed line, always in view.

    For an upper bound ('< 200') the axis starts at zero; for a lower bound ('>= 99.9') it starts
    just below the target, or the values when they are lower: from zero, 99.9 % and 100 % would be
    one line.
    """
    if long.empty:
        return Chart(title, unit, [], [])
    chart = from_long(long, title, unit)
    if target is None:
        return chart
    op, threshold = target
    chart = _with_line(chart, f"target {label or f'{op} {threshold:g}'}", threshold)
    values = _readings(long)
    low, high = min([*values, threshold]), max([*values, threshold])
    if op in (">", ">="):
        pad = max((high - low) * 0.15, abs(threshold) * 0.0005, 1e-9)
        return chart._replace(y_min=low - pad, y_max=high + pad)
    return chart._replace(y_min=min(0.0, low * 1.1), y_max=high * 1.15 if high > 0 else 1.0)


def overlay(
    left: pd.DataFrame,
    left_unit: str,
    right: pd.DataFrame,
    right_unit: str,
    title: str = "",
    target: tuple[str, float] | None = None,
) -> Chart:
    """Two long frames on one time axis: `left` on the left axis (with its target as a dashed
    line), `right` on a second axis at the right, each line in its axis' color."""
    series = [
        s._replace(color=OVERLAY_COLORS[on_right], right=on_right)
        for part, on_right in ((left, False), (right, True))
        for s in from_long(part, title, left_unit).series
    ]
    chart = Chart(title, left_unit, _union(series), series, right_unit=right_unit)
    if target is not None and not left.empty:
        chart = _with_line(chart, f"target {target[0]} {target[1]:g}", target[1])
    return chart


def threshold_lines(long: pd.DataFrame, title: str, unit: str, op: str, threshold: float) -> Chart:
    """An alerting rule's series (a line per label set) with its threshold as a dashed line, always
    in view: the axis spans the values and the threshold, from zero unless a value is below it."""
    if long.empty:
        return Chart(title, unit, [], [])
    chart = _with_line(from_long(long, title, unit), f"threshold {op} {threshold:g}", threshold)
    values = [*_readings(long), threshold]
    low, high = min([0.0, *values]), max(values)
    return chart._replace(y_min=low, y_max=high + (high - low) * 0.1 if high > low else low + 1.0)
