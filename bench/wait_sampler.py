"""Benchmark: one sample of the wait sampler against `SELECT * FROM pg_stat_activity`.

The issue asks for wait events "sampled every few seconds, cheap enough to leave on". The sampler
(collectors/postgres/waits.py, sql/waits.13.sql) runs every 5 s by default on its own connection.
Budget: one sample, as the daemon takes it (`PostgresCollector.sample_waits`: query, transfer,
decoding), takes no longer than fetching `SELECT * FROM pg_stat_activity` (what a
dashboard that lists sessions reads) on the same server in the same run, median against median,
with `--sessions` idle client sessions, a quarter of them in chains of lock waits.

What runs:

1. A throwaway PostgreSQL (or `--dsn`), `--sessions` idle connections (default 200, max_connections
   raised to fit), of which `--sessions // 4` wait on row locks held by ten sessions idle in a
   transaction: pg_blocking_pids() runs for every one of them in each sample, the worst case.
2. `--repeat` rounds, in alternating order: (a) `SELECT * FROM pg_stat_activity` fetched fully;
   (b) one sample.
3. Informational: the share of one core the sampler costs at its default 5 s interval, from the
   median of (b).

    .venv/bin/python -m bench.wait_sampler [--sessions 200] [--repeat 50] [--json]
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from bench import cli, timing
from bench.timing import summary, timed
from collectors.postgres.collector import PostgresCollector
from dashboard.core.config import PostgresTarget
from dashboard.servers.throwaway import ThrowawayPostgres

BUDGET = 1.0
HOLDERS = 10
INTERVAL_S = 5.0


@contextmanager
def crowd(dsn: str, sessions: int) -> Iterator[int]:
    """`sessions` idle connections, a quarter of them waiting behind HOLDERS idle transactions;
    yields how many wait."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_locks")
        conn.execute("CREATE TABLE bench_locks (id int PRIMARY KEY, n int)")
        conn.execute(f"INSERT INTO bench_locks SELECT g, 0 FROM generate_series(1, {HOLDERS}) g")
    holders = [psycopg.connect(dsn, application_name="bench-holder") for _ in range(HOLDERS)]
    for i, h in enumerate(holders):
        h.execute("UPDATE bench_locks SET n = n + 1 WHERE id = %s", (i + 1,))
    waiting = max(0, sessions // 4)
    idle = [
        psycopg.connect(dsn, autocommit=True, application_name="bench-idle")
        for _ in range(sessions - waiting)
    ]
    waiters = [psycopg.connect(dsn, autocommit=True, application_name="bench-waiter") for _ in range(waiting)]
    threads = [
        threading.Thread(target=_wait, args=(w, i % HOLDERS + 1), daemon=True) for i, w in enumerate(waiters)
    ]
    for t in threads:
        t.start()
    try:
        _until_waiting(dsn, waiting)
        yield waiting
    finally:
        for h in holders:
            h.rollback()
        for t in threads:
            t.join(timeout=30)
        for c in (*holders, *idle, *waiters):
            c.close()


def _wait(conn: psycopg.Connection, row: int) -> None:
    conn.execute("UPDATE bench_locks SET n = n + 1 WHERE id = %s", (row,))


def _until_waiting(dsn: str, count: int) -> None:
    deadline = time.monotonic() + 60
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            found = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND application_name = 'bench-waiter'"
            ).fetchone()
            if found and found[0] >= count:
                return
            time.sleep(0.1)
    raise RuntimeError(f"{count} sessions never all waited on a lock")


def measure(dsn: str, sessions: int = 200, repeat: int = 50) -> dict[str, Any]:
    collector = PostgresCollector(PostgresTarget(name="bench", dsn=dsn), state_source=None)  # type: ignore[arg-type]
    base_ms, sample_ms = [], []
    with crowd(dsn, sessions) as waiting, psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(3):  # warm both connections
            collector.sample_waits()
            conn.execute("SELECT * FROM pg_stat_activity").fetchall()
        for i in range(repeat):
            pair = [
                ("base", lambda: conn.execute("SELECT * FROM pg_stat_activity").fetchall()),
                ("sample", collector.sample_waits),
            ]
            for name, run in pair if i % 2 else reversed(pair):
                ms, result = timed(run)
                if name == "sample" and result is not True:
                    raise RuntimeError("a sample failed")
                (base_ms if name == "base" else sample_ms).append(ms)
        locks = len(collector._sampler.drain()[-1].locks)
    collector.close_sampler()
    ratio = statistics.median(sample_ms) / statistics.median(base_ms)
    return {
        "sessions": sessions,
        "waiting": waiting,
        "sessions_in_chains": locks,
        "baseline": summary(base_ms),
        "sample": summary(sample_ms),
        "ratio": round(ratio, 3),
        "budget": BUDGET,
        "core_share_at_5s": round(statistics.median(sample_ms) / 1000 / INTERVAL_S, 6),
    }


def report(r: dict[str, Any]) -> str:
    lines = [
        f"{r['sessions']} client sessions, {r['waiting']} waiting on row locks "
        f"({r['sessions_in_chains']} in the sample's chains)",
        *timing.table(
            [
                ("(a) SELECT * FROM pg_stat_activity", r["baseline"]["median_ms"], r["baseline"]["p95_ms"]),
                ("(b) one wait sample", r["sample"]["median_ms"], r["sample"]["p95_ms"]),
            ],
            r["baseline"]["median_ms"],
            38,
            digits=2,
        ),
        f"at one sample every {INTERVAL_S:g} s: {r['core_share_at_5s']:.4%} of one core (client and server)",
        f"ratio (b)/(a) {r['ratio']:.3f}; budget {r['budget']}: {'ok' if r['ratio'] <= BUDGET else 'OVER'}",
    ]
    return "\n".join(lines)


def main() -> int:
    p = cli.parser(__doc__)
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--dsn", help="an existing server (default: a throwaway one)")
    args = p.parse_args()
    log = cli.progress(args)
    if args.dsn:
        result = measure(args.dsn, args.sessions, args.repeat)
    else:
        settings = {"max_connections": str(args.sessions + 50)}
        with ThrowawayPostgres(settings=settings) as pg:
            log(f"throwaway PostgreSQL up; {args.sessions} sessions")
            result = measure(pg.dsn(), args.sessions, args.repeat)
    return cli.finish(args, result, lambda: report(result), result["ratio"] <= BUDGET)


if __name__ == "__main__":
    sys.exit(main())
