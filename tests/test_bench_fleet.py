"""The scale benchmarks kept working at a tiny scale: bench/fleet.py with a real daemon over 2
PostgreSQL databases and 2 Redis nodes, and bench/sessions.py with 2 browser sessions on one page.
They check what the benchmarks report, never the budgets."""

from __future__ import annotations

import math

import pytest

from bench import fleet, sessions

pytestmark = pytest.mark.slow


def test_fleet_reports_lateness_memory_cpu_and_store_growth() -> None:
    result = fleet.run(2, 2, minutes=0.4, baseline_minutes=0.2, interval=3, sample_every=2)
    one, many = result["one"], result["fleet"]
    assert (one["targets"], many["targets"]) == (2, 4)
    assert many["targets_with_cycles"] == 4 and many["lateness_store"]["targets_seen"] == 4
    late = many["lateness_log"]["seconds_late"]
    assert late["n"] >= 4 * 3  # every target saved several cycles in 24 s at 3 s
    assert -3 < late["p50"] <= late["p95"] <= late["max"] < 30  # on schedule within a cycle
    assert many["lateness_store"]["gap_seconds_late"]["n"] >= 4 * 3
    rss = many["rss_mib"]
    assert len(rss["samples"]) >= 10 and 20 < rss["first"] <= rss["max"] < 2000
    assert rss["slope_mib_per_10min_last_two_thirds"] is not None
    cpu = many["cpu"]
    assert cpu["cycles_in_window"] > 0 and 0 < cpu["ms_per_target_cycle"] < 10_000
    assert cpu["targets_per_core"] > 0
    day = many["store_per_target_day"]
    assert day["rows"] > 0 and day["bytes"] > 0
    assert day["tables"]["points_raw"]["rows"] > 0  # every cycle adds points
    assert many["store_behind_s"]["n"] > 0 and many["store_file_bytes"] > 0
    assert many["states"].get("down", 0) == 0 and many["exit_status"] == 0
    assert math.isfinite(result["ratios"]["cpu_per_target_cycle_fleet_over_one"])
    assert "lateness" in fleet.format_report(result)


@pytest.mark.browser
def test_sessions_times_a_page_alone_and_together() -> None:
    result = sessions.run(sessions=2, rounds=1, days=0.05, only=["Overview"])
    pages = result["pages"]
    assert set(pages) == {"one-line page", "Overview"}
    overview = pages["Overview"]
    assert overview["alone"]["loads"] == 1 and overview["together"]["loads"] == 2
    assert 0 < overview["alone"]["p50_ms"] <= overview["alone"]["p95_ms"] < 60_000
    assert overview["together_over_alone"] > 0 and overview["together_x_one_line"] > 0
    assert pages["one-line page"]["together_x_one_line"] == 1.0
    assert result["worst_together_x_one_line"] == overview["together_x_one_line"]
    assert "PASS" in sessions.format_report(result) or "FAIL" in sessions.format_report(result)
