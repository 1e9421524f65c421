"""The advisor's payoff: a workload's time before and after applying the indexes it suggests.

Starts a throwaway PostgreSQL with the shop schema of the tests (tests/advisor_schema.sql), runs a
mixed workload, asks the advisor (from pg_stat_statements, as `observatory advise` does), creates
the suggested indexes, and runs the same workload again. The baseline is the first run, in the
same process on the same server; the figure is the ratio after / before.

    .venv/bin/python -m bench.advisor_workload [--rounds 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
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


def measure(dsn: str, rounds: int) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    before = run_workload(dsn, rounds)
    started = time.perf_counter()
    # Its own throwaway cluster, advised as the superuser that also creates the indexes after.
    workload = Workload(min_calls=1, min_mean_ms=0.0)
    report = advice_report(dsn, workload=workload, health=False, allow_privileged=True)
    advise_s = time.perf_counter() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in report.suggestions:
            conn.execute(s.create_sql.rstrip(";"))
        conn.execute("ANALYZE")
    after = run_workload(dsn, rounds)
    return {
        "rounds": rounds,
        "statements": rounds * len(MIX),
        "before_s": round(before, 3),
        "after_s": round(after, 3),
        "ratio_after_before": round(after / before, 4),
        "advise_s": round(advise_s, 3),
        "suggestions": [s.create_sql for s in report.suggestions],
        "skipped": [(s.statement, s.reason) for s in report.skipped],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with ThrowawayPostgres() as pg:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("CREATE EXTENSION hypopg")
            conn.execute(SCHEMA.read_text())
        result = measure(pg.dsn(), args.rounds)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"workload: {result['statements']} statements ({result['rounds']} rounds of {len(MIX)})")
        print(f"before: {result['before_s']:.3f} s   after: {result['after_s']:.3f} s")
        print(f"ratio after/before: {result['ratio_after_before']:.4f}, advising: {result['advise_s']:.2f} s")
        print("applied:")
        for sql in result["suggestions"]:
            print(f"  {sql}")
        for statement, reason in result["skipped"]:
            print(f"  no index for {statement[:70]!r}: {reason}")
    return 0 if result["ratio_after_before"] < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
