"""The weekly review's objectives, series changes, alerts and table growth
(dashboard/analysis/review/weekly.py), over a store written through the real store API: eight ISO
weeks of a Prometheus target's series, two weeks of a Redis node and a PostgreSQL target, and alert
changes saved as the daemon saves them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dashboard.analysis.reader import Reader, StoreReads
from dashboard.analysis.review import weekly
from dashboard.analysis.review.model import WEEK, AlertFired, Period, TableGrowth
from dashboard.core import metrics
from dashboard.core.alerts import Alert
from dashboard.core.records import Cycle, Point, StatementDelta, StatementEntry, StatementKey, Status
from dashboard.store import Store, schema
from tests.support.stores import make_config

PERIOD = Period.iso_week("2026-W46")
BASELINE = Period.iso_week("2026-W45")
WEEKS = [f"2026-W{n}" for n in range(39, 47)]
HOUR = 3600
STEP = 6 * HOUR  # a cycle every six hours: each covers the default 60 s interval (not configured)
INTERVAL = 60
SILENT_WEEK = "2026-W41"  # Prometheus recorded nothing that week
API_P95 = {"2026-W45": 150.0, "2026-W46": 250.0}  # else 180 ms
ERRORS = {"2026-W45": 0.0005, "2026-W46": 0.002}  # else 0.0008
SERIES = {
    "api_p95_ms": {"expr": "histogram_quantile(0.95, x)", "unit": "ms", "target": "< 200"},
    "error_ratio": {"expr": "errors / requests", "unit": "ratio"},  # no target: the seed's applies
    "queue_depth": {"expr": "sum(queue)"},  # no target, no direction
}
# (calls, mean ms) per statement: W45's p95 of statement means is 20 ms (B's 300 ms is in the last
# 4 % of calls), W46's is 150 ms.
STATEMENTS = {
    "2026-W45": {1: (900, 10.0), 2: (40, 300.0), 3: (60, 20.0)},
    "2026-W46": {1: (900, 10.0), 2: (100, 150.0)},
}
TABLES = {  # bytes: baseline (first, last), period (first, last)
    "orders": ((500.0, 1000.0), (1500.0, 5000.0)),  # +4000 (from the baseline's *last* reading)
    "items": ((2000.0, 2000.0), (2100.0, 2500.0)),  # +500
    "logs": ((100.0, 100.0), (200.0, 10_100.0)),  # +10000
    "shrinking": ((5000.0, 5000.0), (4500.0, 4000.0)),  # -1000: not listed
    "fresh": (None, (300.0, 3300.0)),  # new: +3000 from its first reading
}


def week_of(ts: int) -> str:
    return Period.week_of(ts).label


def prom_cycles() -> list[Cycle]:
    out = []
    for ts in range(Period.iso_week(WEEKS[0]).start, PERIOD.end, STEP):
        week = week_of(ts)
        if week == SILENT_WEEK:
            continue
        values = {
            "api_p95_ms": API_P95.get(week, 180.0) + (50.0 if (ts // STEP) % 2 else -50.0),  # averages out
            "error_ratio": ERRORS.get(week, 0.0008),
            "queue_depth": 20.0 if week == PERIOD.label else 10.0,
        }
        points = [
            Point(metrics.PROM_SERIES, v, "gauge", metrics.encode({"name": n})) for n, v in values.items()
        ]
        out.append(Cycle("prometheus", "services", ts, Status(), points=points))
    return out


def counter(name: str, delta: float, labels: str = "") -> Point:
    return Point(name, None, "counter", labels, delta)


def redis_cycles() -> list[Cycle]:
    out = []
    for ts in range(BASELINE.start, PERIOD.end, STEP):
        now = week_of(ts) == PERIOD.label
        points = [
            counter(metrics.REDIS_KEYSPACE_HITS, 800.0 if now else 950.0),
            counter(metrics.REDIS_KEYSPACE_MISSES, 200.0 if now else 50.0),
            counter(metrics.REDIS_OPS, (200.0 if now else 100.0) * INTERVAL),
            counter(metrics.REDIS_KEYS_EVICTED, 5.0 if now else 0.0),
            Point(metrics.REDIS_MEMORY_USED_BYTES, 2e6 if now else 1e6),
        ]
        out.append(Cycle("redis", "cache", ts, Status(), points=points))
    return out


def key(n: int) -> StatementKey:
    return StatementKey(queryid=1000 + n, dbid=5, userid=10, toplevel=True)


def pg_cycles() -> list[Cycle]:
    out = []
    for ts in range(BASELINE.start, PERIOD.end, STEP):
        week = week_of(ts)
        now = week == PERIOD.label
        db1, db2 = metrics.encode({"datname": "shop"}), metrics.encode({"datname": "crm"})
        points = [
            counter(metrics.PG_DB_BLKS_HIT, 450.0 if now else 500.0, db1),
            counter(metrics.PG_DB_BLKS_READ, 50.0 if now else 5.0, db1),
            counter(metrics.PG_DB_BLKS_HIT, 450.0 if now else 490.0, db2),
            counter(metrics.PG_DB_BLKS_READ, 50.0 if now else 5.0, db2),
            counter(metrics.PG_DB + "xact_commit", (200.0 if now else 100.0) * INTERVAL - 60.0, db1),
            counter(metrics.PG_DB + "xact_rollback", 60.0, db1),
            Point(metrics.PG_CONNECTIONS, 10.0 if now else 5.0, "gauge", metrics.encode({"state": "active"})),
            Point(metrics.PG_CONNECTIONS, 20.0 if now else 10.0, "gauge", metrics.encode({"state": "idle"})),
        ]
        period = PERIOD if now else BASELINE
        last = ts + STEP >= period.end
        for table, sizes in TABLES.items():
            pair = sizes[1] if now else sizes[0]
            if pair is not None and (ts == period.start or last):
                size = pair[0] if ts == period.start else pair[1]
                points.append(
                    Point(weekly.TABLE_TOTAL_BYTES, size, "gauge", metrics.encode({"table": table}))
                )
        entries, deltas = [], []
        if ts == period.start:  # the week's statements in its first cycle
            for n, (calls, mean) in STATEMENTS[week].items():
                d = [0.0] * len(schema.STATEMENT_COUNTERS)
                d[0], d[1] = calls, calls * mean
                entries.append(StatementEntry(key(n), tuple(d), datname="shop", rolname="app", stddev_ms=1.0))
                deltas.append(StatementDelta(key(n), tuple(d)))
        texts = {key(n): f"SELECT {n}" for n in STATEMENTS[week]} if entries else {}
        out.append(
            Cycle("postgres", "erp", ts, Status(), points=points, entries=entries, deltas=deltas, texts=texts)
        )
    return out


def alert(name: str, severity: str, state: str, at: int, value: float, **annotations: str) -> Alert:
    labels = {"alertname": name, "severity": severity, "target": "services"}
    fired = at if state != "pending" else None
    return Alert(labels, dict(annotations), state, value, active_at=at, fired_at=fired)  # type: ignore[arg-type]


def save_alerts(store: Store) -> None:
    """Changes of state as the daemon saves them, in time order; the last save leaves CpuHigh active."""
    s = PERIOD.start
    api = lambda state, v=250.0: alert("ApiLatencyHigh", "warning", state, 0, v)  # noqa: E731
    errors = lambda state: alert("ErrorRatioHigh", "critical", state, 0, 0.004)  # noqa: E731
    flapping = lambda state: alert("Flapping", "warning", state, 0, 1.0)  # noqa: E731
    through = lambda state: alert("ThroughTheWeek", "warning", state, 0, 3.0)  # noqa: E731
    old = lambda state: alert("LastWeekOnly", "warning", state, 0, 1.0)  # noqa: E731
    cpu = alert("CpuHigh", "warning", "firing", 0, 0.93, summary="CPU 0.93 on services (target < 0.7)")
    changes = [
        (BASELINE.start + 100, [old("firing")]),
        (BASELINE.start + 200, [old("resolved")]),
        (s - 5 * HOUR, [through("firing"), flapping("firing")]),
        (s - 3600, [api("pending")]),
        (s - 3000, [api("firing", 250.0)]),
        (s + 100, [flapping("resolved")]),
        (s + 1000, [flapping("firing")]),
        (s + 1300, [flapping("resolved")]),
        (s + 7200, [api("resolved")]),
        (s + 86400, [errors("pending"), errors("firing")]),
        (s + 86400 + 600, [errors("resolved")]),
        (PERIOD.end - 1000, [cpu]),
        (PERIOD.end + 600, [through("resolved")]),  # after the period: still firing at its end
    ]
    for now, changed in changes:
        store.save_alerts([cpu] if now >= PERIOD.end - 1000 else [], changed, now)


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Reader:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('weekly')) / 'store.db'}"
    store = Store(url)
    store.write_cycles(prom_cycles() + redis_cycles() + pg_cycles())
    save_alerts(store)
    store.close()
    prometheus = [{"name": "services", "url": "http://prometheus.invalid:9090", "series": SERIES}]
    config = make_config(url, prometheus, kind="prometheus")
    return Reader(StoreReads.open(url), config, now=lambda: PERIOD.end + HOUR)


def by_name(objectives, name: str) -> dict[str, object]:
    return {o.week: o for o in objectives if o.name == name}


def test_objectives_week_by_week(reader: Reader) -> None:
    found = weekly.objectives(reader, PERIOD)
    assert [o.week for o in found[:: len(found) // 8]] == WEEKS  # week by week, the period's last
    names = [o.name for o in found if o.week == PERIOD.label]
    assert names == [name for _, name in weekly.OBJECTIVES]
    assert names[:4] == [
        "API p95",
        "DB query p95 (of statement means)",
        "cache hit rate",
        "buffer cache hit ratio",
    ]
    api = by_name(found, "API p95")
    assert (api["2026-W46"].value, api["2026-W46"].met) == (pytest.approx(250.0), False)
    assert (api["2026-W45"].value, api["2026-W45"].met) == (pytest.approx(150.0), True)
    assert (api["2026-W40"].value, api["2026-W40"].met) == (pytest.approx(180.0), True)
    assert (api[SILENT_WEEK].value, api[SILENT_WEEK].met) == (None, None)
    assert (api["2026-W46"].target, api["2026-W46"].unit) == ("< 200 ms", "ms")
    # The series has no target of its own: the seed's (< 0.1 %) is held against it.
    errors = by_name(found, "error rate")
    assert (errors["2026-W45"].met, errors["2026-W46"].met, errors["2026-W46"].target) == (
        True,
        False,
        "< 0.1 %",
    )
    assert errors["2026-W46"].value == pytest.approx(0.002) and errors["2026-W46"].unit == "ratio"
    for unmeasured in ("CPU", "memory", "availability"):  # not configured: never a made-up number
        assert {(o.value, o.met) for o in by_name(found, unmeasured).values()} == {(None, None)}
    db = by_name(found, "DB query p95 (of statement means)")
    assert (db["2026-W45"].value, db["2026-W45"].met) == (20.0, True)  # not B's 300 ms: 4 % of calls
    assert (db["2026-W46"].value, db["2026-W46"].met, db["2026-W46"].target) == (150.0, False, "< 100 ms")
    assert db["2026-W44"].value is None  # the target ran no statement that week
    cache = by_name(found, "cache hit rate")
    assert (cache["2026-W45"].value, cache["2026-W45"].met) == (pytest.approx(0.95), True)
    assert (cache["2026-W46"].value, cache["2026-W46"].met) == (pytest.approx(0.8), False)
    assert cache["2026-W39"].value is None and cache["2026-W46"].target == "> 90 %"
    buffer = by_name(found, "buffer cache hit ratio")
    assert (buffer["2026-W45"].value, buffer["2026-W45"].met) == (pytest.approx(0.99), True)
    assert (buffer["2026-W46"].value, buffer["2026-W46"].met) == (pytest.approx(0.9), False)  # not > 90 %


def test_fewer_weeks_end_with_the_period(reader: Reader) -> None:
    found = weekly.objectives(reader, BASELINE, weeks=2)
    assert sorted({o.week for o in found}) == ["2026-W44", "2026-W45"]


def test_p95_of_statement_means_is_calls_weighted() -> None:
    # 95 % of the calls take 2 ms: that is the p95; one slow call more, and it is the slow statement's.
    frame = pd.DataFrame({"calls": [50, 950, 0], "exec_ms": [50 * 400.0, 950 * 2.0, 0.0]})
    assert weekly.p95_of_means(frame) == 2.0
    frame.loc[0, "calls"], frame.loc[0, "exec_ms"] = 51, 51 * 400.0
    assert weekly.p95_of_means(frame) == 400.0
    assert weekly.p95_of_means(frame.iloc[2:]) is None  # no calls: not measured


def test_series_changes(reader: Reader) -> None:
    found = weekly.series_changes(reader, reader.targets(), PERIOD, BASELINE)
    rows = {(c.kind, c.target, c.name): (c.unit, c.baseline, c.value, c.better) for c in found}
    approx = pytest.approx
    assert rows == {
        ("prometheus", "services", "api_p95_ms"): ("ms", approx(150.0), approx(250.0), False),
        ("prometheus", "services", "error_ratio"): ("ratio", approx(0.0005), approx(0.002), False),
        ("prometheus", "services", "queue_depth"): ("", approx(10.0), approx(20.0), None),
        ("redis", "cache", "hit rate"): ("ratio", approx(0.95), approx(0.8), False),
        ("redis", "cache", "ops/s"): ("ops/s", approx(100.0), approx(200.0), None),
        ("redis", "cache", "used memory"): ("bytes", approx(1e6), approx(2e6), None),
        ("redis", "cache", "evictions"): ("keys", 0.0, 5.0 * WEEK / STEP, False),
        ("postgres", "erp", "buffer cache hit ratio"): ("ratio", approx(0.99), approx(0.9), False),
        ("postgres", "erp", "transactions/s"): ("tx/s", approx(100.0), approx(200.0), None),
        ("postgres", "erp", "connections"): ("", approx(15.0), approx(30.0), None),
    }
    assert [c.kind for c in found] == ["prometheus"] * 3 + ["redis"] * 4 + ["postgres"] * 3
    # Swapped, the same figures are good news where they have a direction.
    back = {
        (c.kind, c.name): c.better for c in weekly.series_changes(reader, reader.targets(), BASELINE, PERIOD)
    }
    assert back[("prometheus", "api_p95_ms")] is True and back[("redis", "hit rate")] is True
    assert back[("redis", "evictions")] is True and back[("prometheus", "queue_depth")] is None


def test_alerts_fired_in_the_period(reader: Reader) -> None:
    found = {a.name: a for a in weekly.alerts_fired(reader, PERIOD)}
    s = PERIOD.start
    assert set(found) == {"ErrorRatioHigh", "ApiLatencyHigh", "Flapping", "CpuHigh", "ThroughTheWeek"}
    # Firing across the period's start: counted from it.
    assert found["ApiLatencyHigh"] == AlertFired(
        "ApiLatencyHigh", "warning", "API p95 250 ms on services (target < 200 ms)", s, s + 7200, 7200
    )
    assert found["ErrorRatioHigh"][3:] == (s + 86400, s + 86400 + 600, 600)
    assert found["ErrorRatioHigh"].severity == "critical"
    assert found["Flapping"][3:] == (s, s + 1300, 100 + 300)  # two spells, its last resolution
    assert found["Flapping"].summary == "Flapping (target=services)"  # no such rule: its labels
    assert found["CpuHigh"][3:] == (PERIOD.end - 1000, None, 1000)  # still firing at the end
    assert found["CpuHigh"].summary == "CPU 0.93 on services (target < 0.7)"  # active: its annotation
    assert found["ThroughTheWeek"][3:] == (s, None, WEEK)  # no change in the period at all
    ordered = [a.name for a in weekly.alerts_fired(reader, PERIOD)]
    assert ordered == ["ErrorRatioHigh", "ThroughTheWeek", "ApiLatencyHigh", "CpuHigh", "Flapping"]
    before = {a.name for a in weekly.alerts_fired(reader, BASELINE)}
    assert before == {"LastWeekOnly", "ThroughTheWeek", "Flapping", "ApiLatencyHigh"}


def test_growth_of_the_largest_tables(reader: Reader) -> None:
    found = weekly.growth(reader, reader.targets(), PERIOD, BASELINE)
    assert found == (
        TableGrowth("erp", "logs", (100.0, 10_100.0), 10_000.0),
        TableGrowth("erp", "orders", (1000.0, 5000.0), 4000.0),
        TableGrowth("erp", "fresh", (None, 3300.0), 3000.0),
        TableGrowth("erp", "items", (2000.0, 2500.0), 500.0),
    )
    assert [g.table for g in weekly.growth(reader, reader.targets(), PERIOD, BASELINE, top=2)] == [
        "logs",
        "orders",
    ]
    redis_only = [t for t in reader.targets() if t.kind == "redis"]
    assert weekly.growth(reader, redis_only, PERIOD, BASELINE) == ()


def test_statements_without_a_plan_are_left_out_of_the_p95() -> None:
    """BEGIN and COMMIT outnumber the queries of a busy server, in microseconds each."""
    frame = pd.DataFrame(
        {
            "query": ["BEGIN", "COMMIT", "SELECT * FROM orders WHERE id = $1", None],
            "calls": [20_000, 20_000, 1_000, 100],
            "exec_ms": [20.0, 40.0, 40_000.0, 500.0],
        }
    )
    assert weekly.p95_of_means(frame) == 0.002  # the utility statements' microseconds
    kept = weekly.planned(frame)
    assert kept["query"].tolist() == ["SELECT * FROM orders WHERE id = $1", None]  # no text: kept
    assert weekly.p95_of_means(kept) == 40.0


def test_procedures_copy_and_do_count_in_the_p95() -> None:
    """Only transaction and session control is left out: CALL and COPY are the database's work."""
    frame = pd.DataFrame(
        {
            "query": ["BEGIN", "SET search_path = app", "CALL close_month($1)", "COPY t FROM STDIN"],
            "calls": [10_000, 10_000, 5_000, 5_000],
            "exec_ms": [10.0, 10.0, 2_000_000.0, 5_000.0],
        }
    )
    kept = weekly.planned(frame)
    assert kept["query"].tolist() == ["CALL close_month($1)", "COPY t FROM STDIN"]
    assert weekly.p95_of_means(kept) == 400.0


def test_better_or_worse_needs_more_than_a_rounding_move() -> None:
    better = weekly._better
    assert better(0.968197, 0.968185, False) is None  # a hit ratio 0.0012 % lower: no change
    assert better(0.99, 0.985, False) is False  # under 1 %, but 0.005 of a ratio: half as many misses again
    assert better(0.0005, 0.0009, True) is False  # an error ratio up 80 %, if only 0.0004
    assert better(0.5, 0.5008, False) is None  # a ratio, under 1 % and under 0.001
    assert better(150.0, 151.4, True) is None  # ms: under 1 %
    assert better(150.0, 151.6, True) is False and better(150.0, 148.4, True) is True
    assert better(0.0, 0.0, True) is None and better(0.0, 5.0, True) is False
    assert better(2000.0, 2015.0, None) is None and better(None, 1.0, True) is None


def test_an_alert_resolved_at_the_periods_start_did_not_fire_in_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    store = Store(url)
    s = PERIOD.start
    early = lambda name, state: alert(name, "warning", state, 0, 1.0)  # noqa: E731
    store.save_alerts([], [early("AtStart", "firing"), early("HourIn", "firing")], s - HOUR)
    store.save_alerts([], [early("AtStart", "resolved")], s)
    store.save_alerts([], [early("HourIn", "resolved")], s + HOUR)
    store.close()
    reader = Reader(StoreReads.open(url), make_config(url), now=lambda: PERIOD.end + HOUR)
    found = weekly.alerts_fired(reader, PERIOD)
    assert [(a.name, a.fired, a.resolved, a.firing_s) for a in found] == [("HourIn", s, s + HOUR, HOUR)]
    assert [(a.name, a.firing_s) for a in weekly.alerts_fired(reader, BASELINE)] == [
        ("AtStart", HOUR),
        ("HourIn", HOUR),
    ]
