"""Every page through Streamlit's AppTest, on an empty store and on a store of a real workload.

AppTest runs the real entrypoint (dashboard/app.py) and the real page scripts in-process; the
store is chosen the way `observatory serve` chooses it, through $OBSERVATORY_CONFIG.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from dashboard.analysis.sqltext import format_sql
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.reads import Window, statement_totals
from dashboard.ui import frame as ui
from tests.support import cycles
from tests.support.apptest import (
    charts,
    empty_store_config,
    no_exception,
    open_app,
    page_file,
    sql_blocks,
    texts,
)

QUERIES = page_file("queries")
QUERY = page_file("query")


@pytest.fixture
def empty_config(tmp_path: Path) -> Path:
    """A config naming an existing but empty SQLite file, as a fresh `touch store.db` leaves it."""
    return empty_store_config(tmp_path)


@pytest.fixture(scope="module")
def orders_statement(populated_store: tuple[str, str]) -> int:
    """The id of the workload's most expensive statement that reads `orders`."""
    url, _ = populated_store
    engine = make_engine(url, readonly=True)
    try:
        frame = statement_totals(engine, [1], Window(0, 2**40), "raw", text="from orders")
    finally:
        engine.dispose()
    assert len(frame), "the workload's statements are missing from the populated store"
    return int(frame["statement_id"].iloc[0])


# -- empty store --------------------------------------------------------------------------------
def test_empty_store_overview_says_there_is_no_data(monkeypatch, empty_config) -> None:
    at = open_app(monkeypatch, empty_config)
    no_exception(at)
    message = texts(at.info)
    assert "No data yet" in message
    assert "observatory collect" in message
    assert not at.metric
    assert "Targets: none has data yet" in texts(at.sidebar.caption)  # not a heading over nothing


def test_empty_store_other_pages_render(monkeypatch, empty_config) -> None:
    at = open_app(monkeypatch, empty_config)
    at.switch_page(QUERIES).run()
    no_exception(at)
    assert "No data yet" in texts(at.info)
    assert not at.dataframe
    at.switch_page(QUERY).run()
    no_exception(at)
    assert "No statement chosen" in texts(at.info)


def test_config_error_is_explained(monkeypatch, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: mysql://nope\n")
    at = open_app(monkeypatch, bad)
    no_exception(at)
    assert texts(at.error) == "The configuration cannot be used:"
    assert "store must be" in at.code[0].value  # the message itself, as text


# -- populated store ----------------------------------------------------------------------------
def test_overview_shows_the_workload(monkeypatch, populated_store) -> None:
    at = open_app(monkeypatch, populated_store[1])
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Calls per second"]) > 0
    assert metrics["Buffer cache hit ratio"].endswith("%")
    drawn = {c["title"]: c for c in charts(at)}
    assert {"Query time", "Calls per second", "Mean time", "Buffer cache hit ratio"} <= set(drawn)
    calls = [v for s in drawn["Calls per second"]["series"] for v in s["values"] if v is not None]
    assert calls and max(calls) > 0
    assert drawn["Connections by state"]["kind"] == "area"
    bars = charts(at)[-1]
    assert bars["kind"] == "bars" and any("orders" in label for label in bars["labels"]), bars["labels"]
    links = [e.proto.label for e in at.get("page_link")]
    assert any("orders" in label for label in links), links
    assert ui.md_escape("erp-primary") in texts(at.markdown)  # names are shown escaped
    assert not at.info


def test_collector_health_names_the_daemon_collecting(monkeypatch, tmp_path) -> None:
    """A fleet's daemons share the targets: each target's card says which one holds its lease,
    escaped (a host name is text, not markup)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.write_cycle(cycles.cycle(int(time.time()) - 30, {1: 3}))
    store.take_lease("postgres", "erp", "db_host_9:31:feedbeef")
    store.close()
    config = tmp_path / "observatory.yaml"
    config.write_text(f"store: {url}\n")
    at = open_app(monkeypatch, config)
    no_exception(at)
    assert f"last collected by {ui.md_escape('db_host_9:31:feedbeef')}" in texts(at.caption)


def test_queries_lists_the_workload_statements(monkeypatch, populated_store) -> None:
    at = open_app(monkeypatch, populated_store[1])
    at.switch_page(QUERIES).run()
    no_exception(at)
    table = at.dataframe[0].value
    assert table["query"].str.contains("FROM orders").sum() >= 3, table["query"].tolist()
    assert table["calls"].sum() > 0
    assert table["link"].str.match(r"query\?id=\d+").all()
    assert table["trend"].map(len).gt(0).all()
    assert 0.99 < table["share"].sum() <= 1.0001  # shares of the window's total over every statement


def test_queries_filters_and_sorts(monkeypatch, populated_store) -> None:
    at = open_app(monkeypatch, populated_store[1])
    at.switch_page(QUERIES).run()
    at.text_input[0].input("customer = $1").run()
    no_exception(at)
    assert at.dataframe[0].value["query"].tolist() == ["SELECT count(*) FROM orders WHERE customer = $1"]
    at.text_input[0].input("").run()
    at.selectbox[0].select("calls").run()
    calls = at.dataframe[0].value["calls"].tolist()
    assert calls == sorted(calls, reverse=True)


def test_query_detail_by_id(monkeypatch, populated_store, orders_statement) -> None:
    at = open_app(monkeypatch, populated_store[1])
    at.switch_page(QUERY)
    at.query_params["id"] = str(orders_statement)
    at.run()
    no_exception(at)
    (sql,) = sql_blocks(at)
    assert "FROM orders" in sql
    assert "\n" in sql  # formatted, not the one-line original
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Calls"].rstrip("k")) > 0
    assert {"Min", "Max", "Mean", "Std dev"} <= set(metrics)
    assert [c["title"] for c in charts(at)] == [
        "Calls",
        "Mean time",
        "Total time",
        "I/O time",
        "Shared blocks",
    ]


@pytest.mark.parametrize("bad_id", ["999999", "abc"])
def test_unknown_query_id_says_so(monkeypatch, populated_store, bad_id) -> None:
    at = open_app(monkeypatch, populated_store[1])
    at.switch_page(QUERY)
    at.query_params["id"] = bad_id
    at.run()
    no_exception(at)
    assert f"No statement with id '{bad_id}'" in texts(at.error)


def test_window_comes_from_the_url(monkeypatch, populated_store) -> None:
    at = open_app(monkeypatch, populated_store[1], window="7d")
    no_exception(at)
    assert "last 7 days" in texts(at.caption)
    at = open_app(monkeypatch, populated_store[1], window="custom", range=["2024-03-01", "2024-03-05"])
    no_exception(at)
    assert "2024-03-01 to 2024-03-05 (UTC)" in texts(at.caption)
    assert "Nothing collected in this window." in texts(at.caption)  # the workload ran today


def test_target_picker_narrows_the_pages(monkeypatch, populated_store) -> None:
    at = open_app(monkeypatch, populated_store[1])
    assert at.button_group(key="targets").value == ["erp-primary"]
    at.button_group(key="targets").unselect("erp-primary").run()
    no_exception(at)
    assert "Pick at least one target" in texts(at.info)
    assert not at.metric


# -- the SQL text the pages show ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT * FROM orders WHERE id = $1", "SELECT\n  *\nFROM orders\nWHERE\n  id = $1"),
        # sqlglot 30 cannot tokenize "$1,$2": the formatter spaces them first.
        ("SELECT f($1,$2) FROM t", "SELECT\n  F($1, $2)\nFROM t"),
    ],
)
def test_format_sql_keeps_placeholders(text: str, expected: str) -> None:
    assert format_sql(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM (((",  # not SQL sqlglot can parse
        "CREATE TABLE t (id serial PRIMARY KEY)",  # DDL: sqlglot would rewrite serial
        "SELECT date_trunc('hour', ts) FROM t",  # sqlglot would upper-case the literal
        "VACUUM ANALYZE orders",
        "",
    ],
)
def test_format_sql_returns_what_it_cannot_format_faithfully(text: str) -> None:
    assert format_sql(text) == text


def test_config_and_store_errors_show_as_text(monkeypatch, tmp_path) -> None:
    """A configuration or driver error quotes what it was given: that must not render as markup."""
    hostile = "```\n![x](http://127.0.0.1:9/beacon.png)"
    config_file = tmp_path / "observatory.yaml"
    config_file.write_text(f"store: sqlite:///{tmp_path / 's.db'}\n{json.dumps(hostile)}: 1\n")
    at = open_app(monkeypatch, config_file)
    no_exception(at)
    assert texts(at.error) == "The configuration cannot be used:"
    assert "![x](http://127.0.0.1:9/beacon.png)" in at.code[0].value  # verbatim, in a code block
    config_file.write_text("store: postgresql+psycopg://u@127.0.0.1:1/db_![x](http://127.0.0.1:9/b.png)\n")
    at = open_app(monkeypatch, config_file)
    no_exception(at)
    (error,) = at.error
    assert error.value.startswith("The store cannot be opened: ") and "](http" not in error.value


def test_many_targets_are_picked_from_a_select_box(monkeypatch, tmp_path) -> None:
    """Up to PILLS_UP_TO targets the sidebar shows a chip each; beyond, a select box with search."""
    store_url = f"sqlite:///{tmp_path / 'many.db'}"
    store = Store(store_url)
    names = [f"pg-{i:02d}" for i in range(ui.PILLS_UP_TO + 1)]
    for name in names:
        store.write_cycle(dataclasses.replace(cycles.cycle(cycles.T0, {1: 5.0}), target=name))
    store.close()
    config_file = tmp_path / "observatory.yaml"
    config_file.write_text(f"store: {store_url}\n")
    at = open_app(monkeypatch, config_file)
    no_exception(at)
    assert not at.get("button_group")[1:]  # the window picker only
    assert at.multiselect[0].value == names


def test_target_chips_only_for_plain_names() -> None:
    """A chip's label is Markdown and its label is its URL value: a name Markdown would read gets the
    select box instead (it shows any name as written)."""
    assert ui.chips(["erp-primary", "cache1"])
    assert not ui.chips(["erp-primary", "down:streamlit:"])  # an icon shortcode
    assert not ui.chips(["www.evil.example"])  # an autolink
    assert not ui.chips(["_x_"]) and not ui.chips(["1."])
    assert not ui.chips([f"pg{i}" for i in range(ui.PILLS_UP_TO + 1)])
