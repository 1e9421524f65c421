"""Benchmark: the store at 30 days of history, and every page's data load through the analyses.

The issue's budget: 30 days of history at 1-minute collection, 5,000 statements of which 500 move
each minute; every page's data loads in at most 300 ms (p95) and the store file stays under 2 GB.

The generator (`generate`, bench/history_generator.py) writes that history the way the daemon would.

The page loads (`page_loads`) call the analyses (dashboard.analysis) each page script calls, the
way its first load makes them: through a Reader without Streamlit's cache, each of the page's
reads made once (TOTALS = the level for TOTALS_BUCKETS, CHART = for CHART_BUCKETS), for windows of
1 h, 24 h, 7 d and 30 d ending at the last generated minute. Every page also lists the targets
(Reader.targets, reads.target_statuses) for app.py's sidebar.

- Overview: the statuses; overview.summary (series of statement totals and blocks at TOTALS);
  overview.activity (OVERVIEW_SERIES at CHART); statements.top_statements top 5 at TOTALS.
- Queries: statements.filters; top_statements limit 100 at TOTALS; statements.sparklines of those
  100 (their statement series and the cycle grid at TOTALS).
- Query detail: statements.statement; statement_summary (TOTALS); statement_timeline of the busiest
  statement (its series and the cycle grid at CHART); statement_advice (the advisor's word on it).
- Indexes (no window): statements.advice, and statement_ids for each report's suggested and skipped
  statements.

Each page and window runs once to warm up (reported as `first_ms`), then `--repeat` times; p95 is
the nearest-rank percentile. The store size is the SQLite file plus its -wal and -shm files.

Baselines, measured on the same store in the same run:

- `raw_aggregation` (the ratio's denominator): the Queries page's aggregation, statement_totals
  over the last 24 h, but read from the raw level -- what a store without roll-ups scans. 24 h is
  the longest window that raw (kept 2 days) holds whole, and without roll-ups the cost grows
  linearly with the window, so a 30-day Queries page would cost about 30 times this. A page figure
  below 1.0x is a page that costs less than one day of raw rows: the roll-ups are doing their job,
  and the ratio carries over between machines where absolute milliseconds do not.
- `raw_scan`: `SELECT sum(calls)` over the whole raw statement table, a plain scan that shows the
  machine's speed at reading the store. (Not `count(*)`: SQLite counts a b-tree's cells page by
  page without reading rows, which takes well under a millisecond and says nothing.)

    .venv/bin/python -m bench.store_history --store /tmp/observatory-30d.db      # generate or reuse
    .venv/bin/python -m bench.store_history --days 2 --statements 1000           # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from bench import cli
from bench.history_generator import TARGET, generate
from bench.timing import percentile
from dashboard.analysis import overview, statements
from dashboard.analysis.reader import Reader, StoreReads
from dashboard.analysis.targets import Target
from dashboard.core.config import Config, Retention
from dashboard.store.engine import make_engine
from dashboard.store.reads import CHART_BUCKETS, TOTALS_BUCKETS, Window, statement_totals
from dashboard.store.schema import POINTS, STMT

BUDGET_MS = 300.0
BUDGET_BYTES = 2 * 1024**3
WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
WINDOWLESS = {"indexes"}
Page = Callable[[Window], int]

__all__ = ["TARGET", "generate", "main", "page_loads"]


# -- the page loads -------------------------------------------------------------------------------
class _FirstLoad(StoreReads):
    """The store's reads as a page's first load makes them: the targets' statuses once (app.py's
    sidebar and the page's own checks share them through the app's cache), the rest as asked."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._ready = True  # the generator wrote the schema: no need to ask at every load
        self._statuses: pd.DataFrame | None = None

    def statuses(self) -> pd.DataFrame:
        if self._statuses is None:
            self._statuses = super().statuses()
        return self._statuses.copy()


def _pages(engine: Engine, config: Config, now: int, busiest: int) -> dict[str, Page]:
    """What each page script asks of the analyses when Streamlit's caches are cold."""

    def first_load() -> Reader:
        return Reader(_FirstLoad(engine), config, now=lambda: now)

    def overview_page(w: Window) -> int:
        reader = first_load()
        targets = reader.targets()  # app.py's sidebar
        found = reader.statuses("postgres")
        reader.has_data("postgres")
        figures = overview.summary(reader, targets, w)
        chart = overview.activity(reader, targets, w)
        top = statements.top_statements(reader, targets, w, limit=5)
        return len(found) + len(figures) + len(chart) + len(top)

    def queries_page(w: Window) -> int:
        reader = first_load()
        targets = reader.targets()
        reader.has_data("postgres")
        databases, users = statements.filters(reader, targets)
        top = statements.top_statements(reader, targets, w, limit=100)
        sparks = statements.sparklines(reader, top["statement_id"].tolist(), targets, w)
        return len(databases) + len(users) + len(top) + len(sparks)

    def query_detail_page(w: Window) -> int:
        reader = first_load()
        reader.targets()
        info = statements.statement(reader, busiest)
        assert info is not None
        figures = statements.statement_summary(reader, busiest, w)
        target = Target(int(info.target_id), str(info.target))
        timeline = statements.statement_timeline(reader, busiest, target, w)
        statements.statement_advice(reader, info.target_id, info.datname, info.query)
        return 1 + len(figures) + len(timeline)

    def indexes_page(_w: Window) -> int:  # no window: the advisor's latest reports
        reader = first_load()
        reports = statements.advice(reader, reader.targets())
        found = 0
        for r in reports:  # links for the suggestions' statements and for the skipped statements
            suggested = [t for item in r.report.suggestions for t in item.statements]
            skipped = [item.statement for item in r.report.skipped]
            for texts in (suggested, skipped):
                found += len(statements.statement_ids(reader, r.target_id, r.datname, texts))
        return len(reports) + found

    return {"overview": overview_page, "queries": queries_page, "query_detail": query_detail_page,
            "indexes": indexes_page}  # fmt: skip


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return (time.perf_counter() - t0) * 1000, result


def _summary(first: float, samples: list[float], rows: int) -> dict[str, Any]:
    return {
        "first_ms": round(first, 2),
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        "max_ms": round(max(samples), 2),
        "rows": rows,
    }


def store_size(store_url: str) -> dict[str, int]:
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        sizes = {
            suffix or "db": os.path.getsize(f"{path}{suffix}")
            for suffix in ("", "-wal", "-shm")
            if os.path.exists(f"{path}{suffix}")
        }
        return {**sizes, "total": sum(sizes.values())}
    engine = make_engine(store_url, readonly=True)
    try:
        with engine.connect() as conn:
            total = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    finally:
        engine.dispose()
    return {"total": total}


def _timings(
    pages: dict[str, Page], cases: list[tuple[str, str, Window]], repeat: int, log: cli.Log
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each case once to warm up, then `repeat` rounds, interleaved so that a slow moment of the
    machine hits every page alike."""
    samples: dict[tuple[str, str], list[float]] = {}
    first: dict[tuple[str, str], tuple[float, int]] = {}
    for page, name, w in cases:
        first[(page, name)] = _time(lambda fn=pages[page], w=w: fn(w))
        samples[(page, name)] = []
    for r in range(repeat):
        for page, name, w in cases:
            samples[(page, name)].append(_time(lambda fn=pages[page], w=w: fn(w))[0])
        log(f"  page loads: round {r + 1}/{repeat}")
    return {key: _summary(first[key][0], values, first[key][1]) for key, values in samples.items()}


def _baselines(engine: Engine, target_ids: list[int], now: int) -> tuple[dict[str, Any], dict[str, int]]:
    """The raw 24 h aggregation and the raw scan (see the module's docstring), and every table's rows."""
    day = Window(now - 86400, now)
    raw_agg = [
        _time(lambda: statement_totals(engine, target_ids, day, "raw", limit=100))[0] for _ in range(5)
    ]
    raw_table = STMT["raw"]
    scan = select(func.sum(raw_table.c.calls))
    with engine.connect() as conn:
        raw_rows = int(conn.execute(select(func.count()).select_from(raw_table)).scalar_one())
        raw_scan = [_time(lambda conn=conn: conn.execute(scan).scalar())[0] for _ in range(5)]
        table_rows = {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (*STMT.values(), *POINTS.values())
        }
    baseline = {
        "raw_aggregation_24h_ms": round(statistics.median(raw_agg), 2),
        "raw_scan_ms": round(statistics.median(raw_scan), 2),
        "raw_rows": raw_rows,
    }
    return baseline, table_rows


def page_loads(
    store_url: str,
    now: int,
    *,
    repeat: int = 20,
    retention: Retention | None = None,
    windows: dict[str, int] | None = None,
    log: cli.Log = lambda _msg: None,
) -> dict[str, Any]:
    """Time every page's data load for every window; returns figures, baselines, size and verdict."""
    config = Config(store=store_url, retention=retention or Retention())
    windows = windows or WINDOWS
    engine = make_engine(store_url, readonly=True)  # as the pages open the store
    try:
        reader = Reader(StoreReads(engine), config, now=lambda: now)
        targets = reader.targets()
        month = Window(now - 30 * 86400, now)
        busiest = int(statements.top_statements(reader, targets, month, limit=1)["statement_id"].iloc[0])
        pages = _pages(engine, config, now, busiest)
        cases = [  # (page, window name, window); the Indexes page has no window
            (page, name if page not in WINDOWLESS else "-", Window(now - seconds, now))
            for name, seconds in windows.items()
            for page in pages
            if page not in WINDOWLESS or name == next(iter(windows))
        ]
        levels = {
            name: {
                "chart": reader.level(Window(now - s, now), CHART_BUCKETS),
                "totals": reader.level(Window(now - s, now), TOTALS_BUCKETS),
            }
            for name, s in windows.items()
        }
        timings = _timings(pages, cases, repeat, log)
        baseline, table_rows = _baselines(engine, [t.id for t in targets], now)
    finally:
        engine.dispose()
    figures: dict[str, dict[str, Any]] = {}
    for (page, name), entry in timings.items():
        entry["x_baseline"] = round(entry["p95_ms"] / baseline["raw_aggregation_24h_ms"], 3)
        figures.setdefault(page, {})[name] = entry
    size = store_size(store_url)
    worst = max(f["p95_ms"] for by_window in figures.values() for f in by_window.values())
    return {
        "now": now,
        "repeat": repeat,
        "levels": levels,
        "busiest_statement_id": busiest,
        "pages": figures,
        "baseline": baseline,
        "table_rows": table_rows,
        "size_bytes": size,
        "worst_p95_ms": worst,
        "budget_ms": BUDGET_MS,
        "budget_bytes": BUDGET_BYTES,
        "passed": worst <= BUDGET_MS and size["total"] <= BUDGET_BYTES,
    }


# -- caching a generated store --------------------------------------------------------------------
def _params(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "days": args.days,
        "statements": args.statements,
        "moving": args.moving,
        "interval": args.interval,
        "seed": args.seed,
    }


def prepare_store(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[str, dict[str, Any]]:
    """Generate into --store (or a temp dir), or reuse a store generated with the same parameters."""
    path = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="bench-history-")) / "store.db"
    sidecar = Path(f"{path}.bench.json")
    url = f"sqlite:///{path}"
    if path.exists() and not args.regenerate:
        if not sidecar.exists():
            raise SystemExit(f"{path} exists but was not made by this generator: pass --regenerate")
        generated = json.loads(sidecar.read_text())
        if {k: generated.get(k) for k in _params(args)} != _params(args):
            raise SystemExit(f"{path} was generated with {generated}: pass --regenerate or match them")
        log(f"reusing {path} (generated in {generated['seconds']} s, {generated['cycles_per_s']} cycles/s)")
        return url, {**generated, "reused": True}
    for suffix in ("", "-wal", "-shm", ".bench.json"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    log(f"generating {args.days} days x {args.statements} statements ({args.moving} moving) into {path}")
    generated = generate(
        url,
        days=args.days,
        statements=args.statements,
        moving=args.moving,
        interval=args.interval,
        seed=args.seed,
        log=log,
    )
    sidecar.write_text(json.dumps(generated, indent=2))
    return url, {**generated, "reused": False}


def format_report(generated: dict[str, Any], loads: dict[str, Any]) -> str:
    g, b = generated, loads["baseline"]
    size = loads["size_bytes"]
    lines = [
        f"history: {g['days']} days, {g['cycles']} cycles, {g['statements']} statements, "
        f"{g['moving']} moving a minute; generated at {g['cycles_per_s']} cycles/s "
        f"({g['store_ms_per_cycle']} ms of store time a cycle){' (reused)' if g.get('reused') else ''}",
        "rows: " + ", ".join(f"{k} {v:,}" for k, v in loads["table_rows"].items()),
        f"store size: {size['total'] / 2**20:,.1f} MiB "
        f"({', '.join(f'{k} {v / 2**20:,.1f}' for k, v in size.items() if k != 'total')})"
        f" -- budget {BUDGET_BYTES / 2**30:.0f} GiB",
        f"baseline: statement_totals over 24 h from raw {b['raw_aggregation_24h_ms']:.1f} ms; "
        f"sum(calls) scan of {b['raw_rows']:,} raw rows {b['raw_scan_ms']:.1f} ms",
        "",
        f"{'page':26} {'window':>6} {'level':>13} {'first ms':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'x baseline':>10}",
    ]
    for page, by_window in loads["pages"].items():
        for name, f in by_window.items():
            lv = loads["levels"].get(name)
            level = f"{lv['chart']}/{lv['totals']}" if lv else "-"
            lines.append(
                f"{page:26} {name:>6} {level:>13} {f['first_ms']:>9.1f} "
                f"{f['p50_ms']:>8.1f} {f['p95_ms']:>8.1f} {f['x_baseline']:>10.3f}"
            )
    verdict = "PASS" if loads["passed"] else "FAIL"
    lines += [
        "",
        "level = chart/totals level chosen; x baseline = p95 / raw 24 h aggregation",
        f"worst p95 {loads['worst_p95_ms']:.1f} ms (budget {BUDGET_MS:.0f} ms), "
        f"size {size['total'] / 2**30:.2f} GiB (budget 2 GiB): {verdict}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser(__doc__)
    parser.add_argument("--store", help="SQLite file to generate into, or reuse when already generated")
    parser.add_argument("--regenerate", action="store_true", help="discard --store and generate again")
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--moving", type=int, default=500)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    log = cli.progress(args)
    url, generated = prepare_store(args, log)
    try:
        loads = page_loads(url, generated["end"], repeat=args.repeat, log=log)
    finally:
        if not args.store:  # a temp store is not worth keeping
            shutil.rmtree(Path(make_url(url).database or "").parent, ignore_errors=True)
    figures = {"generated": generated, **loads}
    return cli.finish(args, figures, lambda: format_report(generated, loads), loads["passed"])


if __name__ == "__main__":
    sys.exit(main())
