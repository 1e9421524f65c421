"""The built-in rules over the database health series: each goes pending, then fires once its
condition held for its `for`, with the value, the target and the object in its summary, and stays
quiet at its threshold, the nearest reading that does not cross it.

The points are those the PostgreSQL collector's health parts make of rows shaped like their SQL's
answer (collectors/postgres/health: sessions, replication, server_stats), written through the real
store every minute; the daemon's alerts job evaluates the built-in pack after each.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collectors.jobs.alerts import AlertsJob
from collectors.postgres.health import replication, server_stats, sessions
from dashboard.alerts.rules import DEFAULT_RULES, read
from dashboard.alerts.series import DERIVED
from dashboard.core import config as config_mod
from dashboard.core import metrics
from dashboard.core.alerts import Alert
from dashboard.core.health.server import XID_LIMIT
from dashboard.core.records import Cycle, Point, Status
from dashboard.store import Store

T0 = 1_800_000_000
MINUTE = 60
GIB = 2**30
COLLECTORS = Path(__file__).resolve().parents[1] / "collectors"
HEALTH_SERIES = ("pg.sessions.", "pg.replication.", "pg.xid.", "pg.checkpoints.")


# -- rows as the health parts' SQL answers them, through the parts' own read() -------------------
def _group(datname: str, **counts: float) -> dict[str, Any]:
    return {
        "datname": datname,
        "usename": "app",
        "application": "web",
        "connections": 10,
        "active": 2,
        "idle_in_transaction": 0,
        "idle_in_transaction_oldest_s": None,
        "long_running": 0,
        "blocked": 0,
        **counts,
    }


def sessions_points(ts: int, **erp: float) -> list[Point]:
    """sessions.13.sql's row: database erp with these counts, crm with none of anything."""
    row = {"long_running_s": 60.0, "clients": [_group("erp", **erp), _group("crm")], "sessions": []}
    return sessions.read([row], ts).points


def primary_points(
    ts: int, lag_s: float = 0.0, replay_bytes: float = 0.0, retained: float = 0.0, active: bool = True
) -> list[Point]:
    """replication.13.sql's row on a primary: replica r1 and slot standby_a."""
    replica = {
        "pid": 4242,
        "application_name": "r1",
        "client_addr": "10.0.0.2",
        "state": "streaming",
        "sync_state": "async",
        "write_lag_s": lag_s,
        "flush_lag_s": lag_s,
        "replay_lag_s": lag_s,
        "unsent_bytes": 0.0,
        "replay_bytes": replay_bytes,
    }
    slot = {
        "slot_name": "standby_a",
        "slot_type": "physical",
        "database": None,
        "active": active,
        "temporary": False,
        "wal_status": "extended",
        "retained_bytes": retained,
        "safe_wal_bytes": None,
        "xmin_age": None,
    }
    row = {"in_recovery": False, "replicas": [replica], "slots": [slot], "replay_delay_s": None}
    return replication.read([row], ts).points


def replica_points(ts: int, delay_s: float) -> list[Point]:
    """replication.13.sql's row on a standby that has not replayed all it received."""
    row = {
        "in_recovery": True,
        "replicas": [],
        "slots": [],
        "replay_delay_s": delay_s,
        "replay_bytes": 1_000_000.0,
        "replay_paused": False,
        "receiver_status": "streaming",
    }
    return replication.read([row], ts).points


def server_row(headroom: int = XID_LIMIT - 50_000_000, timed: int = 0, requested: int = 0) -> dict[str, Any]:
    """server_stats.13.sql's row: database erp with that many transactions left, crm young; the
    checkpointer's counters (cumulative, as pg_stat_bgwriter shows them)."""
    return {
        "databases": [
            {"datname": "erp", "xid_age": XID_LIMIT - headroom, "mxid_age": 0},
            {"datname": "crm", "xid_age": 1_000_000, "mxid_age": 0},
        ],
        "checkpoints_timed": timed,
        "checkpoints_requested": requested,
        "checkpoint_write_ms": 0.0,
        "checkpoint_sync_ms": 0.0,
        "buffers_checkpoint": 0,
        "buffers_clean": 0,
        "maxwritten_clean": 0,
        "buffers_backend": 0,
        "wal_bytes": 0.0,
        "checkpointer_reset": 1.0,
        "bgwriter_reset": 1.0,
        "wal_reset": 1.0,
        "datname": "erp",
        "rolname": "observatory",
        "tables": [],
        "sequences": [],
        "sequences_total": 0,
        "sequences_unreadable": 0,
    }


def xid_points(headroom: int) -> Callable[[int], list[Point]]:
    last: dict = {}  # the collector's counter baselines, kept from cycle to cycle
    return lambda ts: server_stats.read([server_row(headroom)], ts, last).points


# -- the store and the daemon's job ---------------------------------------------------------------
def run(tmp_path: Path, points: Callable[[int], list[Point]], minutes: int) -> list[list[Alert]]:
    """A cycle of target db every minute for `minutes`, each followed by an evaluation of the
    built-in pack; the alerts active after each."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    config = config_mod.from_dict(
        {"store": url, "targets": {"postgres": [{"name": "db", "dsn": "postgresql://x"}]}}
    )
    store = Store(url)
    try:
        job = AlertsJob(config, store)
        active = []
        for i in range(minutes):
            ts = T0 + i * MINUTE
            store.write_cycle(Cycle("postgres", "db", ts, Status(), points=points(ts)))
            outcome = job.run(ts)
            assert outcome.errors == {}, outcome.errors
            active.append(outcome.active)
        return active
    finally:
        store.close()


def states(runs: list[list[Alert]], rule: str) -> list[list[str]]:
    return [[a.state for a in found if a.name == rule] for found in runs]


Case = tuple[str, Callable[[int], list[Point]], Callable[[int], list[Point]], int, dict, list[str]]
CASES: list[Case] = [
    # rule, points that fire, points at the threshold, minutes of `for`, labels, words in the summary
    (
        "PgSessionsBlocked",
        lambda ts: sessions_points(ts, blocked=2),
        lambda ts: sessions_points(ts, blocked=0),
        5, {"datname": "erp", "severity": "warning"}, ["2 sessions on db/erp"],
    ),
    (
        "PgLongRunningQueries",
        lambda ts: sessions_points(ts, long_running=1),
        lambda ts: sessions_points(ts, long_running=0),
        5, {"datname": "erp", "severity": "warning"}, ["1 statements on db/erp"],
    ),
    (
        "PgIdleInTransaction",
        lambda ts: sessions_points(ts, idle_in_transaction=1, idle_in_transaction_oldest_s=301.0),
        lambda ts: sessions_points(ts, idle_in_transaction=1, idle_in_transaction_oldest_s=300.0),
        1, {"datname": "erp", "severity": "warning"}, ["db/erp", "open 301 s"],
    ),
    (
        "PgReplicationLag",
        lambda ts: primary_points(ts, lag_s=61.0, replay_bytes=5e6),
        lambda ts: primary_points(ts, lag_s=60.0, replay_bytes=5e6),
        5, {"replica": "r1", "severity": "warning"}, ["Replica r1 of db", "61 s behind"],
    ),
    (
        "PgReplicationLagCritical",
        lambda ts: primary_points(ts, lag_s=301.0, replay_bytes=5e8),
        lambda ts: primary_points(ts, lag_s=300.0, replay_bytes=5e8),
        5, {"replica": "r1", "severity": "critical"}, ["Replica r1 of db", "301 s behind"],
    ),
    (
        "PgReplicaReplayDelay",
        lambda ts: replica_points(ts, 301.0),
        lambda ts: replica_points(ts, 300.0),
        5, {"severity": "warning"}, ["Replica db is 301 s behind"],
    ),
    (
        "PgReplicationSlotInactive",
        lambda ts: primary_points(ts, active=False),
        lambda ts: primary_points(ts, active=True),
        15, {"severity": "warning"}, ["1 replication slots on db"],
    ),
    (
        "PgReplicationSlotRetainsWal",
        lambda ts: primary_points(ts, retained=10 * GIB + 1),
        lambda ts: primary_points(ts, retained=10 * GIB),
        15, {"slot": "standby_a", "severity": "warning"}, ["Slot standby_a on db holds 1.074e+10 bytes"],
    ),
    (
        "PgTransactionIdWraparound",
        xid_points(1_499_999_999),
        xid_points(1_500_000_000),
        5, {"datname": "erp", "severity": "warning"}, ["db/erp has 1.5e+09 transactions left"],
    ),
    (
        "PgTransactionIdWraparoundCritical",
        xid_points(2**29 - 1),
        xid_points(2**29),
        5, {"datname": "erp", "severity": "critical"}, ["db/erp has 5.369e+08 transactions left"],
    ),
]  # fmt: skip
# The rule of the same series a reading past the warning's threshold must not reach.
WORSE = {
    "PgReplicationLag": "PgReplicationLagCritical",
    "PgTransactionIdWraparound": "PgTransactionIdWraparoundCritical",
}


@pytest.mark.parametrize(
    ("rule", "fires", "at", "minutes", "labels", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_fires_after_its_for_and_not_at_its_threshold(
    tmp_path: Path,
    rule: str,
    fires: Callable[[int], list[Point]],
    at: Callable[[int], list[Point]],
    minutes: int,
    labels: dict,
    words: list[str],
) -> None:
    runs = run(tmp_path / "over", fires, minutes + 2)
    found = states(runs, rule)
    # Pending from the first reading until `for` has passed, firing from then on; one alert.
    assert found[:minutes] == [["pending"]] * minutes, found
    assert found[minutes:] == [["firing"], ["firing"]], found
    alert = next(a for a in runs[-1] if a.name == rule)
    assert alert.labels["target"] == "db" and alert.labels["kind"] == "postgres", alert.labels
    assert all(alert.labels.get(k) == v for k, v in labels.items()), alert.labels
    summary = alert.annotations["summary"]
    assert all(w in summary for w in words), summary
    assert not any(a.name == WORSE.get(rule) for found in runs for a in found)
    quiet = run(tmp_path / "at", at, minutes + 2)
    assert not any(a.name == rule for found in quiet for a in found)


def test_a_replica_that_replayed_everything_is_not_lagging(tmp_path: Path) -> None:
    """pg_stat_replication keeps the last replay_lag for a while after a replica caught up: with no
    WAL left to replay the collector writes 0, and no lag rule goes pending."""
    runs = run(tmp_path, lambda ts: primary_points(ts, lag_s=400.0, replay_bytes=0.0), 7)
    assert not any(a.name.startswith("PgReplicationLag") for found in runs for a in found)


def test_idle_in_transaction_is_per_database(tmp_path: Path) -> None:
    both = [_group("erp", idle_in_transaction=1, idle_in_transaction_oldest_s=900.0)]
    both.append(_group("crm", idle_in_transaction=2, idle_in_transaction_oldest_s=400.0))
    row = {"long_running_s": 60.0, "clients": both, "sessions": []}
    runs = run(tmp_path, lambda ts: sessions.read([row], ts).points, 2)
    fired = sorted((a.labels["datname"], a.value) for a in runs[-1] if a.name == "PgIdleInTransaction")
    assert fired == [("crm", 400.0), ("erp", 900.0)]
    assert not any(a.name == "PgIdleInTransaction" and "datname" not in a.labels for a in runs[-1])


# -- checkpoints: counters, read over an hour -----------------------------------------------------
def checkpoints(timed: Callable[[int], int], requested: Callable[[int], int]) -> Callable[[int], list[Point]]:
    """server_stats readings each minute i with the checkpointer's totals timed(i), requested(i)."""
    last: dict = {}

    def points(ts: int) -> list[Point]:
        i = (ts - T0) // MINUTE
        return server_stats.read([server_row(timed=timed(i), requested=requested(i))], ts, last).points

    return points


def test_requested_checkpoints_fire_when_they_are_most_of_an_hour(tmp_path: Path) -> None:
    # max_wal_size too small: a requested checkpoint every 2 minutes, a timed one every 5.
    runs = run(tmp_path, checkpoints(lambda i: 100 + i // 5, lambda i: 7 + i // 2), 40)
    found = states(runs, "PgCheckpointsRequested")
    # Minute 0 is the baseline (no delta yet); by minute 4 two were requested, and one was timed
    # at 5: 2/2, then 3/4 ... (over 0.5 throughout); pending from minute 4, firing 15 minutes on.
    start = found.index(["pending"])
    assert start == 4 and found[start : start + 15] == [["pending"]] * 15, found
    assert found[start + 15 :] == [["firing"]] * (40 - start - 15), found
    alert = next(a for a in runs[-1] if a.name == "PgCheckpointsRequested")
    # Over the 39 minutes of deltas: 19 requested, 7 timed.
    assert alert.value == pytest.approx(19 / 26) and alert.labels["severity"] == "warning"
    assert alert.annotations["summary"].startswith("0.7308 of the checkpoints on db in the last hour"), alert


def test_half_requested_or_a_lone_one_stays_quiet(tmp_path: Path) -> None:
    # As many requested as timed: 0.5 is not over it.
    runs = run(tmp_path / "half", checkpoints(lambda i: i, lambda i: i), 20)
    assert not any(a.name == "PgCheckpointsRequested" for found in runs for a in found)
    # checkpoint_timeout of an hour or more, one CHECKPOINT (or base backup) in it: all of the
    # hour's checkpoints, but one alone is no ratio.
    runs = run(tmp_path / "lone", checkpoints(lambda i: 0, lambda i: 1 if i >= 2 else 0), 70)
    assert not any(a.name == "PgCheckpointsRequested" for found in runs for a in found)


# -- the pack names only series that exist ---------------------------------------------------------
def written_by_collectors() -> set[str]:
    """Every series name a collector writes as a literal or through a dashboard.core.metrics
    constant (the names its modules spell, read from their source)."""
    names: set[str] = set()
    for path in COLLECTORS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "metrics"
            ):
                value = getattr(metrics, node.attr, None)
                if isinstance(value, str):
                    names.add(value)
    return names


def test_every_series_of_the_pack_is_written_by_a_collector_or_derived() -> None:
    rules, errors = read(DEFAULT_RULES, prometheus_targets=None)
    assert errors == [] and len(rules) == DEFAULT_RULES.read_text().count("- alert:")
    written = written_by_collectors()
    assert metrics.PG_XID_HEADROOM in written and "redis.memory.used_pct" in written  # the reading works
    unknown = {
        r.name: r.parsed.selector.name
        for r in rules
        if r.parsed is not None and r.parsed.selector.name not in written | set(DERIVED)
    }
    assert unknown == {}


def test_every_health_rule_of_the_pack_is_tested_here() -> None:
    rules, _ = read(DEFAULT_RULES, prometheus_targets=None)
    over_health = {
        r.name for r in rules if r.parsed is not None and r.parsed.selector.name.startswith(HEALTH_SERIES)
    }
    tested = {c[0] for c in CASES} | {"PgCheckpointsRequested"}
    assert over_health == tested
    # One rule for sessions idle in a transaction, over the per-database transaction age.
    idle = [r for r in rules if "idle_in_transaction" in r.expr or "idle in transaction" in r.expr]
    assert [(r.name, r.parsed.selector.name) for r in idle] == [
        ("PgIdleInTransaction", metrics.PG_SESSIONS_IDLE_IN_TRANSACTION_OLDEST_S)
    ]
