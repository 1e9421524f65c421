"""The indexes health part (collectors/postgres/parts.py), every 15 minutes by default.

pg_stat_user_indexes is per database: this reads the database the target's DSN names. Points per
index {index, table} of its 100 largest: its size (gauge), and its scans and the entries they read
(counters, with their deltas since the last read): an index scanned by nothing for weeks is unused,
whatever happened before the last statistics reset. The snapshot lists every index (up to 5,000):
the cycle writer keeps when each was first and last seen (index_catalog), so an index created
between two reads is known however small it is.
"""

from __future__ import annotations

from typing import Any

from collectors.postgres.parts import Part, PartRead, counter_point
from dashboard.core import metrics
from dashboard.core.health.indexes import IndexesNow, IndexSeen
from dashboard.core.records import Point

SIZE = "pg.index.size_bytes"
COUNTERS = {"idx_scan": "pg.index.scans", "idx_tup_read": "pg.index.tuples_read"}
SERIES = 100  # the largest indexes get series; the rest only their identity


def read(rows: list[dict[str, Any]], now: int, last: dict[tuple[str, str], float]) -> PartRead:
    points: list[Point] = []
    for row in rows[:SERIES]:  # largest first
        labels = metrics.encode({"index": row["index_name"], "table": row["table_name"]})
        points.append(Point(SIZE, float(row["size_bytes"] or 0), "gauge", labels))
        # An index dropped and created again under its name starts from 0: a lower value is a reset.
        points += [counter_point(name, float(row[col] or 0), labels, last) for col, name in COUNTERS.items()]
    seen = tuple(
        IndexSeen(
            index_name=row["index_name"],
            table_name=row["table_name"],
            definition=row.get("definition"),
            keys=tuple(row.get("keys") or ()),
        )
        for row in rows
        # A failed CREATE INDEX CONCURRENTLY leaves an invalid index: it serves no query, so it was
        # not "created" (it is, once a REINDEX makes it valid).
        if row.get("is_valid", True)
    )
    datname = rows[0]["datname"] if rows else None
    return PartRead(points, IndexesNow(ts=now, datname=datname, indexes=seen))


PART = Part("indexes", read, counters=True)
