"""The derived series that are tests: error-budget burn rates over two windows, and statements that
became slower than their own past (large and not noise), over a real store."""

from __future__ import annotations

from pathlib import Path

from dashboard.alerts.expr import parse
from dashboard.alerts.series import Known, evaluate
from dashboard.core.records import Cycle, Point, StatementDelta, StatementEntry, StatementKey, Status
from dashboard.store import Store, schema

NOW = 1_800_000_000 - 1_800_000_000 % 3600 + 1800  # half past an hour
MINUTE = 60


def prom_cycle(ts: int, values: dict[str, float]) -> Cycle:
    points = [Point("prom.series", v, "gauge", f"name={name}") for name, v in values.items()]
    return Cycle("prometheus", "svc", ts, Status(), points=points)


SLOS = {"svc": {"error_ratio": ("<", 0.001), "api_p95_ms": ("<", 200.0), "availability": (">=", 0.999)}}
KNOWN = Known(SLOS, {})


def test_burn_rates_need_both_windows(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    for minute in range(60, 0, -1):  # the last hour, a reading a minute
        ts = NOW - minute * MINUTE + MINUTE
        store.write_cycle(
            prom_cycle(
                ts,
                {
                    "error_ratio": 0.02,  # 20x its budget all hour: fast burn
                    "api_p95_ms": 300.0 if minute <= 5 else 150.0,  # missed the target the last 5 min only
                    "availability": 1.0,  # never down: no burn
                },
            )
        )
    fast = {
        s.labels["series"]: s.value
        for s in evaluate(store.engine, parse("slo.burn_rate_fast > 14.4"), NOW, KNOWN)
    }
    slow = {
        s.labels["series"]: s.value
        for s in evaluate(store.engine, parse("slo.burn_rate_slow > 6"), NOW, KNOWN)
    }
    # error ratio: 0.02 / 0.001 in every window.
    assert round(fast["error_ratio"], 6) == 20.0 and round(slow["error_ratio"], 6) == 20.0
    # p95: 5 of 60 readings missed in 1 h (8.3x the 1 % budget), 5 of 5 in 5 min (100x): the lower is
    # 8.3, under 14.4: no page. Over 6 h (only 1 h stored) 8.3x and over 30 min 5/30 -> 16.7x: a ticket.
    assert round(fast["api_p95_ms"], 3) == round(5 / 60 / 0.01, 3)
    assert round(slow["api_p95_ms"], 3) == round(5 / 60 / 0.01, 3)
    assert fast["availability"] == 0.0
    labels = next(s.labels for s in evaluate(store.engine, parse("slo.burn_rate_fast > 14.4"), NOW, KNOWN))
    assert labels["target"] == "svc" and labels["objective"] in ("< 0.001", "< 200", ">= 0.999")
    store.close()


# -- slowdown --------------------------------------------------------------------------------------
def key(n: int) -> StatementKey:
    return StatementKey(queryid=1000 + n, dbid=5, userid=10, toplevel=True)


def statement_cycle(ts: int, runs: dict[int, tuple[float, float]]) -> Cycle:
    """Statement n ran calls times at ms each: runs[n] = (calls, ms)."""
    entries, deltas = [], []
    for n, (calls, ms) in runs.items():
        d = [0.0] * len(schema.STATEMENT_COUNTERS)
        d[0], d[1] = calls, calls * ms
        entries.append(StatementEntry(key(n), tuple(d), datname="erp", rolname="app"))
        deltas.append(StatementDelta(key(n), tuple(d)))
    texts = {key(n): f"SELECT {n}" for n in runs}
    return Cycle("postgres", "db", ts, Status(), entries=entries, deltas=deltas, texts=texts)


def test_only_a_large_and_significant_slowdown_is_reported(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    start = NOW - 15 * MINUTE - 24 * 3600
    for i, ts in enumerate(range(start, NOW - 15 * MINUTE, 10 * MINUTE)):  # the baseline day
        steady = 2.0 + (0.2 if i % 2 else -0.2)
        store.write_cycle(
            statement_cycle(ts, {1: (30, steady), 2: (30, steady), 4: (30, 1.0 if (i // 6) % 2 else 11.0)})
        )
    for ts in range(NOW - 15 * MINUTE + MINUTE, NOW + 1, MINUTE):  # the last 15 minutes
        store.write_cycle(
            statement_cycle(ts, {1: (10, 6.0), 2: (10, 2.4), 3: (10, 50.0), 4: (10, 12.0), 5: (1, 90.0)})
        )
    found = {
        s.labels["queryid"]: s.value
        for s in evaluate(store.engine, parse("pg.statement.slowdown > 1.5"), NOW)
    }
    # 1: 3x a steady baseline. 2: 1.2x, too small. 3: no baseline. 4: 2x, but within its own wide
    # hourly swings (1 to 11 ms). 5: a handful of calls.
    assert set(found) == {"1001"} and round(found["1001"], 3) == 3.0
    store.close()


def test_lateness_counts_intervals_since_the_last_success(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.write_cycle(prom_cycle(NOW - 600, {"error_ratio": 0.0}))  # svc: last success 10 min ago
    store.write_cycle(Cycle("prometheus", "late", NOW - 600, Status()))
    store.write_cycle(Cycle("prometheus", "late", NOW - 30, Status(state="down", error="refused")))
    known = Known({}, {"prometheus/svc": 60.0, "prometheus/late": 300.0})
    found = {
        s.labels["target"]: s.value for s in evaluate(store.engine, parse("target.lateness > 0"), NOW, known)
    }
    assert found == {"svc": 10.0, "late": 2.0}  # 600 s in 60 s intervals; 600 s in 300 s ones
    store.close()
