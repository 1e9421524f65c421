"""The derived series that are tests: error-budget burn rates over two windows, and statements that
became slower than their own past (large and not noise), over a real store."""

from __future__ import annotations

from pathlib import Path

from dashboard.alerts.detectors import Slo
from dashboard.alerts.expr import parse
from dashboard.alerts.series import Known, evaluate
from dashboard.core.records import Cycle, Point, StatementDelta, StatementEntry, StatementKey, Status
from dashboard.store import Store, schema

NOW = 1_800_000_000 - 1_800_000_000 % 3600 + 1800  # half past an hour
MINUTE = 60


def prom_cycle(ts: int, values: dict[str, float]) -> Cycle:
    points = [Point("prom.series", v, "gauge", f"name={name}") for name, v in values.items()]
    return Cycle("prometheus", "svc", ts, Status(), points=points)


SLOS = {
    "svc": {
        "error_ratio": Slo("<", 0.001, "value"),
        "api_p95_ms": Slo("<", 200.0, "readings"),
        "availability": Slo(">=", 0.999, "value"),
        "cpu_utilisation": Slo("<", 0.7, "readings"),
    }
}
KNOWN = Known(SLOS, {})


def burning(store: Store, when: int, expr: str) -> dict[str, float]:
    return {s.labels["series"]: s.value for s in evaluate(store.engine, parse(expr), when, KNOWN)}


def test_burn_rates_need_both_windows(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    for minute in range(7 * 60, 0, -1):  # seven hours, a reading a minute
        store.write_cycle(
            prom_cycle(
                NOW - minute * MINUTE + MINUTE,
                {
                    "error_ratio": 0.02,  # 20x its budget all along: fast burn
                    "api_p95_ms": 300.0 if minute <= 5 else 150.0,  # missed its target the last 5 min only
                    "availability": 1.0,  # never down: no burn
                    "cpu_utilisation": 0.95,  # every reading over 0.7: 100x the 1 % of readings it may miss
                },
            )
        )
    fast, slow = burning(store, NOW, "slo.burn_rate_fast > 0"), burning(store, NOW, "slo.burn_rate_slow > 0")
    # error ratio: 0.02 / 0.001 in every window; CPU: every reading missed, against 1 % allowed.
    assert round(fast["error_ratio"], 6) == round(slow["error_ratio"], 6) == 20.0
    assert round(fast["cpu_utilisation"], 6) == round(slow["cpu_utilisation"], 6) == 100.0
    # p95: 5 of 60 readings missed in 1 h (8.3x the 1 % budget), 5 of 5 in 5 min (100x): the lower is
    # 8.3, under 14.4: no page. 5 of 360 in 6 h (1.4x) and 5 of 30 in 30 min: 1.4, no ticket.
    assert round(fast["api_p95_ms"], 3) == round(5 / 60 / 0.01, 3)
    assert round(slow["api_p95_ms"], 3) == round(5 / 360 / 0.01, 3)
    assert fast["availability"] == slow["availability"] == 0.0
    labels = next(s.labels for s in evaluate(store.engine, parse("slo.burn_rate_fast > 14.4"), NOW, KNOWN))
    assert labels["target"] == "svc" and labels["objective"] in ("< 0.001", "< 0.7")
    store.close()


def test_a_new_target_is_not_paged_on_a_few_readings(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    for minute, p95 in ((3, 450.0), (2, 120.0), (1, 130.0)):  # three readings, one bad
        store.write_cycle(prom_cycle(NOW - minute * MINUTE + MINUTE, {"api_p95_ms": p95}))
    assert burning(store, NOW, "slo.burn_rate_fast > 0") == {}  # 3 minutes cover neither the 1 h nor 5 min
    assert burning(store, NOW, "slo.burn_rate_slow > 0") == {}
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


def test_one_slow_call_is_not_a_slowdown(tmp_path: Path) -> None:
    """A steady 10 ms statement and one call of 1.5 s (a lock wait) in the window: its cycles' median
    stays at 10 ms."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    for ts in range(NOW - 15 * MINUTE - 26 * 3600, NOW + 1, MINUTE):
        odd = ts == NOW - 5 * MINUTE
        store.write_cycle(statement_cycle(ts, {1: (2, 755.0 if odd else 10.0)}))  # 1.5 s + 10 ms
    assert evaluate(store.engine, parse("pg.statement.slowdown > 1.5"), NOW) == []
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
