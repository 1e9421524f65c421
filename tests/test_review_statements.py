"""The weekly review's statements (dashboard/analysis/review/statements.py): two ISO weeks of hourly
cycles written through the real store, in which chosen statements regress, improve, appear and
vanish among noise that must not be reported."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dashboard.analysis.reader import Reader, StoreReads
from dashboard.analysis.review import statements as review_statements
from dashboard.analysis.review.model import Period, Settings
from dashboard.analysis.targets import Target
from dashboard.store import Store, reads
from tests.support.review_world import (
    BASELINE,
    HOSTILE,
    HOUR,
    LONG,
    PERIOD,
    Statement,
    cycles,
    jitter,
    scenario,
)  # fmt: skip
from tests.support.stores import make_config


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Reader, list[Target], dict[str, Statement]]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('review')) / 'store.db'}"
    statements = scenario()
    store = Store(url)
    store.write_cycles(list(cycles(statements)))
    erp = Target(store.target_id("postgres", "erp"), "erp", "postgres")
    store.close()
    reader = Reader(StoreReads.open(url), make_config(url), now=lambda: PERIOD.end + HOUR)
    return reader, [erp, Target(erp.id + 100, "cache", "redis")], statements


def names(rows, statements: dict[str, Statement]) -> list[str]:
    by_text = {st.text or review_statements.NO_TEXT: name for name, st in statements.items()}
    return [by_text[row.query] for row in rows]


def test_exactly_the_chosen_statements_are_reported_in_order_of_cost(world) -> None:
    reader, targets, s = world
    regressions, improvements, new, gone = review_statements.compare(
        reader, targets, PERIOD, BASELINE, Settings()
    )
    assert names(regressions, s) == ["regress_big", "regress"]
    assert names(improvements, s) == ["improve", "improve_small"]
    assert names(new, s) == ["new_big", "new"]
    assert names(gone, s) == ["gone"]
    for row in (*regressions, *improvements):
        st = s[names([row], s)[0]]
        assert row.calls == (st.calls(BASELINE), st.calls(PERIOD))
        assert row.mean_ms == pytest.approx((st.mean(BASELINE), st.mean(PERIOD)), rel=1e-9)
        assert row.rows_per_call == (2.0, 2.0) and row.read_per_call == (3.0, 3.0)
        assert row.total_ms == pytest.approx((st.mean(PERIOD) - st.mean(BASELINE)) * st.calls(PERIOD))
        assert row.change == pytest.approx(st.mean(PERIOD) / st.mean(BASELINE))
        assert (row.target, row.datname) == ("erp", "shop")
        expected = st.daily()
        assert [m is None for m in row.daily_mean_ms] == [m is None for m in expected]
        assert [m for m in row.daily_mean_ms if m] == pytest.approx([m for m in expected if m], rel=1e-9)
    assert regressions[0].change == pytest.approx(2.0, abs=0.02) and regressions[1].z >= 3
    assert all(row.total_ms < 0 and row.z <= -3 for row in improvements)
    assert improvements[1].daily_mean_ms[3] is None and len(improvements[1].daily_mean_ms) == 14
    assert [(t.calls, t.mean_ms, t.total_ms) for t in new] == [
        (400 * 120, 4.0, 192_000.0),
        (50 * 168, 3.0, 25_200.0),
    ]
    assert (gone[0].calls, gone[0].mean_ms, gone[0].total_ms) == (80 * 168, 7.0, 80 * 168 * 7.0)


def test_hostile_and_missing_texts_pass_through_unchanged(world) -> None:
    reader, targets, _ = world
    regressions, _, new, gone = review_statements.compare(reader, targets, PERIOD, BASELINE, Settings())
    assert regressions[1].query == HOSTILE
    assert new[1].query == LONG and len(LONG) > 100_000
    assert gone[0].query == "(text not collected)"


def test_each_noise_is_left_out_by_its_own_rule(world) -> None:
    """Loosen one rule at a time: the noise it kept out shows up, so each rule does the work."""
    reader, targets, s = world

    def flagged(**settings) -> set[str]:
        regressions, improvements, _, _ = review_statements.compare(
            reader, targets, PERIOD, BASELINE, Settings(**settings)
        )
        return set(names(regressions, s)) | set(names(improvements, s))

    chosen = {"regress", "regress_big", "improve", "improve_small"}
    assert "rare" in flagged(min_calls=50) - chosen  # 80 calls a week: only min_calls kept it out
    assert "tiny" in flagged(min_change=0.05) - chosen  # +10 % on 8.4 million calls: a sure change
    assert "batch" in flagged(z=0.5) - chosen  # +30 % and more, but three jittery hours
    assert flagged(top=2) == chosen and len(flagged(top=1)) == 2


def test_the_hour_to_hour_spread_keeps_noise_out_that_the_calls_alone_would_flag(world) -> None:
    reader, targets, s = world
    batch = s["batch"]
    a, b = batch.mean(BASELINE), batch.mean(PERIOD)
    assert b / a >= 1.3  # a change large enough to report ...
    z_calls_only = (b - a) / math.hypot(
        batch.stddev_ms / math.sqrt(batch.calls(BASELINE)), batch.stddev_ms / math.sqrt(batch.calls(PERIOD))
    )
    assert z_calls_only > 50  # ... and sure, if its 60,000 calls were independent draws
    regressions, improvements, _, _ = review_statements.compare(reader, targets, PERIOD, BASELINE, Settings())
    assert "batch" not in names(regressions, s) and "jitter" not in names(improvements + regressions, s)


def test_a_few_busy_hours_count_as_few_however_many_quiet_hours_had_calls() -> None:
    """Kish's effective number of hours: three hours of a million calls and 100 hours of one call
    are about three hours of evidence, so the spread of the means is barely divided."""
    import pandas as pd

    calls = np.array([1_000_000] * 3 + [1] * 100, dtype=float)
    means = np.array([10.0, 12.0, 14.0] + [20.0] * 100)
    frame = pd.DataFrame({
        "statement_id": [1], "target_id": [1], "datname": ["d"], "first_seen": [0], "stddev_ms": [None],
        "calls": [calls.sum()], "exec_ms": [(calls * means).sum()], "rows": [0], "shared_read": [0],
        "buckets": [103], "calls_sq": [(calls**2).sum()], "exec_sq_per_call": [(calls * means**2).sum()],
    })  # fmt: skip
    figures = review_statements._figures(frame)
    n_eff = calls.sum() ** 2 / (calls**2).sum()
    assert figures["n_eff"].iloc[0] == pytest.approx(n_eff) and 3 < n_eff < 3.001
    se, _ = review_statements._standard_errors(figures.join(figures, lsuffix="_a", rsuffix="_b"))
    weighted_sd = math.sqrt(np.average((means - np.average(means, weights=calls)) ** 2, weights=calls))
    assert se.iloc[0] > 5 * weighted_sd / math.sqrt(103)  # not what dividing by sqrt(hours with calls) gives
    assert se.iloc[0] == pytest.approx(weighted_sd / math.sqrt(n_eff - 1))


def alone(tmp_path: Path, statement: Statement) -> tuple[list[str], list[str]]:
    """The names (regressions, improvements) of one statement compared in a store of its own."""
    url = f"sqlite:///{tmp_path / 'alone.db'}"
    store = Store(url)
    store.write_cycles(list(cycles({"job": statement})))
    erp = Target(store.target_id("postgres", "erp"), "erp", "postgres")
    store.close()
    reader = Reader(StoreReads.open(url), make_config(url), now=lambda: PERIOD.end + HOUR)
    regressions, improvements, _, _ = review_statements.compare(reader, [erp], PERIOD, BASELINE, Settings())
    return [r.query for r in regressions], [r.query for r in improvements]


@pytest.mark.parametrize("change", [1.4, 2.0])
def test_a_job_of_one_busy_hour_in_both_periods_is_not_judged(tmp_path: Path, change: float) -> None:
    """One hour of 20,000 calls a week: the calls share that hour's load, so the two weekly means are
    one draw each, and no spread tells a +40 % (or +100 %) change from an unlucky hour."""
    job = Statement(1, "SELECT * FROM weekly_report WHERE x = $1", 20.0)
    job.ran(BASELINE, hours=[50], calls=20_000, mean=lambda h: 50.0)
    job.ran(BASELINE, hours=range(51, 168), calls=1, mean=lambda h: 50.0)  # n_eff a hair above 1
    job.ran(PERIOD, hours=[50], calls=20_000, mean=lambda h: 50.0 * change)
    z_calls_only = 50.0 * (change - 1) / math.hypot(20.0 / math.sqrt(20_117), 20.0 / math.sqrt(20_000))
    assert z_calls_only > 90  # what the server's stddev alone would say
    assert alone(tmp_path, job) == ([], [])


@pytest.mark.parametrize("one_hour", [PERIOD, BASELINE])
def test_a_one_hour_period_borrows_the_other_periods_hourly_spread(tmp_path: Path, one_hour: Period) -> None:
    """The other period ran 168 hours whose means jitter +-25 %: an hour of the job is that
    uncertain, so +40 % in one hour is not sure (z 2.2 to 2.7) and +100 % is (z 3.5 to 6.7)."""
    rng = np.random.default_rng(7)
    for change, flagged in ((1.4, False), (2.0, True)):
        job = Statement(1, f"SELECT * FROM weekly_report /* {change} */", 20.0)
        for period, mean in ((BASELINE, 50.0), (PERIOD, 50.0 * change)):
            if period == one_hour:
                job.ran(period, hours=[50], calls=20_000, mean=lambda h, m=mean: m)
            else:
                job.ran(period, calls=100, mean=jitter(rng, mean, 0.25))
        assert alone(tmp_path / f"{one_hour.label}-{change}", job) == ([job.text] if flagged else [], [])


def test_no_postgres_targets_and_an_empty_store_give_empty_lists(world, tmp_path: Path) -> None:
    reader, targets, _ = world
    assert review_statements.compare(reader, targets[1:], PERIOD, BASELINE, Settings()) == ((), (), (), ())
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).close()
    empty = Reader(StoreReads.open(url), make_config(url), now=lambda: PERIOD.end)
    found = review_statements.compare(empty, [Target(1, "erp")], PERIOD, BASELINE, Settings())
    assert found == ((), (), (), ())


def test_the_window_read_sums_buckets_and_their_moments_on_both_backends(backend_store: Store) -> None:
    from tests.support.cycles import T0, cycle

    for ts, moved in [
        (T0 + 60, {1: 2}),
        (T0 + 120, {1: 3, 2: 4}),
        (T0 + HOUR + 60, {1: 5}),
        (T0 + 9 * HOUR, {2: 1}),
    ]:
        backend_store.write_cycle(cycle(ts, moved))  # 2 ms a call
    frame = reads.statement_window_totals(
        backend_store.engine, [1], reads.Window(T0, T0 + 2 * HOUR - 1), "hourly"
    )
    row = frame.sort_values("calls").iloc[-1]
    assert (row["calls"], row["exec_ms"], row["buckets"]) == (10, 20.0, 2)
    assert (row["calls_sq"], row["exec_sq_per_call"]) == (5**2 + 5**2, 10.0**2 / 5 + 10.0**2 / 5)
    assert sorted(frame["calls"]) == [4, 10]  # the statement's call at 09:00 is outside the window
    assert row["first_seen"] == T0 + 60 and row["datname"] == "erp"
    assert row["stddev_ms"] is None or math.isnan(row["stddev_ms"])  # the cycles reported none
