"""Names and error texts from servers never render as markup, in the served app in a real Chromium.

A real throwaway PostgreSQL gets a role named like a Markdown image pointing at an HTTP receiver
this test runs (a tracking beacon), a database named like an HTML image, statements whose text
carries Markdown and HTML markup, and a second target whose database does not exist, so the
server's error text carries a Markdown link and Streamlit directives. Two real collection cycles
and the index advisor fill a store; `observatory serve` serves it; Overview, Queries, Query detail
and Indexes are opened. The receiver must get no request, no image or link may come out of the
texts, and each text must be shown as written.

The serve/browser helpers live in tests/support/browser.py (test modules are not imported
from one another). Nothing here skips: a server or Chromium that cannot start fails the test.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest
import yaml
from playwright.sync_api import Page
from psycopg import sql

from collectors.jobs.advisor import advise_target
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.reads import Window, statement_totals
from dashboard.ui import frame as ui
from tests.support.browser import (
    CELLS,
    chart_frame_tags,
    chart_texts,
    charts_drawn,
    serve,
    settle,
    shoot,
    sql_texts,
)
from tests.support.postgres import new_database
from tests.support.stores import collect_once, make_config

GOOD = "www.evil.example"  # target names allow [A-Za-z0-9_.:-]: a GFM autolink, literally
DOWN = "down:streamlit:"  # Streamlit's logo shortcode
MISSING_DB = "[click](javascript:alert(1)) :red[red text] $x^2$"  # in the server's error text
MARKUP = [":red[red text]", "$x^2$"]
# What charts.js and uPlot make in a chart frame (its two scripts included): a text read as markup
# would add an i, a, img or span.
FRAME_TAGS = {"div", "canvas", "table", "tbody", "thead", "tr", "th", "td", "script"}
SQL_TAGS = {"pre", "span", "button"}  # what sql_block.py and sql.js make


class Receiver:
    """An HTTP server on 127.0.0.1 that counts what it is asked for."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the hostile store, served ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture(scope="module")
def hostile(pg: ThrowawayPostgres, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The store of two real cycles of a hostile workload and the advisor's reports, served."""
    host = receiver.host
    role = f"![x](http://{host}/beacon.png)"
    datname = f"<img src=http://{host}/b2.png>"
    texts = [
        # Comments stay in pg_stat_statements' text (constants do not): links and chart labels show them.
        f"/*![q](http://{host}/q.png)*/ SELECT pg_sleep(0.3)",
        f"/*<i style='background:url(//{host}/p.png)'>*/ SELECT pg_sleep(0.25), 2",
    ]
    home = new_database(pg, "hostile")
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(datname)))
    folder = tmp_path_factory.mktemp("hostile")
    url = f"sqlite:///{folder / 'store.db'}"
    missing = f"postgresql://postgres@127.0.0.1:{pg.port}/{urllib.parse.quote(MISSING_DB, safe='')}"
    targets = [
        {"name": GOOD, "dsn": pg.dsn(dbname=home), "interval": "60s"},
        {"name": DOWN, "dsn": missing, "interval": "60s", "connect_timeout": "2s"},
    ]
    config = make_config(url, targets)
    store = Store(url)
    now = int(time.time())
    collect_once(config, store, now - 60)  # the baseline
    with psycopg.connect(pg.dsn(), user=role, dbname=datname, autocommit=True) as conn:
        for text in texts * 2:
            conn.execute(text)
    states = {c.target: c.status.state for c in collect_once(config, store, now)}
    assert states.get(DOWN) == "down", states
    advise_target(store, config.targets.postgres[0])  # a report (or its error) per database
    target_id = store.target_id("postgres", GOOD)
    store.close()
    config_file = folder / "observatory.yaml"
    config_file.write_text(yaml.safe_dump({"store": url, "targets": {"postgres": targets}}))
    engine = make_engine(url, readonly=True)
    try:
        found = statement_totals(engine, [target_id], Window(0, 2**40), "raw", text="q.png")
    finally:
        engine.dispose()
    assert len(found) == 1, "the hostile statement is missing from the store"
    with serve(str(config_file), tmp_path_factory) as app:
        yield {"url": app, "role": role, "datname": datname, "sid": int(found["statement_id"].iloc[0])}


def shown_text(page: Page) -> str:
    """The page's text as a reader sees it (md_escape's invisible word joiners left out)."""
    return page.locator("body").inner_text().replace(ui.WORD_JOINER, "")


def nothing_rendered(page: Page, receiver: Receiver, name: str) -> None:
    """No request reached the receiver, and no image, link or error came out of a text."""
    page.wait_for_timeout(1000)  # images load after the script has finished
    shoot(page, f"hostile-{name}")
    assert receiver.hits == [], receiver.hits
    images = page.locator("img").evaluate_all("els => els.map(e => e.getAttribute('src') || '')")
    assert not [src for src in images if receiver.host in src], images
    markdown = "[data-testid='stMarkdownContainer'], [data-testid='stCaptionContainer']"
    assert page.locator(f":is({markdown}) img").count() == 0  # :streamlit: is Streamlit's logo
    links = page.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href') || '')")
    bad = [h for h in links if h.lower().startswith("javascript:") or receiver.host in h or "evil." in h]
    assert not bad, bad
    assert page.locator(f":is({markdown}) :is(.katex, .stMarkdownColoredText)").count() == 0
    assert page.locator("[data-testid='stException']").count() == 0
    assert chart_frame_tags(page) <= FRAME_TAGS | SQL_TAGS, chart_frame_tags(page)  # chart and SQL frames


def test_overview_shows_hostile_names_and_errors(page: Page, hostile: dict, receiver: Receiver) -> None:
    page.goto(hostile["url"])
    page.get_by_role("heading", name="Overview").wait_for()
    settle(page)
    charts_drawn(page, 6)
    text = shown_text(page)
    assert f"{DOWN} is down" in text and GOOD in text  # the banner, the figures' heading
    assert MISSING_DB in text  # the server's error text, in the banner and the health card
    assert f"/*![q](http://{receiver.host}/q.png)*/ SELECT" in text  # the top query's link
    labels = chart_texts(page)
    markup = f"/*<i style='background:url(//{receiver.host}/p.png)'>*/"
    assert any(markup in label for label in labels), labels  # the top queries' bars, as written
    assert chart_frame_tags(page) <= FRAME_TAGS, chart_frame_tags(page)
    # Names Markdown would read (':', '.') get the select box, not chips, whose labels are Markdown.
    sidebar = page.locator("[data-testid='stSidebar']")
    assert sidebar.locator("[data-testid='stMultiSelect']").count() == 1
    assert sidebar.locator("button[aria-pressed]").count() == 0
    shown = sidebar.inner_text().replace(ui.WORD_JOINER, "")
    assert DOWN in shown and GOOD in shown, shown
    nothing_rendered(page, receiver, "overview")


def test_queries_lists_the_hostile_role_as_text(page: Page, hostile: dict, receiver: Receiver) -> None:
    page.set_viewport_size({"width": 2800, "height": 1600})  # the grid draws only the columns in view
    page.goto(f"{hostile['url']}/queries")
    page.get_by_role("heading", name="Queries").wait_for()
    settle(page)
    page.locator(CELLS).first.wait_for(state="attached")
    cells = page.locator(CELLS).all_text_contents()
    assert hostile["role"] in cells and hostile["datname"] in cells, cells  # the user and database columns
    page.get_by_label("User").click()  # the filter's choices are the role names, as written
    page.get_by_role("option", name=hostile["role"], exact=True).wait_for()
    page.keyboard.press("Escape")
    nothing_rendered(page, receiver, "queries")


def test_query_detail_shows_the_hostile_names_as_text(page: Page, hostile: dict, receiver: Receiver) -> None:
    page.goto(f"{hostile['url']}/query?id={hostile['sid']}")
    page.get_by_role("heading", name="Query detail").wait_for()
    settle(page)
    page.get_by_role("heading", name="About this statement").wait_for()
    text = shown_text(page)
    assert f"on {GOOD} · {hostile['datname']} · {hostile['role']} ·" in text  # the caption
    assert f"user: {hostile['role']}" in text and f"database: {hostile['datname']}" in text  # the facts
    (statement,) = sql_texts(page)  # the statement's own text, in its SQL block, as written
    assert f"![q](http://{receiver.host}/q.png)" in statement, statement  # formatted, not rendered
    nothing_rendered(page, receiver, "query")
    bad_id = f"x{MARKUP[0]}{MARKUP[1]}"  # the URL is hostile too
    page.goto(f"{hostile['url']}/query?id={urllib.parse.quote(bad_id, safe='')}")
    page.get_by_text("No statement with id").wait_for()
    settle(page)
    assert f"No statement with id '{bad_id}' in this store." in shown_text(page)
    nothing_rendered(page, receiver, "unknown-id")


def test_indexes_shows_the_hostile_database_as_text(page: Page, hostile: dict, receiver: Receiver) -> None:
    choice = urllib.parse.quote(f"{GOOD}/{hostile['datname']}", safe="")
    page.goto(f"{hostile['url']}/indexes?db={choice}")
    page.get_by_role("heading", name="Indexes").wait_for()
    settle(page)
    assert f"{hostile['datname']} on {GOOD} · report made" in shown_text(page)  # the report's header
    nothing_rendered(page, receiver, "indexes")


# -- md_escape itself, against the rules Streamlit's Markdown applies --------------------------------
# markdown-it-py is not installed, so the rules are restated: what the text may not hold after
# Markdown has read it (the plugins that search the parsed text), in the browser's own regexes.
_AFTER_PARSING = [
    re.compile(r"(https?://|www(?=\.))([-.\w]+)", re.I | re.A),  # GFM autolink literals
    re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.A),  # GFM e-mail autolinks
    re.compile(r":\+1:|:-1:|:[\w-]+:", re.A),  # remark-emoji
    re.compile(r":streamlit:|:material_\w+:", re.A),  # Streamlit's logo and icons
    re.compile(r"(^|\s)(<->|->|<-|--|>=|<=|~=)(\s|$)"),  # Streamlit's typographic symbols
]
HOSTILE = [
    "![x](http://127.0.0.1:9/beacon.png)",
    "<img src=http://127.0.0.1:9/b2.png>",
    "[click](javascript:alert(1))",
    ":red[red text]",
    ":material/warning:",
    ":material_warning:",
    ":smile: :+1:",
    ":streamlit:",
    "$x^2$ $$y$$",
    "**bold** __b__ *i* ~~s~~",
    "# heading",
    "`code`",
    "http://127.0.0.1:9/autolink HTTPS://x.io www.example.com a@example.com <http://x> <a@b.c>",
    "line one\n# two\n- three\n\n    four\r\n1. five\n===\n> six\n| a |\n|---|",
    "    indented code",
    "x -> y <- z >= 1 <-> a--b",
    "[a]: http://127.0.0.1:9/ref\n[a]",
    "&lt;b&gt; &#33; &amp;",
    "back\\slash\\",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_md_escape_leaves_nothing_for_markdown(text: str) -> None:
    escaped = ui.md_escape(text)
    lines = escaped.split("\n")
    # Every ASCII punctuation character is escaped; every line but the last ends in a hard break.
    for line in lines:
        unescaped = re.sub(r"\\[!-/:-@\[-`{-~]", "", line.removesuffix("\\") if line != lines[-1] else line)
        assert not re.search(r"[!-/:-@\[-`{-~]", unescaped), line
        assert line == line.lstrip(), line  # no indentation: no code block
    assert all(line.endswith("\\") for line in lines[:-1])
    # After parsing, the escapes are gone: the plugins that search that text find nothing.
    parsed = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", escaped.replace("\\\n", "\n"))
    for rule in _AFTER_PARSING:
        assert not rule.search(parsed), (rule.pattern, parsed)
    # And the reader sees the text as written (its lines trimmed, the word joiners invisible).
    written = "\n".join(line.strip() for line in text.splitlines() if line.strip())
    assert parsed.replace(ui.WORD_JOINER, "") == written


def test_md_escape_adds_no_joiner_to_plain_addresses() -> None:
    for text in ("127.0.0.1:5432", "user@host", "erp-primary", "a: b", "x > 1"):
        assert ui.WORD_JOINER not in ui.md_escape(text)
