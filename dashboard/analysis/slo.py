"""Service level objectives over stored Prometheus series: pure pandas, no Streamlit, no store.

The Prometheus collector stores every configured series of a target as gauge points named
`prom.series`, labelled `name=<series name>` plus the query's own labels when an expression returns
several series. Frames in are `series_frame` frames of one target (ts, name, labels, sum, count):
a bucket's value is sum / count (one reading at the raw level, the mean of the hour's readings at
the hourly level). The targets come from the configuration: `Series.slo` is (operator, threshold).

The window's value is the mean of its readings. For latencies and error ratios that is the typical
level over the window; for availability, whose readings are the share of scrapes that found the
service up, it is the fraction of the window the service was up.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping

import pandas as pd

from dashboard.core import metrics
from dashboard.core.config import Series

HOUR = 3600
OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
SCORE_COLUMNS = [
    "series", "labels", "unit", "target", "op", "threshold", "current", "current_ts", "value", "passed",
    "worst", "worst_ts", "worst_passed", "readings",
]  # fmt: skip
LONG_COLUMNS = ["ts", "series", "value"]


def split_labels(text: str | None) -> tuple[str, str]:
    """A stored label string -> (series name, the query's own labels "k=v,..." as stored, or ""):
    still encoded, so that two label sets never meet; `shown_labels` gives them as written."""
    parts = (text or "").split(",")
    named = [part for part in parts if part.startswith("name=")]
    own = ",".join(part for part in parts if part and not part.startswith("name="))
    return (metrics.decode(named[0])["name"] if named else ""), own


def shown_labels(labels: str) -> str:
    """The query's own labels (`split_labels`) as shown: "k=v,..." with their names as written."""
    return ",".join(f"{k}={v}" for k, v in metrics.decode(labels).items())


def passes(value: float, op: str, threshold: float) -> bool | None:
    """Whether `value op threshold` holds; None when there is no value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(OPERATORS[op](value, threshold))


def worst_of(values: pd.Series, op: str) -> object:
    """The index of the value furthest on the wrong side: the highest for '<', the lowest for '>'."""
    values = values.dropna()
    if values.empty:
        return None
    return values.idxmax() if op in ("<", "<=") else values.idxmin()


def readings(frame: pd.DataFrame) -> pd.DataFrame:
    """The `prom.series` points of a frame: ts, series, labels (the query's own, encoded), value, count."""
    points = frame[frame["name"] == metrics.PROM_SERIES]
    if points.empty:
        return pd.DataFrame(columns=["ts", "series", "labels", "value", "sum", "count"])
    parts = points["labels"].map(split_labels)
    return pd.DataFrame(
        {
            "ts": points["ts"].astype(int),
            "series": parts.str[0],
            "labels": parts.str[1],
            "value": points["sum"] / points["count"].where(points["count"] > 0),
            "sum": points["sum"].astype(float),
            "count": points["count"].astype(float),
        }
    ).reset_index(drop=True)


def scorecard(
    frame: pd.DataFrame,
    hourly: pd.DataFrame,
    latest: pd.DataFrame,
    configured: Mapping[str, Series],
    window_start: int | None = None,
) -> pd.DataFrame:
    """One row per configured series with a target (and per label set it returned).

    `frame` holds the window's readings (any level), `hourly` its hourly buckets and `latest` the
    most recent raw readings. Columns: series, labels (encoded, see `split_labels`), unit, target
    ("< 200"), op, threshold, current (the latest reading) and current_ts, value (the window's
    mean) and passed, worst (the hour with the worst mean against the target) with worst_ts (the
    hour's start) and worst_passed, readings (how many readings the window holds). Series without a
    reading in the window are listed with NaN values and passed None.
    """
    window, hours, last = readings(frame), readings(hourly), readings(latest)
    if window_start is not None:
        hours = hours[hours["ts"] + HOUR > window_start]
    rows = []
    for name, series in configured.items():
        if series.slo is None:
            continue
        op, threshold = series.slo
        labelsets = sorted(set(window.loc[window["series"] == name, "labels"])) or [""]
        for labels in labelsets:
            rows.append(_score(name, labels, series, op, threshold, window, hours, last))
    card = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    for column in ("passed", "worst_passed"):  # True, False or None: not numpy bools, not NaN
        card[column] = pd.Series([row[column] for row in rows], index=card.index, dtype=object)
    return card


def _score(name, labels, series, op, threshold, window, hours, last) -> dict:
    def pick(points: pd.DataFrame) -> pd.DataFrame:
        return points[(points["series"] == name) & (points["labels"] == labels)]

    mine, hourly, recent = pick(window), pick(hours), pick(last)
    total = float(mine["count"].sum())
    value = float(mine["sum"].sum()) / total if total else math.nan
    row = {
        "series": name, "labels": labels, "unit": series.unit, "target": f"{op} {threshold:g}", "op": op,
        "threshold": threshold, "current": math.nan, "current_ts": None, "value": value,
        "passed": passes(value, op, threshold), "worst": math.nan, "worst_ts": None, "worst_passed": None,
        "readings": int(total),
    }  # fmt: skip
    if len(recent):
        newest = recent.loc[recent["ts"].idxmax()]
        row["current"], row["current_ts"] = float(newest["value"]), int(newest["ts"])
    worst = worst_of(hourly["value"], op)
    if worst is not None:
        row["worst"], row["worst_ts"] = float(hourly.loc[worst, "value"]), int(hourly.loc[worst, "ts"])
        row["worst_passed"] = passes(row["worst"], op, threshold)
    return row


def series_lines(frame: pd.DataFrame, name: str, scale: float = 1.0) -> pd.DataFrame:
    """One configured series as a long frame (ts, series, value): a line per label set."""
    points = readings(frame)
    points = points[points["series"] == name]
    if points.empty:
        return pd.DataFrame(columns=LONG_COLUMNS)
    return pd.DataFrame(
        {
            "ts": points["ts"],
            "series": points["labels"].map(shown_labels).replace("", name),
            "value": points["value"] * scale,
        }
    ).reset_index(drop=True)


def counts(frame: pd.DataFrame, name: str, key: str) -> dict[str, float]:
    """`prom.alerts` or `prom.targets` in their latest reading, by the value of label `key`."""
    points = frame[frame["name"] == name]
    if points.empty:
        return {}
    last = points[points["ts"] == points["ts"].max()]
    values = last["sum"] / last["count"].where(last["count"] > 0)
    out: dict[str, float] = {}
    for labels, value in zip(last["labels"], values, strict=True):
        state = metrics.decode(labels).get(key, labels)
        out[state] = out.get(state, 0.0) + float(value)
    return out


# -- display ------------------------------------------------------------------------------------
RATIO_UNITS = {"ratio", "fraction", "0..1"}


def display_scale(unit: str) -> tuple[float, str]:
    """How a unit is drawn: ratios as percentages, everything else as configured."""
    return (100.0, "%") if unit.lower() in RATIO_UNITS else (1.0, unit)


def fmt_value(value: float | None, unit: str) -> str:
    """A reading with its unit, ratios as percentages ("0.050 %"), "–" for no value."""
    if value is None or value != value:
        return "–"
    scale, shown = display_scale(unit)
    value *= scale
    if shown == "%":
        digits = 3 if abs(value) < 1 else 2
        return f"{value:.{digits}f} %"
    if shown == "ms":
        return f"{value:.1f} ms" if abs(value) < 1000 else f"{value / 1000:.2f} s"
    text = f"{value:.4g}"
    return f"{text} {shown}" if shown else text


def fmt_target(op: str, threshold: float, unit: str) -> str:
    """A target as written, in the display unit: "< 200 ms", ">= 99.9 %", "< 0.1 %"."""
    scale, shown = display_scale(unit)
    value = f"{threshold * scale:.6g}"
    return f"{op} {value} {shown}" if shown else f"{op} {value}"


def scorecard_table(card: pd.DataFrame) -> pd.DataFrame:
    """The scorecard as shown: objective, target, window, verdict (pass / fail / no data), current,
    worst (hour), worst_at (UTC), readings; values in their units, ratios as percentages."""
    units = card["unit"]

    def shown(column: str) -> list[str]:
        return [fmt_value(v, u) for v, u in zip(card[column], units, strict=True)]

    pairs = zip(card["series"], card["labels"], strict=True)
    targets = zip(card["op"], card["threshold"], units, strict=True)
    return pd.DataFrame(
        {
            "objective": [f"{s} ({shown_labels(lb)})" if lb else s for s, lb in pairs],
            "target": [fmt_target(o, t, u) for o, t, u in targets],
            "window": shown("value"),
            "verdict": card["passed"].map({True: "pass", False: "fail"}).fillna("no data"),
            "current": shown("current"),
            "worst": shown("worst"),
            "worst_at": pd.to_datetime(card["worst_ts"], unit="s", utc=True),
            "readings": card["readings"],
        }
    )
