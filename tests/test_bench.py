"""The benchmarks at tiny scale, through their Python functions, so they cannot rot.

Figures are checked for shape and sense, never against the budgets: timings in tests are flaky.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench import collector_cycle, pages, store_history
from dashboard.core import sources
from dashboard.core.config import Retention
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store.engine import make_engine
from dashboard.store.schema import STMT, advice, points_raw, statements
from tests.support.postgres import new_database


def _timing(figure: dict) -> None:
    assert 0 < figure["min_ms"] <= figure["median_ms"] <= figure["p95_ms"] <= figure["max_ms"]


def test_collector_cycle_benchmark(pg: ThrowawayPostgres) -> None:
    dsn = pg.dsn(dbname=new_database(pg, "bench"))
    result = collector_cycle.run(dsn=dsn, statements=300, repeat=3, moving=50, new_rounds=1)

    assert result["server"]["pgss_entries"] >= 300
    assert result["server"]["pgss_text_bytes"] > 300 * 200  # ORM-sized texts, not one-liners
    assert result["first_cycle_texts"] >= 300  # the first cycle stored every benchmark statement
    assert result["repeat"] == 3
    assert result["moved_per_cycle"]["min"] >= 50  # the 50 statements run between cycles moved
    for key in ("baseline_select_star", "cycle", "store_write", "cycle_and_write"):
        _timing(result[key])
    assert result["cycle_and_write"]["median_ms"] > result["cycle"]["median_ms"]
    server = result["server_time"]  # measured by pg_stat_statements itself
    assert server["baseline_select_star"]["median_ms"] > 0 and server["cycle"]["median_ms"] > 0
    assert result["cycle_with_new_statements"]["texts_fetched"] >= 10
    assert 0 < result["ratio"] < result["ratio_with_write"]
    assert result["passed"] == (result["ratio"] <= collector_cycle.BUDGET)
    text = collector_cycle.format_report(result)
    assert "SELECT * FROM pg_stat_statements" in text and "budget 0.25" in text


def test_store_history_generator_and_page_loads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    retention = Retention(raw=2 * 3600)  # short raw retention: the hourly prunes really delete
    generated = store_history.generate(url, days=0.25, statements=300, moving=50, seed=3, retention=retention)
    assert generated["cycles"] == 360
    assert generated["deltas_written"] == 359 * 50  # the first cycle has no baseline, no deltas
    assert generated["prunes"] >= 5 and generated["cycles_per_s"] > 0

    engine = make_engine(url, readonly=True)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(statements)).scalar() == 300
            mean_text = conn.execute(select(func.avg(func.length(statements.c.query)))).scalar()
            assert mean_text > 300  # ORM-sized texts, ~600 bytes as in the field
            oldest_raw = conn.execute(select(func.min(STMT["raw"].c.ts))).scalar()
            assert oldest_raw >= generated["end"] - 3 * 3600  # pruned to 2 h (+ up to an hour)
            # Roll-ups hold every delta ever written, whatever the raw level dropped.
            for level in ("hourly", "daily"):
                calls = conn.execute(select(func.sum(STMT[level].c.calls))).scalar()
                assert calls == pytest.approx(generated["calls"])
            assert conn.execute(select(func.count()).select_from(points_raw)).scalar() > 0
            assert conn.execute(select(func.count()).select_from(advice)).scalar() == 3  # per database
    finally:
        engine.dispose()

    loads = store_history.page_loads(url, generated["end"], repeat=2, retention=retention)
    assert set(loads["pages"]) == {"overview", "queries", "query_detail", "indexes"}
    for page, by_window in loads["pages"].items():
        windowless = page in store_history.WINDOWLESS
        assert set(by_window) == ({"-"} if windowless else set(store_history.WINDOWS))
        for figure in by_window.values():
            assert 0 < figure["p50_ms"] <= figure["p95_ms"] <= figure["max_ms"]
            assert figure["rows"] > 0 and figure["x_baseline"] > 0
    assert loads["levels"]["1h"]["chart"] == "raw" and loads["levels"]["24h"]["chart"] == "hourly"
    assert loads["baseline"]["raw_aggregation_24h_ms"] > 0 and loads["baseline"]["raw_rows"] > 0
    assert 0 < loads["size_bytes"]["total"] < store_history.BUDGET_BYTES
    assert "p95" in store_history.format_report(generated, loads)


def test_store_history_cli_reuses_a_generated_store(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "cached.db"
    argv = ["--store", str(path), "--days", "0.05", "--statements", "100", "--moving", "20"]
    argv += ["--repeat", "1", "--json", "--quiet"]
    assert store_history.main(argv) in (0, 1)
    first = json.loads(capsys.readouterr().out)
    assert first["generated"]["reused"] is False and first["generated"]["cycles"] == 72
    assert store_history.main(argv) in (0, 1)
    again = json.loads(capsys.readouterr().out)
    assert again["generated"]["reused"] is True and again["now"] == first["now"]
    with pytest.raises(SystemExit, match="--regenerate"):
        store_history.main([*argv[:2], "--days", "0.1", "--quiet"])


@pytest.mark.browser
@pytest.mark.slow
def test_pages_benchmark_runs_at_tiny_scale(tmp_path: Path) -> None:
    """Serves the app and the one-line page and loads each once in Chromium; a server or Chromium
    that cannot start raises, so the test fails."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store_history.generate(url, days=0.05, statements=100, moving=20, seed=3)
    result = pages.run(url, loads=1, warmup=0)

    titles = [p.title for p in sources.pages()]
    assert set(result["caches"]) == set(pages.CACHES)
    for verdict in result["caches"].values():
        measured = verdict["pages"]
        assert set(measured) == {pages.BASELINE, *titles}
        for title, figure in measured.items():
            _timing(figure["load"])
            assert figure["ratio"] > 0 and figure["script_median_ms"] > 0, title
            assert figure["exceptions"] == 0, title
            if title != pages.BASELINE:  # every app page has the sidebar's time window
                _timing(figure["window_7d"])
                _timing(figure["target_off"])
        assert measured[pages.BASELINE]["ratio"] == 1.0
        assert measured[pages.BASELINE]["charts"] == 0
        assert measured["Overview"]["charts"] >= 5  # the store holds PostgreSQL data
        assert "?id=" in measured["Query detail"]["url"]
    worst = max(v["worst_ratio"] for v in result["caches"].values())
    assert result["passed"] == (worst <= pages.BUDGET)
    assert "x one-line" in pages.format_report(result)


def test_guarded_sql_benchmark(pg: ThrowawayPostgres) -> None:
    from bench import guarded_sql

    result = guarded_sql.measure(pg.dsn(dbname=new_database(pg, "guardbench")), tables=2, count=10, rows=200)
    assert result["statements"] == 10 and result["guarded"]["median_ms"] > 0
    assert result["ratio_median"] > 0 and "overhead_median_ms" in result
    outcomes = {b["case"]: b["outcome"] for b in result["bounds"]}
    assert [o.startswith("refused") for o in outcomes.values()] == [False, False, False, True, True], outcomes


def test_wait_sampler_benchmark(pg: ThrowawayPostgres) -> None:
    from bench import wait_sampler

    result = wait_sampler.measure(pg.dsn(dbname=new_database(pg, "waitbench")), sessions=12, repeat=4)
    # 3 of 12 wait, behind up to 3 of the 10 holders: the sample saw every one of them in a chain.
    assert result["waiting"] == 3 and result["sessions_in_chains"] == 6
    assert result["sample"]["median_ms"] > 0 and result["baseline"]["median_ms"] > 0
    assert abs(result["ratio"] - result["sample"]["median_ms"] / result["baseline"]["median_ms"]) < 0.01
    assert "ratio (b)/(a)" in wait_sampler.report(result)
