"""Benchmark: the main pages under 10 concurrent browser sessions, against the same pages opened by one.

The issue's requirement (issue 17): with 10 concurrent browser sessions on a 30-day store the pages
stay within budget. The budget is bench/pages.py's: a page settles within 2.0x the one-line
Streamlit page (`st.write("ok")`) measured in the same run and under the same load, median against
median (the pages a user opens often aim at 1.5x).

The app (`observatory serve` on `--store`, else a store of `--days` generated with
bench.history_generator) and the one-line page are served side by side, as bench/pages.py serves
them. One Chromium (Debian's, headless, no GPU) is driven with Playwright's async API:

1. alone: one session (a browser context: a returning user, its HTTP cache filled by the warm-up
   round) loads every page in turn, `--rounds` times, each load in a new tab;
2. together: `--sessions` contexts do the same at once, each starting its round at another page,
   so the server serves different pages at the same moment, as users would.

A load is timed from `goto` until the page is settled (bench/pages.py's rule: the script finished,
no skeleton, every chart drawn). Per page and phase: p50 and p95; the page's median under load over
its median alone; and its median over the one-line page's in the same phase (the budget).

    .venv/bin/python -m bench.sessions --store sqlite:////var/tmp/observatory-30d.db
    .venv/bin/python -m bench.sessions --sessions 2 --rounds 1 --only Overview   # quick
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, async_playwright

from bench import cli
from bench.history_generator import generate
from bench.pages import (
    AIM,
    BASELINE,
    BASELINE_SCRIPT,
    BUDGET,
    OFTEN,
    SETTLE_TIMEOUT_MS,
    SETTLED_JS,
    _Runs,
    navigation,
    served,
    store_facts,
    write_config,
)
from bench.timing import percentile
from dashboard.servers.chromium import CHROMIUM, CHROMIUM_ARGS
from dashboard.servers.throwaway import free_port

MAIN_PAGES = ("Overview", "Queries", "Query detail", "Indexes")
PHASES = ("alone", "together")


async def _load(context: Any, url: str) -> tuple[float, float]:
    """Milliseconds from goto until the page settled, in a new tab of `context`, and until the
    server's script_finished arrived (its script and the transfer: the rest is the browser's)."""
    page = await context.new_page()
    try:
        runs = _Runs(page)
        started = time.perf_counter()
        await page.goto(url, wait_until="commit")
        await page.wait_for_function(SETTLED_JS, timeout=SETTLE_TIMEOUT_MS, polling="raf")
        settled = time.perf_counter()
        return (settled - started) * 1000, (max(runs.finished_at, started) - started) * 1000
    finally:
        await page.close()


async def _session(browser: Browser, urls: dict[str, str], rounds: int, offset: int,
                   samples: dict[str, list[float]], scripts: dict[str, list[float]]) -> None:  # fmt: skip
    """One user: a warm-up round, then `rounds` rounds over the pages, starting at page `offset`."""
    context = await browser.new_context(viewport={"width": 1600, "height": 1000})
    titles = list(urls)
    order = titles[offset % len(titles) :] + titles[: offset % len(titles)]
    try:
        for r in range(1 + rounds):
            for title in order:
                settle_ms, script_ms = await _load(context, urls[title])
                if r:
                    samples[title].append(settle_ms)
                    scripts[title].append(script_ms)
    finally:
        await context.close()


async def _phases(urls: dict[str, str], sessions: int, rounds: int, log: cli.Log) -> dict[str, Any]:
    """Settle times per page: one session alone, then `sessions` at once."""
    result: dict[str, Any] = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for phase, count in (("alone", 1), ("together", sessions)):
                samples: dict[str, list[float]] = {t: [] for t in urls}
                scripts: dict[str, list[float]] = {t: [] for t in urls}
                started = time.perf_counter()
                await asyncio.gather(
                    *(_session(browser, urls, rounds, i, samples, scripts) for i in range(count))
                )
                seconds = time.perf_counter() - started
                log(f"  {phase}: {count} session(s), {rounds} round(s) in {seconds:.0f} s")
                result[phase] = {"sessions": count, "seconds": round(seconds, 1), "samples": samples,
                                 "scripts": scripts}  # fmt: skip
        finally:
            await browser.close()
    return result


def _figures(phases: dict[str, Any]) -> dict[str, Any]:
    """Per page: p50/p95 per phase, the slowdown under load, and the ratios to the one-line page."""
    medians = {p: {t: statistics.median(v) for t, v in phases[p]["samples"].items()} for p in PHASES}
    pages = {}
    for title, alone in medians["alone"].items():
        together = medians["together"][title]
        entry: dict[str, Any] = {}
        for phase in PHASES:
            values = phases[phase]["samples"][title]
            p50, p95 = percentile(values, 50), percentile(values, 95)
            script = statistics.median(phases[phase]["scripts"][title])
            entry[phase] = {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "loads": len(values),
                            "script_p50_ms": round(script, 1)}  # fmt: skip
            entry[f"{phase}_x_one_line"] = round(medians[phase][title] / medians[phase][BASELINE], 3)
        entry["together_over_alone"] = round(together / alone, 3)
        entry["together_x_one_line_alone"] = round(together / medians["alone"][BASELINE], 3)
        entry["target"] = None if title == BASELINE else AIM if title in OFTEN else BUDGET
        pages[title] = entry
    worst = max(e["together_x_one_line"] for t, e in pages.items() if t != BASELINE)
    return {"pages": pages, "worst_together_x_one_line": worst}


def run(store_url: str | None = None, *, sessions: int = 10, rounds: int = 3, days: float = 1,
        only: list[str] | None = None, log: cli.Log = lambda _m: None) -> dict[str, Any]:  # fmt: skip
    """Serve the app and the one-line page; time the pages alone and under `sessions` sessions."""
    folder = Path(tempfile.mkdtemp(prefix="bench-sessions-"))
    try:
        if store_url is None:
            store_url = f"sqlite:///{folder / 'store.db'}"
            log(f"generating {days} days of history into {store_url}")
            generate(store_url, days=days, statements=500, moving=50, seed=1)
        kinds, query_id = store_facts(store_url)
        config_path = write_config(folder, store_url, kinds)
        (folder / "baseline.py").write_text(BASELINE_SCRIPT)
        app_port, base_port = free_port(), free_port()
        env = {**os.environ, "OBSERVATORY_CONFIG": str(config_path)}
        with ExitStack() as stack:
            app_cmd = [sys.executable, "-m", "dashboard", "serve", "--port", str(app_port)]
            app = stack.enter_context(served(app_cmd, env, app_port, folder / "serve.log"))
            base_cmd = [sys.executable, "-m", "streamlit", "run", str(folder / "baseline.py"),
                        "--server.port", str(base_port), "--server.headless", "true",
                        "--browser.gatherUsageStats", "false"]  # fmt: skip
            base = stack.enter_context(served(base_cmd, env, base_port, folder / "baseline.log"))
            wanted = only or list(MAIN_PAGES)
            urls = {
                BASELINE: base,
                **{t.title: app + t.path for t in navigation(query_id) if t.title in wanted},
            }
            log(f"serving the app on {app}; pages: {', '.join(urls)}")
            phases = asyncio.run(_phases(urls, sessions, rounds, log))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    figures = _figures(phases)
    return {
        "store": store_url,
        "sessions": sessions,
        "rounds": rounds,
        "phase_seconds": {p: phases[p]["seconds"] for p in PHASES},
        **figures,
        "budget": BUDGET,
        "aim_often_opened": AIM,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "passed": figures["worst_together_x_one_line"] <= BUDGET,
    }


def format_report(result: dict[str, Any]) -> str:
    lines = [
        f"store: {result['store']}; {result['sessions']} sessions against 1, {result['rounds']} round(s) "
        f"each after a warm-up; load average at the end {' '.join(result['loadavg'])}",
        f"{'page':14} {'alone p50':>9} {'p95':>7} {'x 1-line':>8} {'together p50':>12} {'p95':>7} "
        f"{'x 1-line':>8} {'x alone':>8} {'target':>7} {'script p50 alone':>16} {'together':>8}",
    ]
    for title, e in result["pages"].items():
        a, t = e["alone"], e["together"]
        target = f"{e['target']:.1f}x" if e["target"] else "-"
        lines.append(
            f"{title:14} {a['p50_ms']:>9.0f} {a['p95_ms']:>7.0f} {e['alone_x_one_line']:>8.2f} "
            f"{t['p50_ms']:>12.0f} {t['p95_ms']:>7.0f} {e['together_x_one_line']:>8.2f} "
            f"{e['together_over_alone']:>8.2f} {target:>7} "
            f"{a['script_p50_ms']:>16.0f} {t['script_p50_ms']:>8.0f}"
        )
    lines += [
        "",
        "ms to settled (script finished, no skeleton, charts drawn); x 1-line = median over the one-line "
        "page's median in the same phase; x alone = median together over median alone; script = until the "
        "server's script_finished (its script and the transfer; the rest is the browser)",
        f"worst page under {result['sessions']} sessions: {result['worst_together_x_one_line']:.2f}x "
        f"(budget {BUDGET:.1f}x): {'PASS' if result['passed'] else 'FAIL'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser(__doc__)
    parser.add_argument("--store", help="store URL (sqlite:////path.db); default: generate a small one")
    parser.add_argument("--sessions", type=int, default=10, help="concurrent sessions (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the pages per session (default 3)")
    parser.add_argument("--days", type=float, default=1, help="history of the generated store (default 1)")
    parser.add_argument("--only", action="append", help=f"a page title (repeatable; default {MAIN_PAGES})")
    args = parser.parse_args(argv)
    result = run(args.store, sessions=args.sessions, rounds=args.rounds, days=args.days, only=args.only,
                 log=cli.progress(args))  # fmt: skip
    return cli.finish(args, result, lambda: format_report(result), result["passed"])


if __name__ == "__main__":
    sys.exit(main())
