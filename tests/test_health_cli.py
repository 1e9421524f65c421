"""`observatory health` and the health headline of `observatory status`, on a store filled by real
collector cycles of a real PostgreSQL: a table full of dead rows and a sequence near its maximum."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg

from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from tests.support.cli import observatory
from tests.support.postgres import advisor_dsn, new_database
from tests.support.stores import collect_once, make_config

TABLE = "public.churn"


def test_health_lists_each_areas_findings_and_status_its_worst(pg: ThrowawayPostgres, tmp_path: Path) -> None:
    name = new_database(pg, "health")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute("CREATE TABLE churn (id int PRIMARY KEY, n int) WITH (autovacuum_enabled = off)")
        conn.execute("INSERT INTO churn SELECT g, 0 FROM generate_series(1, 30000) g")
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("VACUUM ANALYZE churn")
        conn.execute("UPDATE churn SET n = 1")  # 30,000 dead rows: autovacuum is off for it
        conn.execute("CREATE SEQUENCE tickets AS smallint")
        conn.execute("SELECT setval('tickets', 31000)")  # 95 % of 32,767
        conn.execute("SELECT pg_stat_force_next_flush()")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    targets = [
        {"name": "db1", "dsn": advisor_dsn(pg, name), "interval": "60s"},
        {"name": "gone", "dsn": "postgresql://nobody@127.0.0.1:1/x", "interval": "60s"},  # never read
    ]
    store = Store(url)
    try:
        collect_once(make_config(url, targets), store, int(time.time()))
    finally:
        store.close()
    config = tmp_path / "observatory.yaml"
    config.write_text(json.dumps({"store": url, "targets": {"postgres": targets}}))

    listed = observatory("health", "--target", "db1", config=config)
    assert listed.returncode == 1, listed.stderr  # an error-level finding: the sequence
    assert "[error] server: public.tickets: 95% of its range used" in listed.stdout
    assert f"[warning] tables: {TABLE}: 50% of its rows are dead (30,000)" in listed.stdout
    assert f"fix: VACUUM {TABLE};" in listed.stdout
    as_json = json.loads(observatory("health", "--target", "db1", "--json", config=config).stdout)
    areas = {f["area"] for f in as_json["findings"]}
    assert {"server", "tables"} <= areas and as_json["findings"][0]["level"] == "error"

    status = json.loads(observatory("status", "--json", config=config).stdout)
    (row,) = [t for t in status["targets"] if t["name"] == "db1"]
    assert row["health"]["server"]["subject"] == "public.tickets"
    assert row["health"]["tables"]["subject"] == TABLE and row["health"]["replication"] is None
    text = observatory("status", config=config).stdout
    assert "  health: server: error: public.tickets: 95% of its range used" in text

    unknown = observatory("health", "--target", "nope", config=config)
    assert unknown.returncode == 2 and "no PostgreSQL target nope in the store (db1, gone)" in unknown.stdout
    unread = observatory("health", "--target", "gone", config=config)  # down since it was configured
    assert unread.returncode == 2 and "gone has no health readings yet" in unread.stdout
    assert "as read at 20" in listed.stdout
