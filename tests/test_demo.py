"""The demo: its workload against a real throwaway cluster, and `observatory demo` end to end."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
import redis

from collectors.jobs.advisor import advise_target
from collectors.jobs.alerts import AlertsJob, notifier_for
from collectors.postgres.collector import PostgresCollector
from dashboard.advisor.database import Workload as AdviseWorkload
from dashboard.advisor.database import advice_report
from dashboard.alerts.rules import DEFAULT_RULES
from dashboard.core.alerts import Alert
from dashboard.core.config import Config, PostgresTarget
from dashboard.core.health import SessionsNow
from dashboard.core.health.chains import BlockingChain
from dashboard.demo import run as demo
from dashboard.demo.alert_sink import AlertSink
from dashboard.demo.erp import ErpWorkload, create_analytics_schema, create_schema
from dashboard.demo.redis_workload import LEADERBOARD, QUEUES, RedisWorkload, prepare_server
from dashboard.plans.run import AnalyzePolicy, Explained, ExplainRequest, explain, sample_values
from dashboard.servers.throwaway import ThrowawayPostgres, ThrowawayRedis, free_port
from dashboard.store import Store
from dashboard.store.reads import latest_advice

REPO = Path(__file__).resolve().parent.parent
TINY = 0.02  # 400 customers, 2,000 orders: seeded in well under a second
CAPS = {"orders": 1500, "events": 3000, "page_views": 1500}  # below the seeded counts: must trim
pytestmark = pytest.mark.slow  # its own servers and the whole demo: 4 to 20 s a test


@pytest.fixture(scope="module")
def cluster() -> Iterator[ThrowawayPostgres]:
    # Its own cluster: pg_stat_statements and the roles are cluster-wide, other tests stay unaffected.
    with ThrowawayPostgres(settings={"pg_stat_statements.max": "5000"}) as server:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            for db in ("erp", "analytics"):
                conn.execute(f"CREATE DATABASE {db}")
        for db in ("postgres", "erp", "analytics"):
            with psycopg.connect(server.dsn(dbname=db), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION pg_stat_statements")
        yield server


def _families(pg: ThrowawayPostgres) -> list[tuple[str, str, str, float, int]]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        return conn.execute(
            "SELECT d.datname, r.rolname, s.query, s.max_exec_time, s.temp_blks_written "
            "FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles r ON r.oid = s.userid"
        ).fetchall()


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_workload_runs_every_family_as_two_roles_and_stays_bounded(cluster: ThrowawayPostgres) -> None:
    erp, analytics = cluster.dsn(dbname="erp"), cluster.dsn(dbname="analytics")
    sizes = create_schema(erp, TINY)
    create_analytics_schema(analytics, TINY)
    assert _count(erp, "orders") == sizes.orders > CAPS["orders"]
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")

    workload = ErpWorkload(
        erp, clients=4, rate=60, analytics_dsn=analytics, housekeeping_every=1.0, max_rows=CAPS
    ).start()
    try:
        time.sleep(3)
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            clients = conn.execute(
                "SELECT DISTINCT application_name, usename FROM pg_stat_activity "
                "WHERE datname IN ('erp', 'analytics') AND usename IN ('app', 'reporting')"
            ).fetchall()
        time.sleep(3)
    finally:
        started = time.monotonic()
        workload.stop()
        stop_seconds = time.monotonic() - started

    assert stop_seconds < 5
    assert not any(t.is_alive() for t in workload._threads)
    assert {app for app, _ in clients} == {"demo-app"}
    assert workload.stats()["operations"] > 50
    rows = _families(cluster)
    by_text = {q: (db, role, max_ms, temp) for db, role, q, max_ms, temp in rows}

    def family(pattern: str) -> tuple[str, str, float, int]:
        found = [v for q, v in by_text.items() if re.search(pattern, q)]
        assert found, f"no statement matching {pattern!r} in pg_stat_statements"
        return found[0]

    assert family(r"FROM orders WHERE id = \$1")[:2] == ("erp", "app")  # PK lookups
    assert family(r"INSERT INTO orders \(customer_id, status\)")[:2] == ("erp", "app")
    assert family(r"FROM orders WHERE customer_id = \$1")[:2] == ("erp", "app")  # the unindexed one
    assert family(r"lower\(email\) = lower\(\$1\)")[:2] == ("erp", "app")
    report = family(r"count\(DISTINCT o\.customer_id\)")
    assert report[:2] == ("erp", "reporting") and report[3] > 0  # spilled to temp files
    assert family(r"FROM page_views WHERE viewed_at")[:2] == ("analytics", "reporting")
    assert family(r"INSERT INTO page_views")[:2] == ("analytics", "app")
    assert family(r"FOR UPDATE")[:2] == ("erp", "app")  # the stock recount holds a best-seller ...
    assert family(r"UPDATE products SET price")[2] > 200  # ... and another client's update waited
    assert family(r"order_week\(created_at\)")[:2] == ("erp", "reporting")
    # ... which calls a user's IMMUTABLE function: the advisor leaves it unplanned and says why.
    advice = advice_report(
        erp, workload=AdviseWorkload(min_calls=1, min_mean_ms=0), health=False, allow_privileged=True
    )
    (weekly,) = [s for s in advice.skipped if "order_week(created_at)" in s.statement]
    assert "calls public.order_week(timestamp with time zone)" in weekly.reason, weekly
    # Bounded: housekeeping trimmed below the seeded counts (plus at most a second of new rows).
    assert _count(erp, "orders") <= CAPS["orders"] + 60
    assert _count(erp, "events") <= CAPS["events"] + 120
    assert _count(analytics, "page_views") <= CAPS["page_views"] + 400
    with psycopg.connect(erp) as conn:  # cascades kept the children consistent
        orphans = conn.execute(
            "SELECT count(*) FROM order_items i LEFT JOIN orders o ON o.id = i.order_id WHERE o.id IS NULL"
        ).fetchone()[0]
    assert orphans == 0


def test_redis_workload_uses_redis_as_a_cache_and_as_bullmq_queues() -> None:
    # A fast, failure-prone email queue so a few seconds show every path: retries, final failures
    # (half the attempts fail, so about one job in eight runs out of attempts even on a busy machine),
    # trimming; a smaller maxmemory so the warm cache already overflows it.
    email = dataclasses.replace(
        QUEUES["email"], rate=60.0, workers=3, run_median=0.01, fail=0.5, fatal=0.05, backoff_ms=50,
        delayed_share=0.2, delay_s=(0.1, 0.4),
    )  # fmt: skip
    keep = 25
    with ThrowawayRedis() as server:
        prepare_server(server.url)
        r = redis.Redis.from_url(server.url, decode_responses=True)
        r.config_set("maxmemory", "6mb")
        load = RedisWorkload(server.url, queues=(email,), rate=400.0, keep=keep).start()
        try:
            time.sleep(4)
        finally:
            started = time.monotonic()
            load.stop()
            stop_seconds = time.monotonic() - started
        assert stop_seconds < 3
        assert not any(t.is_alive() for t in load._threads)
        stats = load.stats()
        assert stats["errors"] == {}, stats
        assert 0.5 < stats["hit_rate"] < 1.0, stats
        info = r.info("stats")
        assert info["keyspace_misses"] > 0 and info["evicted_keys"] > 0
        assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"

        # BullMQ's layout: finished sets scored by finishedOn and trimmed to `keep`, job hashes.
        counts = stats["counts"]
        assert counts["email completed"] > keep and counts["email failed"] > 0 and counts["email retried"] > 0
        assert r.zcard("bull:email:completed") == keep
        for job_id, score in r.zrange("bull:email:completed", 0, -1, withscores=True):
            job = r.hgetall(f"bull:email:{job_id}")
            assert int(job["timestamp"]) <= int(job["processedOn"]) <= int(job["finishedOn"]) == int(score)
            assert json.loads(job["opts"])["backoff"] == {"type": "exponential", "delay": 50}
        failed = [r.hgetall(f"bull:email:{j}") for j in r.zrange("bull:email:failed", 0, -1)]
        assert failed and all(job["failedReason"] and int(job["atm"]) >= 1 for job in failed)
        assert any(int(job["atm"]) == email.attempts for job in failed)  # retried until out of attempts
        for job_id, score in r.zrange("bull:email:delayed", 0, -1, withscores=True):
            # (timestamp + delay) * 0x1000 + the id's low 12 bits
            assert int(score) & 0xFFF == int(job_id) & 0xFFF and int(score) >> 12 > 1.6e12
        # Trimmed jobs lose their hashes too: every job hash left belongs to a queue state.
        listed = set(r.lrange("bull:email:wait", 0, -1)) | set(r.lrange("bull:email:active", 0, -1))
        for state in ("delayed", "completed", "failed"):
            listed |= set(r.zrange(f"bull:email:{state}", 0, -1))
        hashes = {k.split(":")[-1] for k in r.scan_iter("bull:email:*", count=1000)}
        assert {h for h in hashes if h.isdigit()} == listed
        assert r.exists("bull:email:meta", LEADERBOARD) == 2  # no TTL: never evicted


# The operations whose statements the advisor must judge, and the texts pg_stat_statements records.
JUDGED = ("find customer", "returning customer", "sku orders", "product sales", "order history",
          "latest invoices", "dashboard", "order lookup", "product lookup")  # fmt: skip
FIND_CUSTOMER = "SELECT id, name, country FROM customers WHERE lower(email) = lower($1)"
RETURNING = "SELECT count(*) FROM events WHERE customer_id = $1 AND kind = $2"
SKU_JOIN = "JOIN order_items i ON i.product_id = p.id"
ACTIVITY = "SELECT kind, count(*) FROM events WHERE created_at > now() - interval $1 GROUP BY kind"
PK_LOOKUP = "SELECT id, customer_id, status, total, created_at FROM orders WHERE id = $1"
SMALL_TABLE = "SELECT rate FROM tax_rates WHERE country = $1 AND category = $2"
UNSELECTIVE = "SELECT count(*), sum(total) FROM orders WHERE status = $1"
LATEST_INVOICES = "SELECT number, amount, issued_at, paid_at FROM invoices ORDER BY issued_at DESC LIMIT $1"


def _lock_drill_seen(
    workload: ErpWorkload, target: PostgresTarget, config: Config
) -> tuple[SessionsNow, list[BlockingChain]]:
    """The demo's lock drill (a batch idle in its transaction on a row, a price sync waiting), as the
    PostgreSQL collector's sessions part reads it while it holds, and the blocking chain it keeps
    once the block lasted the target's blocking_history_after."""
    drill = threading.Thread(target=workload.lock_drill, kwargs={"hold_s": 8.0})
    drill.start()
    try:
        with psycopg.connect(target.dsn, autocommit=True) as conn:
            waiting = (
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'price-sync' AND wait_event_type = 'Lock'"
            )
            deadline = time.monotonic() + 5
            while not conn.execute(waiting).fetchone()[0] and time.monotonic() < deadline:
                time.sleep(0.05)
        store = Store(config.store)
        try:
            collector = PostgresCollector(target, store)
            for _ in range(3):  # as the daemon's sampler, between cycles
                time.sleep(2)  # past the app role's own lock_timeout (3 s): the sync still waits
                assert collector.sample_waits()
            cycle = collector.collect(int(time.time()))
            collector.close_sampler()
        finally:
            store.close()
    finally:
        drill.join()
    assert cycle.status.details is not None and cycle.status.details.sessions is not None, cycle.status
    return cycle.status.details.sessions, cycle.chains


def _investigate_latest_invoices(target: PostgresTarget) -> Explained:
    """What "Explain this statement" does on the demo's invoice listing: values from pg_stats, then
    EXPLAIN ANALYZE as the demo's role (the demo allows it; the role cannot write anyway)."""
    values = sample_values(target.dsn, LATEST_INVOICES)
    assert values == ("20",), values
    policy = AnalyzePolicy(target.explain_analyze, target.explain_analyze_writes)
    return explain(target.dsn, ExplainRequest(LATEST_INVOICES, analyze=True, values=values), policy=policy)


def test_demo_advisor_proves_its_suggestions_on_its_first_run(tmp_path: Path) -> None:
    """The demo's cluster (its role's grants, HypoPG), schema at a quarter of its size, workload and
    advisor settings; one run of the daemon's advisor job stores proven suggestions for the
    statements that need an index, and none for those that must not get one."""
    with ThrowawayPostgres(settings=demo.PG_SETTINGS) as pg:
        demo._prepare_cluster(pg)
        create_schema(pg.dsn(dbname="erp"), 0.25)  # 5,000 customers, 25,000 orders, 50,000 events
        create_analytics_schema(pg.dsn(dbname="analytics"), 0.25)
        demo._forget_setup(pg)
        config = demo._write_config(tmp_path, pg, SimpleNamespace(url="redis://127.0.0.1:1"), SINK)
        (target,) = config.targets.postgres
        assert "//observatory@" in target.dsn and not target.advise_privileged
        with psycopg.connect(pg.dsn(dbname="erp")) as conn:  # reads every table, writes none
            grants = conn.execute(
                "SELECT pg_has_role('observatory', 'pg_read_all_data', 'member'), "
                "has_table_privilege('observatory', 'public.orders', 'INSERT, UPDATE, DELETE')"
            ).fetchone()
        assert grants == (True, False)
        workload = ErpWorkload(
            pg.dsn(dbname="erp"), clients=4, rate=150, analytics_dsn=pg.dsn(dbname="analytics")
        )
        workload.start()
        try:  # until each statement ran as often as the advisor asks (its `min_calls`), with a margin
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                counts = workload.stats()["by_operation"]
                if all(counts.get(op, 0) >= config.advisor.min_calls + 3 for op in JUDGED):
                    break
                time.sleep(0.5)
        finally:
            workload.stop()
        assert workload.stats()["errors"] == {}
        store = Store(config.store)
        try:
            outcome = advise_target(store, target, config.advisor)
            (stored,) = latest_advice(store.engine, [store.target_id("postgres", target.name)])
        finally:
            store.close()
        investigated = _investigate_latest_invoices(target)
        drilled, chains = _lock_drill_seen(workload, target, config)

    assert outcome == {"erp": None}, outcome
    report = stored.report
    assert report.error is None and report.hypopg is True and report.hint is None, report
    assert all(s.proven and s.cost_after is not None for s in report.suggestions), report.suggestions
    found = {(s.table, tuple(s.columns)): s for s in report.suggestions}

    def suggested(table: str, columns: tuple[str, ...], text: str) -> None:
        suggestion = found.get((table, columns))
        assert suggestion, f"no index {table} {columns}: {sorted(found)}; skipped: {report.skipped}"
        assert any(text in served for served in suggestion.statements), suggestion.statements

    suggested("public.customers", ("lower(email)",), FIND_CUSTOMER)  # an expression
    suggested("public.events", ("customer_id", "kind"), RETURNING)  # two equality columns
    suggested("public.order_items", ("product_id",), SKU_JOIN)  # the join key from products
    suggested("public.orders", ("customer_id", "created_at"), "ORDER BY created_at DESC LIMIT")
    suggested("public.invoices", ("issued_at",), "FROM invoices ORDER BY issued_at DESC LIMIT")
    served = {text for s in report.suggestions for text in s.statements}
    skipped = {s.statement: s.reason for s in report.skipped}
    for text in (PK_LOOKUP, SMALL_TABLE, UNSELECTIVE):  # judged, and left without an index
        assert text not in served and text in skipped, (text, skipped.get(text))
    assert "orders_pkey" in skipped[PK_LOOKUP] and "too small" in skipped[SMALL_TABLE]
    # Index health beside the suggestions: the demo's duplicate index.
    assert report.health and "orders_status_idx" in {f.index for f in report.health.redundant}
    # A date range as applications write it: pg_stat_statements records `interval $1`.
    suggested("public.events", ("created_at",), ACTIVITY)
    # The lock drill, as the Connections page shows it: the batch is the root, the sync waits behind it.
    by_pid = drilled.by_pid()
    (root,) = [by_pid[pid] for pid in drilled.roots]
    assert root.application == "nightly-batch" and root.idle_in_transaction
    assert any(s.application == "price-sync" and root.pid in s.blocked_by for s in drilled.sessions)
    # ... and as its blocking history keeps it, past the demo's 5 s.
    (chain,) = chains
    assert chain.root.pid == root.pid and chain.root.application == "nightly-batch"
    assert [w.application for w in chain.waiting] == ["price-sync"] and chain.lasted_s >= 5
    # Investigate, on the same cluster: the listing sorts the whole invoices table for 20 rows.
    assert investigated.error is None and investigated.plan.analyzed, investigated.error
    scan = next(n for n in investigated.plan.nodes if n.relation == "public.invoices")
    assert scan.node_type == "Seq Scan" and investigated.plan.hottest().node_type in ("Sort", "Seq Scan")
    assert investigated.proposal and "invoices (issued_at" in investigated.proposal.create_sql
    assert investigated.proposal.after.total_cost < investigated.proposal.before.total_cost / 2


SINK = "http://127.0.0.1:1/alerts"


def test_demo_alerting_overrides_two_built_in_rules_and_notifies_its_own_webhook(tmp_path: Path) -> None:
    """The demo's `alerts:` settings: the built-in pack less two rules its own file redefines with a
    shorter `for` (each name once), and its webhook sink writing what the daemon's notifier sends."""
    with AlertSink(tmp_path / "notifications.jsonl").start() as sink:
        config = demo._write_config(tmp_path, FakePg(), SimpleNamespace(url="redis://127.0.0.1:1"), sink.url)
        store = Store(config.store)
        job = AlertsJob(config, store, notifier=notifier_for(config, store, time.time))
        names = [r.name for r in job.rules]
        built_in = DEFAULT_RULES.read_text().count("- alert:")  # the pack, each name once
        assert job.load_errors == [] and len(names) == len(set(names)) == built_in
        assert {r.name: r.for_s for r in job.rules if r.where.startswith(str(tmp_path))} == {
            "PgStatementSlow": 60.0,
            "RedisMemoryHigh": 60.0,
        }
        now = int(time.time())
        labels = {"alertname": "RedisMemoryHigh", "target": "demo-cache"}
        alert = Alert(labels, {"summary": "s"}, "firing", 99.0, now - 60, fired_at=now)
        job.notifier.update([alert], now)
        job.notifier.update([alert], now + 11)  # after the demo's group_wait of 10 s
        assert job.notifier.wait(5.0)
        job.notifier.close()
        store.close()
    (line,) = (tmp_path / "notifications.jsonl").read_text().splitlines()
    assert json.loads(line)["commonLabels"] == {"alertname": "RedisMemoryHigh", "target": "demo-cache"}


class FakePg:
    """What _write_config reads of a cluster: a DSN (nothing connects to it here)."""

    def dsn(self, user: str = "postgres", dbname: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:1/{dbname}"


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def test_demo_command_collects_both_databases_and_roles_then_cleans_up(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "dashboard", "demo", "--minutes", "0.3"]
    command += ["--port", str(port), "--dir", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"ready: open http://127.0.0.1:{port}" in output, output

    with sqlite3.connect(tmp_path / "observatory.db") as db:
        pairs = set(db.execute("SELECT datname, rolname FROM statements"))
        targets = set(db.execute("SELECT kind, name FROM targets"))
        moved = db.execute("SELECT count(*), sum(calls) FROM stmt_raw").fetchone()
        redis = _redis_points(db)
        services = dict(
            db.execute(
                "SELECT s.labels, count(*) FROM points_raw p JOIN series s ON s.id = p.series_id "
                "JOIN targets t ON t.id = s.target_id WHERE t.kind = 'prometheus' AND s.name = 'prom.series' "
                "GROUP BY s.labels"
            )
        )
    assert {"erp", "analytics"} <= {d for d, _ in pairs}
    assert {"app", "reporting"} <= {r for _, r in pairs}
    # One PostgreSQL server, one target (its statements of both databases), and the Redis node.
    assert targets == {("postgres", "demo"), ("redis", "demo-cache"), ("prometheus", "demo-services")}
    assert moved[0] > 0 and moved[1] > 0  # deltas, not just a baseline
    assert "password" not in (tmp_path / "observatory.yaml").read_text().lower()

    # Redis used as a cache and as BullMQ queues, collected: a realistic hit rate, queue depths of
    # both queues, jobs completed (per-interval deltas, not just a baseline).
    hits, misses = redis["redis.keyspace.hits"], redis["redis.keyspace.misses"]
    assert hits + misses > 100
    assert 0.5 < hits / (hits + misses) < 1.0, (hits, misses)
    assert {"email", "reports"} <= redis["depth queues"]
    assert redis["redis.queue.completed"] > 0
    assert redis["redis.memory.used_bytes"] > 0

    cluster_dir = str(Path(re.search(r"data in (\S+)\)", output).group(1)).parent)
    assert not os.path.exists(cluster_dir)
    assert _processes_mentioning(cluster_dir) == []
    assert _processes_mentioning(f"--server.port {port}") == []  # the app is gone too
    redis_port = re.search(r"Redis throwaway server on 127\.0\.0\.1:(\d+)", output).group(1)
    # redis-server rewrites its command line to "redis-server 127.0.0.1:<port>"
    assert [p for p in _processes_mentioning(redis_port) if "redis-server" in p] == []

    # The Prometheus side: the seed's SLO series read from a throwaway Prometheus scraping the demo
    # service; afterwards no Prometheus, demo service or node_exporter is left.
    assert services.get("name=api_p95_ms", 0) > 0 and services.get("name=error_ratio", 0) > 0, services
    said = re.search(r"Prometheus throwaway server on .*", output).group(0)
    prom_port, service_port, *node_port = re.findall(r"127\.0\.0\.1:(\d+)", said)
    assert _processes_mentioning(f"--web.listen-address=127.0.0.1:{prom_port}") == []
    assert _processes_mentioning(f"dashboard.demo.traffic --port {service_port}") == []
    assert [p for port in node_port for p in _processes_mentioning(f"127.0.0.1:{port}")] == []


def _redis_points(db: sqlite3.Connection) -> dict:
    """Sums of the demo-cache target's raw points by series name, and the queues with depth series."""
    rows = db.execute(
        "SELECT s.name, s.labels, sum(p.value) FROM points_raw p JOIN series s ON s.id = p.series_id "
        "JOIN targets t ON t.id = s.target_id WHERE t.kind = 'redis' AND t.name = 'demo-cache' "
        "GROUP BY s.name, s.labels"
    ).fetchall()
    sums: dict = {}
    for name, _labels, total in rows:
        sums[name] = sums.get(name, 0.0) + total
    sums["depth queues"] = {
        dict(part.split("=", 1) for part in labels.split(","))["queue"]
        for name, labels, _ in rows
        if name == "redis.queue.depth"
    }
    return sums
