"""Shared fixtures: real throwaway servers (never mocks), stores on SQLite and PostgreSQL.

A server that cannot start raises, so the test errors: nothing here ever skips.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, Page

from collectors.scheduler import Scheduler
from dashboard.core import config as config_mod
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from tests.support.browser import chromium

ADVISOR_ROLE = "observatory_advisor"


@pytest.fixture(scope="session")
def pg() -> Iterator[ThrowawayPostgres]:
    """One PostgreSQL 15 cluster for the session, pg_stat_statements preloaded and created."""
    server = ThrowawayPostgres(
        settings={"pg_stat_statements.max": "10000"}, password_roles=("secretive",)
    ).start()
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        # The README's least-privilege advisor role. pg_write_all_data only because EXPLAIN of an
        # UPDATE or DELETE checks the write privilege; the advisor's session stays read-only.
        conn.execute(
            f"CREATE ROLE {ADVISOR_ROLE} LOGIN IN ROLE pg_monitor, pg_read_all_data, pg_write_all_data"
        )
    yield server
    server.stop()


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


@pytest.fixture
def database(pg: ThrowawayPostgres) -> str:
    return new_database(pg)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    pg: ThrowawayPostgres = request.getfixturevalue("pg")
    name = f"store_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg.dsn(dbname=name).replace("postgresql://", "postgresql+psycopg://")


def make_config(store: str, targets: list[dict] | None = None, **extra) -> config_mod.Config:
    return config_mod.from_dict({"store": store, "targets": {"postgres": targets or []}, **extra})


def collect_once(config: config_mod.Config, store: Store, now: int | None = None):
    """One cycle of every target, as `observatory collect --once` runs it."""
    clock = (lambda: float(now)) if now is not None else time.time
    return Scheduler(config, store, clock=clock).run_once()


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


@pytest.fixture(scope="session")
def populated_store(pg: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A SQLite store holding three real cycles of the workload, one and two minutes apart.

    Returns (store URL, path of an observatory.yaml naming it and the target).
    """
    name = new_database(pg, "populated")
    folder = tmp_path_factory.mktemp("populated")
    url = f"sqlite:///{folder / 'store.db'}"
    target = {"name": "erp-primary", "dsn": pg.dsn(dbname=name), "interval": "60s"}
    config = make_config(url, [target])
    store = Store(url)
    now = int(time.time())
    collect_once(config, store, now - 120)
    run_workload(pg.dsn(dbname=name))
    collect_once(config, store, now - 60)
    run_workload(pg.dsn(dbname=name))
    collect_once(config, store, now)
    store.close()
    config_file = folder / "observatory.yaml"
    config_file.write_text(
        f"store: {url}\ntargets:\n  postgres:\n    - name: erp-primary\n      dsn: {target['dsn']}\n"
    )
    return url, str(config_file)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for one test module."""
    with chromium() as found:
        yield found


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # Tall viewport: Streamlit scrolls inside its own container, so a full-page screenshot of a
    # short viewport would cut the page off.
    context = browser.new_context(viewport={"width": 1440, "height": 3000})
    yield context.new_page()
    context.close()
