"""The Tables & maintenance page on real data: a real PostgreSQL database, real collector cycles into a
real store (the tables part, server_stats and the recorded statements), then the page through AppTest
and in Chromium.

The database holds `events` (the largest, filtered by `created_at > now() - interval '1 day'` in its
workload, and growing), a table whose name is Markdown and HTML, updated in full (half its rows
dead), and `scanned`, read only by sequential scans.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from playwright.sync_api import Page

from dashboard.analysis import tables as analysis
from dashboard.core.health.server import XID_LIMIT
from dashboard.store import Store
from dashboard.store.reads import target_details
from dashboard.ui import frame as ui
from tests.support import cycles
from tests.support.apptest import charts, no_exception, open_page, sql_blocks, texts
from tests.support.browser import chart_texts, charts_drawn, serve, settle, shoot
from tests.support.postgres import advisor_dsn, new_database
from tests.support.stores import collect_once, make_config

MARKUP = "<b>x</b> **lines** [a](http://x.test)"  # a table name Markdown and HTML would read
MARKED = f'public."{MARKUP}"'  # as the collector names it: format('%I.%I')
EVENTS_QUERY = "SELECT count(*) FROM events WHERE created_at > now() - interval '1 day'"
OFF = "WITH (autovacuum_enabled = off)"
SECTIONS = ("largest", "growth", "dead", "sequential", "wraparound", "partitioning")  # drawn once opened


def _flush(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_stat_force_next_flush()")  # counters reach the views at once


@pytest.fixture(scope="module")
def scenario(pg, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Three collector cycles 5 minutes apart: the setup, then the workload, then growth."""
    folder = tmp_path_factory.mktemp("tables")
    url = f"sqlite:///{folder / 'store.db'}"
    name = new_database(pg, "tables")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE events (id serial PRIMARY KEY, created_at timestamptz, payload text) {OFF}"
        )
        conn.execute(
            "INSERT INTO events (created_at, payload) SELECT now() - g * interval '1 minute', "
            "repeat('x', 200) FROM generate_series(1, 40000) g"
        )
        conn.execute(f'CREATE TABLE "{MARKUP}" (id int PRIMARY KEY, qty int) {OFF}')
        conn.execute(f'INSERT INTO "{MARKUP}" SELECT g, 1 FROM generate_series(1, 20000) g')
        conn.execute(f"CREATE TABLE scanned (id int PRIMARY KEY, qty int) {OFF}")
        conn.execute("INSERT INTO scanned SELECT g, g % 10 FROM generate_series(1, 15000) g")
        _flush(conn)  # the inserts counted before VACUUM sets the live rows
        conn.execute("VACUUM ANALYZE")
        _flush(conn)
    dsn = advisor_dsn(pg, name)  # pg_monitor: every table's statistics and sizes, every statement
    config = make_config(url, [{"name": "t", "dsn": dsn, "interval": "60s", "advise": False}])
    store = Store(url)
    now = int(time.time())
    try:
        collect_once(config, store, now - 600)  # the baseline: counters and statements
        with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
            conn.execute(f'UPDATE "{MARKUP}" SET qty = qty + 1')  # every row gets a dead version
            for _ in range(5):
                conn.execute("SELECT count(*) FROM scanned WHERE qty > 5").fetchone()
            for _ in range(30):
                conn.execute(EVENTS_QUERY).fetchone()
            _flush(conn)
        collect_once(config, store, now - 300)
        with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO events (created_at, payload) SELECT now(), repeat('y', 200) "
                "FROM generate_series(1, 20000)"
            )
            _flush(conn)
        collect_once(config, store, now)
        details = target_details(store.engine, store.target_id("postgres", "t"))
    finally:
        store.close()
    config_file = folder / "observatory.yaml"
    config_file.write_text(
        f"store: {url}\ntargets:\n  postgres:\n    - name: t\n      dsn: {dsn}\n      interval: 60s\n"
        "      advise: false\n"
    )
    yield {"config": str(config_file), "details": details, "datname": name}


# -- the analysis, on the stored statements' kind of text ----------------------------------------
@pytest.mark.parametrize(
    ("text", "column", "why"),
    [
        ("SELECT count(*) FROM events WHERE created_at > now() - interval $1", "created_at", "its name"),
        ("SELECT * FROM public.events e WHERE e.ts BETWEEN $1 AND $2", "ts", "its name"),
        ("SELECT * FROM events WHERE placed >= '2024-01-01'", "placed", "a date it is compared with"),
        (
            "DELETE FROM events WHERE expires < $1::timestamptz",
            "expires",
            "a timestamptz it is compared with",
        ),
        (
            "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM events v WHERE v.user_id = u.id AND "
            "v.seen > now() - interval $1)",
            "seen",
            "now() it is compared with",
        ),
    ],
)
def test_time_ranges_are_found_and_their_table_resolved(text: str, column: str, why: str) -> None:
    (found,) = analysis.time_ranges(text)
    assert (found.table, found.column, found.why) == ("events", column, why)


def test_what_is_not_a_time_range() -> None:
    assert analysis.time_ranges("SELECT * FROM events WHERE qty > $1") == []
    assert analysis.time_ranges("SELECT * FROM a, b WHERE created_at > $1") == []  # which table: unknown
    assert analysis.time_ranges("SELECT * FROM (((") is None
    assert analysis.time_ranges("VACUUM events") is None


def test_names_as_postgresql_quotes_them() -> None:
    assert analysis.split_name('public."Order Lines"') == ("public", "Order Lines")
    assert analysis.split_name('"a.b"."c""d"') == ("a.b", 'c"d')
    assert analysis.split_name("public.events") == ("public", "events")


# -- the page -----------------------------------------------------------------------------------
def test_the_page(monkeypatch, scenario) -> None:
    started = time.monotonic()
    at = open_page(monkeypatch, scenario["config"], "tables", window="1h")
    print(f"AppTest run in {time.monotonic() - started:.2f} s")
    no_exception(at)
    assert at.title[0].value == "Tables & maintenance"
    # At first no table is a grid: each is drawn once its expander is opened (issue 11).
    assert not at.dataframe and len(charts(at)) == 2
    assert "Size rank 1" not in texts(at.markdown) and not at.get("page_link")
    labels = [e.label for e in at.expander]
    assert len(labels) == len(SECTIONS) and labels[:2] == [
        "The 3 largest of the 3 tables read",
        "Fastest-growing tables (2 grew)",
    ], labels
    for section in SECTIONS:
        at.session_state[f"tables:{section}:t"] = True
    at.run()
    no_exception(at)
    frames = {tuple(d.value.columns): d.value for d in at.dataframe}
    sizes = next(f for cols, f in frames.items() if "toast_bytes" in cols)
    assert sizes["table"].tolist()[:3] == ["public.events", MARKED, "public.scanned"]  # largest first
    assert sizes["total_bytes"].is_monotonic_decreasing

    growing = next(f for cols, f in frames.items() if "grown_bytes" in cols)
    assert growing["table"].iloc[0] == "public.events" and growing["per_day"].iloc[0] > 0

    dead = next(f for cols, f in frames.items() if "dead_ratio" in cols).set_index("table")
    assert dead.index[0] == MARKED  # highest dead ratio first
    assert 0.45 < dead.loc[MARKED, "dead_ratio"] < 0.55 and dead.loc[MARKED, "flag"] == "⚠ vacuum"
    assert dead.loc[MARKED, "modified_since_analyze"] == 20000
    assert dead.loc["public.scanned", "flag"] == "" and dead.loc["public.scanned", "vacuum"] != "never"
    warnings = texts(at.warning)
    assert f"**{ui.md_escape(MARKED)}** (50%)" in warnings and "autovacuum_vacuum_scale_factor" in warnings
    assert f"VACUUM (ANALYZE) {MARKED};" in sql_blocks(at)
    metric = {m.label: m.value for m in at.metric}
    assert metric["Tables with many dead rows"] == "1"

    scans = next(f for cols, f in frames.items() if "rows_per_scan" in cols).set_index("table")
    assert scans.loc["public.scanned", "seq_scan"] >= 5 and scans.loc["public.scanned", "idx_scan"] == 0
    assert scans.loc["public.scanned", "rows_per_scan"] == pytest.approx(15000, rel=0.01)

    oldest = next(f for cols, f in frames.items() if "xid_left" in cols and "table" in cols)
    assert (oldest["xid_left"] + oldest["xid_age"] == XID_LIMIT).all() and not oldest["flag"].any()
    server = scenario["details"].server_stats
    if server is not None and server.databases:  # the server_stats part: ages per database
        databases = next(f for cols, f in frames.items() if "database" in cols)
        assert scenario["datname"] in databases["database"].tolist()

    markdown = texts(at.markdown)
    assert f"**{ui.md_escape('public.events')}** · " in markdown and "**created\\_at**" in markdown
    assert "Size rank 1" in markdown and "Column types are not known to the store" in markdown
    links = [link.label for link in at.get("page_link")]
    (link,) = [label for label in links if "FROM events" in label]  # the statement behind it
    assert ui.md_escape("SELECT count(*) FROM events WHERE created_at > now() - interval $1") in link

    everything = "\n".join([markdown, warnings, texts(at.caption), *links])
    assert "<b>" not in everything and "**lines**" not in everything and "](http" not in everything

    drawn = {c["title"]: c for c in charts(at)}
    assert list(drawn) == ["Dead rows", "Total size of the largest tables"]
    assert [s["label"] for s in drawn["Dead rows"]["series"]] == [MARKED]
    assert drawn["Dead rows"]["series"][0]["values"][-2:] == [20000.0, 20000.0]
    labels = [s["label"] for s in drawn["Total size of the largest tables"]["series"]]
    assert labels[:2] == ["public.events", MARKED]


def test_a_target_whose_tables_were_not_read_yet(monkeypatch, tmp_path) -> None:
    """A store written by a collector without the tables part (an older one): the page says so."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.write_cycle(cycles.cycle(int(time.time()) - 60, {1: 5.0}))
    store.close()
    config_file = tmp_path / "observatory.yaml"
    config_file.write_text(f"store: {url}\n")
    at = open_page(monkeypatch, config_file, "tables")
    no_exception(at)
    assert "Tables not read yet" in texts(at.info)
    assert not at.dataframe and not charts(at)


def test_the_page_in_chromium(page: Page, scenario, tmp_path_factory) -> None:
    with serve(scenario["config"], tmp_path_factory) as url:
        started = time.monotonic()
        page.goto(f"{url}/tables?window=1h")
        page.get_by_role("heading", name="Tables & maintenance").wait_for()
        settle(page)
        drawn = charts_drawn(page, 2)
        settled = time.monotonic() - started
        print(f"Tables page settled in {settled:.2f} s with {drawn} charts")
        assert {"Dead rows", "Total size of the largest tables"} <= set(chart_texts(page))
        assert MARKED in chart_texts(page)  # the legend shows the name as text
        assert page.locator("[data-testid='stException']").count() == 0
        body = page.locator("body").inner_text().replace(ui.WORD_JOINER, "")
        assert MARKED in body and "Partitioning candidates" in body
        markdown = page.locator("[data-testid='stMarkdownContainer']")
        assert markdown.locator("a[href*='x.test'], b").count() == 0
        # The candidates are drawn once their section is opened; their names stay text there too.
        page.locator("[data-testid='stExpander']").filter(has_text="time range").locator("summary").click()
        page.get_by_text("Size rank 1", exact=False).first.wait_for()
        settle(page)
        assert page.locator("a[href*='query?id=']").filter(has_text="FROM events").count() == 1
        assert markdown.locator("a[href*='x.test'], b").count() == 0
        assert page.locator("[data-testid='stException']").count() == 0
        shoot(page, "tables")
    assert settled < 20
