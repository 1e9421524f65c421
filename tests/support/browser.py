"""Serving the app and driving it in Debian's Chromium, for the browser tests.

Nothing here skips: if the server or Chromium cannot start, the test fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from dashboard.servers.chromium import (
    CHART_FRAME,
    CHARTS_DRAWN_JS,
    CHROMIUM,
    CHROMIUM_ARGS,
    READY,
    SKELETON,
    healthy,
    stop_session,
)
from dashboard.servers.throwaway import free_port

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path("/tmp/observatory-shots")
CELLS = "[data-testid='stDataFrame'] [role='gridcell']"  # glide-data-grid's accessible mirror


@contextmanager
def serve(config_file: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`observatory serve` on the store the config names; yields its URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "OBSERVATORY_CONFIG": config_file}
    with observatory_serve(["--port", str(port)], env, log_path, f"http://127.0.0.1:{port}") as url:
        yield url


@contextmanager
def observatory_serve(args: list[str], env: dict[str, str], log_path: Path, url: str) -> Iterator[str]:
    """`observatory serve ARGS` in `env`, its output in `log_path`, until `url` answers; yields `url`.
    It fails the test, with the log's end, if the app exits or is not up within 45 s."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "serve", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 45
        while not healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`observatory serve` did not come up on {url}:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        stop_session(proc)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def settle(page: Page) -> None:
    """Wait until the script has finished and nothing is still loading."""
    page.wait_for_selector(READY, timeout=30_000)
    page.wait_for_function(f'() => !document.querySelector("{SKELETON}")', timeout=30_000)


def charts_drawn(page: Page, at_least: int = 1) -> int:
    """Wait until every chart frame (dashboard/ui/plots.py) has drawn and the page holds at least
    `at_least` charts; return how many it holds."""
    wait = f"() => {{ const n = ({CHARTS_DRAWN_JS})(); return n !== false && n >= {at_least} ? n : false; }}"
    return int(page.wait_for_function(wait, timeout=30_000).json_value())


# Every text a chart frame shows: titles, legend labels, the bars' names and values.
CHART_TEXT = ".title, .u-legend .u-label, .bar-label, .bar-value, .empty"


def chart_texts(page: Page) -> list[str]:
    return page.evaluate(
        f"""() => Array.from(document.querySelectorAll("{CHART_FRAME}")).flatMap((f) =>
          Array.from(f.contentDocument.querySelectorAll("{CHART_TEXT}")).map((e) => e.textContent))"""
    )


def sql_texts(page: Page) -> list[str]:
    """The statements of the page's SQL blocks (dashboard/ui/sql_block.py), once every frame has
    drawn and there is at least one."""
    wait = f"""() => ({CHARTS_DRAWN_JS})() !== false && Array.from(document.querySelectorAll(
      "{CHART_FRAME}")).some((f) => f.contentDocument.getElementById("sql"))"""
    page.wait_for_function(wait, timeout=30_000)
    return page.evaluate(
        f"""() => Array.from(document.querySelectorAll("{CHART_FRAME}"))
          .map((f) => f.contentDocument.getElementById("sql")).filter((p) => p).map((p) => p.textContent)"""
    )


def chart_frame_tags(page: Page) -> set[str]:
    """The element names found in the chart frames' bodies: charts.js makes only div, canvas and
    table parts (uPlot's legend), so anything else came from a text read as markup."""
    return set(
        page.evaluate(
            f"""() => Array.from(document.querySelectorAll("{CHART_FRAME}")).flatMap((f) =>
              Array.from(f.contentDocument.body.querySelectorAll("*")).map((e) => e.tagName.toLowerCase()))"""
        )
    )


def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
