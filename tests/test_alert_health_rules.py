"""The built-in rules over the database health series: each fires once its condition held for its
`for`, with the value and the target in its summary, and stays quiet just under its threshold.

The points are written as the PostgreSQL collector's health parts write them (the series names and
label sets of dashboard.core.metrics), through the real store; the daemon's alerts job evaluates
the built-in pack against it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.jobs.alerts import AlertsJob
from dashboard.core import config as config_mod
from dashboard.core import metrics
from dashboard.core.records import Cycle, Point, Status
from dashboard.store import Store

T0 = 1_800_000_000
MINUTE = 60
CASES = [
    # rule, series, labels, value that fires, value just under, minutes of `for`, words in the summary
    ("PgSessionsBlocked", metrics.PG_SESSIONS_BLOCKED, {"datname": "erp"}, 2.0, 0.0, 5, ["2 sessions"]),
    ("PgLongRunningQueries", metrics.PG_SESSIONS_LONG_RUNNING, {"datname": "erp"}, 1.0, 0.0, 5, ["1 st"]),
    ("PgReplicationLag", metrics.PG_REPLICATION_LAG_S, {"replica": "r1"}, 90.0, 60.0, 5, ["r1", "90 s"]),
    ("PgReplicationLagCritical", metrics.PG_REPLICATION_LAG_S, {"replica": "r1"}, 400.0, 300.0, 5, ["400 s"]),
    ("PgReplicaReplayDelay", metrics.PG_REPLICATION_REPLAY_DELAY_S, {}, 301.0, 300.0, 5, ["301 s"]),
    ("PgReplicationSlotInactive", metrics.PG_REPLICATION_SLOTS_INACTIVE, {}, 1.0, 0.0, 15, ["1 replication"]),
    (
        "PgReplicationSlotRetainsWal", metrics.PG_REPLICATION_SLOT_RETAINED_BYTES, {"slot": "standby_a"},
        11 * 2**30, 10 * 2**30, 15, ["standby_a"],
    ),
    ("PgTransactionIdWraparound", metrics.PG_XID_HEADROOM, {"datname": "erp"}, 1.2e9, 1.5e9, 5, ["erp"]),
]  # fmt: skip


def _run(tmp_path: Path, series: str, labels: dict, value: float, minutes: int) -> list[list]:
    """Readings of `value` every minute for `minutes` + 1 minutes, each followed by an evaluation
    of the built-in pack; the alerts active after each."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    config = config_mod.from_dict(
        {"store": url, "targets": {"postgres": [{"name": "db", "dsn": "postgresql://x"}]}}
    )
    store = Store(url)
    try:
        job = AlertsJob(config, store)
        active = []
        for i in range(minutes + 2):
            ts = T0 + i * MINUTE
            point = Point(series, float(value), "gauge", metrics.encode(labels))
            store.write_cycle(Cycle("postgres", "db", ts, Status(), points=[point]))
            active.append(job.run(ts).active)
        return active
    finally:
        store.close()


@pytest.mark.parametrize(("rule", "series", "labels", "fires", "under", "minutes", "words"), CASES)
def test_fires_after_its_for_and_not_under_its_threshold(
    tmp_path: Path,
    rule: str,
    series: str,
    labels: dict,
    fires: float,
    under: float,
    minutes: int,
    words: list,
) -> None:
    runs = _run(tmp_path / "over", series, labels, fires, minutes)
    states = [[a.state for a in found if a.name == rule] for found in runs]
    assert states[0] == ["pending"] and states[minutes - 1] == ["pending"], states
    assert states[minutes] == ["firing"] and states[minutes + 1] == ["firing"], states
    alert = next(a for a in runs[-1] if a.name == rule)
    assert alert.labels["target"] == "db" and all(alert.labels.get(k) == v for k, v in labels.items())
    summary = alert.annotations["summary"]
    assert "db" in summary and all(w in summary for w in words), summary
    quiet = _run(tmp_path / "under", series, labels, under, minutes)
    assert not any(a.name == rule for found in quiet for a in found)
