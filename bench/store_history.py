"""Benchmark: the store at 30 days of history, and every page's data load through reads.py.

The issue's budget: 30 days of history at 1-minute collection, 5,000 statements of which 500 move
each minute; every page's data loads in at most 300 ms (p95) and the store file stays under 2 GB.

The generator (`generate`) writes that history the way the daemon would: one `Cycle` a minute
through `Store.write_cycle` (StatementEntry/StatementDelta records plus the Overview's series points
under the names collectors/postgres.py emits) and `Store.prune(Retention(), now)` every simulated
hour. The first cycle stores every statement with its text and no deltas, as a collector's first
cycle does. Which statements move: a hot set (60 % of the movers) that moves in ~95 % of minutes,
the rest of the minute's movers drawn from the other statements with Zipf weights (rank^-1.1): at
the defaults about 3,300 of the 5,000 statements move in an hour and about 4,800 in a day. Counters are
plausible per statement (lognormal mean time, calls, rows, blocks with a hit ratio, temp blocks for
sorting statements, WAL for writes) with a day/night cycle. Statements never churn (no evictions).

The page loads (`page_loads`) make the reads.py calls that dashboard/data.py makes for each page
with cold caches (TOTALS = choose_level(window, TOTALS_BUCKETS), CHART = ... CHART_BUCKETS), for
windows of 1 h, 24 h, 7 d and 30 d ending at the last generated minute. Every page also lists the
targets (target_statuses) for app.py's sidebar.

- Overview: target_statuses; series_frame of the summary series (statement totals and blocks) at
  TOTALS; series_frame of data.OVERVIEW_SERIES at CHART; statement_totals top 5 at TOTALS.
- Queries: statement_filters; statement_totals limit 100 at TOTALS; statement_series of those 100
  (sparklines) at TOTALS; series_frame of the cycle grid (pg.statements.calls) at TOTALS.
- Query detail: statement_info; statement_series of the busiest statement at TOTALS (figures)
  and at CHART (history); the cycle grid at CHART; latest_advice (the advisor's word on it).
- Indexes (no window): latest_advice, and statement_ids_by_text for each report's suggested and
  skipped statements. The generator stores one advisor report per database (Store.write_advice)
  with 8 suggestions of 5 statements and 40 skipped statements.

Each page and window runs once to warm up (reported as `first_ms`), then `--repeat` times; p95 is
the nearest-rank percentile. The store size is the SQLite file plus its -wal and -shm files.

Baselines, measured on the same store in the same run:

- `raw_aggregation` (the ratio's denominator): the Queries page's aggregation, statement_totals
  over the last 24 h, but read from the raw level -- what a store without roll-ups scans. 24 h is
  the longest window that raw (kept 2 days) holds whole, and without roll-ups the cost grows
  linearly with the window, so a 30-day Queries page would cost about 30 times this. A page figure
  below 1.0x is a page that costs less than one day of raw rows: the roll-ups are doing their job,
  and the ratio carries over between machines where absolute milliseconds do not.
- `raw_scan`: `SELECT sum(calls)` over the whole raw statement table, a plain scan that shows the
  machine's speed at reading the store. (Not `count(*)`: SQLite counts a b-tree's cells page by
  page without reading rows, which takes well under a millisecond and says nothing.)

    .venv/bin/python -m bench.store_history --store /tmp/observatory-30d.db      # generate or reuse
    .venv/bin/python -m bench.store_history --days 2 --statements 1000           # a quick run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from bench.timing import percentile
from collectors.postgres.collector import CONNECTION_STATES, DB_COUNTERS, TOTALS
from dashboard.core.config import Retention
from dashboard.core.records import Cycle, Point, StatementDelta, StatementEntry, StatementKey, Status
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.reads import (
    CHART_BUCKETS,
    TOTALS_BUCKETS,
    Window,
    choose_level,
    latest_advice,
    series_frame,
    statement_filters,
    statement_ids_by_text,
    statement_info,
    statement_series,
    statement_totals,
    target_statuses,
)
from dashboard.store.schema import POINTS, STATEMENT_COUNTERS, STMT

BUDGET_MS = 300.0
BUDGET_BYTES = 2 * 1024**3
TARGET = "erp-primary"
DATABASES = ("app", "reporting", "postgres")
DB_WEIGHTS = (0.8, 0.15, 0.05)
ROLES = {"app": ("app_rw", "app_ro"), "reporting": ("reporting",), "postgres": ("postgres",)}
WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
WINDOWLESS = {"indexes"}
# What dashboard/data.py reads (tests/test_bench.py checks these still match it).
STATEMENT_TOTALS = ("pg.statements.calls", "pg.statements.exec_ms", "pg.statements.rows")
BLOCKS = ("pg.db.blks_hit", "pg.db.blks_read")
SUMMARY_SERIES = (*STATEMENT_TOTALS, *BLOCKS)
CYCLES = "pg.statements.calls"
OVERVIEW_SERIES = (*STATEMENT_TOTALS, *BLOCKS, "pg.connections")
C = {name: i for i, name in enumerate(STATEMENT_COUNTERS)}


# -- the generator --------------------------------------------------------------------------------
def _statement_text(rng: random.Random, i: int, kind: str) -> str:
    """An ORM-looking normalized statement of ~600 bytes (REFERENCES: 3.4 MB for 5,800 entries)."""
    table = f"{rng.choice(('orders', 'customers', 'invoices', 'shipments', 'products', 'events'))}_{i % 97}"
    cols = [f"{table}.{rng.choice(('id', 'status', 'total', 'created_at', 'owner_id', 'note'))}_{k}" for k in
            range(rng.choice((3, 6, 9, 12, 16, 24)))]  # fmt: skip
    if kind == "select":
        select_list = ", ".join(f"{c} AS {c.replace('.', '_')}" for c in cols)
        return (
            f"SELECT {select_list} FROM {table} WHERE {table}.owner_id_{i} = $1 AND {table}.status_0 = $2 "
            f"ORDER BY {table}.created_at_0 DESC LIMIT $3"
        )
    if kind == "insert":
        names = ", ".join(c.split(".")[1] for c in cols)
        return f"INSERT INTO {table} ({names}) VALUES ({', '.join(f'${k + 1}' for k in range(len(cols)))})"
    assignments = ", ".join(f"{c.split('.')[1]} = ${k + 1}" for k, c in enumerate(cols))
    return f"UPDATE {table} SET {assignments} WHERE {table}.id_{i} = ${len(cols) + 1}"


class _Population:
    """The statements and their per-statement behaviour; `minute()` draws one minute's deltas."""

    def __init__(self, statements: int, moving: int, seed: int) -> None:
        self.n = statements
        self.moving = min(moving, statements)
        self.np = np.random.default_rng(seed)
        rng = random.Random(seed)
        g = self.np
        self.kinds = g.choice(["select", "insert", "update"], size=statements, p=[0.75, 0.1, 0.15])
        self.dbs = g.choice(len(DATABASES), size=statements, p=DB_WEIGHTS)
        self.keys = []
        for i in range(statements):
            datname = DATABASES[self.dbs[i]]
            role_index = rng.randrange(len(ROLES[datname]))
            self.keys.append(
                StatementKey(rng.getrandbits(63) - 2**62, 16384 + int(self.dbs[i]), 10 + role_index, True)
            )
        self.roles = [ROLES[DATABASES[self.dbs[i]]][k.userid - 10] for i, k in enumerate(self.keys)]
        self.texts = {k: _statement_text(rng, i, str(self.kinds[i])) for i, k in enumerate(self.keys)}
        self.mean_ms = np.clip(g.lognormal(np.log(0.4), 1.6, statements), 0.01, 60000)
        self.rows_per_call = np.where(self.kinds == "select", g.lognormal(np.log(8), 1.5, statements), 1.0)
        self.blocks_per_call = np.clip(self.mean_ms * g.uniform(20, 200, statements), 3, 1e7)
        self.hit = np.clip(g.beta(30, 1, statements), 0.5, 1.0)
        self.temp = g.random(statements) < 0.04
        self.writes = self.kinds != "select"
        hot_count = min(int(self.moving * 0.6), statements)
        order = g.permutation(statements)
        self.hot = order[:hot_count]
        self.tail = order[hot_count:]
        ranks = np.arange(1, len(self.tail) + 1)
        self.tail_p = ranks**-1.1 / (ranks**-1.1).sum() if len(self.tail) else ranks
        self.rate = np.ones(statements)  # calls a minute when moving
        self.rate[self.hot] = g.lognormal(np.log(150), 1.2, hot_count)
        self.rate[self.tail] = g.lognormal(np.log(3), 1.0, len(self.tail))
        self.cumulative = np.zeros((statements, len(STATEMENT_COUNTERS)))

    def minute(self, ts: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the statements that moved in the minute ending at `ts`, and their deltas."""
        g = self.np
        hot = self.hot[g.random(len(self.hot)) < 0.95]
        need = self.moving - len(hot)
        tail = g.choice(self.tail, size=need, replace=False, p=self.tail_p) if need > 0 else self.tail[:0]
        idx = np.concatenate([hot, tail])
        daily = 1.0 + 0.6 * math.sin(2 * math.pi * ((ts % 86400) / 86400 - 0.3))  # busy afternoons
        calls = np.maximum(1, g.poisson(self.rate[idx] * daily))
        d = np.zeros((len(idx), len(STATEMENT_COUNTERS)))
        d[:, C["calls"]] = calls
        d[:, C["exec_ms"]] = calls * self.mean_ms[idx] * g.lognormal(0, 0.3, len(idx))
        d[:, C["rows"]] = np.round(calls * self.rows_per_call[idx])
        blocks = calls * self.blocks_per_call[idx]
        d[:, C["shared_read"]] = np.round(blocks * (1 - self.hit[idx]))
        d[:, C["shared_hit"]] = np.round(blocks) - d[:, C["shared_read"]]
        writes = self.writes[idx]
        d[:, C["shared_dirtied"]] = np.where(writes, np.round(calls * 1.5), 0)
        d[:, C["shared_written"]] = np.where(writes, np.round(calls * 0.1), 0)
        temp = self.temp[idx]
        d[:, C["temp_read"]] = np.where(temp, np.round(calls * 40), 0)
        d[:, C["temp_written"]] = d[:, C["temp_read"]]
        d[:, C["read_ms"]] = d[:, C["shared_read"]] * 0.02
        d[:, C["write_ms"]] = d[:, C["shared_written"]] * 0.05
        d[:, C["wal_bytes"]] = np.where(writes, calls * 420.0, 0)
        self.cumulative[idx] += d
        return idx, d

    def entry(self, i: int, counters: list[float]) -> StatementEntry:
        calls = counters[C["calls"]]
        mean = counters[C["exec_ms"]] / calls if calls else 0.0
        return StatementEntry(
            key=self.keys[i],
            counters=tuple(counters),
            datname=DATABASES[self.dbs[i]],
            rolname=self.roles[i],
            min_ms=float(self.mean_ms[i] * 0.2),
            max_ms=float(self.mean_ms[i] * 25),
            mean_ms=mean,
            stddev_ms=mean * 0.6,
        )


class _ServerSeries:
    """pg_stat_database counters per database, database sizes and connection gauges."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed + 1)
        self.counters = {db: dict.fromkeys(DB_COUNTERS, 0.0) for db in DATABASES}
        self.size = {db: float(self.rng.integers(50, 500)) * 2**20 for db in DATABASES}

    def points(self, idx: np.ndarray, deltas: np.ndarray, dbs: np.ndarray, first: bool) -> list[Point]:
        points: list[Point] = []
        if not first:  # the collector emits statement totals once it has a baseline
            sums = deltas.sum(axis=0)
            points += [Point(f"pg.statements.{n}", None, "counter", delta=float(sums[C[n]])) for n in TOTALS]
        g = self.rng
        for d, db in enumerate(DATABASES):
            mine = deltas[dbs[idx] == d]
            calls = float(mine[:, C["calls"]].sum()) if len(mine) else 0.0
            grow = {
                "xact_commit": calls * 0.9,
                "xact_rollback": float(g.poisson(0.2)),
                "blks_read": float(mine[:, C["shared_read"]].sum()) if len(mine) else 0.0,
                "blks_hit": float(mine[:, C["shared_hit"]].sum()) if len(mine) else 0.0,
                "tup_returned": float(mine[:, C["rows"]].sum()) * 12 if len(mine) else 0.0,
                "tup_fetched": float(mine[:, C["rows"]].sum()) if len(mine) else 0.0,
                "tup_inserted": calls * 0.05,
                "tup_updated": calls * 0.08,
                "tup_deleted": calls * 0.01,
                "conflicts": 0.0,
                "temp_files": float(g.poisson(0.05)),
                "temp_bytes": float(mine[:, C["temp_written"]].sum()) * 8192 if len(mine) else 0.0,
                "deadlocks": float(g.random() < 0.0005),
            }
            labels = f"datname={db}"
            for name in DB_COUNTERS:
                before = self.counters[db][name]
                self.counters[db][name] = before + grow[name]
                delta = None if first else grow[name]
                points.append(Point(f"pg.db.{name}", self.counters[db][name], "counter", labels, delta))
            self.size[db] += grow["tup_inserted"] * 120
            points.append(Point("pg.db.size_bytes", self.size[db], "gauge", labels))
        states = dict(zip(CONNECTION_STATES, g.poisson((25, 60, 2, 0)), strict=True))
        points += [Point("pg.connections", float(n), "gauge", f"state={s}") for s, n in states.items()]
        points.append(Point("pg.connections.waiting_on_lock", float(g.poisson(0.3))))
        return points


def write_advice(store: Store, population: _Population, ts: int) -> None:
    """The index advisor's latest report per database, as the daemon's hourly advisor stores it
    (Store.write_advice): a few suggestions naming their statements, and skipped statements."""
    rng = random.Random(ts)
    for d, datname in enumerate(DATABASES):
        mine = [population.texts[population.keys[i]] for i in range(population.n) if population.dbs[i] == d]
        if not mine:
            continue
        suggestions = [
            {
                "table": f"public.orders_{k}",
                "columns": ["owner_id", "created_at"][: 1 + k % 2],
                "create_sql": f"CREATE INDEX CONCURRENTLY ON public.orders_{k} (owner_id)",
                "statements": rng.sample(mine, min(5, len(mine))),
                "cost_before": 1834.5,
                "cost_after": 12.3,
                "saved_ms_per_day": round(rng.uniform(100, 50000), 1),
            }
            for k in range(8)
        ]
        skipped = [
            {"statement": text, "reason": "cheap: cost under 100"}
            for text in rng.sample(mine, min(40, len(mine)))
        ]
        report = {"hypopg": True, "suggestions": suggestions, "skipped": skipped, "health": {}}
        store.write_advice("postgres", TARGET, datname, ts, report, duration_ms=1500.0)


def generate(
    store_url: str,
    *,
    days: float = 30,
    statements: int = 5000,
    moving: int = 500,
    interval: int = 60,
    seed: int = 1,
    end: int | None = None,
    retention: Retention | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Write `days` of history ending at `end` (default: now) through Store.write_cycle, pruning
    every simulated hour with `retention` (default: the daemon's defaults). Returns figures."""
    retention = retention or Retention()
    end = end if end is not None else int(time.time())
    end -= end % interval
    cycles = max(1, int(days * 86400 // interval))
    start = end - (cycles - 1) * interval
    population = _Population(statements, moving, seed)
    server = _ServerSeries(seed)
    store = Store(store_url)
    status_details = {"postmaster_start": start - 86400 * 3, "pgss_reset": None, "dealloc": 0}
    deltas_written = prunes = 0
    calls = 0.0
    write_seconds = 0.0
    started = time.perf_counter()
    next_report = started + 10
    try:
        for n in range(cycles):
            ts = start + n * interval
            first = n == 0
            if first:  # a collector's first cycle: every entry with its text, no deltas yet
                idx = np.arange(statements)
                deltas = np.zeros((statements, len(STATEMENT_COUNTERS)))
            else:
                idx, deltas = population.minute(ts)
            cumulative = population.cumulative[idx].tolist()
            cycle = Cycle(
                kind="postgres",
                target=TARGET,
                ts=ts,
                status=Status(
                    server_version="PostgreSQL 15.10",
                    details={**status_details, "pgss_snapshot": ts},
                ),
                duration_ms=35.0,
                entries=[population.entry(int(i), c) for i, c in zip(idx, cumulative, strict=True)],
                deltas=[]
                if first
                else [
                    StatementDelta(population.keys[int(i)], tuple(d))
                    for i, d in zip(idx, deltas.tolist(), strict=True)
                ],
                texts=population.texts if first else {},
                points=server.points(idx, deltas, population.dbs, first),
            )
            t0 = time.perf_counter()
            store.write_cycle(cycle)
            if ts // 3600 != (ts - interval) // 3600:  # the daemon prunes once an hour
                store.prune(retention, ts)
                prunes += 1
            write_seconds += time.perf_counter() - t0
            deltas_written += len(cycle.deltas)
            calls += 0.0 if first else float(deltas[:, C["calls"]].sum())
            now = time.perf_counter()
            if now >= next_report:
                rate = (n + 1) / (now - started)
                log(
                    f"  {n + 1}/{cycles} cycles, {rate:.1f} cycles/s, "
                    f"~{(cycles - n - 1) / rate / 60:.1f} min left"
                )
                next_report = now + 30
        store.prune(retention, end)
        write_advice(store, population, end)
    finally:
        store.close()
    elapsed = time.perf_counter() - started
    return {
        "cycles": cycles,
        "days": days,
        "statements": statements,
        "moving": moving,
        "interval": interval,
        "seed": seed,
        "start": start,
        "end": end,
        "deltas_written": deltas_written,
        "calls": calls,
        "prunes": prunes,
        "seconds": round(elapsed, 1),
        "cycles_per_s": round(cycles / elapsed, 2),
        "store_ms_per_cycle": round(write_seconds / cycles * 1000, 2),
    }


# -- the page loads -------------------------------------------------------------------------------
def _pages(engine: Engine, now: int, retention: Retention, busiest: int):
    """The reads each page makes through dashboard/data.py when its caches are cold.

    app.py's sidebar asks for the targets (target_statuses) on every page.
    """

    def level(w: Window, buckets: int) -> str:
        return choose_level(w, now, retention, buckets)

    def overview(w: Window) -> int:
        statuses = target_statuses(engine)  # data.statuses / has_data
        ids = statuses["target_id"].tolist()
        figures = series_frame(engine, ids, SUMMARY_SERIES, w, level(w, TOTALS_BUCKETS))  # data.summary
        chart = series_frame(engine, ids, OVERVIEW_SERIES, w, level(w, CHART_BUCKETS))  # data.series
        top = statement_totals(engine, ids, w, level(w, TOTALS_BUCKETS), limit=5)  # data.top_statements
        return len(statuses) + len(figures) + len(chart) + len(top)

    def queries(w: Window) -> int:
        ids = target_statuses(engine)["target_id"].tolist()  # sidebar: data.targets
        databases, users = statement_filters(engine, ids)  # data.filters
        top = statement_totals(engine, ids, w, level(w, TOTALS_BUCKETS), limit=100)  # data.top_statements
        sparks = statement_series(engine, top["statement_id"].tolist(), w, level(w, TOTALS_BUCKETS))
        grid = series_frame(engine, ids, (CYCLES,), w, level(w, TOTALS_BUCKETS))  # data._cycle_grid
        return len(databases) + len(users) + len(top) + len(sparks) + len(grid)

    def query_detail(w: Window) -> int:
        target_statuses(engine)  # sidebar: data.targets
        info = statement_info(engine, busiest)  # data.statement
        assert info is not None
        summary = statement_series(engine, [busiest], w, level(w, TOTALS_BUCKETS))  # statement_summary
        chart = statement_series(engine, [busiest], w, level(w, CHART_BUCKETS))  # statement_timeline
        grid = series_frame(engine, [info["target_id"]], (CYCLES,), w, level(w, CHART_BUCKETS))
        latest_advice(engine, [info["target_id"]])  # data.statement_advice
        return 1 + len(summary) + len(chart) + len(grid)

    def indexes(_w: Window) -> int:  # no window: the advisor's latest reports
        ids = target_statuses(engine)["target_id"].tolist()  # sidebar: data.targets
        reports = latest_advice(engine, ids)  # data.advice
        found = 0
        for r in reports:  # data.statement_ids, for the suggestions and for the skipped statements
            body = r["report"]
            texts = [t for item in body.get("suggestions", []) for t in item["statements"]]
            found += len(statement_ids_by_text(engine, r["target_id"], texts, datname=r["datname"]))
            texts = [item["statement"] for item in body.get("skipped", [])]
            found += len(statement_ids_by_text(engine, r["target_id"], texts, datname=r["datname"]))
        return len(reports) + found

    return {"overview": overview, "queries": queries, "query_detail": query_detail, "indexes": indexes}


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return (time.perf_counter() - t0) * 1000, result


def _summary(first: float, samples: list[float], rows: int) -> dict[str, Any]:
    return {
        "first_ms": round(first, 2),
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        "max_ms": round(max(samples), 2),
        "rows": rows,
    }


def store_size(store_url: str) -> dict[str, int]:
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        sizes = {
            suffix or "db": os.path.getsize(f"{path}{suffix}")
            for suffix in ("", "-wal", "-shm")
            if os.path.exists(f"{path}{suffix}")
        }
        return {**sizes, "total": sum(sizes.values())}
    engine = make_engine(store_url, readonly=True)
    try:
        with engine.connect() as conn:
            total = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    finally:
        engine.dispose()
    return {"total": total}


def page_loads(
    store_url: str,
    now: int,
    *,
    repeat: int = 20,
    retention: Retention | None = None,
    windows: dict[str, int] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Time every page's reads for every window; returns figures, baselines, size and verdict."""
    retention = retention or Retention()
    windows = windows or WINDOWS
    engine = make_engine(store_url, readonly=True)  # as the pages open the store
    try:
        tids = target_statuses(engine)["target_id"].tolist()
        month = Window(now - 30 * 86400, now)
        top = statement_totals(
            engine, tids, month, choose_level(month, now, retention, TOTALS_BUCKETS), limit=1
        )
        busiest = int(top["statement_id"].iloc[0])
        pages = _pages(engine, now, retention, busiest)
        cases = [  # (page, window name, window); the Indexes page has no window
            (page, name if page not in WINDOWLESS else "-", Window(now - seconds, now))
            for name, seconds in windows.items()
            for page in pages
            if page not in WINDOWLESS or name == next(iter(windows))
        ]
        levels = {
            name: {
                "chart": choose_level(Window(now - s, now), now, retention, CHART_BUCKETS),
                "totals": choose_level(Window(now - s, now), now, retention, TOTALS_BUCKETS),
            }
            for name, s in windows.items()
        }
        samples: dict[tuple[str, str], list[float]] = {}
        first: dict[tuple[str, str], float] = {}
        rows: dict[tuple[str, str], int] = {}
        for page, name, w in cases:
            first[(page, name)], rows[(page, name)] = _time(lambda fn=pages[page], w=w: fn(w))
            samples[(page, name)] = []
        for r in range(repeat):  # interleaved, so a slow moment of the machine hits every page alike
            for page, name, w in cases:
                ms, _ = _time(lambda fn=pages[page], w=w: fn(w))
                samples[(page, name)].append(ms)
            log(f"  page loads: round {r + 1}/{repeat}")
        day = Window(now - 86400, now)
        raw_agg = [_time(lambda: statement_totals(engine, tids, day, "raw", limit=100))[0] for _ in range(5)]
        raw_table = STMT["raw"]
        scan = select(func.sum(raw_table.c.calls))
        with engine.connect() as conn:
            raw_rows = int(conn.execute(select(func.count()).select_from(raw_table)).scalar_one())
            raw_scan = [_time(lambda conn=conn: conn.execute(scan).scalar())[0] for _ in range(5)]
            table_rows = {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (*STMT.values(), *POINTS.values())
            }
    finally:
        engine.dispose()
    baseline = statistics.median(raw_agg)
    figures: dict[str, dict[str, Any]] = {}
    for (page, name), values in samples.items():
        entry = _summary(first[(page, name)], values, rows[(page, name)])
        entry["x_baseline"] = round(entry["p95_ms"] / baseline, 3)
        figures.setdefault(page, {})[name] = entry
    size = store_size(store_url)
    worst = max(f["p95_ms"] for by_window in figures.values() for f in by_window.values())
    return {
        "now": now,
        "repeat": repeat,
        "levels": levels,
        "busiest_statement_id": busiest,
        "pages": figures,
        "baseline": {
            "raw_aggregation_24h_ms": round(baseline, 2),
            "raw_scan_ms": round(statistics.median(raw_scan), 2),
            "raw_rows": raw_rows,
        },
        "table_rows": table_rows,
        "size_bytes": size,
        "worst_p95_ms": worst,
        "budget_ms": BUDGET_MS,
        "budget_bytes": BUDGET_BYTES,
        "passed": worst <= BUDGET_MS and size["total"] <= BUDGET_BYTES,
    }


# -- caching a generated store --------------------------------------------------------------------
def _params(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "days": args.days,
        "statements": args.statements,
        "moving": args.moving,
        "interval": args.interval,
        "seed": args.seed,
    }


def prepare_store(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[str, dict[str, Any]]:
    """Generate into --store (or a temp dir), or reuse a store generated with the same parameters."""
    path = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="bench-history-")) / "store.db"
    sidecar = Path(f"{path}.bench.json")
    url = f"sqlite:///{path}"
    if path.exists() and not args.regenerate:
        if not sidecar.exists():
            raise SystemExit(f"{path} exists but was not made by this generator: pass --regenerate")
        generated = json.loads(sidecar.read_text())
        if {k: generated.get(k) for k in _params(args)} != _params(args):
            raise SystemExit(f"{path} was generated with {generated}: pass --regenerate or match them")
        log(f"reusing {path} (generated in {generated['seconds']} s, {generated['cycles_per_s']} cycles/s)")
        return url, {**generated, "reused": True}
    for suffix in ("", "-wal", "-shm", ".bench.json"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    log(f"generating {args.days} days x {args.statements} statements ({args.moving} moving) into {path}")
    generated = generate(
        url,
        days=args.days,
        statements=args.statements,
        moving=args.moving,
        interval=args.interval,
        seed=args.seed,
        log=log,
    )
    sidecar.write_text(json.dumps(generated, indent=2))
    return url, {**generated, "reused": False}


def format_report(generated: dict[str, Any], loads: dict[str, Any]) -> str:
    g, b = generated, loads["baseline"]
    size = loads["size_bytes"]
    lines = [
        f"history: {g['days']} days, {g['cycles']} cycles, {g['statements']} statements, "
        f"{g['moving']} moving a minute; generated at {g['cycles_per_s']} cycles/s "
        f"({g['store_ms_per_cycle']} ms of store time a cycle){' (reused)' if g.get('reused') else ''}",
        "rows: " + ", ".join(f"{k} {v:,}" for k, v in loads["table_rows"].items()),
        f"store size: {size['total'] / 2**20:,.1f} MiB "
        f"({', '.join(f'{k} {v / 2**20:,.1f}' for k, v in size.items() if k != 'total')})"
        f" -- budget {BUDGET_BYTES / 2**30:.0f} GiB",
        f"baseline: statement_totals over 24 h from raw {b['raw_aggregation_24h_ms']:.1f} ms; "
        f"sum(calls) scan of {b['raw_rows']:,} raw rows {b['raw_scan_ms']:.1f} ms",
        "",
        f"{'page':26} {'window':>6} {'level':>13} {'first ms':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'x baseline':>10}",
    ]
    for page, by_window in loads["pages"].items():
        for name, f in by_window.items():
            lv = loads["levels"].get(name)
            level = f"{lv['chart']}/{lv['totals']}" if lv else "-"
            lines.append(
                f"{page:26} {name:>6} {level:>13} {f['first_ms']:>9.1f} "
                f"{f['p50_ms']:>8.1f} {f['p95_ms']:>8.1f} {f['x_baseline']:>10.3f}"
            )
    verdict = "PASS" if loads["passed"] else "FAIL"
    lines += [
        "",
        "level = chart/totals level chosen; x baseline = p95 / raw 24 h aggregation",
        f"worst p95 {loads['worst_p95_ms']:.1f} ms (budget {BUDGET_MS:.0f} ms), "
        f"size {size['total'] / 2**30:.2f} GiB (budget 2 GiB): {verdict}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="SQLite file to generate into, or reuse when already generated")
    parser.add_argument("--regenerate", action="store_true", help="discard --store and generate again")
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--moving", type=int, default=500)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (progress: stderr)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    args = parser.parse_args(argv)
    log = (lambda _m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    url, generated = prepare_store(args, log)
    try:
        loads = page_loads(url, generated["end"], repeat=args.repeat, log=log)
    finally:
        if not args.store:  # a temp store is not worth keeping
            shutil.rmtree(Path(make_url(url).database or "").parent, ignore_errors=True)
    if args.json:
        print(json.dumps({"generated": generated, **loads}, indent=2))
    else:
        print(format_report(generated, loads))
    return 0 if loads["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
