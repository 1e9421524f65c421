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

from dashboard.servers.throwaway import ThrowawayPostgres, ThrowawayRedis
from dashboard.store import Store
from tests.support.advised import advised_store
from tests.support.browser import chromium
from tests.support.hostile import assert_unchanged, hostile_database
from tests.support.postgres import ADVISOR_ROLE, new_database, run_workload
from tests.support.redis_node import redis_store
from tests.support.services import services_store
from tests.support.stores import collect_once, make_config

BROWSER_FIXTURES = {"browser", "page"}  # Chromium through Playwright
SLOW_FIXTURES = {"advised", "services_populated"}  # stores that take 5 to 11 s to build


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `browser` every test that drives Chromium, and `slow` every test that needs a store slow
    to build, by the fixtures they use (other slow tests are marked in their modules), so that
    `pytest -m "not browser and not slow"` runs the fast part alone."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def pg() -> Iterator[ThrowawayPostgres]:
    """One PostgreSQL 15 cluster for the session, pg_stat_statements preloaded and created."""
    server = ThrowawayPostgres(
        settings={"pg_stat_statements.max": "10000"}, password_roles=("secretive", "secretive_store")
    ).start()
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        # The README's least-privilege advisor role: it reads, and writes nothing (UPDATE and DELETE
        # are planned as the SELECT that finds their rows).
        conn.execute(f"CREATE ROLE {ADVISOR_ROLE} LOGIN IN ROLE pg_monitor, pg_read_all_data")
    yield server
    server.stop()


@pytest.fixture
def database(pg: ThrowawayPostgres) -> str:
    return new_database(pg)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A new SQLite store in the test's folder (store.db), closed after the test."""
    found = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield found
    found.close()


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


@pytest.fixture
def backend_store(store_url: str) -> Iterator[Store]:
    """A new, empty store on each backend (store_url), closed after the test."""
    found = Store(store_url)
    yield found
    found.close()


@pytest.fixture
def redis_server() -> Iterator[ThrowawayRedis]:
    """A redis-server of the test's own, stopped after it."""
    with ThrowawayRedis() as server:
        yield server


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


@pytest.fixture(scope="session")
def advised(pg: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A SQLite store of real index advice (tests/support/advised.py): {url, config, datname}."""
    return advised_store(pg, tmp_path_factory.mktemp("advised"))


@pytest.fixture(scope="session")
def redis_populated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A SQLite store of three real Redis cycles (tests/support/redis_node.py): {url, config, times, now}."""
    return redis_store(tmp_path_factory.mktemp("redis-page"))


@pytest.fixture(scope="session")
def services_populated(pg: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A SQLite store of three real Prometheus and PostgreSQL cycles (tests/support/services.py):
    {url, config}."""
    return services_store(pg, tmp_path_factory.mktemp("services-page"))


@pytest.fixture(scope="session")
def trapped(pg: ThrowawayPostgres) -> Iterator[dict]:
    """A database with an unprivileged role's traps, a canary and a victim session listening
    (tests/support/hostile.py), for the guarded SQL tests. One a session: her role is the cluster's."""
    found = hostile_database(pg)
    yield found
    found["victim"].close()


@pytest.fixture
def unchanged(trapped: dict) -> Iterator[None]:
    """After the case: no row written, no table made, no program run, the victim alive, no leak."""
    started = time.monotonic()
    yield
    assert_unchanged(trapped, started)


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
