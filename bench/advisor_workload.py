"""The advisor's payoff: a workload's time before and after the indexes it suggests, and against an oracle.

Starts a throwaway PostgreSQL with the shop schema of the tests (tests/advisor_schema.sql), runs a
mixed workload, asks the advisor (from pg_stat_statements, as `observatory advise` does), creates
the suggested indexes, and runs the same workload again: the ratio after / before.

Then the oracle: the best index set found by trying. From the candidates (every key one statement
of the mix filters, joins or sorts on, alone, among them the expression `lower(email)`; every
ordered pair of keys one statement uses together; and the suggested indexes), greedy forward
selection builds, step by step, each remaining candidate on top of the set so far, times the
workload, and keeps the one that makes it fastest, until none makes it clearly faster (below).
The suggested set and the oracle's set are then timed the same way (in turns, if they differ):
`ratio_oracle_over_suggested` is oracle_s / suggested_s, 1.0 when the suggestions are as good as
the best set found.

Every figure is the median of `--repeats` runs of the whole workload or more (at least MIN_FIGURE_S
of them), after a warm-up run, with the same parameters each run. The noise is reported with it:
the fastest run, (max - min) / median and (q3 - q1) / median. The search keeps an index only if the
median run with it beats the fastest run without it by MIN_GAIN: another process on the machine
only ever adds time to a run, and unevenly, so a set's fastest run is its least disturbed.

    .venv/bin/python -m bench.advisor_workload [--rounds 20] [--repeats 5] [--budget 300] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from dashboard.advisor.database import Workload, advice_report
from dashboard.servers.throwaway import ThrowawayPostgres

SCHEMA = Path(__file__).resolve().parent.parent / "tests" / "advisor_schema.sql"
# (statement, parameter maker): the kind of mix an order system runs.
MIX: list[tuple[str, Any]] = [
    ("SELECT * FROM orders WHERE ref = %s", lambda r: (f"R-{r.randint(1, 300000)}",)),
    (
        "SELECT * FROM customers WHERE lower(email) = lower(%s)",
        lambda r: (f"customer{r.randint(1, 200000)}@example.org",),
    ),
    (
        "SELECT * FROM orders WHERE region = %s ORDER BY created_at DESC LIMIT 10",
        lambda r: (r.randint(0, 199),),
    ),
    (
        "SELECT count(*) FROM orders WHERE region = %s AND channel = %s",
        lambda r: (r.randint(0, 199), r.randint(0, 49)),
    ),
    (
        "SELECT o.total FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.email = %s",
        lambda r: (f"Customer{r.randint(1, 200000)}@Example.org",),
    ),
    ("UPDATE orders SET total = total WHERE ref = %s", lambda r: (f"R-{r.randint(1, 300000)}",)),
    ("SELECT * FROM orders WHERE id = %s", lambda r: (r.randint(1, 300000),)),  # already indexed
]
# What each statement of MIX filters, joins or sorts on, per table (the primary key's `id` left out:
# it is indexed). The oracle's candidates: each key alone, and each ordered pair one statement uses
# together (a pair no statement uses together serves none better than its first key alone).
USES: list[tuple[str, tuple[str, ...]]] = [
    ("public.orders", ("ref",)),
    ("public.customers", ("(lower(email))",)),
    ("public.orders", ("region", "created_at")),
    ("public.orders", ("region", "channel")),
    ("public.customers", ("email",)),
    ("public.orders", ("customer_id",)),
    ("public.orders", ("ref",)),
]
REPEATS = 5
BUDGET_S = 300.0  # the oracle's search stops after this long, and says so
# A candidate whose first run is this much slower than the step's best so far is not repeated (it
# stays a candidate for the next step): the search's time goes to the likely winners.
CLEARLY_WORSE = 1.1
MIN_FIGURE_S = 1.0  # a figure's runs add up to at least this long (more runs for fast index sets)
MAX_RUNS = 200
# The search keeps an index only if, with it, the median run is faster by this much than even the
# fastest run without it: a busy machine adds time to runs, unevenly, never takes it away.
MIN_GAIN = 0.02
ALTERNATIONS = 2  # different oracle and suggested sets are timed in turns, this many times each


def run_workload(dsn: str, rounds: int, seed: int = 7) -> float:
    """Seconds to run every statement of the mix `rounds` times, with the same parameters each run."""
    rng = random.Random(seed)
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        for _ in range(rounds):
            for statement, params in MIX:
                conn.execute(statement, params(rng)).fetchall() if statement.startswith(
                    "SELECT"
                ) else conn.execute(statement, params(rng))
        return time.perf_counter() - started


@dataclass
class Timing:
    """Repeated runs of the whole workload on one index set."""

    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def fastest(self) -> float:
        """The fastest run: another process on the machine only ever adds time to a run."""
        return min(self.runs)

    @property
    def spread(self) -> float:
        """(max - min) / median: how much runs of the same set vary, outliers included."""
        return (max(self.runs) - min(self.runs)) / self.median

    @property
    def iqr(self) -> float:
        """(third quartile - first) / median: the middle half's width, which a stray slow run
        (another process on the machine) does not move."""
        if len(self.runs) < 4:
            return self.spread
        q1, _, q3 = statistics.quantiles(self.runs, n=4, method="inclusive")
        return (q3 - q1) / self.median

    def figures(self) -> dict[str, Any]:
        return {
            "median_s": round(self.median, 6),
            "fastest_s": round(self.fastest, 6),
            "spread": round(self.spread, 4),
            "iqr": round(self.iqr, 4),
            "runs": len(self.runs),
        }


def timed(dsn: str, rounds: int, repeats: int, warm_up: bool = True, first: float | None = None) -> Timing:
    """At least `repeats` runs, and more while they add up to less than MIN_FIGURE_S: a fast set's
    runs are a few milliseconds, at the mercy of the scheduler."""
    if warm_up:
        run_workload(dsn, rounds)
    runs = [] if first is None else [first]
    while len(runs) < repeats or (sum(runs) < MIN_FIGURE_S and len(runs) < MAX_RUNS):
        runs.append(run_workload(dsn, rounds))
    return Timing(runs)


def measure(dsn: str, rounds: int, repeats: int = REPEATS) -> dict[str, Any]:
    """Before, advice, after: the workload's time without and with the suggested indexes."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    before = timed(dsn, rounds, repeats)
    started = time.perf_counter()
    # Its own throwaway cluster, advised as the superuser that also creates the indexes after.
    workload = Workload(min_calls=1, min_mean_ms=0.0)
    report = advice_report(dsn, workload=workload, health=False, allow_privileged=True)
    advise_s = time.perf_counter() - started
    suggestions = [s.create_sql for s in report.suggestions]
    with psycopg.connect(dsn, autocommit=True) as conn:
        schema_own = index_names(conn)
        for create in suggestions:
            conn.execute(create.rstrip(";"))
        conn.execute("ANALYZE")
        created = sorted(index_names(conn) - schema_own)
    after = timed(dsn, rounds, repeats)
    return {
        "rounds": rounds,
        "statements": rounds * len(MIX),
        "repeats": repeats,
        "before_s": round(before.median, 6),
        "after_s": round(after.median, 6),
        "ratio_after_before": round(after.median / before.median, 4),
        "advise_s": round(advise_s, 3),
        "suggestions": suggestions,
        "created_indexes": created,  # their names, for compare_with_oracle() to drop
        "skipped": [(s.statement, s.reason) for s in report.skipped],
        "noise": {"before": before.figures(), "after": after.figures()},
    }


# -- the oracle ---------------------------------------------------------------------------------
def index_key(create_sql: str) -> str:
    """'public.orders (ref)' from 'CREATE INDEX CONCURRENTLY ON public.orders (ref);'."""
    return create_sql.split(" ON ", 1)[1].strip().rstrip(";").strip()


def candidates(suggestions: list[str]) -> list[str]:
    """The oracle's candidate indexes, as index_key() writes them, each once."""
    found: list[str] = []
    for table, keys in USES:
        found += [f"{table} ({k})" for k in keys]
        found += [f"{table} ({a}, {b})" for a, b in itertools.permutations(keys, 2)]
    found += [index_key(s) for s in suggestions]
    return list(dict.fromkeys(found))


class IndexSet:
    """The indexes the benchmark created on top of the schema's own, created and dropped by key."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.names: dict[str, str] = {}  # key -> index name

    def create(self, key: str) -> None:
        name = f"bench_oracle_{len(self.names)}_{int(time.monotonic_ns() % 10**9)}"
        self.conn.execute(f"CREATE INDEX {name} ON {key}")
        if "((" in key:  # an expression: its statistics come with ANALYZE, as the planner needs them
            self.conn.execute(f"ANALYZE {key.split(' ', 1)[0]}")
        self.names[key] = name

    def drop(self, key: str) -> None:
        self.conn.execute(f"DROP INDEX {self.names.pop(key)}")

    def only(self, keys: list[str]) -> None:
        """Exactly these (and the schema's own) from now on."""
        for key in [k for k in self.names if k not in keys]:
            self.drop(key)
        for key in [k for k in keys if k not in self.names]:
            self.create(key)


def index_names(conn: psycopg.Connection) -> set[str]:
    return {n for (n,) in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}


def greedy(
    dsn: str, indexes: IndexSet, pool: list[str], rounds: int, repeats: int, budget_s: float
) -> dict[str, Any]:
    """Forward selection on measured time, from no index of the pool; the chosen ones stay created."""
    started = time.perf_counter()
    chosen: list[str] = []
    steps: list[dict[str, Any]] = []
    evaluations = 0
    stopped = "no candidate left"
    remaining = list(pool)
    while remaining:
        if time.perf_counter() - started > budget_s:
            stopped = f"budget of {budget_s:.0f} s spent"
            break
        # The current set timed anew each step: the load of the machine drifts, and the last
        # step's winner's own figure is the luckiest of the many it beat.
        current = timed(dsn, rounds, repeats)
        tried: dict[str, Timing] = {}
        for key in remaining:
            indexes.create(key)
            first = run_workload(dsn, rounds)  # the index just built is in the cache: no warm-up
            best = min((t.median for t in tried.values()), default=None)
            if best is not None and first > best * CLEARLY_WORSE:
                tried[key] = Timing([first])  # not repeated: it cannot win this step
            else:
                tried[key] = timed(dsn, rounds, repeats, warm_up=False, first=first)
            indexes.drop(key)
            evaluations += 1
        key, timing = min(tried.items(), key=lambda kt: kt[1].median)
        # Kept only if its typical run beats even the fastest run of the set without it.
        gain = 1 - timing.median / current.fastest
        kept = gain > MIN_GAIN
        steps.append(
            {
                "index": key,
                "current_fastest_s": round(current.fastest, 6),
                "current_s": round(current.median, 6),
                "with_it_s": round(timing.median, 6),
                "gain": round(gain, 4),
                "kept": kept,
            }
        )
        if not kept:
            stopped = f"no index makes the median run {MIN_GAIN:.0%} faster than the fastest run without it"
            break
        indexes.create(key)
        chosen.append(key)
        remaining.remove(key)
        remaining.sort(key=lambda k: tried[k].median)  # the likely winners first: fewer full repeats
    return {
        "set": chosen,
        "steps": steps,
        "evaluations": evaluations,
        "stopped": stopped,
        "search_s": round(time.perf_counter() - started, 1),
    }


def compare_with_oracle(
    dsn: str, result: dict[str, Any], budget_s: float = BUDGET_S, pool: list[str] | None = None
) -> dict[str, Any]:
    """The oracle's search on `dsn` (which measure() left with the suggested indexes), then the
    oracle's set and the suggested set timed the same way. Adds the figures to `result`."""
    rounds, repeats = result["rounds"], result["repeats"]
    suggested = [index_key(s) for s in result["suggestions"]]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in result["created_indexes"]:  # the search starts from the schema's own indexes
            conn.execute(f'DROP INDEX public."{name}"')
        indexes = IndexSet(conn)
        pool = pool or candidates(result["suggestions"])
        search = greedy(dsn, indexes, pool, rounds, repeats, budget_s)
        same_set = sorted(search["set"]) == sorted(suggested)
        if same_set:  # one set: timed once (twice would only measure the noise)
            oracle = suggested_timing = timed(dsn, rounds, repeats)
        else:  # in turns, so that a change in the machine's load falls on both
            oracle, suggested_timing = Timing([]), Timing([])
            for _ in range(ALTERNATIONS):
                for keys, timing in ((search["set"], oracle), (suggested, suggested_timing)):
                    indexes.only(keys)
                    timing.runs += timed(dsn, rounds, repeats).runs
        indexes.only([])
    result.update(
        oracle_s=round(oracle.median, 6),
        suggested_s=round(suggested_timing.median, 6),
        ratio_oracle_over_suggested=round(oracle.median / suggested_timing.median, 4),
        oracle_set=search["set"],
        same_set=same_set,
        candidates=len(pool),
        oracle_search=search,
    )
    result["noise"].update(oracle=oracle.figures(), suggested=suggested_timing.figures())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs per figure (the median)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the oracle's search")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with ThrowawayPostgres() as pg:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("CREATE EXTENSION hypopg")
            conn.execute(SCHEMA.read_text())
        result = measure(pg.dsn(), args.rounds, args.repeats)
        compare_with_oracle(pg.dsn(), result, args.budget)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_result(result)
    return 0 if result["ratio_after_before"] < 1 else 1


def print_result(result: dict[str, Any]) -> None:
    n, noise, search = result["repeats"], result["noise"], result["oracle_search"]
    print(f"workload: {result['statements']} statements ({result['rounds']} rounds of {len(MIX)})")
    print(f"each figure: the median of {n} runs or more (>= {MIN_FIGURE_S:.0f} s of them), after a warm-up")
    print(f"before: {result['before_s']:.4f} s   after: {result['after_s']:.4f} s")
    print(f"ratio after/before: {result['ratio_after_before']:.4f}, advising: {result['advise_s']:.2f} s")
    print("applied:")
    for sql in result["suggestions"]:
        print(f"  {sql}")
    for statement, reason in result["skipped"]:
        print(f"  no index for {statement[:70]!r}: {reason}")
    tried = f"{search['evaluations']} trials of {result['candidates']} candidates in {search['search_s']} s"
    print(f"oracle: {tried}; stopped: {search['stopped']}")
    print("  each step: the median (fastest) run without the index -> the median with it")
    for step in search["steps"]:
        change = (
            f"{step['current_s']:.4f} (fastest {step['current_fastest_s']:.4f}) -> {step['with_it_s']:.4f} s"
        )
        print(f"  + {step['index']}: {change} ({'kept' if step['kept'] else 'not kept'})")
    same = " (the same set)" if result["same_set"] else ""
    print(f"oracle's set{same}: {', '.join(result['oracle_set']) or 'none'}")
    print(f"oracle: {result['oracle_s']:.4f} s   suggested: {result['suggested_s']:.4f} s")
    ratio = result["ratio_oracle_over_suggested"]
    print(f"ratio oracle/suggested: {ratio:.4f} (1.0: as good as the best set found; aim >= 0.99)")
    print("noise: the fastest run, (max - min) / median and (q3 - q1) / median of each figure's runs")
    for name, f in noise.items():
        print(f"  {name}: {f['fastest_s']:.4f} s, {f['spread']:.1%}, {f['iqr']:.1%} ({f['runs']} runs)")
    drift = abs(result["suggested_s"] - result["after_s"]) / result["after_s"]
    print(f"the suggested set timed twice (after, then suggested) differs by {drift:.1%}")


if __name__ == "__main__":
    sys.exit(main())
