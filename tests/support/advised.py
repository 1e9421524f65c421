"""A store of real index advice: the shop schema and HypoPG on the session's server, a workload, two
real collector cycles, then `advise_target`, the way the daemon makes it.

Built once a session by the `advised` fixture (tests/conftest.py), for the Indexes page's AppTest
and the browser tests.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from collectors.jobs.advisor import advise_target
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.reads import statement_ids_by_text
from tests.support.postgres import SHOP_SCHEMA, advisor_dsn, new_database
from tests.support.stores import collect_once, make_config

TARGET = "shop"
REF = "SELECT * FROM orders WHERE ref = $1"
SEGMENT = "SELECT count(*) FROM customers WHERE segment = $1"
REF_INDEX = "CREATE INDEX CONCURRENTLY ON public.orders (ref);"
FK_INDEX = "CREATE INDEX CONCURRENTLY ON public.orders (customer_id);"


def advised_store(pg: ThrowawayPostgres, folder: Path) -> dict[str, str]:
    """The store (in `folder`) and its config: {url, config, datname}."""
    datname = new_database(pg, "advised")
    dsn = pg.dsn(dbname=datname)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SHOP_SCHEMA)
        conn.execute("CREATE EXTENSION hypopg")
    url = f"sqlite:///{folder / 'store.db'}"
    target_dsn = advisor_dsn(pg, datname)  # the least-privilege role: the advisor refuses a superuser
    config = make_config(url, [{"name": TARGET, "dsn": target_dsn, "interval": "60s"}])
    store = Store(url)
    now = int(time.time())
    collect_once(config, store, now - 60)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(30):  # sequential scans of 200k-300k rows: well above the 1 ms mean threshold
            conn.execute("SELECT * FROM orders WHERE ref = %s", (f"R-{i}",))
            conn.execute(
                "SELECT * FROM customers WHERE lower(email) = lower(%s)", (f"customer{i}@example.org",)
            )
        for segment in ("retail", "wholesale", "partner") * 4:
            conn.execute("SELECT count(*) FROM customers WHERE segment = %s", (segment,))
    collect_once(config, store, now)
    outcome = advise_target(store, config.targets.postgres[0])
    store.close()
    assert outcome[datname] is None, outcome
    config_file = folder / "observatory.yaml"
    config_file.write_text(
        f"store: {url}\ntargets:\n  postgres:\n    - name: {TARGET}\n      dsn: {target_dsn}\n"
    )
    return {"url": url, "config": str(config_file), "datname": datname}


def statement_id(advised: dict[str, str], text: str) -> int:
    engine = make_engine(advised["url"], readonly=True)
    try:
        ids = statement_ids_by_text(engine, 1, [text, "no such statement"], datname=advised["datname"])
    finally:
        engine.dispose()
    assert list(ids) == [text], "the workload's statement is missing from the advised store"
    return ids[text]
