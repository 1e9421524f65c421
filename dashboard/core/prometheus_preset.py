"""The seed's service-level targets as standard PromQL, for a Prometheus target with `preset: seed`.

A user only names their metrics (the target's `metrics:` mapping fills the placeholders below);
their own `series:` entries are added to the preset's and override those of the same name.

Placeholders (defaults in ``DEFAULTS``):

- ``http_duration``: a request-duration *histogram* in seconds (its ``_bucket`` series are read).
- ``http_requests``: a request *counter*; ``status_label`` is its HTTP status label.
- ``selector``: label matchers that pick the service's series, without braces (``job="api"``);
  applied to the HTTP metrics and to ``up``.
- ``node_selector``: the same for the node_exporter metrics (``job="node"``).
- ``node_cpu``, ``node_mem_available``, ``node_mem_total``: node_exporter's metric names.
- ``window``: the range of every rate and average (``5m``); it must span several scrapes.
"""

from __future__ import annotations

from dashboard.core.config import PrometheusTarget, Series

DEFAULTS: dict[str, str] = {
    "http_duration": "http_request_duration_seconds",
    "http_requests": "http_requests_total",
    "status_label": "code",
    "selector": 'job=~".+"',
    "node_selector": 'job=~".+"',
    "node_cpu": "node_cpu_seconds_total",
    "node_mem_available": "node_memory_MemAvailable_bytes",
    "node_mem_total": "node_memory_MemTotal_bytes",
    "window": "5m",
}

# The placeholders each preset series reads, for hints when a series finds no data.
PRESET_KEYS: dict[str, tuple[str, ...]] = {
    "api_p95_ms": ("http_duration", "selector"),
    "error_ratio": ("http_requests", "status_label", "selector"),
    "availability": ("selector",),
    "cpu_utilisation": ("node_cpu", "node_selector"),
    "memory_utilisation": ("node_mem_available", "node_mem_total", "node_selector"),
}


def _sel(*matchers: str) -> str:
    """`{a,b}` from the non-empty matchers ('' when there are none)."""
    kept = [m.strip() for m in matchers if m and m.strip()]
    return "{" + ",".join(kept) + "}" if kept else ""


def seed_series(metrics: dict[str, str] | None = None) -> dict[str, Series]:
    """The seed's targets (API p95 < 200 ms, error rate < 0.1 %, availability > 99.9 %, CPU < 70 %,
    memory < 80 %) with the placeholders filled from `metrics` (unknown keys are ignored here; see
    `unknown_keys`)."""
    m = {**DEFAULTS, **(metrics or {})}
    w, svc, node = m["window"], m["selector"], m["node_selector"]
    errors = m["status_label"] + '=~"5.."'
    idle = 'mode="idle"'
    return {
        # Keep `le`: histogram_quantile needs every bucket of one histogram together.
        "api_p95_ms": Series(
            expr=(
                f"histogram_quantile(0.95, sum by (le) "
                f"(rate({m['http_duration']}_bucket{_sel(svc)}[{w}]))) * 1000"
            ),
            unit="ms",
            target="< 200",
        ),
        # A ratio, not a percentage: an error rate below 0.1 % is < 0.001.
        "error_ratio": Series(
            expr=(
                f"sum(rate({m['http_requests']}{_sel(svc, errors)}[{w}]))"
                f" / sum(rate({m['http_requests']}{_sel(svc)}[{w}]))"
            ),
            unit="ratio",
            target="< 0.001",
            budget="value",
        ),
        # The share of successful scrapes over the last window, at each sample. The availability of
        # a whole period (a day, 30 days) is computed from the stored series (its mean over the
        # period), not by one PromQL query over the period.
        "availability": Series(
            expr=f"avg(avg_over_time(up{_sel(svc)}[{w}]))",
            unit="ratio",
            target=">= 0.999",
            budget="value",
        ),
        "cpu_utilisation": Series(
            expr=f"1 - avg(rate({m['node_cpu']}{_sel(node, idle)}[{w}]))",
            unit="ratio",
            target="< 0.7",
        ),
        "memory_utilisation": Series(
            expr=(f"1 - sum({m['node_mem_available']}{_sel(node)}) / sum({m['node_mem_total']}{_sel(node)})"),
            unit="ratio",
            target="< 0.8",
        ),
    }


def unknown_keys(metrics: dict[str, str]) -> list[str]:
    """Keys of a target's `metrics:` that are no placeholder of the preset (likely misspelt)."""
    return sorted(set(metrics) - set(DEFAULTS))


def series_for(target: PrometheusTarget) -> dict[str, Series]:
    """Every series a target records: the preset's (if any), then its own `series:` (which win)."""
    preset = seed_series(target.metrics) if target.preset == "seed" else {}
    return {**preset, **target.series}
