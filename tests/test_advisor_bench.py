"""bench/advisor_workload.py's oracle at a small scale: a mix of three statements on its own database
(the benchmark creates and drops indexes), with a decoy candidate that no statement can use."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from bench import advisor_workload as bench
from dashboard.servers.throwaway import ThrowawayPostgres
from tests.support.postgres import new_database

SCHEMA = Path(__file__).with_name("advisor_schema.sql").read_text()
REF, REGION_CHANNEL, BY_ID = bench.MIX[0], bench.MIX[3], bench.MIX[6]
DECOY = "public.orders (status)"  # no statement of the small mix filters on status


def test_candidates_are_each_key_and_each_ordered_pair_once() -> None:
    assert bench.index_key("CREATE INDEX CONCURRENTLY ON public.customers ((lower(email)));") == (
        "public.customers ((lower(email)))"
    )
    found = bench.candidates(["CREATE INDEX CONCURRENTLY ON public.orders (status, ref);"])
    assert len(found) == len(set(found)) == 12
    assert {"public.orders (region, created_at)", "public.orders (created_at, region)"} <= set(found)
    assert "public.orders (created_at, channel)" not in found  # no statement uses them together
    assert found[-1] == "public.orders (status, ref)"  # a suggestion is always a candidate


def test_timing_figures() -> None:
    timing = bench.Timing([0.3, 0.1, 0.2, 0.25, 1.5])  # one run slowed by another process
    assert (timing.median, timing.fastest) == (0.25, 0.1)
    assert timing.spread == pytest.approx(1.4 / 0.25)
    assert timing.iqr < 1 < timing.spread  # the stray run moves the spread, not the middle half


def test_the_oracle_keeps_only_useful_indexes_and_is_not_slower_than_the_suggestions(
    pg: ThrowawayPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "MIX", [REF, REGION_CHANNEL, BY_ID])
    uses = [
        ("public.orders", ("ref",)),
        ("public.orders", ("region", "channel")),
        ("public.orders", ("status",)),
    ]
    monkeypatch.setattr(bench, "USES", uses)
    monkeypatch.setattr(bench, "MIN_FIGURE_S", 0.1)
    name = new_database(pg, "bench_oracle")
    dsn = pg.dsn(dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("CREATE EXTENSION hypopg")
    result = bench.measure(dsn, rounds=2, repeats=3)
    assert "CREATE INDEX CONCURRENTLY ON public.orders (ref);" in result["suggestions"]
    assert result["after_s"] < result["before_s"] and result["statements"] == 6

    bench.compare_with_oracle(dsn, result, budget_s=60)
    oracle_set, search = result["oracle_set"], result["oracle_search"]
    assert result["candidates"] == 6  # ref, region, channel, both pairs, the decoy
    # The two statements that need an index got one; the decoy, which serves none, was never kept.
    assert "public.orders (ref)" in oracle_set and DECOY not in oracle_set
    assert {"public.orders (region, channel)", "public.orders (channel, region)"} & set(oracle_set)
    kept = [step for step in search["steps"] if step["kept"]]
    assert [step["index"] for step in kept] == oracle_set
    assert all(step["gain"] > bench.MIN_GAIN for step in kept)
    assert search["stopped"].startswith("no ")  # a step that gained nothing, not the budget

    # The ratio is the measured figures'; the best set found is not slower than the suggested one.
    assert result["ratio_oracle_over_suggested"] == pytest.approx(
        result["oracle_s"] / result["suggested_s"],
        rel=2e-3,  # the figures are rounded to microseconds
    )
    noise = result["noise"]
    assert noise["oracle"]["fastest_s"] <= noise["suggested"]["fastest_s"] * 1.25
    assert result["same_set"] == (
        sorted(oracle_set) == sorted(bench.index_key(s) for s in result["suggestions"])
    )
    with psycopg.connect(dsn) as conn:  # the benchmark's indexes are gone: the schema's own remain
        left = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'orders'").fetchall()
    assert left == [("orders_pkey",)]
