"""Benchmark: a PostgreSQL store partitioned by time (schema 6) against the same store unpartitioned.

Two stores in one throwaway PostgreSQL 15, written the same way in the same run: `--days` days of
history at one cycle every 10 minutes (each cycle `--movers` statement deltas of `--statements`
statements, and `--series` points), then `--cycles` cycles one minute apart, written alternately to
the two stores so both see the same machine. Reported: the cycle write (Store.write_cycle, median and
p95) and the prune of one day of raw detail at one cycle a minute, written in bulk before the history
(retention drops the partition vs DELETEs its rows; the partitioned prune also counts the rows it
drops, scans the partition that straddles the horizon and makes the next partitions ahead), with
the WAL it wrote and the VACUUM of the raw tables after it (what a DELETE leaves to do); medians of
`--prune-rounds` rounds, the day written again before each.
The unpartitioned store is made the way schema 5 had it (plain tables, same keys and indexes).

    .venv/bin/python -m bench.store_partitions                    # the defaults
    .venv/bin/python -m bench.store_partitions --days 2 --cycles 60
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys

import psycopg
from sqlalchemy import text

from bench.timing import summary, timed
from dashboard.core.config import Retention
from dashboard.core.records import Cycle, Point, StatementDelta, StatementEntry, StatementKey, Status
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.partitions import SPANS, partition_name
from dashboard.store.schema import STATEMENT_COUNTERS

DAY = 86400
T0 = 1_790_000_000 - 1_790_000_000 % DAY  # a midnight UTC


def make_cycle(rng: random.Random, ts: int, statements: int, movers: int, series: int) -> Cycle:
    moved = rng.sample(range(statements), movers)
    counters = tuple(float(rng.randint(1, 50)) for _ in STATEMENT_COUNTERS)
    keys = [StatementKey(queryid=n + 1, dbid=5, userid=10, toplevel=True) for n in moved]
    return Cycle(
        kind="postgres",
        target="bench",
        ts=ts,
        status=Status(),
        entries=[StatementEntry(k, counters, datname="app", rolname="app") for k in keys],
        deltas=[StatementDelta(k, counters) for k in keys],
        texts={k: f"SELECT {k.queryid} FROM t WHERE id = $1" for k in keys},
        points=[Point(f"bench.s{n}", None, "counter", delta=float(rng.randint(0, 9))) for n in range(series)],
    )


def unpartition(store: Store) -> None:
    """The layout of schema 5: the raw and hourly tables plain."""
    with store.engine.begin() as conn:
        for table in SPANS:
            key = "target_id, ts, statement_id" if table.startswith("stmt") else "series_id, ts"
            conn.execute(text(f"DROP TABLE {table}"))
            conn.execute(text(f"CREATE TABLE {table} AS SELECT * FROM {table}_v5 WITH NO DATA"))
            conn.execute(text(f"ALTER TABLE {table} ADD PRIMARY KEY ({key})"))
            if table.startswith("stmt"):
                conn.execute(text(f"CREATE INDEX ix_{table}_statement ON {table} (statement_id, ts)"))
    store.partitions.enabled = False


def templates(store: Store) -> None:
    """Empty plain copies of the tables' columns, for `unpartition`."""
    with store.engine.begin() as conn:
        for table in SPANS:
            conn.execute(text(f"CREATE TABLE {table}_v5 (LIKE {table} INCLUDING DEFAULTS)"))


def old_day(store: Store, movers: int, series: int) -> None:
    """A day of raw detail at one cycle a minute before the history (T0 - 1 day), written in bulk:
    what retention drops in one go."""
    store.partitions.ensure([T0 - DAY])
    counters = ", ".join(STATEMENT_COUNTERS)
    minutes = f"generate_series({T0 - DAY}, {T0 - 60}, 60) ts"
    with store.engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO stmt_raw (target_id, ts, statement_id, {counters})"
                f" SELECT 1, ts, sid, {', '.join(['1'] * len(STATEMENT_COUNTERS))}"
                f" FROM {minutes}, generate_series(100001, {100000 + movers}) sid"
            )
        )
        conn.execute(
            text(
                "INSERT INTO points_raw (series_id, ts, value) SELECT sid, ts, 1"
                f" FROM {minutes}, generate_series(100001, {100000 + series}) sid"
            )
        )


def wal_lsn(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_current_wal_lsn() - '0/0'")).scalar_one())


def vacuum(store: Store, what: str) -> float:
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        ms, _ = timed(lambda: conn.execute(text(f"VACUUM {what}")))
    return ms


def prune_round(store: Store, keep: Retention, now: int, args: argparse.Namespace) -> dict:
    """The old day written, vacuumed and analyzed; then the prune (ms, WAL) and the VACUUM after it."""
    old_day(store, args.movers, args.series)
    vacuum(store, "ANALYZE")
    day_bytes = None
    if store.partitions.enabled:  # what a day of raw detail at one cycle a minute takes, indexes included
        with store.engine.connect() as conn:
            day_bytes = sum(
                conn.execute(
                    text(f"SELECT pg_total_relation_size('{partition_name(t, T0 - DAY)}')")
                ).scalar_one()
                for t in ("stmt_raw", "points_raw")
            )
    wal = wal_lsn(store)
    ms, deleted = timed(lambda: store.prune(keep, now))
    return {
        "ms": round(ms, 1),
        "wal_bytes": wal_lsn(store) - wal,
        "vacuum_after_ms": round(vacuum(store, "stmt_raw, points_raw"), 1),
        "rows": deleted["stmt_raw"] + deleted["points_raw"],
        "day_bytes": day_bytes or 0,
    }


def run(args: argparse.Namespace) -> dict:
    server = ThrowawayPostgres().start()
    try:
        stores = {}
        for name in ("partitioned", "unpartitioned"):
            with psycopg.connect(server.dsn(), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            stores[name] = Store(server.dsn(dbname=name).replace("postgresql://", "postgresql+psycopg://"))
        templates(stores["unpartitioned"])
        unpartition(stores["unpartitioned"])
        rng = random.Random(7)
        history = range(T0, T0 + args.days * DAY, 600)
        for ts in history:
            cycle = make_cycle(rng, ts, args.statements, args.movers, args.series)
            for store in stores.values():
                store.write_cycle(cycle)
        writes: dict[str, list[float]] = {name: [] for name in stores}
        start = T0 + args.days * DAY
        for i in range(args.cycles):
            cycle = make_cycle(rng, start + 60 * i, args.statements, args.movers, args.series)
            for name in list(stores)[:: 1 if i % 2 else -1]:  # each goes first half the time
                ms, _ = timed(lambda s=stores[name], c=cycle: s.write_cycle(c))
                writes[name].append(ms)
        # Prune the day before the history, only (the horizon is T0), `--prune-rounds` times, the day
        # written again before each round.
        now = T0 + args.days * DAY
        keep = Retention(raw=args.days * DAY, hourly=10 * 365 * DAY, daily=10 * 365 * DAY)
        rounds: dict[str, list[dict]] = {name: [] for name in stores}
        for _ in range(args.prune_rounds):
            for name, store in stores.items():
                rounds[name].append(prune_round(store, keep, now, args))
        prunes = {
            name: {key: statistics.median(r[key] for r in found) for key in found[0]}
            for name, found in rounds.items()
        }
        result = {
            "setup": vars(args),
            "write": {name: summary(values) for name, values in writes.items()},
            "prune_one_day": prunes,
        }
        w = result["write"]
        result["ratios"] = {
            "write_median_partitioned_over_plain": round(
                w["partitioned"]["median_ms"] / w["unpartitioned"]["median_ms"], 3
            ),
            "write_p95_partitioned_over_plain": round(
                w["partitioned"]["p95_ms"] / w["unpartitioned"]["p95_ms"], 3
            ),
            **{
                f"prune_{key}_drop_over_delete": round(
                    prunes["partitioned"][key] / prunes["unpartitioned"][key], 4
                )
                for key in ("ms", "wal_bytes", "vacuum_after_ms")  # (day_bytes: the partitioned store only)
            },
        }
        for store in stores.values():
            store.close()
        return result
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--movers", type=int, default=500)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--prune-rounds", type=int, default=3)
    print(json.dumps(run(parser.parse_args(argv)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
