"""The tables health part (collectors/postgres/parts.py), every 5 minutes by default.

pg_stat_user_tables is per database: this reads the database the target's DSN names, its 50
largest tables. Points per table {table}: sizes, live and dead rows and transaction ID age as
gauges; scans, row changes and cache reads as counters, with their deltas since the last read.
Snapshot (TablesNow): the same tables with their last vacuum and analyze, for the Tables page.
"""

from __future__ import annotations

from typing import Any

from collectors.postgres.parts import Part, PartRead, counter_point
from dashboard.core import metrics
from dashboard.core.health.tables import TableNow, TablesNow
from dashboard.core.records import Point

PREFIX = "pg.table."
GAUGES = {  # column of tables.*.sql -> series
    "total_bytes": PREFIX + "total_bytes",
    "table_bytes": PREFIX + "table_bytes",
    "index_bytes": PREFIX + "index_bytes",
    "toast_bytes": PREFIX + "toast_bytes",
    "n_live_tup": PREFIX + "live",
    "n_dead_tup": PREFIX + "dead",
    "xid_age": PREFIX + "xid_age",
}
COUNTERS = {
    "seq_scan": PREFIX + "seq_scan",
    "seq_tup_read": PREFIX + "seq_tup_read",
    "idx_scan": PREFIX + "idx_scan",
    "n_tup_ins": PREFIX + "inserted",
    "n_tup_upd": PREFIX + "updated",
    "n_tup_del": PREFIX + "deleted",
    "heap_blks_read": PREFIX + "blks_read",
    "heap_blks_hit": PREFIX + "blks_hit",
}


def read(rows: list[dict[str, Any]], now: int, last: dict[tuple[str, str], float]) -> PartRead:
    points: list[Point] = []
    for row in rows:
        labels = metrics.encode({"table": row["table_name"]})
        points += [Point(name, float(row[col] or 0), "gauge", labels) for col, name in GAUGES.items()]
        # A table dropped and created again under its name starts from 0: a lower value is a reset.
        points += [counter_point(name, float(row[col] or 0), labels, last) for col, name in COUNTERS.items()]
    return PartRead(points, _snapshot(rows, now))


def _snapshot(rows: list[dict[str, Any]], now: int) -> TablesNow:
    tables = tuple(
        TableNow(
            table_name=r["table_name"],
            total_bytes=r["total_bytes"] or 0,
            table_bytes=r["table_bytes"] or 0,
            index_bytes=r["index_bytes"] or 0,
            toast_bytes=r["toast_bytes"] or 0,
            live=r["n_live_tup"] or 0,
            dead=r["n_dead_tup"] or 0,
            modified_since_analyze=r["n_mod_since_analyze"] or 0,
            vacuumed=r["vacuumed"],
            analyzed=r["analyzed"],
            seq_scan=r["seq_scan"] or 0,
            idx_scan=r["idx_scan"] or 0,
            xid_age=int(r["xid_age"] or 0),
        )
        for r in rows
    )
    return TablesNow(ts=now, datname=rows[0]["datname"] if rows else None, tables=tables)


PART = Part("tables", read, counters=True)
