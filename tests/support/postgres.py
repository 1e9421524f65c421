"""PostgreSQL helpers on the session's throwaway cluster (the `pg` fixture of tests/conftest.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg

from dashboard.servers.throwaway import ThrowawayPostgres

ADVISOR_ROLE = "observatory_advisor"
SHOP_SCHEMA = (Path(__file__).parents[1] / "advisor_schema.sql").read_text()


def advisor_dsn(pg: ThrowawayPostgres, dbname: str) -> str:
    """A DSN for the least-privilege advisor role: neither superuser nor able to run programs."""
    return pg.dsn(user=ADVISOR_ROLE, dbname=dbname)


def new_database(pg: ThrowawayPostgres, prefix: str = "db") -> str:
    """A fresh database on the session cluster, with pg_stat_statements, for one test."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
    return name


def run_workload(dsn: str) -> None:
    """A small but real workload: an indexed lookup, a scan, an aggregate, writes, a temp sort."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, customer int, total numeric,"
            " status text, created timestamptz DEFAULT now())"
        )
        conn.execute(
            "INSERT INTO orders (customer, total, status) SELECT g % 500, g * 1.5,"
            " (ARRAY['new','paid','shipped'])[g % 3 + 1] FROM generate_series(1, 20000) g"
        )
        conn.execute("ANALYZE orders")
        for i in range(50):
            conn.execute("SELECT * FROM orders WHERE id = %s", (i + 1,))
        for i in range(10):
            conn.execute("SELECT count(*) FROM orders WHERE customer = %s", (i,))
        for _ in range(5):
            conn.execute("SELECT status, sum(total) FROM orders GROUP BY status")
        for i in range(20):
            conn.execute("UPDATE orders SET status = 'paid' WHERE id = %s", (i + 1,))
        conn.execute("SET work_mem = '64kB'")
        conn.execute("SELECT * FROM orders ORDER BY total DESC, customer LIMIT 5000").fetchall()


def shop_dsn(pg: ThrowawayPostgres, prefix: str = "shop") -> str:
    """A fresh database with the shop schema (tests/advisor_schema.sql) and HypoPG: the advisor role's DSN."""
    name = new_database(pg, prefix)
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(SHOP_SCHEMA)
        conn.execute("CREATE EXTENSION hypopg")
    return advisor_dsn(pg, name)
