"""The Services page's tables and overlay lines, from stored data: pure pandas, no Streamlit.

Prometheus' own state comes from the Prometheus collector's details of its last successful cycle
(dashboard.core.prometheus_details): `alerts` (Prometheus' /api/v1/alerts: name, state, labels,
active_at, value, summary) and `targets` (/api/v1/targets: job, instance, health, last_error,
last_scrape). Times there are RFC 3339 strings or Unix seconds; both are read. The functions
taking a Reader are what the page reads for a target: its configured series, their SLO scorecard
and lines, and the details of its last cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from dashboard.analysis import slo, statements
from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core import config as config_mod
from dashboard.core import metrics
from dashboard.core.prometheus_details import PrometheusDetails
from dashboard.core.prometheus_preset import series_for
from dashboard.store.reads import Window

ALERT_COLUMNS = ["name", "state", "since", "labels", "summary", "value"]
TARGET_COLUMNS = ["job", "instance", "health", "last_error", "last_scrape"]
STATE_ORDER = {"firing": 0, "pending": 1}
LONG_COLUMNS = slo.LONG_COLUMNS
LATEST_SECONDS = 3600  # how far back the scorecard looks for a series' latest reading


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


def alerts_table(details: PrometheusDetails) -> pd.DataFrame:
    """Active alerts, firing before pending, longest active first: name, state, since, labels,
    summary (its annotation), value."""
    rows = []
    for alert in details.alerts:
        state = str(alert.state or "")
        if state not in STATE_ORDER:  # inactive alerts are not listed by /api/v1/alerts anyway
            continue
        rows.append(
            {"name": alert.name or alert.labels.get("alertname") or "(unnamed)", "state": state,
             "since": _time(alert.active_at), "labels": _labels_text(alert.labels),
             "summary": alert.summary or "", "value": _number(alert.value)}
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


def scrape_targets(details: PrometheusDetails) -> pd.DataFrame:
    """Every scrape target Prometheus reports: job, instance, health, last_error, last_scrape."""
    rows = [
        {
            "job": t.job or "",
            "instance": t.instance or "",
            "health": t.health or "unknown",
            "last_error": t.last_error or "",
            "last_scrape": _time(t.last_scrape),
        }
        for t in details.targets
    ]
    frame = pd.DataFrame(rows, columns=TARGET_COLUMNS)
    frame["last_scrape"] = pd.to_datetime(frame["last_scrape"], utc=True)
    return frame.sort_values(["job", "instance"]).reset_index(drop=True)


def down_targets(details: PrometheusDetails) -> pd.DataFrame:
    """The scrape targets that are not up (down or not scraped yet)."""
    found = scrape_targets(details)
    return found[found["health"] != "up"].reset_index(drop=True)


def state_counts(details: PrometheusDetails) -> dict[str, int]:
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


def series_errors(details: PrometheusDetails) -> dict[str, str]:
    """Series whose last evaluation failed or returned nothing, with what went wrong."""
    return {
        name: str(s.error or s.state) for name, s in details.series.items() if s.state not in (None, "ok")
    }


# -- overlay ----------------------------------------------------------------------------------------
def mean_time(timeline: pd.DataFrame, label: str) -> pd.DataFrame:
    """A statement's mean time per bucket (exec_ms / calls); buckets without calls are left out."""
    if timeline.empty:
        return pd.DataFrame(columns=LONG_COLUMNS)
    calls = timeline["calls"].where(timeline["calls"] > 0)
    long = pd.DataFrame({"ts": timeline["ts"], "series": label, "value": timeline["exec_ms"] / calls})
    return long.dropna(subset=["value"]).reset_index(drop=True)


# -- what the page reads --------------------------------------------------------------------------
def configured(reader: Reader, target: Target) -> dict[str, config_mod.Series]:
    """The series the target records (its preset's and its own), by name. A target no longer in
    the configuration keeps the units and targets its collector last recorded."""
    found = [t for t in reader.configured("prometheus") if t.name == target.name]
    if found:
        return series_for(found[0])
    recorded = (details(reader, target) or PrometheusDetails()).series
    return {
        name: config_mod.Series(expr=d.expr or "?", unit=d.unit or "", target=d.target)
        for name, d in recorded.items()
    }


def recorded(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """The target's recorded series (`prom.series`) at chart resolution."""
    return reader.series([target], (metrics.PROM_SERIES,), window)


def scorecard(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """One row per series with a target: latest reading, the window's value, pass/fail and the
    worst hour (slo.scorecard)."""
    hourly = reader.series([target], (metrics.PROM_SERIES,), window, "hourly")
    recent = Window(max(window.start, window.end - LATEST_SECONDS), window.end)
    latest = reader.series([target], (metrics.PROM_SERIES,), recent, "raw")
    frame = recorded(reader, target, window)
    return slo.scorecard(frame, hourly, latest, configured(reader, target), window.start)


def service_line(reader: Reader, target: Target, name: str, window: Window) -> pd.DataFrame:
    """One recorded series as a long frame (ts, series, value) in its display unit (ratios in %)."""
    unit = configured(reader, target).get(name, config_mod.Series(expr="-")).unit
    return slo.series_lines(recorded(reader, target, window), name, slo.display_scale(unit)[0])


def details(reader: Reader, target: Target) -> PrometheusDetails | None:
    """The collector's details of the target's last successful cycle (series, alerts, targets),
    None before the first one (or for a target that is not a Prometheus one)."""
    found = reader.store.details(int(target.id))
    return found if isinstance(found, PrometheusDetails) else None


def _last(reader: Reader, target: Target) -> PrometheusDetails:
    return details(reader, target) or PrometheusDetails()


def alerts(reader: Reader, target: Target) -> pd.DataFrame:
    """Prometheus' firing and pending alerts at the last cycle (alerts_table)."""
    return alerts_table(_last(reader, target))


def down(reader: Reader, target: Target) -> pd.DataFrame:
    """Prometheus' scrape targets that were not up at the last cycle."""
    return down_targets(_last(reader, target))


def state(reader: Reader, target: Target) -> dict[str, int]:
    """Counts of firing and pending alerts and of scrape targets up and down at the last cycle."""
    return state_counts(_last(reader, target))


def errors(reader: Reader, target: Target) -> dict[str, str]:
    """Series whose last evaluation failed, with the collector's message."""
    return series_errors(_last(reader, target))


def statement_mean_line(
    reader: Reader, statement_id: int, target: Target, window: Window, label: str
) -> pd.DataFrame:
    """A statement's mean time per bucket as a long frame (for the overlay)."""
    return mean_time(statements.statement_timeline(reader, statement_id, target, window), label)
