"""Benchmark: one PostgreSQL collector cycle against `SELECT * FROM pg_stat_statements`.

The issue's budget: on a server holding 5,000 distinct statements in pg_stat_statements, one
steady-state collector cycle takes at most a quarter of the time of `SELECT * FROM
pg_stat_statements` measured on the same server in the same run. The collector's cycle is what it
does against its target: it ends when the cycle is handed to the daemon's writer thread
(`collectors/cycle_writer.py`), which saves the cycles of all targets in batches. The writer's time
to save this cycle is measured too (alone, in the same round) and reported beside it, and so is
their sum.

What runs:

1. A throwaway PostgreSQL (`dashboard.servers.throwaway.ThrowawayPostgres`, pg_stat_statements preloaded,
   `pg_stat_statements.max` >= 10000, `track = all`), or the server named by `--dsn`.
2. `--statements` structurally distinct statements (queryid ignores constants, so each one reads a
   different column list / filter column of one of N tables of 50 columns), written the way an ORM
   writes them, so the text file holds about what REFERENCES.md measured in the field
   (~600 bytes a statement: 3.4 MB for 5,800 entries).
3. Warm-up: the first collector cycle (it stores every entry and fetches every text) is timed and
   reported on its own, then a second cycle (the first with deltas) and one baseline read.
4. `--repeat` rounds, each: run `--moving` of the statements (a fixed hot half plus a random half,
   outside the timed sections), then, in alternating order,
   (a) baseline: `SELECT * FROM pg_stat_statements` fetched fully with psycopg;
   (b) one collector cycle, `PostgresCollector.collect(now)`; then, timed apart, the writer
       saving it, `Store.write_cycles([cycle])`, into a SQLite store in a temp dir (or `--store URL`).
5. Informational: cycles in which new statements appeared (text fetched for them), because reading
   any text makes PostgreSQL read the whole query-text file.
6. Informational: the time spent inside PostgreSQL by (a) and by the collector's queries, as
   pg_stat_statements records it for them (total_exec_time + total_plan_time, read before and
   after each timed section): the load each puts on the monitored server, without the transfer
   and the client's work.

The ratio judged is median(b) / median(a) (p95s are shown too, and the ratio with the write
added); the benchmark exits 1 when it exceeds the budget (0.25).

    .venv/bin/python -m bench.collector_cycle [--statements 5000] [--repeat 20] [--json]
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bench import cli, timing
from bench.timing import summary, timed
from collectors.postgres.collector import PostgresCollector
from dashboard.core.config import PostgresTarget
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store

BUDGET = 0.25
COLUMNS = 50  # per table; statements = tables x COLUMNS filter columns
ROWS = 50  # per table: the statements are cheap, like most of an OLTP workload's


# -- the workload ---------------------------------------------------------------------------------
def statement_texts(count: int, seed: int = 1) -> list[str]:
    """`count` structurally distinct SELECTs (psycopg placeholders), ORM style, ~600 bytes each.

    Statement i filters table t(i // 50) on column i % 50 and reads a column list that depends on
    (table, filter column); the filter column alone already makes the queryid distinct.
    """
    rng = random.Random(seed)
    texts = []
    for i in range(count):
        t, col = divmod(i, COLUMNS)
        table = f"t{t:03d}"
        width = rng.choice((2, 4, 6, 8, 10, 12, 14, 16, 18, 28))
        picked = sorted(rng.sample(range(COLUMNS), width))
        select_list = ", ".join(f"{table}.attribute_{c:02d} AS {table}_attribute_{c:02d}" for c in picked)
        texts.append(
            f"SELECT {table}.id AS {table}_id, {select_list} FROM {table} "
            f"WHERE {table}.attribute_{col:02d} = %s AND {table}.id > %s ORDER BY {table}.id LIMIT %s"
        )
    return texts


def create_workload(dsn: str, count: int, seed: int = 1) -> list[str]:
    """Create the tables, run every statement once; returns the statement texts."""
    texts = statement_texts(count, seed)
    tables = math.ceil(count / COLUMNS)
    cols = ", ".join(f"attribute_{c:02d} int" for c in range(COLUMNS))
    values = ", ".join(f"(g + {c}) % 7" for c in range(COLUMNS))
    with psycopg.connect(dsn, autocommit=True) as conn:
        for t in range(tables):
            conn.execute(f"CREATE TABLE IF NOT EXISTS t{t:03d} (id int PRIMARY KEY, {cols})")
            conn.execute(
                f"INSERT INTO t{t:03d} SELECT g, {values} FROM generate_series(1, {ROWS}) g "
                "ON CONFLICT DO NOTHING"
            )
        run_statements(conn, texts)
    return texts


def run_statements(conn: psycopg.Connection, texts: list[str]) -> None:
    with conn.pipeline():
        for i, text in enumerate(texts):
            conn.execute(text, (i % 7, i % 3, 10))


def pgss_size(dsn: str) -> tuple[int, int]:
    """(entries, bytes of query text) in pg_stat_statements."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        query = "SELECT count(*), coalesce(sum(length(query)), 0) FROM pg_stat_statements"
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# -- timing helpers -------------------------------------------------------------------------------
class _ServerTime:
    """Execution time inside PostgreSQL, as pg_stat_statements itself records it (no transfer, no
    client work): the server-side cost of the baseline and of the collector's queries."""

    QUERY = (
        "SELECT queryid, sum(calls)::float8, sum(total_exec_time + total_plan_time) "
        "FROM pg_stat_statements(false) WHERE queryid IS NOT NULL GROUP BY queryid"
    )

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.snapshot()
        self.own = self._moved(self.snapshot(), self.snapshot())  # the probe's own entry

    def snapshot(self) -> dict[int, tuple[float, float]]:
        return {q: (c, t) for q, c, t in self.conn.execute(self.QUERY).fetchall()}

    @staticmethod
    def _moved(before: dict, after: dict) -> set[int]:
        return {q for q, (calls, _) in after.items() if calls > before.get(q, (0.0, 0.0))[0]}

    def statements_of(self, fn: Callable[[], Any]) -> set[int]:
        """The queryids `fn` ran (nothing else may run meanwhile)."""
        before = self.snapshot()
        fn()
        return self._moved(before, self.snapshot()) - self.own

    def since(self, before: dict[int, tuple[float, float]], queryids: set[int]) -> float:
        after = self.snapshot()
        return sum(after[q][1] - before.get(q, (0.0, 0.0))[1] for q in queryids if q in after)


@contextmanager
def _server(dsn: str | None, statements: int) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    settings = {"pg_stat_statements.max": str(max(10000, 2 * statements)), "pg_stat_statements.track": "all"}
    with ThrowawayPostgres(settings=settings) as server:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        yield server.dsn()


# -- the benchmark --------------------------------------------------------------------------------
def run(
    *,
    dsn: str | None = None,
    statements: int = 5000,
    repeat: int = 20,
    moving: int = 500,
    new_rounds: int = 3,
    seed: int = 1,
    store_url: str | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Run the benchmark; returns the figures (see `report`). `dsn`: use that server instead of a
    throwaway one (pg_stat_statements must be created in its database)."""
    with _server(dsn, statements) as server_dsn, tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        log(f"creating {statements} statements ...")
        started = time.perf_counter()
        texts = create_workload(server_dsn, statements, seed)
        entries, text_bytes = pgss_size(server_dsn)
        log(f"  {entries} entries, {text_bytes / 1e6:.1f} MB of text ({time.perf_counter() - started:.1f} s)")
        if entries < statements:
            raise RuntimeError(
                f"pg_stat_statements holds {entries} entries, fewer than {statements}: "
                "raise pg_stat_statements.max"
            )
        store = Store(store_url or f"sqlite:///{Path(tmp) / 'store.db'}")
        target = PostgresTarget(name="bench", dsn=server_dsn)
        collector = PostgresCollector(target, store)
        rng = random.Random(seed)
        moving = min(moving, len(texts))
        hot = rng.sample(range(len(texts)), moving // 2)
        hot_set = set(hot)
        now = int(time.time()) - 60 * (repeat + new_rounds + 10)
        try:
            with (
                psycopg.connect(server_dsn, autocommit=True) as workload,
                psycopg.connect(server_dsn, autocommit=True) as baseline_conn,
                psycopg.connect(server_dsn, autocommit=True) as probe_conn,
            ):

                def baseline() -> int:
                    return len(baseline_conn.execute("SELECT * FROM pg_stat_statements").fetchall())

                def cycle() -> tuple[float, float, Any]:
                    nonlocal now
                    now += 60
                    collect_ms, result = timed(lambda: collector.collect(now))
                    save_ms, _ = timed(lambda: store.write_cycles([result]))
                    if result.status.state != "ok":
                        raise RuntimeError(f"collector cycle {result.status.state}: {result.status.error}")
                    return collect_ms, save_ms, result

                def move() -> None:
                    others = [i for i in rng.sample(range(len(texts)), moving) if i not in hot_set]
                    run_statements(workload, [texts[i] for i in (hot + others)[:moving]])

                first_collect, _, first = cycle()
                log(f"first cycle: {first_collect:.1f} ms ({len(first.texts)} texts)")
                move()
                cycle()
                baseline()
                probe = _ServerTime(probe_conn)
                star_ids = probe.statements_of(baseline)
                collector_ids = probe.statements_of(lambda: collector.collect(now))  # not stored
                a_ms: list[float] = []
                a_server: list[float] = []
                cycle_ms: list[float] = []
                write_ms: list[float] = []
                cycle_server: list[float] = []
                moved: list[int] = []
                rows = 0
                for i in range(repeat):
                    move()
                    for part in ("baseline", "cycle") if i % 2 else ("cycle", "baseline"):
                        before = probe.snapshot()
                        if part == "baseline":
                            ms, rows = timed(baseline)
                            a_ms.append(ms)
                            a_server.append(probe.since(before, star_ids))
                        else:
                            c_ms, w_ms, result = cycle()
                            cycle_server.append(probe.since(before, collector_ids))
                            cycle_ms.append(c_ms)
                            write_ms.append(w_ms)
                            moved.append(len(result.deltas))
                    log(f"  round {i + 1}/{repeat}: select * {a_ms[-1]:.1f} ms, cycle {cycle_ms[-1]:.1f} ms")
                new_ms: list[float] = []
                new_texts = 0
                first_length = random.randrange(200, 2000, 50)  # unseen even on a reused --dsn server
                for n in range(new_rounds):  # 10 statements never seen before, then a cycle
                    move()
                    with workload.pipeline():
                        for k in range(10):
                            # An IN list of a new length is a new queryid (PostgreSQL < 18), the
                            # usual way new entries keep appearing in production.
                            length = first_length + 10 * n + k
                            in_list = ", ".join(["%s"] * length)
                            workload.execute(
                                f"SELECT t000.id FROM t000 WHERE t000.id IN ({in_list})", list(range(length))
                            )
                    c_ms, _, result = cycle()
                    new_ms.append(c_ms)
                    new_texts += len(result.texts)
        finally:
            collector.close()
            store.close()
    return report(
        statements=statements,
        entries=entries,
        text_bytes=text_bytes,
        baseline_rows=rows,
        first_cycle_ms=first_collect,
        first_texts=len(first.texts),
        a_ms=a_ms,
        a_server=a_server,
        cycle_server=cycle_server,
        cycle_ms=cycle_ms,
        write_ms=write_ms,
        moved=moved,
        new_ms=new_ms,
        new_texts=new_texts,
    )


def report(
    *,
    statements: int,
    entries: int,
    text_bytes: int,
    baseline_rows: int,
    first_cycle_ms: float,
    first_texts: int,
    a_ms: list[float],
    a_server: list[float],
    cycle_server: list[float],
    cycle_ms: list[float],
    write_ms: list[float],
    moved: list[int],
    new_ms: list[float],
    new_texts: int,
) -> dict[str, Any]:
    a, b = summary(a_ms), summary(cycle_ms)
    both = summary([c + w for c, w in zip(cycle_ms, write_ms, strict=True)])
    a_srv, b_srv = summary(a_server), summary(cycle_server)
    ratio = b["median_ms"] / a["median_ms"]
    return {
        "server": {
            "statements_created": statements,
            "pgss_entries": entries,
            "pgss_text_bytes": text_bytes,
            "baseline_rows": baseline_rows,
        },
        "repeat": len(a_ms),
        "moved_per_cycle": {"median": statistics.median(moved), "min": min(moved), "max": max(moved)},
        "baseline_select_star": a,
        "cycle": b,
        "store_write": summary(write_ms),
        "cycle_and_write": both,
        "first_cycle_ms": round(first_cycle_ms, 3),
        "first_cycle_texts": first_texts,
        "cycle_with_new_statements": {**summary(new_ms), "texts_fetched": new_texts} if new_ms else None,
        "ratio": round(ratio, 4),
        "ratio_p95": round(b["p95_ms"] / a["p95_ms"], 4),
        "ratio_with_write": round(both["median_ms"] / a["median_ms"], 4),
        "server_time": {
            "baseline_select_star": a_srv,
            "cycle": b_srv,
            "ratio": round(b_srv["median_ms"] / a_srv["median_ms"], 4) if a_srv["median_ms"] else None,
        },
        "budget": BUDGET,
        "passed": ratio <= BUDGET,
    }


def format_report(r: dict[str, Any]) -> str:
    s = r["server"]
    lines = [
        f"server: {s['pgss_entries']} pg_stat_statements entries, "
        f"{s['pgss_text_bytes'] / 1e6:.2f} MB of text "
        f"({s['statements_created']} benchmark statements); {r['repeat']} rounds, "
        f"{r['moved_per_cycle']['median']:.0f} statements moved per cycle",
        "",
    ]
    labels = {
        "baseline_select_star": "(a) SELECT * FROM pg_stat_statements",
        "cycle": "(b) collector cycle",
        "store_write": "    the writer saving it",
        "cycle_and_write": "    cycle + write",
        "cycle_with_new_statements": "    cycle with 10 new statements",
    }
    rows = [(label, r[key]["median_ms"], r[key]["p95_ms"]) for key, label in labels.items() if r[key]]
    rows.append(("    first cycle (all texts)", r["first_cycle_ms"], None))
    lines += timing.table(rows, r["baseline_select_star"]["median_ms"], width=34)
    srv = r["server_time"]
    lines.append("time inside PostgreSQL (pg_stat_statements' own total_exec_time + total_plan_time):")
    server_rows = [
        (label, srv[key]["median_ms"], srv[key]["p95_ms"])
        for label, key in (("    SELECT *", "baseline_select_star"), ("    collector's queries", "cycle"))
    ]
    lines += timing.table(server_rows, srv["baseline_select_star"]["median_ms"], width=34)[1:]
    verdict = "PASS" if r["passed"] else "FAIL"
    lines += [
        "",
        f"ratio (b)/(a): {r['ratio']:.3f} (p95/p95 {r['ratio_p95']:.3f}); with the write "
        f"{r['ratio_with_write']:.3f}; budget {r['budget']}: {verdict}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser(__doc__)
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--moving", type=int, default=500, help="statements run between cycles")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dsn", help="use this server (pg_stat_statements created) instead of a throwaway")
    parser.add_argument("--store", help="store URL (default: SQLite in a temp dir)")
    args = parser.parse_args(argv)
    result = run(
        dsn=args.dsn,
        statements=args.statements,
        repeat=args.repeat,
        moving=args.moving,
        seed=args.seed,
        store_url=args.store,
        log=cli.progress(args),
    )
    return cli.finish(args, result, lambda: format_report(result), result["passed"])


if __name__ == "__main__":
    sys.exit(main())
