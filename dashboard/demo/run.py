"""`observatory demo`: a throwaway PostgreSQL and Redis, live workloads, the collectors and the app.

The ERP workload runs against PostgreSQL; Redis is used the way the seed's system uses it, as the
cache in front of that database and as the BullMQ job queues (dashboard.demo.redis_workload). Everything
runs from this one process (the collector daemon and the workloads in threads, the servers and the
app as children) and everything but the store is removed on exit: Ctrl-C, SIGTERM or --minutes all
end in the same `finally`. No passwords exist: both servers listen on localhost only and trust it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import yaml
from psycopg import sql

from collectors.scheduler import Scheduler
from dashboard.core import config as config_mod
from dashboard.demo.alert_sink import AlertSink
from dashboard.demo.erp import APP_ROLE, ErpWorkload, create_analytics_schema, create_schema, role_dsn
from dashboard.demo.redis_workload import RedisWorkload, prepare_server
from dashboard.demo.traffic import LiveService
from dashboard.servers.throwaway import (
    ThrowawayNodeExporter,
    ThrowawayPostgres,
    ThrowawayPrometheus,
    ThrowawayRedis,
)
from dashboard.store import Store

log = logging.getLogger("observatory.demo")
REPO = Path(__file__).resolve().parents[2]
DATABASES = ("erp", "analytics")
# What the collectors and the advisor log in as: pg_monitor, and pg_read_all_data (PostgreSQL 14+) so
# the advisor may plan the workload's statements; nothing that allows writes.
MONITOR_ROLE = "observatory"
INTERVAL = "10s"
SCALE = 1.0  # ~100k orders, ~250k order items: seeded in about 6 s on 2 cores
BACKFILL_CYCLES, BACKFILL_GAP = 3, 3.0  # so the first page view already shows deltas
PG_SETTINGS = {"pg_stat_statements.max": "5000", "track_io_timing": "on"}
REDIS_TARGET = "demo-cache"
REDIS_QUEUES = ("email", "reports")
PROMETHEUS_TARGET = "demo-services"
SCRAPE_INTERVAL = "5s"  # Prometheus' own; the collector reads it every 15 s
# The `advisor:` settings. The demo's statements are fast (a primary key lookup takes 0.03 ms): advise
# on all that ran 10 times, whatever their mean time, so the Indexes page also says why the cheap
# ones get no index (the 64-row tax_rates lookup takes about 10 µs). BEGIN, COMMIT and other
# statements without a plan are never in the advisor's workload.
ADVISOR = {"min_calls": 10, "min_mean_ms": 0}
LOCK_EVERY = 90.0  # a batch job holds a row lock for 40 s every 90 s: the Connections page's blocking
DEMO_RULES = Path(__file__).with_name("demo_rules.yaml")  # two built-in rules with a shorter `for`
# A DBA applies one of the advisor's suggestions this long after the start: the invoice listing's
# index. The Weekly review's "Did the index help?" then shows it, with the listing before and after.
APPLY_INDEX_AFTER = 360.0
APPLIED_INDEX = "CREATE INDEX CONCURRENTLY invoices_issued_at_idx ON invoices (issued_at)"


def say(message: str) -> None:
    print(f"observatory demo: {message}", flush=True)


def run_demo(args: argparse.Namespace, app_command: list[str]) -> int:
    """Run the demo until Ctrl-C, SIGTERM or `args.minutes`; 0 on a normal stop. `app_command`
    starts the app (the CLI's `serve` builds it: the demo never imports the CLI)."""
    warning = config_mod.exposure_warning(args.host, args.port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if not _port_free(args.host, args.port):
        say(f"port {args.port} is in use on {args.host}: choose another with --port")
        return 2
    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.minutes * 60 if args.minutes > 0 else float("inf")
    cleanups: list[tuple[str, Callable[[], None]]] = []
    serving = False
    with _signals_as_interrupt():
        try:
            app, scheduler_thread, workloads = _start(args, app_command, directory, cleanups)
            serving = True
            return _serve(app, scheduler_thread, workloads, deadline, directory)
        except KeyboardInterrupt:
            say("stopping")
            return 0 if serving else 130
        finally:
            _cleanup(cleanups)


def _port_free(host: str, port: int) -> bool:
    # Checked first: finding out after a minute of setup that the app cannot bind is no fun.
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is fine
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _start(
    args: argparse.Namespace,
    app_command: list[str],
    directory: Path,
    cleanups: list[tuple[str, Callable[[], None]]],
) -> tuple[subprocess.Popen[bytes], threading.Thread, tuple[ErpWorkload, RedisWorkload]]:
    """Every part, in order; each registers how to stop it before the next one starts."""
    services = _start_services(cleanups)
    pg = ThrowawayPostgres(settings=PG_SETTINGS)
    cleanups.append(("PostgreSQL", pg.stop))
    pg.start()
    major = pg.version_num // 10000
    say(f"PostgreSQL {major} throwaway cluster on 127.0.0.1:{pg.port} (data in {pg.data_dir})")
    _prepare_cluster(pg)
    say("creating the ERP schema and data (about 100k orders, 250k order items) ...")
    sizes = create_schema(pg.dsn(dbname="erp"), SCALE)
    create_analytics_schema(pg.dsn(dbname="analytics"), SCALE)
    _forget_setup(pg)
    workload = ErpWorkload(
        pg.dsn(dbname="erp"), clients=4, analytics_dsn=pg.dsn(dbname="analytics"), lock_every=LOCK_EVERY
    )
    cleanups.append(("workload", workload.stop))
    workload.start()
    say(f"workload running: {sizes.customers} customers, roles app and reporting, application_name demo-app")
    dba = threading.Timer(APPLY_INDEX_AFTER, _apply_suggestion, args=(pg.dsn(dbname="erp"),))
    dba.daemon = True
    cleanups.append(("the DBA's index", dba.cancel))
    dba.start()
    cache = ThrowawayRedis()
    cleanups.append(("Redis", cache.stop))
    cache.start()
    prepare_server(cache.url)
    say(f"Redis throwaway server on 127.0.0.1:{cache.port} (maxmemory 8 MiB, volatile-lru)")
    redis_load = RedisWorkload(cache.url, dsn=role_dsn(pg.dsn(dbname="erp"), APP_ROLE), queues=REDIS_QUEUES)
    cleanups.append(("Redis workload", redis_load.stop))
    redis_load.start()
    say(f"Redis in use: a cache in front of the ERP database and BullMQ queues {', '.join(REDIS_QUEUES)}")
    sink = AlertSink(directory / "notifications.jsonl").start()
    cleanups.append(("alert receiver", sink.stop))
    say(f"alerts: the built-in rules, notified to a webhook on {sink.url} (written to notifications.jsonl)")
    config = _write_config(directory, pg, cache, sink.url)
    config = _add_prometheus(config, services)
    store = Store(config.store)  # migrates before the app's first read
    cleanups.append(("store", store.close))
    app = _start_app(app_command, config, directory)
    cleanups.append(("app", lambda: _stop_process(app)))
    scheduler = Scheduler(config, store)
    _backfill(scheduler)
    thread = threading.Thread(target=scheduler.run_forever, name="collector-daemon", daemon=True)
    cleanups.append(("collectors", lambda: (scheduler.stop(), thread.join(15))))
    thread.start()
    _announce(args, app, directory)
    return app, thread, (workload, redis_load)


def _apply_suggestion(dsn: str) -> None:
    """What a DBA does with the Indexes page's advice: create the invoice listing's index."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(APPLIED_INDEX)
        say("a DBA created invoices_issued_at_idx, as the Indexes page suggested: see the Weekly review")
    except psycopg.Error as err:
        say(f"the DBA's index could not be created: {str(err).strip().splitlines()[0]}")


def _prepare_cluster(pg: ThrowawayPostgres) -> None:
    """Databases, the monitoring role with the README's grants, pg_stat_statements and HypoPG
    wherever the collectors and the advisor connect."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for db in DATABASES:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    grant_monitoring(pg.dsn(), MONITOR_ROLE)
    for db in DATABASES:
        with psycopg.connect(pg.dsn(dbname=db), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")  # so the advisor proves its advice


def grant_monitoring(dsn: str, role: str) -> None:
    """The monitoring login role as the README documents it: pg_monitor to read the statistics,
    pg_read_all_data so the advisor can plan statements on every table (read-only: no write grant)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        granted = ["pg_monitor"] + (["pg_read_all_data"] if conn.info.server_version >= 140000 else [])
        for group in granted:
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(role)))


def _forget_setup(pg: ThrowawayPostgres) -> None:
    # The seeding statements are not the workload: start the statistics from the first client.
    # From the ERP database: a statement recorded in `postgres` would have the advisor report on it.
    with psycopg.connect(pg.dsn(dbname=DATABASES[0]), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def _start_services(cleanups: list[tuple[str, Callable[[], None]]]) -> dict:
    """The Prometheus side: a live demo service (dashboard.demo.traffic), node_exporter where it is
    installed, and a throwaway Prometheus scraping both. Each registers how to stop it before the
    next starts; returns the `targets.prometheus` entry that reads them with the seed's preset."""
    service = LiveService()
    cleanups.append(("demo service", service.stop))
    service.start()
    scraped = [service.address]
    if ThrowawayNodeExporter.available():
        node = ThrowawayNodeExporter()
        cleanups.append(("node_exporter", node.stop))
        node.start()
        scraped.append(node.address)
    prom = ThrowawayPrometheus(scrape_targets=scraped, scrape_interval=SCRAPE_INTERVAL)
    cleanups.append(("Prometheus", prom.stop))
    prom.start()
    node_note = f" and node_exporter on {scraped[1]}" if len(scraped) > 1 else " (no node_exporter installed)"
    say(f"Prometheus throwaway server on 127.0.0.1:{prom.port} scraping a service on {scraped[0]}{node_note}")
    return {"name": PROMETHEUS_TARGET, "url": prom.url, "interval": "15s", "preset": "seed"}


def _add_prometheus(config: config_mod.Config, target: dict) -> config_mod.Config:
    """The written configuration with the Prometheus target added (the seed's SLOs)."""
    path = Path(config.source)
    lines = path.read_text().splitlines(keepends=True)
    header = "".join(line for line in lines if line.startswith("#"))
    data = yaml.safe_load("".join(lines))
    data.setdefault("targets", {})["prometheus"] = [target]
    path.write_text(header + yaml.safe_dump(data))
    return config_mod.load(path)


def _alerts(directory: Path, sink_url: str) -> dict:
    """The `alerts:` settings: the built-in pack, two of its rules overridden by the demo's file (a
    shorter `for`), evaluated every 15 s, notified to the demo's own webhook (AlertSink)."""
    (directory / "rules").mkdir(exist_ok=True)
    (directory / "rules" / "demo.yaml").write_text(DEMO_RULES.read_text())
    return {
        "rule_files": ["rules/*.yaml"],
        "disabled_rules": ["PgStatementSlow", "RedisMemoryHigh"],
        "evaluation_interval": "15s",
        "group_wait": "10s",
        "receivers": [{"webhook": sink_url}],
    }


def _write_config(
    directory: Path, pg: ThrowawayPostgres, cache: ThrowawayRedis, sink_url: str
) -> config_mod.Config:
    data = {
        "store": f"sqlite:///{directory / 'observatory.db'}",
        "alerts": _alerts(directory, sink_url),
        "advisor": ADVISOR,
        "targets": {
            # One target per server: pg_stat_statements and pg_stat_database cover every
            # database of the cluster, and the pages filter by database.
            "postgres": [
                {
                    "name": "demo",
                    "dsn": pg.dsn(user=MONITOR_ROLE, dbname=DATABASES[0]),
                    "interval": INTERVAL,
                    "advise_interval": "2m",  # the Indexes page follows the workload within minutes
                    # The catalog's indexes every minute: a new index is in the Weekly review soon after.
                    "health": {"indexes": "1m"},
                    # Investigate may run statements (rolled back): the role cannot write anyway.
                    "explain_analyze": True,
                }
            ],
            "redis": [
                {
                    "name": REDIS_TARGET,
                    "url": cache.url,
                    "interval": INTERVAL,
                    "queues": {"bullmq": list(REDIS_QUEUES)},
                }
            ],
        },
    }
    path = directory / "observatory.yaml"
    path.write_text("# Written by `observatory demo`; rewritten on every run.\n" + yaml.safe_dump(data))
    return config_mod.load(path)


def _start_app(command: list[str], config: config_mod.Config, directory: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **{config_mod.ENV_FILE: str(Path(config.source).resolve())})
    # The app imports `dashboard` even without the editable install.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    with open(directory / "streamlit.log", "ab") as out:
        return subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def _backfill(scheduler: Scheduler) -> None:
    """A few quick cycles while the workload runs, so charts have points before the first view."""
    say(f"taking {BACKFILL_CYCLES} snapshots {BACKFILL_GAP:.0f} s apart so the charts start with history ...")
    for _ in range(BACKFILL_CYCLES):
        for cycle in scheduler.run_once():
            if cycle.status.state == "down":
                log.warning("%s: %s", cycle.target, cycle.status.error)
        time.sleep(BACKFILL_GAP)  # also before the daemon's first cycle: one snapshot per second at most


def _announce(args: argparse.Namespace, app: subprocess.Popen[bytes], directory: Path) -> None:
    probe_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    url = f"http://{probe_host}:{args.port}"
    if _wait_healthy(f"{url}/_stcore/health", app, timeout=60):
        say(f"ready: open {url}")
    else:
        say(f"the app is not answering yet at {url}: see {directory / 'streamlit.log'}")
    say(f"store and config in {directory} (kept on exit); collecting every {INTERVAL}")
    say(
        "stop with Ctrl-C"
        + (f" (or it stops by itself after --minutes {args.minutes:g})" if args.minutes else "")
    )


def _wait_healthy(url: str, app: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and app.poll() is None:
        with suppress(urllib.error.URLError, OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return True
        time.sleep(0.5)
    return False


def _serve(
    app: subprocess.Popen[bytes],
    thread: threading.Thread,
    workloads: tuple[ErpWorkload, RedisWorkload],
    deadline: float,
    directory: Path,
) -> int:
    """Wait for the deadline (or a signal); report the workloads once a minute."""
    workload, redis_load = workloads
    next_report = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.poll() is not None:
            say(f"the app exited with code {app.returncode}: see {directory / 'streamlit.log'}")
            return 1
        if not thread.is_alive():
            say("the collector daemon stopped unexpectedly")
            return 1
        if time.monotonic() >= next_report:
            stats = workload.stats()
            log.info("workload: %d operations, intensity %.2f, errors %s",
                     stats["operations"], stats["intensity"], stats["errors"] or "none")  # fmt: skip
            cache = redis_load.stats()
            hit_rate = f"{cache['hit_rate']:.1%}" if cache["hit_rate"] is not None else "n/a"
            log.info("redis workload: cache hit rate %s, jobs %s, errors %s", hit_rate,
                     {k: v for k, v in cache["counts"].items() if k not in ("hits", "misses")},
                     cache["errors"] or "none")  # fmt: skip
            next_report += 60
        time.sleep(max(0.0, min(1.0, deadline - time.monotonic())))
    say("time is up, stopping")
    return 0


def _cleanup(cleanups: list[tuple[str, Callable[[], None]]]) -> None:
    """Stop what was started, newest first; one failure never skips the rest (PostgreSQL last)."""
    failed = []
    with _signals_ignored():
        for name, stop in reversed(cleanups):
            try:
                stop()
            except Exception as err:
                failed.append(name)
                log.error("stopping %s failed: %s", name, err)
    if cleanups and not failed:
        say("stopped; the throwaway PostgreSQL cluster and Redis server were removed")


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so `finally` stops everything (signals only reach the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """A second Ctrl-C while stopping must not leave a cluster behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
