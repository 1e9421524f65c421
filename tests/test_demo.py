"""The demo: its workload against a real throwaway cluster, and `observatory demo` end to end."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dashboard.throwaway import ThrowawayPostgres, free_port
from dashboard.workload import Workload, create_analytics_schema, create_schema

REPO = Path(__file__).resolve().parent.parent
TINY = 0.02  # 400 customers, 2,000 orders: seeded in well under a second
CAPS = {"orders": 1500, "events": 3000, "page_views": 1500}  # below the seeded counts: must trim


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

    workload = Workload(
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
    # Bounded: housekeeping trimmed below the seeded counts (plus at most a second of new rows).
    assert _count(erp, "orders") <= CAPS["orders"] + 60
    assert _count(erp, "events") <= CAPS["events"] + 120
    assert _count(analytics, "page_views") <= CAPS["page_views"] + 400
    with psycopg.connect(erp) as conn:  # cascades kept the children consistent
        orphans = conn.execute(
            "SELECT count(*) FROM order_items i LEFT JOIN orders o ON o.id = i.order_id WHERE o.id IS NULL"
        ).fetchone()[0]
    assert orphans == 0


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
        targets = {name for (name,) in db.execute("SELECT name FROM targets")}
        moved = db.execute("SELECT count(*), sum(calls) FROM stmt_raw").fetchone()
    assert {"erp", "analytics"} <= {d for d, _ in pairs}
    assert {"app", "reporting"} <= {r for _, r in pairs}
    assert targets == {"demo"}  # one server, one target: its statements of both databases
    assert moved[0] > 0 and moved[1] > 0  # deltas, not just a baseline
    assert "password" not in (tmp_path / "observatory.yaml").read_text().lower()

    cluster_dir = str(Path(re.search(r"data in (\S+)\)", output).group(1)).parent)
    assert not os.path.exists(cluster_dir)
    assert _processes_mentioning(cluster_dir) == []
    assert _processes_mentioning(f"--server.port {port}") == []  # the app is gone too
