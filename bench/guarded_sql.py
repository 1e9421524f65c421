"""Benchmark: what the guarded SQL door costs a statement, against planning it the old, unguarded way.

Every statement the project did not write is planned through `dashboard.core.guarded`: PostgreSQL's
parser reads it (pglast), a catalog query names the functions planning it could run, and the plan
is asked for in a read-only transaction that is rolled back, through the extended protocol. This
measures that path against the baseline the advisor used before: the same EXPLAINs sent as plain
text in autocommit (PREPARE + EXPLAIN EXECUTE for `$n` statements), on the same server, in
alternating order.

It also times sqlglot's analysis of the largest statements the bounds let through (the most AND/OR
terms, the deepest nesting), and the refusal of statements past them.

Budgets (the issue names none; these keep the door cheap next to what the advisor does anyway): the
guard adds at most 10 ms to a statement's plan (median against median; the ratio is reported too),
and no statement at the bounds takes sqlglot more than 1 s to analyse. (The budget was 5 ms until
the check moved inside each plan's transaction, with the relations locked first: 2.9 ms before,
5.6 ms after.)

    .venv/bin/python -m bench.guarded_sql [--tables 20] [--statements 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from typing import Any

import psycopg

from bench.timing import summary, timed
from dashboard.advisor.catalog import Catalog
from dashboard.advisor.shapes import shape
from dashboard.core.guarded import GuardedSession, check
from dashboard.core.guarded.statement import MAX_BOOLEAN, MAX_DEPTH, Refused
from dashboard.servers.throwaway import ThrowawayPostgres

BUDGET_OVERHEAD_MS = 10.0
BUDGET_ANALYSIS_MS = 1000.0
ROLE = "bench_advisor"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def setup(dsn: str, tables: int, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        # Write only so that UPDATE can be planned (EXPLAIN checks it); the guarded session is read-only.
        conn.execute(f"CREATE ROLE {ROLE} LOGIN IN ROLE pg_monitor, pg_read_all_data, pg_write_all_data")
        for t in range(tables):
            conn.execute(f"DROP TABLE IF EXISTS bench_t{t} CASCADE")
            conn.execute(f"CREATE TABLE bench_t{t} (id int PRIMARY KEY, a int, b int, c text, d timestamptz)")
            conn.execute(
                f"INSERT INTO bench_t{t} SELECT g, g % 100, g % 1000, 'x' || g, now() - g * interval '1 s'"
                f" FROM generate_series(1, {rows}) g"
            )
            conn.execute(f"CREATE VIEW bench_v{t} AS SELECT id, a, lower(c) AS c FROM bench_t{t}")
        conn.execute("ANALYZE")


def statements(tables: int, count: int, seed: int = 7) -> list[str]:
    """Shapes of an ORM workload: lookups, filters, joins, views, sorts, DML."""
    rng = random.Random(seed)
    shapes = [
        "SELECT * FROM bench_t{t} WHERE id = $1",
        "SELECT id, c FROM bench_t{t} WHERE a = $1 AND b > $2 ORDER BY d DESC LIMIT 20",
        "SELECT count(*) FROM bench_t{t} x JOIN bench_t{u} y ON y.id = x.b WHERE x.a = $1",
        "SELECT * FROM bench_v{t} WHERE c = lower($1)",
        "SELECT a, sum(b) FROM bench_t{t} WHERE d > now() - interval '1 day' GROUP BY a",
        "UPDATE bench_t{t} SET c = $1 WHERE id = $2",
        "SELECT * FROM bench_t{t} WHERE a IN (1, 2, 3) AND c LIKE 'x1%'",
    ]
    return [rng.choice(shapes).format(t=rng.randrange(tables), u=rng.randrange(tables)) for _ in range(count)]


def unguarded(conn: psycopg.Connection, text: str) -> None:
    """The advisor's old path: plain text, simple protocol, autocommit."""
    if "$" in text:
        params = max(int(p) for p in re.findall(r"\$(\d+)", text))
        conn.execute(f"PREPARE bench_old AS {text}")
        try:
            execute = f"EXECUTE bench_old({', '.join(['NULL'] * params)})"
            conn.execute(f"EXPLAIN (FORMAT JSON) {execute}").fetchone()
            conn.execute(f"EXPLAIN {execute}").fetchall()
        finally:
            conn.execute("DEALLOCATE bench_old")
    else:
        conn.execute(f"EXPLAIN (FORMAT JSON) {text}").fetchone()
        conn.execute(f"EXPLAIN {text}").fetchall()


def guarded(session: GuardedSession, text: str) -> None:
    session.explain(check(text))


def measure(dsn: str, tables: int = 20, count: int = 200, rows: int = 5000) -> dict[str, Any]:
    setup(dsn, tables, rows)
    texts = statements(tables, count)
    role_dsn = psycopg.conninfo.make_conninfo(dsn, user=ROLE)
    old_ms, new_ms, check_ms, calls_ms = [], [], [], []
    with (
        psycopg.connect(role_dsn, autocommit=True, options="-c plan_cache_mode=force_generic_plan") as conn,
        GuardedSession.connect(role_dsn) as session,
    ):
        for text in texts[:10]:  # warm both connections' catalog caches
            unguarded(conn, text)
            guarded(session, text)
        for i, text in enumerate(texts):
            pair = [("old", lambda t=text: unguarded(conn, t)), ("new", lambda t=text: guarded(session, t))]
            for name, run in pair if i % 2 else reversed(pair):
                ms, _ = timed(run)
                (old_ms if name == "old" else new_ms).append(ms)
            ms, statement = timed(lambda t=text: check(t))
            check_ms.append(ms)
            ms, _ = timed(lambda s=statement: session.untrusted_calls(s))
            calls_ms.append(ms)
        bounds = analysis_at_bounds(session)
    ratio = statistics.median(new_ms) / statistics.median(old_ms)
    overhead = statistics.median(new_ms) - statistics.median(old_ms)
    return {
        "statements": count,
        "unguarded": summary(old_ms),
        "guarded": summary(new_ms),
        "parse_check": summary(check_ms),
        "untrusted_calls_check": summary(calls_ms),
        "ratio_median": round(ratio, 2),
        "overhead_median_ms": round(overhead, 3),
        "bounds": bounds,
        "budget_overhead_ms": BUDGET_OVERHEAD_MS,
        "budget_analysis_ms": BUDGET_ANALYSIS_MS,
        "ok": overhead <= BUDGET_OVERHEAD_MS and all(b["ms"] <= BUDGET_ANALYSIS_MS for b in bounds),
    }


def analysis_at_bounds(session: GuardedSession) -> list[dict[str, Any]]:
    """check() + sqlglot's shape of the largest statements allowed, and the refusal of bigger ones."""
    widest = " OR ".join(f"(a = {i} AND b = $1)" for i in range(MAX_BOOLEAN // 2))
    deepest = "(" * (MAX_DEPTH - 1) + "a = $1" + ")" * (MAX_DEPTH - 1)
    chain = " AND ".join(f"a <> {i}" for i in range(MAX_BOOLEAN))
    cases = {
        f"{MAX_BOOLEAN} AND/OR terms in pairs": f"SELECT * FROM bench_t0 WHERE {widest}",
        f"{MAX_BOOLEAN - 1} ANDs in a chain": f"SELECT * FROM bench_t0 WHERE {chain}",
        f"{MAX_DEPTH - 1} levels deep": f"SELECT * FROM bench_t0 WHERE {deepest}",
        "refused: 3,000 ORs": "SELECT * FROM bench_t0 WHERE " + " OR ".join(f"a = {i}" for i in range(3001)),
        "refused: 150 levels": "SELECT " + "(" * 150 + "1" + ")" * 150,
    }
    catalog = Catalog(session)
    found = []
    for name, text in cases.items():
        started = time.perf_counter()
        try:
            shape(check(text).text, catalog)
            outcome = "analysed"
        except Refused as err:
            outcome = f"refused: {err}"
        found.append(
            {"case": name, "ms": round((time.perf_counter() - started) * 1000, 1), "outcome": outcome}
        )
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dsn", help="an existing server (a superuser DSN: it creates tables and a role)")
    p.add_argument("--tables", type=int, default=20)
    p.add_argument("--statements", type=int, default=200)
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    server = None if args.dsn else ThrowawayPostgres().start()
    try:
        dsn = args.dsn or server.dsn()
        say(f"planning {args.statements} statements over {args.tables} tables, guarded and unguarded")
        result = measure(dsn, args.tables, args.statements, args.rows)
    finally:
        if server:
            server.stop()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key in ("unguarded", "guarded", "parse_check", "untrusted_calls_check"):
            s = result[key]
            print(f"{key:>22}: median {s['median_ms']:.3f} ms, p95 {s['p95_ms']:.3f} ms")
        print(
            f"{'guard overhead':>22}: {result['overhead_median_ms']:.3f} ms (budget {BUDGET_OVERHEAD_MS} ms),"
            f" {result['ratio_median']}x the unguarded plan"
        )
        for b in result["bounds"]:
            print(f"{b['case']:>34}: {b['ms']:7.1f} ms  {b['outcome'][:70]}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
