"""The server_stats health part (collectors/postgres/parts.py), every minute by default.

Points: the checkpointer's and background writer's counters and WAL bytes written (pg_stat_wal on
14+, the WAL position before), with their deltas since the last reading (`counter_point`, from the
collector's last values). A group's counters are reset together by pg_stat_reset_shared(): a new
stats_reset time of the group (kept beside the counters, never written as a series) or a lower value
counts as a reset. Transaction ID age and the headroom left before wraparound per database, as
gauges {datname}.

Snapshot (ServerNow): the ages per database, and in the database the target connects to the
tables with the oldest relfrozenxid and the sequences past half their range. pg_sequences hides
last_value from a role that may not read the sequence (pg_monitor alone): those are counted and
the grant that shows them is named, never silently left out.
"""

from __future__ import annotations

from typing import Any

from collectors.postgres.parts import Part, PartRead, counter_point
from dashboard.core import metrics
from dashboard.core.health import ServerNow
from dashboard.core.health.server import DatabaseAge, SequenceUse, TableAge
from dashboard.core.records import Point

# Column of server_stats.*.sql -> counter, by reset group (the column holding that group's reset time).
COUNTERS: dict[str, dict[str, str]] = {
    "checkpointer_reset": {
        "checkpoints_timed": metrics.PG_CHECKPOINTS_TIMED,
        "checkpoints_requested": metrics.PG_CHECKPOINTS_REQUESTED,
        "checkpoint_write_ms": metrics.PG_CHECKPOINTS_WRITE_MS,
        "checkpoint_sync_ms": metrics.PG_CHECKPOINTS_SYNC_MS,
        "buffers_checkpoint": metrics.PG_CHECKPOINTS_BUFFERS,
    },
    "bgwriter_reset": {
        "buffers_clean": metrics.PG_BGWRITER_BUFFERS_CLEAN,
        "maxwritten_clean": metrics.PG_BGWRITER_MAXWRITTEN_CLEAN,
        "buffers_backend": metrics.PG_BGWRITER_BUFFERS_BACKEND,  # 13-16 only
    },
    "wal_reset": {"wal_bytes": metrics.PG_WAL_BYTES},
}
GRANT = (
    "cannot read {n} of {total} sequences in database {datname}: pg_sequences shows last_value only "
    "to roles that may read a sequence. GRANT pg_read_all_data TO {role}; (PostgreSQL 14+), or "
    "GRANT SELECT ON ALL SEQUENCES IN SCHEMA <schema> TO {role}; shows how close they are to their maximum"
)


def read(rows: list[dict[str, Any]], now: int, last: dict[tuple[str, str], float]) -> PartRead:
    if not rows:
        return PartRead([], ServerNow(ts=now))
    row = rows[0]
    databases = tuple(DatabaseAge.model_validate(d) for d in row["databases"] or ())
    return PartRead(_counters(row, last) + _ages(databases), _snapshot(row, databases, now))


def _counters(row: dict[str, Any], last: dict[tuple[str, str], float]) -> list[Point]:
    """The counters' points, each group reset when its stats_reset time moved since the last read."""
    points = []
    for reset_column, columns in COUNTERS.items():
        present = [(name, float(row[column])) for column, name in columns.items() if row[column] is not None]
        if not present:  # e.g. no WAL position on a replica before 14
            continue
        key = (present[0][0].rsplit(".", 1)[0] + ".stats_reset", "")
        reset_at = float(row[reset_column] or 0)
        reset = last.get(key) not in (None, reset_at)
        last[key] = reset_at
        points += [counter_point(name, value, "", last, reset=reset) for name, value in present]
    return points


def _ages(databases: tuple[DatabaseAge, ...]) -> list[Point]:
    points = []
    for d in databases:
        labels = metrics.encode({"datname": d.datname})
        points.append(Point(metrics.PG_XID_AGE, float(d.xid_age), "gauge", labels))
        points.append(Point(metrics.PG_XID_HEADROOM, float(d.headroom), "gauge", labels))
    return points


def _snapshot(row: dict[str, Any], databases: tuple[DatabaseAge, ...], now: int) -> ServerNow:
    unreadable, total = int(row["sequences_unreadable"] or 0), int(row["sequences_total"] or 0)
    problem = None
    if unreadable:
        problem = GRANT.format(n=unreadable, total=total, datname=row["datname"], role=row["rolname"])
    return ServerNow(
        ts=now,
        datname=row["datname"],
        databases=databases,
        tables=tuple(TableAge.model_validate(t) for t in row["tables"] or ()),
        sequences=tuple(SequenceUse.model_validate(s) for s in row["sequences"] or ()),
        sequences_total=total,
        sequences_unreadable=unreadable,
        problem=problem,
    )


PART = Part("server_stats", read, counters=True)
