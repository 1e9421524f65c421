"""Drawing charts: a list of `charts.Chart`s in one frame, drawn by uPlot (vendored in static/).

Why uPlot in a frame of our own (issue 11, bench/pages.py): Plotly's 4.7 MB of JavaScript took
0.7-0.9 s to load before the first chart of a page appeared, twice the time of a page with no chart,
and Vega-Lite 0.3 s plus 70 ms a chart; uPlot is 51 KB and draws fifteen charts of 300 points in
about 0.1 s. One frame a section rather than one per chart: a frame costs about 30 ms, and the charts
in one frame share the hover (uPlot's cursor sync), so the same moment is read off every chart at once.

Every time chart of a frame spans the selected window: a chart's x range is what the user asked for,
not what the data happens to cover (one point no longer makes a millisecond-wide axis).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import streamlit as st

from dashboard.store.reads import Window
from dashboard.ui.charts import Chart, finite

STATIC = Path(__file__).with_name("static")
HEIGHT = 220  # the plot area of a chart, px


@cache
def static(*names: str) -> str:
    """The files of static/ (the vendored uPlot, our scripts and styles), joined; read once."""
    return "\n".join((STATIC / name).read_text(encoding="utf-8") for name in names)


def script_json(value: object) -> str:
    """`value` as JSON that cannot end the <script> element holding it, whatever its strings say."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def spec(charts: Sequence[Chart], window: Window | None, columns: int) -> dict:
    """What charts.js draws: plain JSON."""
    return {
        "window": [window.start, window.end] if window else None,
        "columns": columns,
        "height": HEIGHT,
        "charts": [_chart(c) for c in charts],
    }


def _chart(chart: Chart) -> dict:
    # Not chart.x: charts.js joins the series' own times. A series read at the same times as the
    # one before it says so with x = null: most do, and the times are most of the bytes.
    fields = {k: v for k, v in chart._asdict().items() if k != "x"}
    fields.update(y_min=finite(chart.y_min), y_max=finite(chart.y_max))
    series, before = [], None
    for s in chart.series:
        series.append({**s._asdict(), "x": None if s.x == before else s.x})
        before = s.x
    return {**fields, "series": series}


def html(charts: Sequence[Chart], window: Window | None = None, columns: int = 2) -> str:
    css, js = static("uPlot.min.css", "charts.css"), static("uPlot.iife.min.js", "charts.js")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{css}</style></head><body>"
        f"<div id='grid'></div>"
        f"<script type='application/json' id='spec'>{script_json(spec(charts, window, columns))}</script>"
        f"<script>{js}</script></body></html>"
    )


def show(charts: Sequence[Chart], window: Window | None = None, columns: int = 2) -> None:
    """Draw `charts` in a grid of `columns`, every time axis spanning `window`.

    st.iframe runs the frame's script with access to the app's origin, which is why no text from the
    store reaches it as markup: the spec is JSON (script_json) and charts.js sets text as text.
    """
    if charts:
        st.iframe(html(charts, window, columns), height="content")
