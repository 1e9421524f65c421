"""The Investigate page through AppTest and in Chromium, on a real server: a pasted statement and a
recorded one (`?id=N`, from Query detail) explained, ANALYZE only where the target allows it, refusals,
hostile names shown as text, and a saved plan compared with the current one.

The server is the session's throwaway PostgreSQL with the shop schema and HypoPG (the least-privilege
advisor role connects); the recorded statements come from the `advised` store, made the way the
daemon makes it.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, Page
from psycopg.conninfo import conninfo_to_dict

from dashboard.analysis import investigate
from dashboard.core import sources
from dashboard.plans import document
from dashboard.plans.compare import compare
from dashboard.plans.document import PlanDocument
from dashboard.plans.tree import read_plan
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.ui import frame as ui
from dashboard.ui import plan_view
from tests.support.advised import REF, REF_INDEX, TARGET, statement_id
from tests.support.apptest import (
    empty_store_config,
    no_exception,
    open_page,
    sql_blocks,
    texts,
)
from tests.support.browser import CELLS, serve, settle, shoot
from tests.support.postgres import advisor_dsn, shop_dsn

JOIN = (
    "SELECT c.segment, count(*), sum(o.total) FROM orders o JOIN customers c ON c.id = o.customer_id "
    "WHERE o.region = $1 GROUP BY c.segment"
)
HOSTILE_TABLE = "<img src=x onerror=alert(1)>**b** :red[r]"
HOSTILE_COLUMN = "<script>alert(2)</script>"
HOSTILE_DB = "inv <i>x</i> **b**"
BROWSER_BUDGET_S = 8.0  # from goto to the plan's chart and table drawn, the server's EXPLAIN included


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shop(pg: ThrowawayPostgres) -> str:
    """The advisor role's DSN of a fresh shop database (HypoPG installed)."""
    return shop_dsn(pg, "investigate")


def config_file(folder: Path, dsn: str, *, analyze: bool = True, name: str = "shop") -> Path:
    """An observatory.yaml of an empty store and one PostgreSQL target."""
    more = "\n      explain_analyze: true" if analyze else ""
    rest = f"targets:\n  postgres:\n    - name: {name}\n      dsn: {json.dumps(dsn)}{more}\n"
    return empty_store_config(folder, rest)


def database_of(dsn: str) -> str:
    return conninfo_to_dict(dsn)["dbname"]


def explain_button(at):
    (button,) = [b for b in at.button if b.label == "Explain"]
    return button


def alerts(at) -> str:
    """Every finding, error and note, as the run wrote them (Markdown)."""
    return "\n".join(texts(kind) for kind in (at.error, at.warning, at.info))


def icicle(at) -> str:
    """The icicle's HTML (one element on the page)."""
    (body,) = [e.proto.body for e in at.get("html") if 'class="icicle"' in e.proto.body]
    return body


def icicle_blocks(body: str) -> dict[str, tuple[str, float]]:
    """node id -> (parent id, value drawn), from the icicle's HTML."""
    found = re.findall(r'data-node="(\d+)" data-parent="(\d*)" data-value="([^"]+)"', body)
    return {node: (parent, float(value)) for node, parent, value in found}


def markup_free(at) -> str:
    """Every Markdown text of the run, asserted to hold no markup: returned joined."""
    found = []
    for kind in (at.markdown, at.caption, at.error, at.warning, at.info, at.subheader, at.title):
        found += [str(e.value) for e in kind]
    found += [m.label for m in at.metric]
    joined = "\n".join(found)
    tag = re.search(r"(?<!\\)<[a-z/]", joined)  # '<' starts a tag unless escaped ('\<')
    assert tag is None, joined[max(tag.start() - 80, 0) : tag.end() + 80]
    for raw in ("**b**", "**x**", ":red[r]", ":red[y]"):
        assert raw not in joined, raw
    return joined


def page_plan_json(at) -> str:
    """The plan the page shows, from its JSON expander."""
    at.session_state["inv.plan:json"] = True
    at.run()
    bodies = [html.unescape(e.proto.body) for e in at.get("html")]
    (body,) = [b for b in bodies if '"Node Type"' in b]
    return body.removeprefix(body[: body.index(">") + 1]).removesuffix("</pre>")


# -- a pasted statement ---------------------------------------------------------------------------
def test_a_pasted_statement_is_explained_then_analyzed(monkeypatch, tmp_path, shop) -> None:
    at = open_page(monkeypatch, config_file(tmp_path, shop), "investigate")
    no_exception(at)
    assert not at.metric and not at.dataframe  # nothing runs on opening the page
    assert [s.value for s in at.selectbox] == ["shop"] and at.text_input[0].value.startswith("investigate_")
    at.text_area[0].input(JOIN).run()
    assert [t.label for t in at.text_input] == ["Database", "$1"]  # one input per placeholder
    explain_button(at).click().run()
    no_exception(at)
    assert not at.error or "Sequential scan" in texts(at.error), texts(at.error)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Execution time"] == "not run" and float(metrics["Total cost"].replace(",", "")) > 1000
    assert "a generic plan" in texts(at.caption)  # $1 without a value
    # The findings in words, each pointing at its node; the same node flagged in the tree.
    tree = at.dataframe[0].value
    scans = tree[tree["node"].str.contains("Seq Scan on public.orders")]
    assert len(scans) == 1 and "seq_scan" in scans["findings"].iloc[0], tree.to_string()
    label = scans["node"].iloc[0].strip().removeprefix("↳ ")
    assert ui.md_escape(f"#{scans['id'].iloc[0]} {label}") in alerts(at)  # the finding names its node
    assert "actual_rows" not in tree  # estimated: no actual rows, loops or buffers
    assert tree["hot"].iloc[0] == plan_view.HOT and 0.99 < tree["share"].sum() < 1.01
    # One icicle, each parent at least as large as its children together.
    blocks = icicle_blocks(icicle(at))
    values = {node: value for node, (_, value) in blocks.items()}
    for node in blocks:
        children = [value for (parent, value) in blocks.values() if parent == node]
        assert values[node] >= sum(children) - 1e-9, node
    assert "0" in blocks and set(blocks) <= {str(i) for i in tree["id"]}  # a node too thin is left out
    assert values["0"] == pytest.approx(float(metrics["Total cost"].replace(",", "")), rel=0.01)
    assert [b.proto.label for b in at.get("download_button")] == ["Download the plan (JSON)"]
    assert at.query_params["sql"] == JOIN and at.query_params["target"] == "shop"

    # Sample values, then ANALYZE: actual rows, loops, buffers and times.
    (fill,) = [b for b in at.button if b.label == "Fill with sample values"]
    fill.click().run()
    no_exception(at)
    value = at.text_input[1].value
    assert value.isdigit() and 0 <= int(value) < 200, value  # a region from pg_stats
    at.checkbox[0].check().run()
    explain_button(at).click().run()
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Execution time"].endswith(("ms", " s")), metrics
    tree = at.dataframe[0].value
    assert {"actual_rows", "loops", "hit", "read", "misestimate"} <= set(tree)
    assert tree["loops"].iloc[0] == 1 and tree["actual_rows"].iloc[0] == 3  # three segments
    assert tree["hit"].iloc[0] + tree["read"].iloc[0] > 0  # the root's buffers hold its children's
    assert at.query_params["analyze"] == "1"


def test_a_saved_plan_compares_with_the_current_one(monkeypatch, tmp_path, pg, shop) -> None:
    """A plan saved earlier (EXPLAIN (FORMAT JSON) output, say from psql on another day) is uploaded
    and compared with the one on the page: where and when it was taken, the summary in words, the
    changed nodes, both plans side by side."""
    statement = REF.replace("$1", "'R-7'")
    with psycopg.connect(pg.dsn(dbname=database_of(shop))) as conn:
        conn.execute("CREATE INDEX ON orders (ref)")  # another day: with an index since dropped
        (saved,) = conn.execute(f"EXPLAIN (FORMAT JSON) {statement}").fetchone()
        conn.rollback()
    at = open_page(monkeypatch, config_file(tmp_path, shop), "investigate")
    at.text_area[0].input(statement).run()
    explain_button(at).click().run()
    tables = len(at.dataframe)
    at.session_state["inv.load"] = True
    at.run()
    name = "<b>plan</b> monday.json"
    taken = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    doc = PlanDocument(read_plan(saved), statement, "erp-replica", "shop", 150004, taken, "EXPLAIN")
    at.file_uploader[0].upload(name, document.dumps(doc).encode(), "application/json").run()
    no_exception(at)
    markup_free_text = markup_free(at)
    assert "The saved plan and this one" in texts(at.subheader)
    facts = ("erp-replica", "shop", "PostgreSQL 15.4", ui.utc(taken.timestamp()))
    assert f"Taken on {' · '.join(map(ui.md_escape, facts))}" in texts(at.caption)
    current = read_plan(page_plan_json(at))
    expected = compare(read_plan(saved), current)
    assert "Index Scan" in expected.summary and "Seq Scan" in expected.summary, expected.summary
    assert ui.md_escape(expected.summary) in markup_free_text
    assert len(at.dataframe) == tables  # the comparison is text: no grid to load
    (listed,) = [m.value for m in at.markdown if m.value.startswith("- **")][-1:]
    assert listed == plan_view.change_lines(expected, expected.changed)
    assert len(listed.splitlines()) == len(expected.changed) > 0
    outlines = [html.unescape(e.proto.body) for e in at.get("html")][-2:]  # the two plans, side by side
    assert "Index Scan using orders_ref_idx on orders" in outlines[0], outlines  # saved without VERBOSE
    assert "Seq Scan on public.orders" in outlines[1], outlines
    assert f"**{ui.md_escape(f'Saved: {name}')}**" in texts(at.markdown)
    # Something that is not a plan says why.
    at.file_uploader[0].set_value(("notes.json", b'{"rows": 1}', "application/json")).run()
    no_exception(at)
    assert any(e.value.startswith("Not a plan: ") for e in at.error), texts(at.error)


def test_a_saved_plan_opens_without_a_server(monkeypatch, tmp_path) -> None:
    node = {"Node Type": "Seq Scan", "Relation Name": HOSTILE_TABLE, "Alias": "t", "Total Cost": 10.0}
    plan = [{"Plan": node | {"Startup Cost": 0.0, "Plan Rows": 100, "Plan Width": 8}}]
    at = open_page(monkeypatch, empty_store_config(tmp_path), "investigate")
    no_exception(at)
    assert "No PostgreSQL target is configured" in texts(at.info) and not at.text_area
    at.session_state["inv.load"] = True
    at.run()
    at.text_area[0].input(json.dumps(plan)).run()
    no_exception(at)
    markup_free(at)
    assert at.dataframe[0].value["node"].tolist() == [f"Seq Scan on {HOSTILE_TABLE} t"]
    body = icicle(at)
    assert "<img" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body


# -- a recorded statement -------------------------------------------------------------------------
def test_a_recorded_statement_opens_from_query_detail(monkeypatch, advised) -> None:
    sid = statement_id(advised, REF)
    at = open_page(monkeypatch, advised["config"], "query", id=str(sid))
    links = {e.proto.label: e.proto for e in at.get("page_link")}
    link = links["Explain this statement"]
    assert link.page == sources.page("investigate").url_path and link.query_string == f"id={sid}"

    at = open_page(monkeypatch, advised["config"], "investigate", id=str(sid))
    no_exception(at)
    assert at.text_area[0].value == REF
    assert f"Recorded statement #{sid} on {ui.md_escape(TARGET)}" in texts(at.caption)
    # Its estimated plan at once (cheap, runs nothing), with the advisor's index before and after.
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Execution time"] == "not run"
    assert REF_INDEX in sql_blocks(at)
    assert "With the index the advisor proposes" in texts(at.subheader)
    assert icicle(at) and at.dataframe
    # ANALYZE is not allowed on this target: the box is disabled, and the caption says how to allow it.
    (box,) = at.checkbox
    assert box.disabled and not box.value
    assert "`explain_analyze: true`" in texts(at.caption)


def test_links_never_run_analyze_and_unknown_ids_say_so(monkeypatch, tmp_path, advised, shop) -> None:
    sid = statement_id(advised, REF)
    at = open_page(monkeypatch, advised["config"], "investigate", id=str(sid), analyze="1")
    no_exception(at)
    assert not at.checkbox[0].value and not at.metric  # not allowed here, and never run from a link
    at = open_page(monkeypatch, config_file(tmp_path, shop), "investigate", sql="SELECT 1", analyze="1")
    no_exception(at)
    # A `?sql=` link is anyone's text: it fills the form, but never ticks ANALYZE.
    assert not at.checkbox[0].value and at.text_area[0].value == "SELECT 1" and not at.metric
    at = open_page(monkeypatch, advised["config"], "investigate", id="424242")
    no_exception(at)
    assert texts(at.error) == "No recorded statement with id '424242' in this store."
    assert not at.metric and at.text_area[0].value == ""
    at = open_page(monkeypatch, advised["config"], "investigate", sql="x" * (investigate.SQL_LINK_MAX + 1))
    assert "over 2,000 characters" in texts(at.warning) and at.text_area[0].value == ""


# -- what is refused, and hostile names -----------------------------------------------------------
@pytest.mark.parametrize(
    "statement",
    ["SELECT 1; DELETE FROM orders", "DROP TABLE orders", "COMMIT", "CREATE INDEX ON orders (ref)"],
)
def test_a_refused_statement_shows_why_and_no_plan(monkeypatch, tmp_path, pg, shop, statement) -> None:
    at = open_page(monkeypatch, config_file(tmp_path, shop), "investigate")
    at.text_area[0].input(statement).run()
    explain_button(at).click().run()
    no_exception(at)
    (error,) = [e.value for e in at.error]
    assert error.startswith(ui.md_escape("Not explained: ")), error
    assert not at.dataframe and not any('class="icicle"' in e.proto.body for e in at.get("html"))
    assert not at.metric
    with psycopg.connect(pg.dsn(dbname=database_of(shop))) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (300_000,)
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'orders'").fetchone() == (1,)


@pytest.fixture(scope="module")
def hostile(pg: ThrowawayPostgres) -> str:
    """A database with markup in its own name, a table's and a column's: the advisor role's DSN."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{HOSTILE_DB}"')
    with psycopg.connect(pg.dsn(), dbname=HOSTILE_DB, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{HOSTILE_TABLE}" (id int, "{HOSTILE_COLUMN}" text)')
        conn.execute(f"INSERT INTO \"{HOSTILE_TABLE}\" SELECT g, 'v' || g FROM generate_series(1, 50000) g")
        conn.execute(f'ANALYZE "{HOSTILE_TABLE}"')
    return advisor_dsn(pg, urllib.parse.quote(HOSTILE_DB, safe=""))


def test_hostile_names_are_shown_as_text(monkeypatch, tmp_path, hostile) -> None:
    statement = (
        f'SELECT * FROM "{HOSTILE_TABLE}" WHERE "{HOSTILE_COLUMN}" = \'<b>**x**</b> :red[y]\' -- <img src=y>'
    )
    at = open_page(monkeypatch, config_file(tmp_path, hostile), "investigate")
    assert at.text_input[0].value == HOSTILE_DB
    at.text_area[0].input(statement).run()
    explain_button(at).click().run()
    no_exception(at)
    shown = markup_free(at)
    assert ui.md_escape(HOSTILE_DB) in shown  # the database, escaped, in the caption above the plan
    assert ui.md_escape(f"public.{HOSTILE_TABLE}") in shown  # a finding or the node caption
    nodes = at.dataframe[0].value["node"].tolist()
    assert any(HOSTILE_TABLE in n for n in nodes), nodes  # a grid cell is text: as written
    labels = icicle(at)
    assert "<img" not in labels and "&lt;img" in labels and "<script" not in labels
    for element in at.get("html"):  # the node's details: escaped
        assert "<script" not in element.proto.body and "<img" not in element.proto.body


# -- pieces ---------------------------------------------------------------------------------------
def test_the_icicle_holds_init_plans(pg, shop) -> None:
    """An InitPlan's time is not inside its parent's: the parent is raised to hold its children."""
    with psycopg.connect(pg.dsn(dbname=database_of(shop))) as conn:
        (raw,) = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT (SELECT max(total) FROM orders), id FROM customers LIMIT 3"
        ).fetchone()
    plan = read_plan(raw)
    assert any(n.detail.get("Parent Relationship") == "InitPlan" for n in plan.nodes)
    values = plan_view.icicle_values(plan)
    for node in plan.nodes:
        assert values[node.id] >= sum(values[c] for c in node.children)
        assert values[node.id] >= plan.inclusive(node)
    assert values[0] > plan.inclusive(plan.root)  # the InitPlan's scan outgrew the Limit
    boxes = {b.node.id: b for b in plan_view.icicle_boxes(plan)}
    assert boxes[0].left == 0 and boxes[0].width == 1
    for b in boxes.values():  # each block under its parent, as wide as its share of the parent's value
        if b.node.parent is not None:
            up = boxes[b.node.parent]
            assert up.left - 1e-9 <= b.left and b.left + b.width <= up.left + up.width + 1e-9
            assert b.width == pytest.approx(up.width * values[b.node.id] / values[up.node.id])


def test_deep_links_read() -> None:
    link = investigate.link({"id": "12", "sql": "SELECT 2", "analyze": "1", "target": "a", "db": "b"})
    assert (link.id, link.sql, link.analyze, link.target, link.db) == (12, None, True, "a", "b")
    assert investigate.link(link.params()) == link
    assert investigate.link({"id": "12; DROP"}).bad_id == "12; DROP"
    long = investigate.link({"sql": "x" * (investigate.SQL_LINK_MAX + 1)})
    assert long.sql is None and long.sql_cut
    assert investigate.link({"analyze": "0"}).analyze is False


# -- in Chromium ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def investigate_app(advised: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    with serve(advised["config"], tmp_path_factory) as url:
        yield url, advised


def test_the_page_draws_a_plan_in_chromium(
    browser: Browser, investigate_app: tuple[str, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    """Opened from Query detail's link: the estimated plan at once, its icicle and tree drawn. Timed
    twice: the server's first run of the page (its modules imported, the plan asked for), then a new
    session (modules loaded, the plan from the cache)."""
    url, advised = investigate_app
    sid = statement_id(advised, REF)
    context = browser.new_context(viewport={"width": 1440, "height": 3000})
    took = [drawn(context.new_page(), f"{url}/investigate?id={sid}") for _ in range(2)]
    page = context.pages[-1]
    assert page.locator("div.icicle").count() == 1  # one icicle, HTML: no chart library to load
    assert page.locator("div.icicle .block").count() >= 1
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("Sequential scan of public.orders").count() >= 1
    shoot(page, "investigate")
    # The plan file, made once clicked: it loads back, and names where and when it was taken.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the plan (JSON)").click()
    saved = document.loads(Path(download.value.path()).read_bytes())
    assert download.value.suggested_filename.startswith(f"plan-{TARGET}-{advised['datname']}-")
    assert (saved.target, saved.database, saved.statement) == (TARGET, advised["datname"], REF)
    assert any("Seq Scan on public.orders" in n.label for n in saved.plan.nodes)
    context.close()
    with capsys.disabled():
        print(f"\nInvestigate ?id={sid}: plan drawn {took[0]:.2f} s (first run), {took[1]:.2f} s (again)")
    assert took[1] < BROWSER_BUDGET_S, took


def drawn(page: Page, url: str) -> float:
    """Seconds from goto until the page has settled with its icicle and the tree's cells drawn."""
    started = time.monotonic()
    page.goto(url)
    page.get_by_role("heading", name="Investigate").wait_for()
    settle(page)
    page.locator("div.icicle .block").first.wait_for(state="attached", timeout=30_000)
    page.locator(CELLS).filter(has_text="Seq Scan on public.orders").first.wait_for(state="attached")
    return time.monotonic() - started


def test_a_recorded_statements_plan_history_compares_two_dates(monkeypatch, tmp_path, pg, advised) -> None:
    """The advisor kept the statement's plan (a sequential scan); a later run found another shape (an
    index since created): the history lists both, marks the change, and compares the two dates."""
    copy = tmp_path / "store.db"
    shutil.copy(advised["url"].removeprefix("sqlite:///"), copy)
    config = tmp_path / "observatory.yaml"
    config.write_text(Path(advised["config"]).read_text().replace(advised["url"], f"sqlite:///{copy}"))
    with psycopg.connect(pg.dsn(dbname=advised["datname"])) as conn:
        conn.execute("CREATE INDEX ON orders (ref)")  # the index someone created later
        (later,) = conn.execute("EXPLAIN (FORMAT JSON) SELECT * FROM orders WHERE ref = 'R-7'").fetchone()
        conn.rollback()
    store = Store(f"sqlite:///{copy}")
    try:
        added = store.write_plans(
            "postgres", TARGET, advised["datname"], int(time.time()) + 3600, {REF: later}
        )
    finally:
        store.close()
    assert added == 1
    at = open_page(monkeypatch, config, "investigate", id=str(statement_id(advised, REF)))
    no_exception(at)
    (history,) = [e for e in at.expander if e.label.startswith("Plan history")]
    assert history.label == "Plan history: 2 plans, changed 1 time"
    at.session_state["inv.history"] = True
    at.run()
    no_exception(at)
    (listed,) = [m.value.splitlines() for m in at.markdown if "UTC to " in m.value]
    assert len(listed) == 2 and "the plan changed" in listed[0] and "the plan changed" not in listed[1]
    became = "Seq Scan on orders became Index Scan using orders\\_ref\\_idx"  # no VERBOSE
    assert any(became in m.value for m in at.markdown), texts(at.markdown)
