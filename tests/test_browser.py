"""The served app in a real headless Chromium: `observatory serve` on the populated store.

Nothing here skips: if the server or Chromium cannot start, the tests fail. Screenshots of each
page land in /tmp/observatory-shots/ for a human look.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from dashboard.store.engine import make_engine
from dashboard.store.reads import Window, statement_totals
from tests.support.advised import REF, REF_INDEX, TARGET, statement_id
from tests.support.browser import CELLS, chart_texts, charts_drawn, serve, settle, shoot, sql_texts
from tests.support.redis_node import NODE


@pytest.fixture(scope="module")
def app_url(populated_store: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(populated_store[1], tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module")
def orders_statement(populated_store: tuple[str, str]) -> int:
    engine = make_engine(populated_store[0], readonly=True)
    try:
        frame = statement_totals(engine, [1], Window(0, 2**40), "raw", text="from orders")
    finally:
        engine.dispose()
    return int(frame["statement_id"].iloc[0])


def test_overview_draws_charts(page: Page, app_url: str) -> None:
    page.goto(app_url)
    page.get_by_role("heading", name="Overview").wait_for()
    settle(page)
    assert charts_drawn(page, 5) >= 5
    assert page.locator("[data-testid='stPlotlyChart']").count() == 0  # uPlot, not Plotly (issue 11)
    texts = chart_texts(page)
    assert {"Query time", "Calls per second", "Connections by state"} <= set(texts), texts
    assert page.locator("[data-testid='stMetric']").filter(has_text="Calls per second").count() == 1
    assert page.locator("[data-testid='stException']").count() == 0
    shoot(page, "overview")


def test_queries_table_lists_the_workload(page: Page, app_url: str) -> None:
    page.goto(f"{app_url}/queries")
    page.get_by_role("heading", name="Queries").wait_for()
    settle(page)
    page.locator(CELLS).first.wait_for(state="attached")
    cells = page.locator(CELLS).all_text_contents()
    assert sum("FROM orders" in c for c in cells) >= 3, cells
    assert page.locator("[data-testid='stException']").count() == 0
    shoot(page, "queries")
    # Selecting a row (the checkbox column of the canvas grid) opens that statement's detail.
    grid = page.locator("[data-testid='stDataFrame'] canvas").first.bounding_box()
    assert grid is not None
    page.mouse.click(grid["x"] + 16, grid["y"] + 35 + 17)  # header row, then the first row's middle
    page.wait_for_url("**/query?id=*", timeout=30_000)
    page.get_by_role("heading", name="Query detail").wait_for()


def test_query_detail_shows_formatted_sql(page: Page, app_url: str, orders_statement: int) -> None:
    page.goto(f"{app_url}/query?id={orders_statement}&window=1h")
    page.get_by_role("heading", name="Query detail").wait_for()
    settle(page)
    (text,) = sql_texts(page)
    assert "FROM orders" in text
    assert "\n" in text.strip()
    keywords = page.frame_locator("iframe[data-testid='stIFrame'] >> nth=0").locator(".keyword")
    assert "SELECT" in keywords.all_text_contents()  # coloured by sql.js, the text unchanged
    assert charts_drawn(page, 5) == 5
    assert page.locator("[data-testid='stException']").count() == 0
    assert "window=1h" in page.url  # the window survives in the URL
    shoot(page, "query")


def test_unknown_query_id(page: Page, app_url: str) -> None:
    page.goto(f"{app_url}/query?id=424242")
    page.get_by_role("heading", name="Query detail").wait_for()
    settle(page)
    assert page.get_by_text("No statement with id '424242'").count() == 1
    assert page.locator("[data-testid='stException']").count() == 0


# -- the index advisor's pages, on a store of real advice -------------------------------------------
@pytest.fixture(scope="module")
def advised_app(advised: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    with serve(advised["config"], tmp_path_factory) as url:
        yield url, advised


def test_indexes_page_and_query_advice(page: Page, advised_app: tuple[str, dict]) -> None:
    url, advised = advised_app
    page.set_viewport_size({"width": 1440, "height": 3400})  # the whole report in one screenshot
    page.goto(f"{url}/indexes?db={TARGET}/{advised['datname']}")
    page.get_by_role("heading", name="Suggested indexes").wait_for()
    settle(page)
    codes = sql_texts(page)
    assert any(REF_INDEX in c for c in codes), codes
    page.get_by_role("heading", name="Index health").wait_for()
    assert page.locator("[data-testid='stException']").count() == 0
    shoot(page, "indexes")
    # A served statement links to its detail, which shows the suggestion and links back.
    sid = statement_id(advised, REF)
    page.locator(f"a[href*='query?id={sid}']").first.click()
    page.wait_for_url(f"**/query?id={sid}*", timeout=30_000)
    page.get_by_role("heading", name="Suggested index").wait_for()
    settle(page)
    assert sql_texts(page).count(REF_INDEX) == 1
    assert page.locator("[data-testid='stException']").count() == 0
    shoot(page, "query-advice")
    page.get_by_role("link", name="All index suggestions for this database").click()
    # (`?db=` leaves the URL again when it names the default choice, as here.)
    page.wait_for_url("**/indexes*", timeout=30_000)
    page.get_by_role("heading", name="Suggested indexes").wait_for()
    assert page.get_by_text(f"{advised['datname']} on {TARGET}").count() == 1


# -- the Redis page, on a store of real Redis cycles ------------------------------------------------
@pytest.fixture(scope="module")
def redis_app(redis_populated: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(redis_populated["config"], tmp_path_factory) as url:
        yield url


def test_redis_page_draws_charts(page: Page, redis_app: str) -> None:
    page.set_viewport_size({"width": 1440, "height": 4200})  # every section in one screenshot
    page.goto(f"{redis_app}/redis")
    page.get_by_role("heading", name="Redis").first.wait_for()
    settle(page)
    assert charts_drawn(page, 5) == 5  # the node's; a queue's are drawn once opened
    assert page.locator("[data-testid='stMetric']").filter(has_text="Hit rate").count() == 1
    page.get_by_role("heading", name="Queues").wait_for()
    page.locator(CELLS).first.wait_for(state="attached")
    cells = page.locator(CELLS).all_text_contents()
    assert any(c.startswith("EVAL ") for c in cells), cells
    # Opening a queue reruns the page, which lays its grids out again: read them before.
    page.locator("[data-testid='stExpander']").filter(has_text="email").locator("summary").click()
    assert charts_drawn(page, 10) == 10
    assert page.get_by_text(NODE).count() >= 1
    assert page.locator("[data-testid='stException']").count() == 0
    shoot(page, "redis")


# -- the Services page, on a store of real Prometheus cycles ---------------------------------------
@pytest.fixture(scope="module")
def services_app(services_populated: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(services_populated["config"], tmp_path_factory) as url:
        yield url


def test_services_page_draws_charts(page: Page, services_app: str) -> None:
    page.set_viewport_size({"width": 1440, "height": 3000})  # every section in one screenshot
    page.goto(f"{services_app}/services")
    page.get_by_role("heading", name="Services").first.wait_for()
    settle(page)
    assert charts_drawn(page, 5) == 5  # the five series; the overlay is drawn once opened
    page.locator(CELLS).first.wait_for(state="attached")
    # Each table fills its grid on its own: the alerts' grid can come after the scorecard's.
    page.locator(CELLS, has_text="AlwaysFiring").first.wait_for(state="attached", timeout=15_000)
    cells = page.locator(CELLS).all_text_contents()
    assert {"api_p95_ms", "pass", "fail", "AlwaysFiring"} <= set(cells), cells
    # Opening the timeline reruns the page, which lays its grids out again: read them before.
    page.locator("[data-testid='stExpander']").filter(has_text="beside it").locator("summary").click()
    assert charts_drawn(page, 6) == 6
    assert page.locator("[data-testid='stException']").count() == 0
    shoot(page, "services")
