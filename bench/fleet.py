"""Benchmark: one `observatory collect` daemon collecting 100 PostgreSQL and 20 Redis targets.

The issue's requirement (issue 17): on the 2-core machine the cycles stay on schedule, the daemon's
memory stays flat, and the store keeps up. No fixed budget: the figures are reported, and beside the
fleet's those of a baseline daemon with 1 PostgreSQL and 1 Redis target run in the same invocation,
on the same servers under the same traffic, so the ratios say what scale costs.

What runs:

1. One throwaway PostgreSQL cluster (pg_stat_statements, HypoPG) with `--databases` databases, each
   owned by a role of its own that is the target's login: without pg_read_all_stats a role sees only
   its own pg_stat_statements entries, so each target reads its own database's statements as it
   would on a server of its own. Each has two tables and a light workload of a few distinct
   statements; `--nodes` redis-server processes with a few thousand keys. A traffic thread runs
   both workloads every few seconds, from the benchmark's process, not the daemon's.
2. A real daemon (`python -m dashboard collect`) for `--baseline-minutes` on 1 + 1 targets, then
   another for `--minutes` on all of them, each into a fresh store (SQLite in the temp dir, or a
   database on the same cluster with `--store postgresql`). The targets keep their default
   intervals (PostgreSQL 60 s, Redis 15 s) unless `--interval` is given.
3. Every 10 s: the daemon's RSS (/proc/PID/status VmRSS), its CPU seconds (/proc/PID/stat utime +
   stime), threads, open files, the load average, and how far the store is behind (now minus each
   target's last stored cycle, against its interval).

Measured from outside (the scheduler is not changed to expose anything):

- lateness: per target, the gaps between consecutive saved cycles (the daemon's log line for each
  cycle, millisecond times) minus the configured interval; and from the store, the gaps between the
  cycles' timestamps (whole seconds) and each cycle's drift from the first cycle's schedule;
- memory: RSS samples, and the least-squares slope over the run's last two thirds (MiB per 10 min);
- CPU: seconds of daemon CPU per target-cycle over the last two thirds (the first third holds every
  target's first, heavy cycle and the advisors' first runs), hence the cores the fleet needs and the
  targets one core collects at these intervals;
- the store: its rows per table at the end of the first third and at the end, extrapolated to a day
  per target (raw and appended tables by their growth; hourly tables by the rows of the newest hour
  x 24, daily tables by the rows of the newest day), and bytes per row (SQLite: the dbstat table's
  pages, indexes included; PostgreSQL: pg_total_relation_size over each table's partitions).

    .venv/bin/python -m bench.fleet                          # 100 + 20 targets, 5 minutes
    .venv/bin/python -m bench.fleet --minutes 30 --json      # the memory soak
    .venv/bin/python -m bench.fleet --store postgresql       # the store on PostgreSQL
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import redis
import yaml
from sqlalchemy import exc, func, select, text

from bench import cli
from bench.timing import percentile
from dashboard.servers.throwaway import ThrowawayPostgres, ThrowawayRedis
from dashboard.store.engine import make_engine
from dashboard.store.schema import metadata, series, target_status, targets

ROOT = Path(__file__).resolve().parents[1]
INTERVALS = {"postgres": 60.0, "redis": 15.0}  # the config's defaults
SAMPLE_EVERY = 10.0
TRAFFIC_EVERY = 5.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
CYCLE_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ observatory\.collect: (postgres|redis)/(\S+): "
    r"(ok|degraded|down)\b(?: in (\d+) ms)?"
)
ROLLUP_BUCKETS = {"hourly": 24, "daily": 1}  # buckets a day


# -- the servers and their workload -----------------------------------------------------------------
class Fleet(NamedTuple):
    pg: ThrowawayPostgres
    databases: list[str]  # each owned by the role of the same name
    nodes: list[ThrowawayRedis]


def start_fleet(stack: ExitStack, databases: int, nodes: int, log: cli.Log) -> Fleet:
    """The cluster with its databases, and the Redis nodes; stopped when `stack` closes."""
    started = time.perf_counter()
    # Per target: the collector's connection, the wait sampler's, the advisor's, and the traffic's.
    settings = {"max_connections": str(max(100, databases * 4 + 50)), "pg_stat_statements.max": "10000"}
    pg = stack.enter_context(ThrowawayPostgres(settings=settings))
    names = [f"fleet_{i:03d}" for i in range(databases)]
    with psycopg.connect(pg.dsn(), autocommit=True) as admin:
        for name in names:
            admin.execute(f"CREATE ROLE {name} LOGIN")
            admin.execute(f"CREATE DATABASE {name} OWNER {name}")
    for name in names:
        _prepare_database(pg, name)
    log(f"  {databases} databases in {time.perf_counter() - started:.0f} s")
    servers = [stack.enter_context(ThrowawayRedis()) for _ in range(nodes)]
    for server in servers:
        client = redis.Redis.from_url(server.url)
        client.mset({f"user:{i}": f"profile-{i}" for i in range(2000)})
        client.close()
    log(f"  {nodes} Redis nodes, {time.perf_counter() - started:.0f} s in all")
    return Fleet(pg, names, servers)


def _prepare_database(pg: ThrowawayPostgres, name: str) -> None:
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE EXTENSION hypopg")
    with psycopg.connect(pg.dsn(user=name, dbname=name), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (id serial PRIMARY KEY, customer int, total numeric, status text,"
            " created timestamptz DEFAULT now())"
        )
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, email text, region text)")
        conn.execute(
            "INSERT INTO customers SELECT g, 'c' || g || '@example.com', (ARRAY['eu','us','ap'])[g % 3 + 1]"
            " FROM generate_series(1, 2000) g"
        )
        conn.execute(
            "INSERT INTO orders (customer, total, status) SELECT g % 2000 + 1, g * 1.5,"
            " (ARRAY['new','paid','shipped'])[g % 3 + 1] FROM generate_series(1, 5000) g"
        )
        conn.execute("ANALYZE")


STATEMENTS = (  # the light workload: a few distinct statements, run with random constants
    ("SELECT * FROM orders WHERE id = %s", lambda r: (r.randint(1, 5000),)),
    ("SELECT count(*) FROM orders WHERE customer = %s", lambda r: (r.randint(1, 2000),)),
    ("SELECT status, sum(total) FROM orders GROUP BY status", lambda r: ()),
    ("UPDATE orders SET status = 'paid' WHERE id = %s", lambda r: (r.randint(1, 5000),)),
    (
        "INSERT INTO orders (customer, total, status) VALUES (%s, %s, 'new')",
        lambda r: (r.randint(1, 2000), 9),
    ),
    (
        "SELECT c.region, count(*) FROM orders o JOIN customers c ON c.id = o.customer"
        " WHERE o.total > %s GROUP BY c.region",
        lambda r: (r.randint(1, 7000),),
    ),
    ("SELECT * FROM customers WHERE email = %s", lambda r: (f"c{r.randint(1, 2000)}@example.com",)),
)


class Traffic(threading.Thread):
    """Every TRAFFIC_EVERY seconds: each database runs each statement once or twice, each Redis node
    a few reads (hits and misses) and writes. Errors are counted, never raised."""

    def __init__(self, fleet: Fleet) -> None:
        super().__init__(name="traffic", daemon=True)
        self.fleet = fleet
        self.stop_event = threading.Event()
        self.rounds = 0
        self.errors: list[str] = []

    def run(self) -> None:
        rng = random.Random(1)
        pg_conns = [psycopg.connect(self.fleet.pg.dsn(user=n, dbname=n), autocommit=True)
                    for n in self.fleet.databases]  # fmt: skip
        clients = [redis.Redis.from_url(s.url) for s in self.fleet.nodes]
        try:
            while not self.stop_event.is_set():
                started = time.monotonic()
                self._round(rng, pg_conns, clients)
                self.rounds += 1
                self.stop_event.wait(max(0.0, TRAFFIC_EVERY - (time.monotonic() - started)))
        finally:
            for conn in pg_conns:
                conn.close()
            for client in clients:
                client.close()

    def _round(
        self, rng: random.Random, pg_conns: list[psycopg.Connection], clients: list[redis.Redis]
    ) -> None:
        for conn in pg_conns:
            try:
                for sql, params in STATEMENTS:
                    for _ in range(rng.randint(1, 2)):
                        conn.execute(sql, params(rng))
            except psycopg.Error as err:
                self.errors.append(str(err).splitlines()[0])
        for client in clients:
            try:
                pipe = client.pipeline(transaction=False)
                for _ in range(20):
                    pipe.get(f"user:{rng.randint(1, 2500)}")  # a fifth of them miss
                pipe.set(f"session:{rng.randint(1, 500)}", "x", ex=60)
                pipe.incr("counter")
                pipe.execute()
            except redis.RedisError as err:
                self.errors.append(str(err))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=60)


# -- the daemon ---------------------------------------------------------------------------------------
def write_config(path: Path, store_url: str, fleet: Fleet, pg_count: int, redis_count: int,
                 interval: float | None) -> dict[str, float]:  # fmt: skip
    """The daemon's observatory.yaml; returns each kind's interval."""
    intervals = {k: interval or v for k, v in INTERVALS.items()}
    extra = {"interval": f"{interval:g}s"} if interval else {}
    pg_targets = [{"name": f"pg-{i:03d}", "dsn": fleet.pg.dsn(user=n, dbname=n), **extra}
                  for i, n in enumerate(fleet.databases[:pg_count])]  # fmt: skip
    redis_targets = [{"name": f"redis-{i:02d}", "url": s.url, **extra}
                     for i, s in enumerate(fleet.nodes[:redis_count])]  # fmt: skip
    config = {"store": store_url, "targets": {"postgres": pg_targets, "redis": redis_targets}}
    path.write_text(yaml.safe_dump(config))
    return intervals


class Sample(NamedTuple):
    t: float  # seconds since the daemon started
    rss_mib: float
    cpu_s: float
    threads: int
    fds: int
    load1: float
    behind_s: float  # the store's worst lag: max over targets of now - last cycle - interval


def _proc(pid: int) -> tuple[float, float, int, int]:
    """RSS MiB, CPU seconds (user + system), threads, open files of a live process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: fields 14 and 15
    return rss, cpu, threads, len(os.listdir(f"/proc/{pid}/fd"))


def _behind(engine: Any, intervals: dict[str, float], now: float) -> float:
    """How far the store is behind: the worst target's time since its last cycle, past its interval."""
    query = select(targets.c.kind, target_status.c.last_attempt).join(
        target_status, target_status.c.target_id == targets.c.id
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except exc.SQLAlchemyError:  # the daemon has not made the store yet
        return float("nan")
    return max((now - ts - intervals[kind] for kind, ts in rows if ts), default=float("nan"))


def run_daemon(config: Path, store_url: str, intervals: dict[str, float], minutes: float, log_path: Path,
               log: cli.Log, sample_every: float = SAMPLE_EVERY) -> dict[str, Any]:  # fmt: skip
    """Run `observatory collect` for `minutes`, sampling it; the store is counted at one third."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "dashboard", "collect", "-c", str(config)]
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    began, samples, warm = time.time(), [], None
    engine = None
    try:
        end = began + minutes * 60
        while time.time() < end and proc.poll() is None:
            time.sleep(min(sample_every, max(0.0, end - time.time())))
            now = time.time()
            engine = engine or make_engine(store_url, readonly=True)
            rss, cpu, threads, fds = _proc(proc.pid)
            load1 = float(Path("/proc/loadavg").read_text().split()[0])
            behind = _behind(engine, intervals, now)
            samples.append(Sample(now - began, rss, cpu, threads, fds, load1, behind))
            if warm is None and now - began >= minutes * 20 and behind == behind:  # a third, and cycles
                warm = {"t": now - began, "cpu_s": cpu, "store": store_counts(engine)}
            if len(samples) % 6 == 0:
                log(f"  {now - began:5.0f} s: RSS {rss:.0f} MiB, CPU {cpu:.1f} s, load {load1:.2f}")
        if proc.poll() is not None:
            tail = log_path.read_text()[-3000:]
            raise RuntimeError(f"the daemon exited early ({proc.returncode}):\n{tail}")
        if warm is None:
            raise RuntimeError(f"no cycle stored in {minutes} min:\n{log_path.read_text()[-3000:]}")
        final = {"t": time.time() - began, "cpu_s": _proc(proc.pid)[1], "store": store_counts(engine)}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        stopped = time.time() - began
        if engine is not None:
            engine.dispose()
    return {"began": began, "samples": samples, "warm": warm, "final": final, "stopped_s": stopped,
            "exit_status": proc.returncode}  # fmt: skip


# -- the store's size ---------------------------------------------------------------------------------
def store_counts(engine: Any) -> dict[str, dict[str, float]]:
    """Per table: rows, bytes (indexes included), and for the roll-ups the rows of the newest bucket."""
    sizes = _table_bytes(engine)
    counts: dict[str, dict[str, float]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(select(func.count()).select_from(table)).scalar_one()
            entry = {"rows": rows, "bytes": sizes.get(table.name, 0)}
            level = table.name.rsplit("_", 1)[-1]
            if level in ROLLUP_BUCKETS and "ts" in table.c:
                newest = select(func.max(table.c.ts)).scalar_subquery()
                newest_rows = select(func.count()).select_from(table).where(table.c.ts == newest)
                entry["newest_bucket_rows"] = conn.execute(newest_rows).scalar_one()
            counts[table.name] = entry
    return counts


def _table_bytes(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text(
                "SELECT m.tbl_name, sum(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name"
                " GROUP BY m.tbl_name"
            )).all()  # fmt: skip
        else:
            rows = conn.execute(text(
                "SELECT c.relname,"
                " (SELECT sum(pg_total_relation_size(t.relid)) FROM pg_partition_tree(c.oid) t)"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            )).all()  # fmt: skip
    return {str(name): int(size or 0) for name, size in rows}


def _file_bytes(store_url: str) -> int:
    path = store_url.removeprefix("sqlite:///")
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def per_day(warm: dict[str, Any], final: dict[str, Any], n_targets: int) -> dict[str, Any]:
    """Rows and bytes a target adds to the store in a day, per table and in all."""
    seconds = final["t"] - warm["t"]
    tables: dict[str, dict[str, float]] = {}
    for name, end in final["store"].items():
        row_bytes = end["bytes"] / end["rows"] if end["rows"] else 0.0
        if "newest_bucket_rows" in end:  # a roll-up: one row per key and bucket, at the table's row size
            rows = end["newest_bucket_rows"] * ROLLUP_BUCKETS[name.rsplit("_", 1)[-1]] / n_targets
            size = rows * row_bytes
        else:  # appended: its growth (bytes in whole pages, so small tables read coarse)
            rows = (end["rows"] - warm["store"][name]["rows"]) * 86400 / seconds / n_targets
            size = (end["bytes"] - warm["store"][name]["bytes"]) * 86400 / seconds / n_targets
        if rows > 0:
            tables[name] = {"rows": round(rows, 1), "bytes": round(max(0.0, size)),
                            "bytes_per_row": round(row_bytes, 1)}  # fmt: skip
    return {
        "tables": tables,
        "rows": round(sum(t["rows"] for t in tables.values())),
        "bytes": round(sum(t["bytes"] for t in tables.values())),
    }


# -- the figures --------------------------------------------------------------------------------------
def parse_log(path: Path) -> dict[str, Any]:
    """Each target's saved cycles (log time, state, duration), and the log's warnings and errors."""
    cycles: dict[tuple[str, str], list[tuple[float, str, float]]] = defaultdict(list)
    problems: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        m = CYCLE_LINE.match(line)
        if m:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            cycles[(m.group(2), m.group(3))].append((at, m.group(4), float(m.group(5) or 0)))
        if " WARNING " in line or " ERROR " in line:
            problems.append(line)
    return {"cycles": cycles, "problems": problems}


def _spread(values: list[float], digits: int = 3) -> dict[str, float] | None:
    if not values:
        return None
    return {"p50": round(percentile(values, 50), digits), "p95": round(percentile(values, 95), digits),
            "max": round(max(values), digits), "n": len(values)}  # fmt: skip


def lateness_from_log(cycles: dict[tuple[str, str], list], intervals: dict[str, float]) -> dict[str, Any]:
    """Seconds each cycle was saved later than one interval after the target's previous one."""
    gaps = [b[0] - a[0] - intervals[kind] for (kind, _), saved in cycles.items()
            for a, b in itertools.pairwise(saved)]  # fmt: skip
    return {"seconds_late": _spread(gaps)}


def lateness_from_store(store_url: str, intervals: dict[str, float]) -> dict[str, Any]:
    """From the cycles' timestamps (whole seconds) of each target's series: gap minus interval, and
    each cycle's start against the first cycle's schedule (ts_k - ts_0 - k x interval)."""
    engine = make_engine(store_url, readonly=True)
    raw = metadata.tables["points_raw"]
    query = (
        select(targets.c.kind, targets.c.name, raw.c.ts)
        .join(series, series.c.target_id == targets.c.id)
        .join(raw, raw.c.series_id == series.c.id)
        .distinct()
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    finally:
        engine.dispose()
    by_target: dict[tuple[str, str], list[int]] = defaultdict(list)
    for kind, name, ts in rows:
        by_target[(kind, name)].append(int(ts))
    gaps, drifts = [], []
    for (kind, _), stamps in by_target.items():
        stamps.sort()
        gaps += [b - a - intervals[kind] for a, b in itertools.pairwise(stamps)]
        drifts += [ts - stamps[0] - k * intervals[kind] for k, ts in enumerate(stamps)][1:]
    return {"gap_seconds_late": _spread(gaps, 1), "drift_from_schedule_s": _spread(drifts, 1),
            "targets_seen": len(by_target)}  # fmt: skip


def slope_mib_per_10min(samples: list[Sample]) -> float | None:
    """Least-squares slope of RSS over the last two thirds of the samples."""
    tail = samples[len(samples) // 3 :]
    if len(tail) < 2:
        return None
    ts = [s.t for s in tail]
    mean_t, mean_r = statistics.fmean(ts), statistics.fmean(s.rss_mib for s in tail)
    var = sum((t - mean_t) ** 2 for t in ts)
    cov = sum((s.t - mean_t) * (s.rss_mib - mean_r) for s in tail)
    return round(cov / var * 600, 3) if var else None


def figures(run: dict[str, Any], log: dict[str, Any], store_url: str, intervals: dict[str, float],
            n_targets: int) -> dict[str, Any]:  # fmt: skip
    """One daemon run's figures."""
    samples, warm, final = run["samples"], run["warm"], run["final"]
    cycles = log["cycles"]
    steady = [c for saved in cycles.values() for c in saved if c[0] - run["began"] >= warm["t"]]
    states = defaultdict(int)
    for saved in cycles.values():
        for _, state, _ in saved:
            states[state] += 1
    cpu_s = final["cpu_s"] - warm["cpu_s"]
    seconds = final["t"] - warm["t"]
    cores = cpu_s / seconds
    durations = [c[2] for saved in cycles.values() for c in saved]
    behind = [s.behind_s for s in samples if s.t >= warm["t"] and s.behind_s == s.behind_s]
    result = {
        "targets": n_targets,
        "intervals_s": intervals,
        "minutes": round(final["t"] / 60, 2),
        "cycles_saved": sum(states.values()),
        "states": dict(states),
        "targets_with_cycles": len(cycles),
        "cycle_ms": _spread(durations, 1),
        "lateness_log": lateness_from_log(cycles, intervals),
        "lateness_store": lateness_from_store(store_url, intervals),
        "store_behind_s": _spread(behind, 1),
        "not_saved_lines": sum("not saved" in p for p in log["problems"]),
        "warnings_and_errors": len(log["problems"]),
        "first_problems": log["problems"][:5],
        "cpu": {
            "steady_s": round(cpu_s, 2),
            "steady_window_s": round(seconds, 1),
            "cycles_in_window": len(steady),
            "ms_per_target_cycle": round(cpu_s * 1000 / len(steady), 2) if steady else None,
            "cores_used": round(cores, 4),
            "targets_per_core": round(n_targets / cores, 1) if cores else None,
            "total_s": round(final["cpu_s"], 2),
        },
        "rss_mib": {
            "first": round(samples[0].rss_mib, 1),
            "max": round(max(s.rss_mib for s in samples), 1),
            "last": round(samples[-1].rss_mib, 1),
            "slope_mib_per_10min_last_two_thirds": slope_mib_per_10min(samples),
            "samples": [round(s.rss_mib, 1) for s in samples],
        },
        "threads_max": max(s.threads for s in samples),
        "open_files_max": max(s.fds for s in samples),
        "loadavg_1m": _spread([s.load1 for s in samples], 2),
        "store_per_target_day": per_day(warm, final, n_targets),
        "exit_status": run["exit_status"],
        "stop_seconds": round(run["stopped_s"] - final["t"], 1),
    }
    if store_url.startswith("sqlite:///"):
        result["store_file_bytes"] = _file_bytes(store_url)
    return result


# -- the run ------------------------------------------------------------------------------------------
def _store_url(kind: str, fleet: Fleet, folder: Path, label: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / f'{label}.db'}"
    name = f"store_{label}"
    with psycopg.connect(fleet.pg.dsn(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return fleet.pg.dsn(dbname=name)


def daemon_run(fleet: Fleet, folder: Path, label: str, pg_count: int, redis_count: int, *,
               minutes: float, interval: float | None, store: str, sample_every: float,
               log: cli.Log) -> dict[str, Any]:  # fmt: skip
    """One daemon over the first `pg_count` databases and `redis_count` nodes; its figures."""
    store_url = _store_url(store, fleet, folder, label)
    config = folder / f"{label}.yaml"
    intervals = write_config(config, store_url, fleet, pg_count, redis_count, interval)
    log(f"{label}: {pg_count} PostgreSQL + {redis_count} Redis targets for {minutes:g} min ({store})")
    log_path = folder / f"{label}.log"
    run = run_daemon(config, store_url, intervals, minutes, log_path, log, sample_every)
    result = figures(run, parse_log(log_path), store_url, intervals, pg_count + redis_count)
    result["log"] = str(log_path)
    return result


def run(databases: int = 100, nodes: int = 20, *, minutes: float = 5, baseline_minutes: float | None = None,
        interval: float | None = None, store: str = "sqlite", keep: str | None = None,
        sample_every: float = SAMPLE_EVERY, log: cli.Log = lambda _m: None) -> dict[str, Any]:  # fmt: skip
    """Start the fleet, run the baseline daemon then the fleet's; the figures and their ratios."""
    folder = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    started = time.time()
    try:
        with ExitStack() as stack:
            log(f"starting {databases} databases and {nodes} Redis nodes")
            fleet = start_fleet(stack, databases, nodes, log)
            traffic = Traffic(fleet)
            traffic.start()
            stack.callback(traffic.stop)
            base_min = baseline_minutes if baseline_minutes is not None else min(minutes, 5)
            common = {"interval": interval, "store": store, "sample_every": sample_every, "log": log}
            one = daemon_run(fleet, folder, "one", 1, 1, minutes=base_min, **common)
            fleet_fig = daemon_run(fleet, folder, "fleet", databases, nodes, minutes=minutes, **common)
            traffic_rounds, traffic_errors = traffic.rounds, traffic.errors[:5]
    finally:
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for name in ("one.log", "fleet.log"):
                if (folder / name).exists():
                    shutil.copy(folder / name, Path(keep) / name)
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "databases": databases,
        "nodes": nodes,
        "store": store,
        "traffic_rounds": traffic_rounds,
        "traffic_errors": traffic_errors,
        "one": one,
        "fleet": fleet_fig,
        "ratios": _ratios(one, fleet_fig),
        "seconds": round(time.time() - started),
    }


def _ratios(one: dict[str, Any], fleet: dict[str, Any]) -> dict[str, float | None]:
    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    def p95(fig: dict[str, Any]) -> float | None:
        spread = fig["lateness_log"]["seconds_late"]
        return spread["p95"] if spread else None

    return {
        "cpu_per_target_cycle_fleet_over_one": ratio(
            fleet["cpu"]["ms_per_target_cycle"], one["cpu"]["ms_per_target_cycle"]
        ),
        "lateness_p95_fleet_minus_one_s": (
            round(p95(fleet) - p95(one), 3) if p95(fleet) is not None and p95(one) is not None else None
        ),
        "rss_max_fleet_over_one": ratio(fleet["rss_mib"]["max"], one["rss_mib"]["max"]),
    }


def format_report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['databases']} PostgreSQL + {result['nodes']} Redis targets, "
        f"store on {result['store']}; {result['seconds']} s in all"
    ]
    for label in ("one", "fleet"):
        f = result[label]
        late, store_late = f["lateness_log"]["seconds_late"], f["lateness_store"]
        cpu, rss = f["cpu"], f["rss_mib"]
        day = f["store_per_target_day"]
        lines += [
            "",
            f"{label}: {f['targets']} targets, {f['minutes']} min, {f['cycles_saved']} cycles saved "
            f"{f['states']}, intervals {f['intervals_s']}",
            f"  lateness (log, s late vs interval): {late}",
            f"  lateness (store ts, whole s): gaps {store_late['gap_seconds_late']}, "
            f"drift {store_late['drift_from_schedule_s']}",
            f"  store behind (s past interval): {f['store_behind_s']}; "
            f"'not saved' lines: {f['not_saved_lines']}; warnings+errors: {f['warnings_and_errors']}",
            f"  CPU: {cpu['ms_per_target_cycle']} ms per target-cycle, {cpu['cores_used']} cores "
            f"-> {cpu['targets_per_core']} targets per core",
            f"  RSS MiB: first {rss['first']}, max {rss['max']}, last {rss['last']}, slope "
            f"{rss['slope_mib_per_10min_last_two_thirds']} MiB/10 min (last 2/3)",
            f"  threads max {f['threads_max']}, open files max {f['open_files_max']}, "
            f"load 1m {f['loadavg_1m']}",
            f"  store per target per day: {day['rows']} rows, {day['bytes'] / 1e6:.2f} MB",
        ]
        biggest = sorted(day["tables"].items(), key=lambda kv: -kv[1]["bytes"])[:8]
        lines += [f"    {name}: {t['rows']} rows, {t['bytes'] / 1e6:.3f} MB ({t['bytes_per_row']} B/row)"
                  for name, t in biggest]  # fmt: skip
        lines += [f"  {p}" for p in f["first_problems"][:3]]
    lines += ["", f"ratios: {result['ratios']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser(__doc__)
    parser.add_argument("--databases", type=int, default=100, help="PostgreSQL targets (default 100)")
    parser.add_argument("--nodes", type=int, default=20, help="Redis targets (default 20)")
    parser.add_argument("--minutes", type=float, default=5, help="the fleet daemon's run (default 5)")
    parser.add_argument(
        "--baseline-minutes", type=float, help="the 1 + 1 daemon's run (default min(5, --minutes))"
    )
    parser.add_argument(
        "--interval", type=float, help="seconds between cycles (default: 60 PostgreSQL, 15 Redis)"
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--keep-logs", help="copy the daemons' logs into this folder")
    args = parser.parse_args(argv)
    result = run(args.databases, args.nodes, minutes=args.minutes, baseline_minutes=args.baseline_minutes,
                 interval=args.interval, store=args.store, keep=args.keep_logs,
                 log=cli.progress(args))  # fmt: skip
    return cli.finish(args, result, lambda: format_report(result), True)


if __name__ == "__main__":
    sys.exit(main())
