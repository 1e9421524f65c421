"""The 30-day history `bench.store_history` measures, written the way the collector daemon writes it.

`generate` writes one `Cycle` a minute through `Store.write_cycle` (StatementEntry/StatementDelta
records plus the Overview's series points under the names collectors/postgres emits) and
`Store.prune(Retention(), now)` every simulated hour. The first cycle stores every statement with
its text and no deltas, as a collector's first cycle does. Which statements move: a hot set (60 % of
the movers) that moves in ~95 % of minutes, the rest of the minute's movers drawn from the other
statements with Zipf weights (rank^-1.1): at the defaults about 3,300 of the 5,000 statements move
in an hour and about 4,800 in a day. Counters are plausible per statement (lognormal mean time,
calls, rows, blocks with a hit ratio, temp blocks for sorting statements, WAL for writes) with a
day/night cycle. Statements never churn (no evictions). At the end it stores one index-advisor
report per database (Store.write_advice) with 8 suggestions of 5 statements and 40 skipped ones.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from collectors.postgres.collector import CONNECTION_STATES, DB_COUNTERS, TOTALS
from dashboard.core import metrics
from dashboard.core.advice import AdviceReport, IndexHealthReport, IndexSuggestion, SkippedStatement
from dashboard.core.config import Retention
from dashboard.core.details import PostgresDetails
from dashboard.core.records import Cycle, Point, StatementDelta, StatementEntry, StatementKey, Status
from dashboard.store import Store
from dashboard.store.schema import STATEMENT_COUNTERS

TARGET = "erp-primary"
DATABASES = ("app", "reporting", "postgres")
DB_WEIGHTS = (0.8, 0.15, 0.05)
ROLES = {"app": ("app_rw", "app_ro"), "reporting": ("reporting",), "postgres": ("postgres",)}
C = {name: i for i, name in enumerate(STATEMENT_COUNTERS)}


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
            points += [
                Point(metrics.PG_STATEMENTS + n, None, "counter", delta=float(sums[C[n]])) for n in TOTALS
            ]
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
            labels = metrics.encode({"datname": db})
            for name in DB_COUNTERS:
                before = self.counters[db][name]
                self.counters[db][name] = before + grow[name]
                delta = None if first else grow[name]
                points.append(Point(metrics.PG_DB + name, self.counters[db][name], "counter", labels, delta))
            self.size[db] += grow["tup_inserted"] * 120
            points.append(Point(metrics.PG_DB_SIZE_BYTES, self.size[db], "gauge", labels))
        states = dict(zip(CONNECTION_STATES, g.poisson((25, 60, 2, 0)), strict=True))
        points += [
            Point(metrics.PG_CONNECTIONS, float(n), "gauge", metrics.encode({"state": s}))
            for s, n in states.items()
        ]
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
        suggestions = [_suggestion(k, rng.sample(mine, min(5, len(mine))), rng) for k in range(8)]
        skipped = [
            SkippedStatement(statement=text, reason="cheap: cost under 100")
            for text in rng.sample(mine, min(40, len(mine)))
        ]
        report = AdviceReport(
            suggestions=suggestions,
            skipped=skipped,
            hypopg=True,
            database=datname,
            health=IndexHealthReport(
                unused=[], redundant=[], invalid=[], missing_fk_indexes=[], bloat=[], notes=[]
            ),
        )
        store.write_advice("postgres", TARGET, datname, ts, report, duration_ms=1500.0)


def _suggestion(k: int, texts: list[str], rng: random.Random) -> IndexSuggestion:
    """A proven suggestion on one of the ORM's tables, serving `texts`."""
    table, columns = f"public.orders_{k}", ["owner_id", "created_at"][: 1 + k % 2]
    scan = f"Seq Scan on orders_{k}  (cost=0.00..1834.50 rows=12 width=96)\n  Filter: (owner_id = $1)"
    index = f"Index Scan using <13337>btree_orders_{k}_owner_id on orders_{k}  (cost=0.04..12.30 rows=12)"
    return IndexSuggestion(
        table=table,
        columns=columns,
        create_sql=f"CREATE INDEX CONCURRENTLY ON {table} ({', '.join(columns)});",
        statements=texts,
        cost_before=1834.5,
        cost_after=12.3,
        proven=True,
        saved_ms_per_day=round(rng.uniform(100, 50000), 1),
        writes_per_day=round(rng.uniform(0, 20000), 1),
        table_rows=rng.randrange(50_000, 2_000_000),
        reason="the planner's cost of its statements drops by 99 % with this index",
        plan_before=scan,
        plan_after=index + "\n  Index Cond: (owner_id = $1)",
    )


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
    postmaster_start = start - 86400 * 3
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
                    details=PostgresDetails(
                        postmaster_start=postmaster_start, pgss_reset=None, dealloc=0, pgss_snapshot=ts
                    ),
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
