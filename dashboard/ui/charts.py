"""Plotly figure builders: the store's and the analyses' frames in, figures out (no Streamlit, no store).

Series frames carry per-bucket `sum`, `count` and `width` (seconds): a counter's rate is
`rates.rate(sum, width)` (dashboard.store.rates), a gauge's mean is sum / count. Times are shown in
UTC; the seed's targets (dashboard.analysis.objectives) are ratios, drawn in %.

Plotly reads its text (titles, legends, axis and hover labels) as HTML of its own: `<a href>` makes a
link and `<span style="background:url(...)">` fetches that URL. Every text a figure shows goes
through `plain` first, so a name or a query's text is shown as written.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from dashboard.analysis import objectives
from dashboard.analysis.sqltext import one_line
from dashboard.core import metrics
from dashboard.store.rates import rate

HEIGHT = 260
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


def plain(text: object) -> str:
    """`text` as Plotly shows it literally: its `<`, `>` and `&` as entities (Plotly decodes them)."""
    return html.escape(str(text), quote=False)


def _plain_column(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.assign(**{column: frame[column].map(plain)})


def with_time(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with a UTC `time` column made from the Unix-second `ts`."""
    out = frame.copy()
    out["time"] = pd.to_datetime(out["ts"], unit="s", utc=True)
    return out


# -- store series (Overview) --------------------------------------------------------------------
def rate_lines(frame: pd.DataFrame, name: str, title: str, unit: str, per: float = 1.0) -> go.Figure:
    """A counter as a rate per `per` seconds, one line per target (labels summed)."""
    points = _per_target(frame, [name])
    points["value"] = rate(points[name], points["width"], per)
    return _lines(points, title, unit)


def ratio_lines(
    frame: pd.DataFrame, numerator: str, denominator: list[str], title: str, unit: str, scale: float = 1.0
) -> go.Figure:
    """numerator / sum(denominator) per bucket and target (mean time, cache hit ratio)."""
    points = _per_target(frame, list(dict.fromkeys([numerator, *denominator])))
    below = points[denominator].sum(axis=1)
    points["value"] = points[numerator] / below.where(below > 0) * scale
    return _lines(points, title, unit)


def hit_ratio_lines(frame: pd.DataFrame, title: str = "Buffer cache hit ratio") -> go.Figure:
    """blks_hit / (blks_hit + blks_read) in %.

    From the seed's target, 90 % (or lower when needed), to 100 %: a zero-based axis flattens a drop
    from 99.9 % to 98 %, which matters, while an automatic one turns a 0.01 % wobble into a cliff.
    """
    hit, read = metrics.PG_DB_BLKS_HIT, metrics.PG_DB_BLKS_READ
    fig = ratio_lines(frame, hit, [hit, read], title, "%", 100)
    values = [v for trace in fig.data for v in (trace.y if trace.y is not None else []) if v == v]
    if values:
        floor = objectives.BUFFER_HIT_RATIO * 100
        fig.update_yaxes(range=[min(floor, math.floor(min(values))), 100.5])
    return fig


def connections_area(frame: pd.DataFrame, title: str = "Connections by state") -> go.Figure:
    """Stacked area of the mean number of connections per state (sum / count per bucket)."""
    points = frame[frame["name"] == metrics.PG_CONNECTIONS].copy()
    if points.empty:
        return _empty(title)
    points["state"] = points["labels"].map(lambda lb: plain(metrics.decode(lb).get("state", lb)))
    points["value"] = points["sum"] / points["count"].where(points["count"] > 0)
    points = with_time(points.groupby(["ts", "state"], as_index=False)["value"].sum())
    fig = px.area(
        points,
        x="time",
        y="value",
        color="state",
        color_discrete_map={plain(k): v for k, v in CONNECTION_COLORS.items()},
        category_orders={"state": [plain(k) for k in CONNECTION_COLORS]},
    )
    return _layout(fig, title, "connections")


def _per_target(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """One row per (target, ts): each named series summed over its labels, plus the width."""
    picked = frame[frame["name"].isin(names)]
    wide = picked.pivot_table(index=["target", "ts"], columns="name", values="sum", aggfunc="sum")
    wide = wide.reindex(columns=names).fillna(0.0)
    widths = picked.groupby(["target", "ts"])["width"].max()
    return wide.join(widths).reset_index()


def _lines(points: pd.DataFrame, title: str, unit: str) -> go.Figure:
    if points.empty:
        return _empty(title)
    points = with_time(_plain_column(points, "target"))
    fig = px.line(points, x="time", y="value", color="target", markers=len(points) < 40)
    return _layout(fig, title, unit, legend=points["target"].nunique() > 1)


# -- statements (Queries, Query detail) ---------------------------------------------------------
def top_queries_bar(frame: pd.DataFrame, title: str = "Top queries by total time") -> go.Figure:
    """Horizontal bars of total time (s) of the given statements, the biggest on top."""
    if frame.empty:
        return _empty(title)
    bars = frame.assign(
        label=[
            plain(f"#{sid} {one_line(q, 60)}")
            for sid, q in zip(frame["statement_id"], frame["query"], strict=True)
        ],
        seconds=frame["exec_ms"] / 1000,
    )
    fig = px.bar(bars, x="seconds", y="label", orientation="h", hover_data={"calls": True, "mean_ms": ":.2f"})
    fig.update_yaxes(autorange="reversed", title=None)
    return _layout(fig, title, "", xtitle="total time (s)", legend=False)


def statement_rates(
    frame: pd.DataFrame, columns: Mapping[str, str], title: str, unit: str, per: float = 60.0
) -> go.Figure:
    """Counters of one statement as rates per `per` seconds, one line per column (label)."""
    if frame.empty:
        return _empty(title)
    long = pd.DataFrame(
        {
            "ts": pd.concat([frame["ts"]] * len(columns), ignore_index=True),
            "series": [label for label in columns.values() for _ in range(len(frame))],
            "value": pd.concat([rate(frame[c], frame["width"], per) for c in columns], ignore_index=True),
        }
    )
    return _series_lines(long, title, unit)


def statement_mean(frame: pd.DataFrame, title: str = "Mean time") -> go.Figure:
    """exec_ms / calls per bucket; buckets without calls are gaps, not zeros."""
    if frame.empty:
        return _empty(title)
    long = pd.DataFrame(
        {
            "ts": frame["ts"],
            "series": "mean",
            "value": frame["exec_ms"] / frame["calls"].where(frame["calls"] > 0),
        }
    )
    return _series_lines(long, title, "ms", legend=False)


def _series_lines(long: pd.DataFrame, title: str, unit: str, legend: bool = True) -> go.Figure:
    long = with_time(_plain_column(long, "series"))
    fig = px.line(long, x="time", y="value", color="series", markers=len(long) < 60)
    return _layout(fig, title, unit, legend=legend and long["series"].nunique() > 1)


# -- long frames: ts, series, value (Redis) -----------------------------------------------------
def lines(
    long: pd.DataFrame, title: str, unit: str, *, dashed: tuple[str, ...] = (), legend: bool = True
) -> go.Figure:
    """One line per `series`; the series named in `dashed` are drawn dashed (limits)."""
    if long.empty:
        return _empty(title)
    fig = _series_lines(long, title, unit, legend=legend)
    for name in dashed:
        fig.update_traces(line_dash="dash", selector={"name": plain(name)})
    return fig


def hit_rate_line(
    long: pd.DataFrame, title: str = "Hit rate", target: float = objectives.CACHE_HIT_RATE
) -> go.Figure:
    """A 0..1 ratio per bucket in %, with the `target` ratio as a dashed line; the axis starts at
    the target (or lower when needed), as for the buffer cache."""
    if long.empty:
        return _empty(title)
    target *= 100
    fig = _series_lines(long.assign(value=long["value"] * 100), title, "%", legend=False)
    fig.add_hline(
        y=target,
        line_dash="dash",
        line_color="#c62828",
        annotation_text=f"target {target:g} %",
        annotation_position="top left",
    )
    low = math.floor(min(target, float(long["value"].min()) * 100)) - 2
    fig.update_yaxes(range=[max(0, low), 100.5])
    return fig


def stacked_area(
    long: pd.DataFrame, title: str, unit: str, colors: Mapping[str, str] | None = None
) -> go.Figure:
    """Stacked areas, one per `series` (jobs per state), in the order the frame lists them."""
    if long.empty:
        return _empty(title)
    points = with_time(_plain_column(long, "series"))
    order = list(dict.fromkeys(points["series"]))
    fig = px.area(
        points,
        x="time",
        y="value",
        color="series",
        color_discrete_map={plain(k): v for k, v in (colors or {}).items()},
        category_orders={"series": order},
    )
    return _layout(fig, title, unit)


# -- services: SLO lines, the overlay (Services) -------------------------------------------------
TARGET_COLOR = "#c62828"
OVERLAY_COLORS = ("#1565c0", "#ef6c00")  # the service series (left axis), the other one (right axis)


def slo_lines(
    long: pd.DataFrame, title: str, unit: str, target: tuple[str, float] | None = None, label: str = ""
) -> go.Figure:
    """A recorded series (a line per label set) with its target as a dashed line, always in view.

    For an upper bound ('< 200') the axis starts at zero; for a lower bound ('>= 99.9') it starts
    just below the target, or the values when they are lower: from zero, 99.9 % and 100 % would be
    one line.
    """
    if long.empty:
        return _empty(title)
    fig = _series_lines(long, title, unit, legend=long["series"].nunique() > 1)
    if target is None:
        return fig
    op, threshold = target
    fig.add_hline(
        y=threshold,
        line_dash="dash",
        line_color=TARGET_COLOR,
        annotation_text=plain(f"target {label or f'{op} {threshold:g}'}"),
        annotation_position="top left",
        annotation_font_color=TARGET_COLOR,
    )
    values = long["value"].dropna()
    low = min(float(values.min()), threshold) if len(values) else threshold
    high = max(float(values.max()), threshold) if len(values) else threshold
    if op in (">", ">="):
        pad = max((high - low) * 0.15, abs(threshold) * 0.0005, 1e-9)
        fig.update_yaxes(range=[low - pad, high + pad], rangemode="normal")
    else:
        fig.update_yaxes(range=[min(0.0, low * 1.1), high * 1.15 if high > 0 else 1.0])
    return fig


def overlay(
    left: pd.DataFrame,
    left_unit: str,
    right: pd.DataFrame,
    right_unit: str,
    title: str = "",
    target: tuple[str, float] | None = None,
) -> go.Figure:
    """Two long frames on one time axis: `left` on the left y axis (with its target as a dashed
    line), `right` on a second y axis at the right, each axis titled in its line's color."""
    from plotly.subplots import make_subplots

    if left.empty and right.empty:
        return _empty(title)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for long, secondary, color in ((left, False, OVERLAY_COLORS[0]), (right, True, OVERLAY_COLORS[1])):
        if long.empty:
            continue
        points = with_time(long)
        for name, part in points.groupby("series", sort=False):
            fig.add_trace(
                go.Scatter(
                    x=part["time"], y=part["value"], name=plain(name), line={"color": color},
                    mode="lines+markers" if len(part) < 60 else "lines",
                ),
                secondary_y=secondary,
            )  # fmt: skip
    _layout(fig, title, "", legend=True)
    fig.update_yaxes(
        title={"text": plain(left_unit), "font": {"color": OVERLAY_COLORS[0]}}, secondary_y=False
    )
    fig.update_yaxes(
        title={"text": plain(right_unit), "font": {"color": OVERLAY_COLORS[1]}},
        secondary_y=True,
        showgrid=False,
        tickmode="auto",
    )
    if target is not None and not left.empty:
        fig.add_hline(y=target[1], line_dash="dash", line_color=TARGET_COLOR, line_width=1, secondary_y=False)
    return fig


# -- layout -------------------------------------------------------------------------------------
def _layout(fig: go.Figure, title: str, unit: str, *, xtitle: str = "", legend: bool = True) -> go.Figure:
    # The legend sits between the title and the plot: below the plot it runs into the date line
    # of the time axis, and at the top right a long one (connection states) runs into the title.
    fig.update_layout(
        title={"text": plain(title), "font": {"size": 15}, "y": 0.97, "yanchor": "top"},
        height=HEIGHT + (30 if legend else 0),
        margin={"l": 10, "r": 10, "t": 70 if legend else 40, "b": 10},
        showlegend=legend,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0, "title": None},
        hovermode="x unified",
    )
    fig.update_yaxes(title=plain(unit) if unit else None, rangemode="tozero")
    fig.update_xaxes(title=plain(xtitle) if xtitle else None)
    return fig


def _empty(title: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text="no data in this window", showarrow=False, font={"size": 14})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, "", legend=False)
