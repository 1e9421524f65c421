"""Timing helpers shared by the benchmarks: one way to time a call and summarise the samples."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p95 of 20 samples is the 19th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values), 3),
        "p95_ms": round(percentile(values, 95), 3),
        "min_ms": round(min(values), 3),
        "max_ms": round(max(values), 3),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Milliseconds the call took, and what it returned."""
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


Row = tuple[str, float, float | None]  # label, median ms, p95 ms (None: a single measurement)


def table(rows: list[Row], base_ms: float, width: int, digits: int = 1, ratio_digits: int = 3) -> list[str]:
    """Report lines: a header, then per row its median, its p95 and median / base_ms."""
    lines = [f"{'':{width}} {'median ms':>10} {'p95 ms':>10} {'x baseline':>11}"]
    for label, median, p95 in rows:
        p95_text = "" if p95 is None else f"{p95:.{digits}f}"
        lines.append(
            f"{label:{width}} {median:>10.{digits}f} {p95_text:>10} {median / base_ms:>11.{ratio_digits}f}"
        )
    return lines
