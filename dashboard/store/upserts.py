"""How the writer turns records into rows: bucket times, statement state, and the upserts that add
a cycle's deltas to the raw, hourly and daily levels in one statement per level (SQLite and
PostgreSQL spell them differently)."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from dashboard.core.records import Cycle, StatementEntry
from dashboard.store.schema import BUCKET_SECONDS, POINTS, STATEMENT_COUNTERS, statements


def now() -> int:
    return int(time.time())


def bucket(ts: int, level: str) -> int:
    width = BUCKET_SECONDS.get(level)
    return ts - ts % width if width else ts


# The state of a statement the collector persists, in this order (see entry_values).
ENTRY_COLUMNS = ("present", "last_counters", "min_ms", "max_ms", "mean_ms", "stddev_ms", "stats_since")
MOVED_COLUMNS = (*ENTRY_COLUMNS, "last_seen", "datname", "rolname")  # entries whose counters moved
StoredPoint = tuple[int, int, float]  # (series id, ts, value)


def entry_values(entry: StatementEntry) -> tuple[Any, ...]:
    # `present` is a Boolean column: a Python bool binds as boolean on psycopg, as 1 on sqlite3.
    return (
        True,
        json.dumps(list(entry.counters)),
        entry.min_ms,
        entry.max_ms,
        entry.mean_ms,
        entry.stddev_ms,
        entry.stats_since,
    )


def insert_statement(
    conn: Connection, tid: int, cycle: Cycle, entry: StatementEntry, values: tuple[Any, ...]
) -> int:
    """A statement seen for the first time (rare after the first cycle): its new id."""
    return conn.execute(
        statements.insert()
        .values(
            target_id=tid,
            **entry.key._asdict(),
            datname=entry.datname,
            rolname=entry.rolname,
            query=cycle.texts.get(entry.key),
            first_seen=cycle.ts,
            last_seen=cycle.ts,
            **dict(zip(ENTRY_COLUMNS, values, strict=True)),
        )
        .returning(statements.c.id)
    ).scalar_one()


def insert(conn: Connection, table: Table):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


# -- driver-level SQL for the per-cycle hot paths ---------------------------------------------
# Hundreds of rows per cycle go straight to the driver's executemany as positional tuples:
# SQLAlchemy's per-row parameter processing cost ~20 µs/row (measured), several times SQLite's
# own work. The texts are the same upserts SQLAlchemy renders (ON CONFLICT works on both
# backends); only the placeholder differs. Identifiers are quoted: `rows`, `min`, `max`, `sum`.
def placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"  # sqlite3 | psycopg


def q(name: str) -> str:
    return f'"{name}"'


def marks(placeholder: str, count: int) -> str:
    return ", ".join([placeholder] * count)


@functools.cache
def update_sql(table: str, columns: tuple[str, ...], placeholder: str) -> str:
    sets = ", ".join(f"{q(c)} = {placeholder}" for c in columns)
    return f"UPDATE {q(table)} SET {sets} WHERE id = {placeholder}"


def update_by_id(conn: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """UPDATE rows by id; each row holds the `columns` values, then the id."""
    if rows:
        conn.exec_driver_sql(update_sql(table.name, columns, placeholder(conn)), rows)


@functools.cache
def stmt_upsert_sql(table: str, placeholder: str) -> str:
    """Row: (target_id, ts, statement_id, *STATEMENT_COUNTERS); counters add up on conflict."""
    columns = ", ".join(q(c) for c in ("target_id", "ts", "statement_id", *STATEMENT_COUNTERS))
    sets = ", ".join(f"{q(c)} = {q(table)}.{q(c)} + excluded.{q(c)}" for c in STATEMENT_COUNTERS)
    return (
        f"INSERT INTO {q(table)} ({columns}) VALUES ({marks(placeholder, 3 + len(STATEMENT_COUNTERS))})"
        f" ON CONFLICT (target_id, ts, statement_id) DO UPDATE SET {sets}"
    )


@functools.cache
def raw_point_sql(placeholder: str, add: bool) -> str:
    """Row: (series_id, ts, value); a counter's value adds up, a gauge's replaces."""
    table = q(POINTS["raw"].name)
    value = f"{table}.value + excluded.value" if add else "excluded.value"
    return (
        f"INSERT INTO {table} (series_id, ts, value) VALUES ({marks(placeholder, 3)})"
        f" ON CONFLICT (series_id, ts) DO UPDATE SET value = {value}"
    )


@functools.cache
def rollup_point_sql(table: str, placeholder: str, dialect: str) -> str:
    """Row: (series_id, bucket, value, value, value) for sum, min and max; count starts at 1."""
    # SQLite's two-argument min()/max() are scalar functions; PostgreSQL's are least()/greatest().
    lesser, greater = ("least", "greatest") if dialect == "postgresql" else ("min", "max")
    t = q(table)
    return (
        f'INSERT INTO {t} (series_id, ts, "sum", "count", "min", "max")'
        f" VALUES ({placeholder}, {placeholder}, {placeholder}, 1, {placeholder}, {placeholder})"
        f' ON CONFLICT (series_id, ts) DO UPDATE SET "sum" = {t}."sum" + excluded."sum",'
        f' "count" = {t}."count" + 1, "min" = {lesser}({t}."min", excluded."min"),'
        f' "max" = {greater}({t}."max", excluded."max")'
    )


def write_raw_points(conn: Connection, rows: list[StoredPoint], *, add: bool) -> None:
    if rows:
        conn.exec_driver_sql(raw_point_sql(placeholder(conn), add), rows)


def write_rollup_points(conn: Connection, stored: list[StoredPoint]) -> None:
    if not stored:
        return
    for level in BUCKET_SECONDS:
        sql = rollup_point_sql(POINTS[level].name, placeholder(conn), conn.dialect.name)
        conn.exec_driver_sql(sql, [(sid, bucket(ts, level), v, v, v) for sid, ts, v in stored])
