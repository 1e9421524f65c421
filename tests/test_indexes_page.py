"""The Indexes page and Query detail's index advice, through AppTest, on a store of real advice.

The advice comes the way the daemon makes it: a database with the shop schema and HypoPG on the
session server, a workload, two real collector cycles, then `advise_target`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from collectors.jobs.advisor import advise_target
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.reads import statement_ids_by_text
from dashboard.ui import frame as ui
from tests.conftest import advisor_dsn, collect_once, make_config, new_database

APP = "../dashboard/app.py"  # AppTest resolves it against this file's folder
INDEXES = "../pages/indexes.py"
QUERY = "../pages/query.py"
TARGET = "shop"
SCHEMA = Path(__file__).with_name("advisor_schema.sql").read_text()
REF = "SELECT * FROM orders WHERE ref = $1"
SEGMENT = "SELECT count(*) FROM customers WHERE segment = $1"
REF_INDEX = "CREATE INDEX CONCURRENTLY ON public.orders (ref);"
FK_INDEX = "CREATE INDEX CONCURRENTLY ON public.orders (customer_id);"


def advised_store(pg: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Build once per session (the browser tests use it too): {url, config, datname}.

    Kept in the session's base temp folder rather than a fixture's cache, so test modules that
    import this (under another module name) still share one build.
    """
    folder = tmp_path_factory.getbasetemp() / "advised"
    made = folder / "advised.json"
    if made.exists():
        return json.loads(made.read_text())
    folder.mkdir(exist_ok=True)
    datname = new_database(pg, "advised")
    dsn = pg.dsn(dbname=datname)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
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
    found = {"url": url, "config": str(config_file), "datname": datname}
    made.write_text(json.dumps(found))
    return found


@pytest.fixture(scope="module")
def advised(pg: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return advised_store(pg, tmp_path_factory)


def statement_id(advised: dict[str, str], text: str) -> int:
    engine = make_engine(advised["url"], readonly=True)
    try:
        ids = statement_ids_by_text(engine, 1, [text, "no such statement"], datname=advised["datname"])
    finally:
        engine.dispose()
    assert list(ids) == [text], "the workload's statement is missing from the advised store"
    return ids[text]


def open_app(monkeypatch: pytest.MonkeyPatch, config_file: str | Path, page: str, **params: str) -> AppTest:
    monkeypatch.setenv("OBSERVATORY_CONFIG", str(config_file))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.switch_page(page)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_no_report_yet(monkeypatch, tmp_path, populated_store) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    config_file = tmp_path / "observatory.yaml"
    config_file.write_text(f"store: sqlite:///{empty}\n")
    for config in (config_file, populated_store[1]):  # no store at all; collected but never advised
        at = open_app(monkeypatch, config, INDEXES)
        message = texts(at.info)
        assert "No index advice yet" in message
        assert "observatory collect" in message and "advise_interval" in message
        assert "observatory advise --dsn" in message
        assert not at.code


def test_indexes_page_shows_the_report(monkeypatch, advised) -> None:
    at = open_app(monkeypatch, advised["config"], INDEXES, db=f"{TARGET}/{advised['datname']}")
    codes = [c.value for c in at.code]
    assert REF_INDEX in codes
    assert "CREATE INDEX CONCURRENTLY ON public.customers ((lower(email)));" in codes
    assert any(c.startswith("Index Scan using") for c in codes)  # the plan with the hypothetical index
    assert not at.warning  # HypoPG is installed: no hint
    assert "proven by the planner with HypoPG" in texts(at.markdown)
    metrics = [m.label for m in at.metric]
    assert metrics.count("Time saved per day") == 2 and "Planner cost" in metrics
    links = {e.proto.label: e.proto.page for e in at.get("page_link")}
    ref_link = f"#{statement_id(advised, REF)} {ui.md_escape('SELECT * FROM orders WHERE ref = $1')}"
    assert ref_link in links, links
    skipped = at.dataframe[-1].value  # the overview of every database comes first
    assert SEGMENT in skipped["statement"].tolist()
    assert skipped["link"].str.match(r"query\?id=\d+").all()
    assert "Index health" in texts(at.subheader)
    assert FK_INDEX in codes and "DROP INDEX CONCURRENTLY public.events_kind_created_at_idx;" in codes
    tables = "\n".join(t.value.to_string() for t in at.table)
    assert "orders\\_customer\\_id\\_fkey" in tables and "events\\_kind\\_created\\_at\\_idx" in tables
    assert "None found." in texts(at.caption)  # no invalid index here
    # Every database of the target has a report; `?db=` picks one (Query detail links that way).
    other = at.selectbox[0].options[-1]
    at = open_app(monkeypatch, advised["config"], INDEXES, db=other)
    assert f"**{other.split('/', 1)[1].replace('_', chr(92) + '_')}** on **{TARGET}**" in texts(at.caption)


def test_query_detail_shows_the_suggested_index(monkeypatch, advised) -> None:
    at = open_app(monkeypatch, advised["config"], QUERY, id=str(statement_id(advised, REF)))
    assert "Suggested index" in texts(at.subheader)
    assert REF_INDEX in [c.value for c in at.code]
    assert "→" in texts(at.markdown) and "proven with HypoPG" in texts(at.markdown)
    links = [e.proto for e in at.get("page_link")]
    assert any(link.label == "All index suggestions for this database" for link in links)


def test_query_detail_says_why_no_index(monkeypatch, advised) -> None:
    at = open_app(monkeypatch, advised["config"], QUERY, id=str(statement_id(advised, SEGMENT)))
    assert "Suggested index" not in texts(at.subheader)
    assert "No index suggested: " in texts(at.caption)


def test_a_pasted_statement_is_advised_on_now(monkeypatch, advised) -> None:
    at = open_app(monkeypatch, advised["config"], INDEXES, db=f"{TARGET}/{advised['datname']}")
    assert at.selectbox[-1].value.startswith(f"{TARGET}/")  # the form's database: a report's
    at.text_area[0].input("SELECT * FROM orders WHERE region = $1 AND channel = $2")
    (submit,) = [b for b in at.button if b.label == "Advise"]
    submit.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "CREATE INDEX CONCURRENTLY ON public.orders (region, channel);" in [c.value for c in at.code]
