"""The Services page's tables and overlay lines, from stored data: pure pandas, no Streamlit.

Prometheus' own state comes from the Prometheus collector's status details of its last successful
cycle: `alerts` (Prometheus' /api/v1/alerts: name, state, labels, activeAt, value) and `targets`
(/api/v1/targets: job, instance, health, lastError, lastScrape). Times there are RFC 3339 strings
or Unix seconds; both are read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from dashboard.analysis import slo

ALERT_COLUMNS = ["name", "state", "since", "labels", "summary", "value"]
TARGET_COLUMNS = ["job", "instance", "health", "last_error", "last_scrape"]
STATE_ORDER = {"firing": 0, "pending": 1}
LONG_COLUMNS = slo.LONG_COLUMNS


def _time(value: object) -> pd.Timestamp | None:
    """An RFC 3339 string or Unix seconds -> a UTC timestamp (None when unknown or zero)."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        if isinstance(value, int | float):
            return pd.Timestamp(float(value), unit="s", tz="UTC") if value > 0 else None
        found = pd.Timestamp(str(value))
    except (ValueError, TypeError):
        return None
    found = found.tz_localize("UTC") if found.tzinfo is None else found.tz_convert("UTC")
    return None if found.year < 1971 else found  # Go's zero time: never scraped


def _labels_text(labels: Mapping[str, object] | None, skip: tuple[str, ...] = ("alertname",)) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((labels or {}).items()) if k not in skip)


def alerts_table(details: Mapping[str, object]) -> pd.DataFrame:
    """Active alerts, firing before pending, longest active first: name, state, since, labels,
    summary (its annotation), value."""
    rows = []
    for alert in details.get("alerts") or []:
        if not isinstance(alert, Mapping):
            continue
        labels = alert.get("labels") or {}
        state = str(alert.get("state") or "")
        if state not in STATE_ORDER:  # inactive alerts are not listed by /api/v1/alerts anyway
            continue
        name = alert.get("name") or alert.get("alertname") or labels.get("alertname") or "(unnamed)"
        since = _time(alert.get("activeAt") or alert.get("active_at") or alert.get("since"))
        rows.append(
            {"name": str(name), "state": state, "since": since, "labels": _labels_text(labels),
             "summary": str((alert.get("annotations") or {}).get("summary") or alert.get("summary") or ""),
             "value": _number(alert.get("value"))}
        )  # fmt: skip
    frame = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    if frame.empty:
        return frame
    frame["since"] = pd.to_datetime(frame["since"], utc=True)
    frame = frame.assign(_order=frame["state"].map(STATE_ORDER)).sort_values(["_order", "since", "name"])
    return frame.drop(columns="_order").reset_index(drop=True)


def _number(value: object) -> float:
    try:
        return float(value)  # Prometheus sends the alert's value as a string ("1e+00")
    except (TypeError, ValueError):
        return math.nan


def scrape_targets(details: Mapping[str, object]) -> pd.DataFrame:
    """Every scrape target Prometheus reports: job, instance, health, last_error, last_scrape."""
    rows = []
    for t in details.get("targets") or []:
        if not isinstance(t, Mapping):
            continue
        labels = t.get("labels") or {}
        rows.append(
            {
                "job": str(t.get("job") or labels.get("job") or t.get("scrapePool") or ""),
                "instance": str(t.get("instance") or labels.get("instance") or t.get("scrapeUrl") or ""),
                "health": str(t.get("health") or "unknown"),
                "last_error": str(t.get("lastError") or t.get("last_error") or ""),
                "last_scrape": _time(t.get("lastScrape") or t.get("last_scrape")),
            }
        )
    frame = pd.DataFrame(rows, columns=TARGET_COLUMNS)
    frame["last_scrape"] = pd.to_datetime(frame["last_scrape"], utc=True)
    return frame.sort_values(["job", "instance"]).reset_index(drop=True)


def down_targets(details: Mapping[str, object]) -> pd.DataFrame:
    """The scrape targets that are not up (down or not scraped yet)."""
    found = scrape_targets(details)
    return found[found["health"] != "up"].reset_index(drop=True)


def state_counts(details: Mapping[str, object]) -> dict[str, int]:
    """firing, pending, targets_up, targets_down, targets (all) from the latest details."""
    alerts = alerts_table(details)
    found = scrape_targets(details)
    return {
        "firing": int((alerts["state"] == "firing").sum()),
        "pending": int((alerts["state"] == "pending").sum()),
        "targets": len(found),
        "targets_up": int((found["health"] == "up").sum()),
        "targets_down": int((found["health"] != "up").sum()),
    }


def series_errors(details: Mapping[str, object]) -> dict[str, str]:
    """Series whose last evaluation failed or returned nothing, with what went wrong."""
    out = {}
    for name, state in (details.get("series") or {}).items():
        if isinstance(state, Mapping) and state.get("state") not in (None, "ok"):
            out[str(name)] = str(state.get("error") or state.get("state"))
    return out


# -- overlay ----------------------------------------------------------------------------------------
def mean_time(timeline: pd.DataFrame, label: str) -> pd.DataFrame:
    """A statement's mean time per bucket (exec_ms / calls); buckets without calls are left out."""
    if timeline.empty:
        return pd.DataFrame(columns=LONG_COLUMNS)
    calls = timeline["calls"].where(timeline["calls"] > 0)
    long = pd.DataFrame({"ts": timeline["ts"], "series": label, "value": timeline["exec_ms"] / calls})
    return long.dropna(subset=["value"]).reset_index(drop=True)
