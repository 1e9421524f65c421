"""The report's charts: the SLO trend as `Chart` records drawn by the app's own charts.js, the
sparklines of changed statements, and the scripts and styles the HTML file embeds.

The SLO charts are built by `dashboard.ui.charts.slo_lines`, as a page would (Streamlit-free); the
sparklines are drawn by static/sparklines.js with uPlot directly, since charts.js draws one grid.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path

import pandas as pd

from dashboard.analysis.review.model import Objective, Period, Review, StatementChange
from dashboard.ui import charts as ui_charts
from dashboard.ui.charts import Chart, finite

UI_STATIC = Path(ui_charts.__file__).with_name("static")
OWN_STATIC = Path(__file__).with_name("static")
HEIGHT = 200  # a chart's plot area, px
COLUMNS = 3
_TARGET = re.compile(r"^\s*([<>]=?)\s*(-?\d[\d,]*(?:\.\d+)?)")
HALF_WEEK = 7 * 86400 // 2


@cache
def asset(name: str) -> str:
    """A vendored or own script or style, read once: uPlot and charts.js from dashboard/ui/static,
    sparklines.js and report.css from ours."""
    folder = OWN_STATIC if (OWN_STATIC / name).exists() else UI_STATIC
    return (folder / name).read_text(encoding="utf-8")


def script_json(value: object) -> str:
    """`value` as JSON that cannot end the <script> element holding it, whatever its strings say
    (the same rule as dashboard.ui.plots.script_json, which imports Streamlit)."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def target_bound(target: str) -> tuple[str, float] | None:
    """'< 200 ms' as ('<', 200.0); None when the target names no bound."""
    match = _TARGET.match(target)
    return (match[1], float(match[2].replace(",", ""))) if match else None


def objective_charts(objectives: tuple[Objective, ...]) -> list[Chart]:
    """One chart per objective measured in at least one week: its weekly values (each at the middle
    of its week) and the target as a dashed line. Objectives never measured get none: the scorecard
    says "not measured"."""
    found: list[Chart] = []
    for name in dict.fromkeys(o.name for o in objectives):
        weeks = [o for o in objectives if o.name == name]
        rows = [(_middle(o.week), o.value) for o in weeks if o.value is not None and _middle(o.week)]
        if not rows:
            continue
        first = weeks[-1]
        long = pd.DataFrame({"ts": [t for t, _ in rows], "series": name, "value": [v for _, v in rows]})
        bound = target_bound(first.target)
        title = f"{name} (target {first.target})" if first.target else name
        found.append(ui_charts.slo_lines(long, title, first.unit, bound, first.target))
    return found


def _middle(week: str) -> int | None:
    try:
        return Period.iso_week(week).start + HALF_WEEK
    except ValueError:
        return None


def trend_window(objectives: tuple[Objective, ...]) -> list[int] | None:
    """The weeks the scorecard spans, as the charts' x range."""
    starts = [t - HALF_WEEK for t in (_middle(o.week) for o in objectives) if t is not None]
    return [min(starts), max(starts) + 2 * HALF_WEEK] if starts else None


def chart_spec(charts: list[Chart], window: list[int] | None) -> dict:
    """What charts.js reads from #spec (the shape dashboard.ui.plots.spec writes)."""
    return {
        "window": window,
        "columns": COLUMNS,
        "height": HEIGHT,
        "charts": [
            {
                **{k: v for k, v in c._asdict().items() if k != "x"},
                "y_min": finite(c.y_min),
                "y_max": finite(c.y_max),
                "series": [{**s._asdict(), "values": [finite(v) for v in s.values]} for s in c.series],
            }
            for c in charts
        ],
    }


def baseline_days(review: Review) -> int:
    """How many of a sparkline's values are the baseline's (daily_mean_ms holds both periods)."""
    return math.ceil(review.baseline.seconds / 86400)


def sparkline(change: StatementChange, split: int) -> dict | None:
    """A statement's daily mean time, the baseline's days grey and the period's in color; None
    when no day has a value."""
    values = [finite(v) for v in change.daily_mean_ms]
    if not any(v is not None for v in values):
        return None
    split = split if 0 < split < len(values) else len(values) // 2
    return {"values": values, "split": split, "worse": change.change > 1}
