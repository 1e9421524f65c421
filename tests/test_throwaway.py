"""Real throwaway servers: these tests fail (never skip) when a server cannot start."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest
import redis

from dashboard.servers.throwaway import ThrowawayPostgres, ThrowawayPrometheus, ThrowawayRedis, free_port


@pytest.fixture(scope="module")
def pg() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres(password_roles=("pw",)) as server:
        yield server


def test_postgres_has_pg_stat_statements(pg: ThrowawayPostgres) -> None:
    assert pg.version_num >= 100000
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert "pg_stat_statements" in conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE TABLE pss_probe (id int)")
        conn.execute("SELECT count(*) FROM pss_probe WHERE id = 42")
        rows = conn.execute(
            "SELECT query, calls FROM pg_stat_statements WHERE query LIKE '%FROM pss_probe%'"
        ).fetchall()
    assert rows and rows[0][1] >= 1
    assert "$1" in rows[0][0]  # normalized: the constant became a parameter


def test_password_roles_need_a_password(pg: ThrowawayPostgres) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE ROLE pw LOGIN PASSWORD 'Secr3t!'")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.dsn(user="pw"), connect_timeout=5).close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.dsn(user="pw", password="wrong"), connect_timeout=5).close()
    with psycopg.connect(pg.dsn(user="pw", password="Secr3t!")) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "pw"


def test_postgres_restart_keeps_data(pg: ThrowawayPostgres) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE survives (v text)")
        conn.execute("INSERT INTO survives VALUES ('yes')")
        before = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    pg.restart()
    with psycopg.connect(pg.dsn()) as conn:
        assert conn.execute("SELECT v FROM survives").fetchone()[0] == "yes"
        assert conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0] > before


def test_postgres_stop_cleans_up_and_is_idempotent() -> None:
    server = ThrowawayPostgres().start()
    tmp = server._tmp
    server.stop()
    server.stop()
    assert not os.path.exists(tmp)


def test_redis_set_get_and_restart() -> None:
    with ThrowawayRedis() as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        server.restart()
        assert redis.Redis.from_url(server.url).ping()
        client.close()
    server.stop()  # idempotent


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


@pytest.mark.slow  # about 6 s to scrape, 10 s to stop
def test_prometheus_scrapes_itself() -> None:
    port = free_port()
    with ThrowawayPrometheus([f"127.0.0.1:{port}"], port=port) as prom:
        with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=5) as resp:
            assert resp.status == 200
        query = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": 'up{job="demo"}'})
        deadline = time.monotonic() + 15
        result: list = []
        while time.monotonic() < deadline and not result:
            result = _get_json(query)["data"]["result"]
            time.sleep(0.2)
        assert result, "Prometheus never scraped its own target"
        assert result[0]["metric"]["instance"] == f"127.0.0.1:{port}"
        assert result[0]["value"][1] == "1"
