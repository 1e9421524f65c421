"""Prometheus answers shaped into points and status details (dashboard.core.prometheus_details).

Result series become ``prom.series`` gauges labelled ``name=<series>``, plus the result's own labels
(sorted, ``__name__`` dropped, or kept as ``metric=`` by every series that only it tells apart) when
a query returns several; NaN and infinite values are dropped.
Alerts and scrape targets become counts (``prom.alerts``, ``prom.targets``) and lists ordered worst
first, for the status details. Every label is written with `metrics.encode`.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from dashboard.core import metrics
from dashboard.core.prometheus_details import Alert, ScrapeTarget
from dashboard.core.records import Point

LIST_CAP = 200  # alerts and scrape targets kept in the status details
MAX_RESULT_SERIES = 50  # series kept per expression and cycle: more is a label explosion

Sample = tuple[dict[str, Any], float | None]  # a result series' labels and its value


# -- series -----------------------------------------------------------------------------------------
def instant_points(name: str, result: list[dict[str, Any]], hints: list[str]) -> list[Point]:
    """The points of an instant query's result (hints: when series had to be dropped)."""
    samples = [(r.get("metric") or {}, _number((r.get("value") or [None, None])[1])) for r in result]
    return [
        Point(metrics.PROM_SERIES, value, "gauge", labels)
        for labels, value in _labelled(name, _keep(samples, name, hints))
        if _finite(value)
    ]


def range_points(
    name: str, result: list[dict[str, Any]], after: int | None, before: int
) -> dict[tuple[str, int], Point]:
    """The samples of a range query strictly after `after` (when known) and before `before`, each
    with its own time, by (labels, time)."""
    by_time: dict[int, list[Sample]] = {}
    for r in result:
        for ts, raw in r.get("values") or []:
            by_time.setdefault(round(float(ts)), []).append((r.get("metric") or {}, _number(raw)))
    points: dict[tuple[str, int], Point] = {}
    for ts, samples in sorted(by_time.items()):
        if (after is not None and ts <= after) or ts >= before:
            continue
        for labels, value in _labelled(name, _keep(samples, name, [])):
            if _finite(value):
                points[(labels, ts)] = Point(metrics.PROM_SERIES, value, "gauge", labels, ts=ts)
    return points


def _number(raw: Any) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _own_labels(metric: dict[str, Any]) -> dict[str, Any]:
    """The result's labels, sorted: without __name__, `name` (ours) renamed exported_name."""
    items = {("exported_name" if k == "name" else k): v for k, v in metric.items() if k != "__name__"}
    return dict(sorted(items.items()))


def _keep(samples: list[Sample], name: str, hints: list[str]) -> list[Sample]:
    """At most MAX_RESULT_SERIES result series (by labels, for a stable choice)."""
    if len(samples) <= MAX_RESULT_SERIES:
        return samples
    hints.append(
        f"series {name}: the query returned {len(samples)} series, {MAX_RESULT_SERIES} kept: "
        "aggregate it (sum by (...)) to the few labels worth charting"
    )
    return sorted(samples, key=lambda s: metrics.encode(_own_labels(s[0])))[:MAX_RESULT_SERIES]


def _labelled(name: str, samples: list[Sample]) -> list[tuple[str, float | None]]:
    """(labels, value) per sample: `name=<series>`, plus the result's labels when there are several.
    Every sample whose labels another one shares (told apart only by __name__), or that has none,
    gets `metric=<__name__>`, so which value sits under which label never depends on the result's
    order; a label of the result's own called metric is always exported_metric then, the way
    Prometheus renames a clash. A series gains `metric=` while another shares its labels: a new
    series for that time."""
    if len(samples) == 1:
        return [(metrics.encode({"name": name}), samples[0][1])]
    metrics_of = [{("exported_metric" if k == "metric" else k): v for k, v in m.items()} for m, _ in samples]
    owns = [_own_labels(metric) for metric in metrics_of]
    shared = Counter(metrics.encode(own) for own in owns)
    out: dict[str, float | None] = {}
    for metric, (_, value), own in zip(metrics_of, samples, owns, strict=True):
        if not own or shared[metrics.encode(own)] > 1:
            own = _own_labels({**metric, "metric": metric.get("__name__", "")})
        out[metrics.encode({"name": name, **own})] = value
    return list(out.items())


# -- alerts and scrape targets ----------------------------------------------------------------------
def alert_list(data: dict[str, Any]) -> list[Alert]:
    """/api/v1/alerts' alerts, firing first, then pending, each by name and labels."""
    alerts = []
    for a in data.get("alerts") or []:
        labels = dict(a.get("labels") or {})
        summary = (a.get("annotations") or {}).get("summary")
        alerts.append(
            Alert(
                name=labels.pop("alertname", ""),
                state=a.get("state"),
                labels=labels,
                active_at=a.get("activeAt"),
                value=a.get("value"),
                **({"summary": summary} if summary else {}),  # stored only when there is one
            )
        )
    order = {"firing": 0, "pending": 1}
    alerts.sort(key=lambda e: (order.get(str(e.state), 2), str(e.name), json.dumps(e.labels)))
    return alerts


def alert_points(alerts: list[Alert]) -> list[Point]:
    return [
        Point(
            metrics.PROM_ALERTS,
            float(sum(a.state == state for a in alerts)),
            "gauge",
            metrics.encode({"state": state}),
        )
        for state in ("firing", "pending")
    ]


def target_list(data: dict[str, Any], clean: Callable[[str], str]) -> list[ScrapeTarget]:
    """/api/v1/targets' active targets, down first, then unknown, then up; `clean` redacts errors."""
    found = []
    for t in data.get("activeTargets") or []:
        labels = t.get("labels") or {}
        found.append(
            ScrapeTarget(
                job=labels.get("job", t.get("scrapePool")),
                instance=labels.get("instance"),
                health=t.get("health"),
                last_error=clean(str(t["lastError"])) if t.get("lastError") else None,
                last_scrape=t.get("lastScrape"),
            )
        )
    order = {"down": 0, "unknown": 1, "up": 2}
    found.sort(key=lambda e: (order.get(str(e.health), 1), str(e.job), str(e.instance)))
    return found


def target_points(found: list[ScrapeTarget]) -> list[Point]:
    """Targets up and down, and unknown only when some target has not been scraped yet."""
    healths = ["up", "down"] + (["unknown"] if any(t.health == "unknown" for t in found) else [])
    return [
        Point(
            metrics.PROM_TARGETS,
            float(sum(t.health == h for t in found)),
            "gauge",
            metrics.encode({"health": h}),
        )
        for h in healths
    ]
