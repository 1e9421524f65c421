"""Benchmark: every page of the navigation opened in Debian's Chromium, beside a one-line Streamlit page.

The issue's budget (issue 11): every page settles within 2.0x the one-line page measured in the same
run (median against median); the pages a user opens often (Overview, Queries, Redis, Services) aim
at 1.5x. `passed` is the 2.0x rule on the page loads.

Two servers run side by side: `observatory serve` on the store (--store, else a small store
generated with bench.history_generator), and `streamlit run` of a one-line page
(`st.write("ok")`, the baseline). Chromium (/usr/bin/chromium, headless, no GPU) is driven with
Playwright. Each load opens a fresh browser context, so nothing is cached (what a user opening a
link sees), goes to the page's URL and times until the page is *settled*:

- Streamlit reports its script finished: stApp's data-test-script-state is "notRunning" (it is
  "initial" before the first run, so an empty page never counts as settled);
- no stSkeleton remains (an element still waiting for its code);
- every chart frame (dashboard/ui/plots.py) has drawn its charts.

After the load, on pages with the sidebar's time window, it clicks "7d" and times until the server
reported the rerun finished (script_finished on the websocket) and the page is settled again; then
it unpicks the sidebar's first target chip (a target switch) and times the same way.
Pages are visited in turn in each round, so a slow moment of the machine hits them alike; one
unreported warm-up round first (server imports, Streamlit's data caches). The Query detail page opens the
store's busiest statement.

    .venv/bin/python -m bench.store_history --store /tmp/pages30.db --days 30 --repeat 1  # a 30-day store
    .venv/bin/python -m bench.pages --store sqlite:////tmp/pages30.db --loads 3
    .venv/bin/python -m bench.pages --loads 2          # a small generated store
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from playwright.sync_api import Browser, BrowserContext, Locator, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sqlalchemy import func, select
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench import cli
from bench.history_generator import generate
from bench.timing import summary
from dashboard.core import sources
from dashboard.servers.chromium import (
    CHARTS_DRAWN_JS,
    CHROMIUM,
    CHROMIUM_ARGS,
    READY,
    SKELETON,
    healthy,
    stop_session,
)
from dashboard.servers.throwaway import free_port
from dashboard.store.engine import make_engine
from dashboard.store.reads import target_statuses
from dashboard.store.schema import STMT

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 2.0
AIM = 1.5
OFTEN = ("Overview", "Queries", "Redis", "Services")
BASELINE = "one-line page"
CACHES = {  # how measure() opens each load, and what the report calls it
    "empty": "empty cache: each load in a new browser context (a first visit)",
    "warm": "warm cache: each load in a new tab of a context the warm-up filled (a returning user)",
}
SETTLE_TIMEOUT_MS = 180_000
PLACEHOLDER = {  # addresses for the config's targets: the app reads the store and never connects
    "postgres": {"dsn": "postgresql://bench@127.0.0.1:9/bench"},
    "redis": {"url": "redis://127.0.0.1:9"},
    "prometheus": {"url": "http://127.0.0.1:9"},
}
SETTLED_JS = f"""() => {{
  if (!document.querySelector("{READY}") || document.querySelector("{SKELETON}")) return false;
  return ({CHARTS_DRAWN_JS})() !== false;
}}"""


class Target(NamedTuple):
    title: str
    path: str  # after the server's URL: "/", "/queries", "/query?id=3"


def navigation(query_id: int | None) -> list[Target]:
    """The registered pages in navigation order (the first is the default, "/")."""
    pages = sources.pages()
    found = []
    for i, p in enumerate(pages):
        path = "" if i == 0 else (p.url_path or Path(p.script).stem)
        if path == "query" and query_id is not None:
            path += f"?id={query_id}"
        found.append(Target(p.title, f"/{path}"))
    return found


# -- the store, the config and the servers ---------------------------------------------------------
def store_facts(store_url: str) -> tuple[dict[str, list[str]], int | None]:
    """The store's targets by kind, and its busiest statement (for the Query detail page)."""
    engine = make_engine(store_url, readonly=True)
    try:
        frame = target_statuses(engine)
        kinds: dict[str, list[str]] = {}
        for row in frame.itertuples():
            kinds.setdefault(str(row.kind), []).append(str(row.name))
        with engine.connect() as conn:
            daily = STMT["daily"].c
            busiest = conn.execute(
                select(daily.statement_id).group_by(daily.statement_id).order_by(func.sum(daily.calls).desc())
            ).first()
    finally:
        engine.dispose()
    return kinds, (int(busiest[0]) if busiest else None)


def write_config(folder: Path, store_url: str, kinds: dict[str, list[str]]) -> Path:
    """An observatory.yaml naming the store and its targets (placeholder addresses)."""
    targets = {
        k: [{"name": n, **PLACEHOLDER[k]} for n in names] for k, names in kinds.items() if k in PLACEHOLDER
    }
    path = folder / "observatory.yaml"
    path.write_text(yaml.safe_dump({"store": store_url, "targets": targets}))
    return path


@contextmanager
def served(command: list[str], env: dict[str, str], port: int, log_path: Path) -> Iterator[str]:
    """Run a Streamlit server in its own session until it answers /_stcore/health; yield its URL."""
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{command[2:4]} did not come up on {url}:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield url
    finally:
        stop_session(proc)


# -- the browser ----------------------------------------------------------------------------------
def _wait(page: Page, js: str, what: str) -> None:
    """Wait until `js` holds; a timeout names the page and what it waited for."""
    try:
        page.wait_for_function(js, timeout=SETTLE_TIMEOUT_MS, polling="raf")
    except PlaywrightTimeout as err:
        raise RuntimeError(f"{page.url}: {what} not seen in {SETTLE_TIMEOUT_MS / 1000:.0f} s") from err


class _Runs:
    """What the page's websocket carries: the script runs the server reports finished
    (ForwardMsg.script_finished; a rerun too quick for the DOM to ever show "running" still counts),
    when the last one arrived and the bytes received, which split a settle time into the server's
    part and the browser's."""

    def __init__(self, page: Page) -> None:
        self.finished = 0
        self.finished_at = 0.0  # time.perf_counter() of the last script_finished
        self.bytes = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload: str | bytes) -> None:
        self.bytes += len(payload)
        if isinstance(payload, bytes):
            msg = ForwardMsg()
            msg.ParseFromString(payload)
            if msg.WhichOneof("type") == "script_finished":
                self.finished += 1
                self.finished_at = time.perf_counter()

    def wait_past(self, page: Page, count: int, what: str) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT_MS / 1000
        while self.finished <= count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{page.url}: no script run finished after {what}")
            page.wait_for_timeout(10)  # lets Playwright deliver the websocket's frames


class Load(NamedTuple):
    settle_ms: float
    script_ms: float  # from the request to the server's script_finished: server time and transfer
    kib: float  # websocket bytes received for the load
    charts: int  # charts drawn
    errors: int  # st.exception boxes shown
    change_ms: float | None  # settle after clicking "7d" (None: no time window on the page)
    switch_ms: float | None  # then after unpicking the sidebar's first target (None: no chips)


def _load(context: BrowserContext, url: str, with_window: bool) -> Load:
    """One load in a new tab of `context`, then (`with_window`) a click on "7d"."""
    page = context.new_page()
    try:
        runs = _Runs(page)
        started = time.perf_counter()
        page.goto(url, wait_until="commit")
        _wait(page, SETTLED_JS, "settled after the load")
        load_ms = (time.perf_counter() - started) * 1000
        script_ms, kib = (runs.finished_at - started) * 1000, runs.bytes / 1024
        charts = page.evaluate(CHARTS_DRAWN_JS)
        errors = page.locator("[data-testid='stException']").count()
        sidebar = page.locator("[data-testid='stSidebar']")
        seven = sidebar.get_by_role("radio", name="7d", exact=True)
        change_ms = _change(page, runs, seven, "clicking 7d") if with_window else None
        chip = sidebar.locator("button[aria-pressed='true']").first  # a picked target chip
        switch_ms = _change(page, runs, chip, "unpicking a target") if with_window else None
        return Load(load_ms, script_ms, kib, charts, errors, change_ms, switch_ms)
    finally:
        page.close()


def _change(page: Page, runs: _Runs, control: Locator, what: str) -> float | None:
    """Milliseconds from clicking `control` until the rerun finished and the page settled again
    (None: the page has no such control)."""
    if not control.count():
        return None
    before = runs.finished
    started = time.perf_counter()
    control.click()
    runs.wait_past(page, before, what)
    _wait(page, SETTLED_JS, f"settled after {what}")
    return (time.perf_counter() - started) * 1000


def measure(
    browser: Browser, pages: dict[str, str], loads: int, warmup: int, log: cli.Log, *, cache: str
) -> dict[str, dict[str, Any]]:
    """`warmup` unreported rounds, then `loads` rounds over every page (title -> URL).

    cache "empty": every load in a new browser context, nothing cached (a first visit: the page
    fetches the app's JavaScript, dozens of lazily loaded files over HTTP/1.1); "warm": every load
    in a new tab of one context per page, whose HTTP cache the warm-up filled (a returning user:
    Streamlit serves its files as immutable for a year)."""
    samples: dict[str, list[Load]] = {t: [] for t in pages}
    kept: dict[str, BrowserContext] = {}
    try:
        for r in range(warmup + loads):
            for title, url in pages.items():
                if cache == "warm":
                    context = kept.get(title) or kept.setdefault(title, _context(browser))
                else:
                    context = _context(browser)
                try:
                    load = _load(context, url, title != BASELINE)
                finally:
                    if cache != "warm":
                        context.close()
                if r >= warmup:
                    samples[title].append(load)
            log(f"  {cache} cache: {'warm-up' if r < warmup else 'round'} {r + 1 - min(r, warmup)} done")
    finally:
        for context in kept.values():
            context.close()
    return {title: _page_figures(pages[title], s) for title, s in samples.items()}


def _context(browser: Browser) -> BrowserContext:
    return browser.new_context(viewport={"width": 1600, "height": 1000})


def _page_figures(url: str, loads: list[Load]) -> dict[str, Any]:
    changes = [x.change_ms for x in loads if x.change_ms is not None]
    switches = [x.switch_ms for x in loads if x.switch_ms is not None]
    return {
        "url": url,
        "load": summary([x.settle_ms for x in loads]),
        "script_median_ms": round(statistics.median(x.script_ms for x in loads), 1),
        "message_kib": round(max(x.kib for x in loads), 1),
        "window_7d": summary(changes) if changes else None,
        "target_off": summary(switches) if switches else None,
        "charts": max(x.charts for x in loads),
        "exceptions": max(x.errors for x in loads),  # st.exception boxes: a broken page settles fast
    }


# -- the run --------------------------------------------------------------------------------------
BASELINE_SCRIPT = 'import streamlit as st\n\nst.write("ok")\n'


def run(
    store_url: str | None = None,
    *,
    config: str | None = None,
    loads: int = 5,
    warmup: int = 1,
    port: int | None = None,
    days: float = 1,
    only: list[str] | None = None,
    log: cli.Log = lambda _msg: None,
) -> dict[str, Any]:
    """Serve the app (on `store_url`, else a generated store of `days`) and the one-line page, time
    every page's settle in Chromium; returns the figures and the verdict."""
    folder = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    try:
        generated = None
        if store_url is None and config:
            store_url = str(yaml.safe_load(Path(config).read_text())["store"])
        if store_url is None:
            store_url = f"sqlite:///{folder / 'store.db'}"
            log(f"generating {days} days of history into {store_url}")
            generated = generate(store_url, days=days, statements=500, moving=50, seed=1)
        kinds, query_id = store_facts(store_url)
        config_path = Path(config) if config else write_config(folder, store_url, kinds)
        (folder / "baseline.py").write_text(BASELINE_SCRIPT)
        app_port, base_port = port or free_port(), free_port()
        env = {**os.environ, "OBSERVATORY_CONFIG": str(config_path)}
        with ExitStack() as stack:
            app_cmd = [sys.executable, "-m", "dashboard", "serve", "--port", str(app_port)]
            app = stack.enter_context(served(app_cmd, env, app_port, folder / "serve.log"))
            base_cmd = [sys.executable, "-m", "streamlit", "run", str(folder / "baseline.py")]
            base_cmd += ["--server.port", str(base_port), "--server.headless", "true"]
            base_cmd += ["--browser.gatherUsageStats", "false"]
            base = stack.enter_context(served(base_cmd, env, base_port, folder / "baseline.log"))
            log(f"serving the app on {app} and the one-line page on {base}")
            pw = stack.enter_context(sync_playwright())
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            stack.callback(browser.close)
            urls = {BASELINE: base, **{t.title: app + t.path for t in navigation(query_id)
                                       if not only or t.title in only}}  # fmt: skip
            caches = {cache: measure(browser, urls, loads, warmup, log, cache=cache) for cache in CACHES}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    verdicts = {cache: _ratios(figures) for cache, figures in caches.items()}
    return {
        "store": store_url,
        "generated": generated,
        "loads": loads,
        "warmup": warmup,
        "caches": verdicts,
        "budget": BUDGET,
        "aim_often_opened": AIM,
        "passed": all(v["worst_ratio"] <= BUDGET for v in verdicts.values()),
    }


def _ratios(figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each page's median against the one-line page's, measured with the same cache."""
    base_ms = figures[BASELINE]["load"]["median_ms"]
    for title, f in figures.items():
        f["ratio"] = round(f["load"]["median_ms"] / base_ms, 3)
        f["target"] = AIM if title in OFTEN else BUDGET if title != BASELINE else None
        for change in ("window_7d", "target_off"):
            if f[change]:
                f[f"{change}_ratio"] = round(f[change]["median_ms"] / base_ms, 3)
    worst = max(f["ratio"] for t, f in figures.items() if t != BASELINE)
    return {"pages": figures, "baseline_median_ms": base_ms, "worst_ratio": worst}


def format_report(result: dict[str, Any]) -> str:
    lines = [
        f"store: {result['store']}; {result['loads']} loads a page after {result['warmup']} warm-up round(s)"
    ]
    for cache, verdict in result["caches"].items():
        lines += ["", f"{CACHES[cache]}:", _table(verdict["pages"])]
        broken = [t for t, f in verdict["pages"].items() if f["exceptions"]]
        lines += [f"showed an exception: {', '.join(broken)}"] if broken else []
        lines.append(f"worst page {verdict['worst_ratio']:.2f}x the one-line page's median")
    lines += [
        "",
        "settled = script finished, no skeleton, every chart drawn; script ms = the server's "
        "script_finished received; KiB = websocket bytes; 7d = after clicking 7d; off = then after "
        "unpicking the sidebar's first target (medians; x = against the one-line page's load)",
        f"budget {BUDGET:.1f}x with either cache ({', '.join(OFTEN)} aim at {AIM:.1f}x): "
        f"{'PASS' if result['passed'] else 'FAIL'}",
    ]
    return "\n".join(lines)


def _table(pages: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"{'page':16} {'median ms':>10} {'p95 ms':>9} {'x one-line':>11} {'target':>7} {'script ms':>10} "
        f"{'KiB':>7} {'charts':>7} {'7d ms':>7} {'7d x':>6} {'off ms':>7} {'off x':>6}"
    ]
    for title, f in pages.items():
        load = f["load"]
        target = f"{f['target']:.1f}x" if f["target"] else "-"
        changes = " ".join(
            f"{f[c]['median_ms']:>7.0f} {f[f'{c}_ratio']:>6.2f}" if f[c] else f"{'-':>7} {'-':>6}"
            for c in ("window_7d", "target_off")
        )
        lines.append(
            f"{title:16} {load['median_ms']:>10.0f} {load['p95_ms']:>9.0f} {f['ratio']:>11.2f} {target:>7} "
            f"{f['script_median_ms']:>10.0f} {f['message_kib']:>7.0f} {f['charts']:>7} {changes}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser(__doc__)
    parser.add_argument("--store", help="store URL (sqlite:////path.db); default: generate a small one")
    parser.add_argument("--config", help="observatory.yaml to serve with; default: one naming the store")
    parser.add_argument("--loads", type=int, default=5, help="loads per page (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="unreported rounds first (default 1)")
    parser.add_argument("--port", type=int, help="the app's port (default: a free one)")
    parser.add_argument("--days", type=float, default=1, help="history of the generated store (default 1)")
    parser.add_argument("--only", action="append", help="a page title to measure (repeatable; default all)")
    args = parser.parse_args(argv)
    result = run(args.store, config=args.config, loads=args.loads, warmup=args.warmup, port=args.port,
                 days=args.days, only=args.only, log=cli.progress(args))  # fmt: skip
    return cli.finish(args, result, lambda: format_report(result), result["passed"])


if __name__ == "__main__":
    sys.exit(main())
