"""The store's only write path: one transaction per collection cycle, plus retention.

Collectors are the only writers. Each cycle's deltas go to the raw level and are added to the
hourly and daily buckets in the same transaction (an upsert), so all levels are always current.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dashboard.core.config import Retention
from dashboard.core.records import OWN_MARKER, Cycle, Point, StatementEntry, StatementKey
from dashboard.store.engine import make_engine
from dashboard.store.migrations import migrate
from dashboard.store.schema import (
    BUCKET_SECONDS,
    LEVELS,
    POINTS,
    STATEMENT_COUNTERS,
    STMT,
    advice,
    series,
    slowlog,
    statements,
    target_status,
    targets,
)

SeriesKey = tuple[str, str]  # (name, labels)


class Store:
    """The writer side. Thread-safe: cycles from several collector threads are serialised."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        self._lock = threading.Lock()
        self._statement_ids: dict[int, dict[StatementKey, int]] = {}
        self._series_ids: dict[int, dict[SeriesKey, int]] = {}
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- identities -------------------------------------------------------------------------
    def target_id(self, kind: str, name: str, conn: Connection | None = None) -> int:
        def get_or_create(c: Connection) -> int:
            found = c.execute(
                select(targets.c.id).where(targets.c.kind == kind, targets.c.name == name)
            ).scalar()
            if found is not None:
                return found
            stmt = _insert(c, targets).values(kind=kind, name=name, created_at=_now())
            c.execute(stmt.on_conflict_do_nothing(index_elements=["kind", "name"]))
            return c.execute(
                select(targets.c.id).where(targets.c.kind == kind, targets.c.name == name)
            ).scalar_one()

        if conn is not None:
            return get_or_create(conn)
        with self.engine.begin() as c:
            return get_or_create(c)

    # -- collector state --------------------------------------------------------------------
    def statement_state(self, kind: str, name: str) -> dict[StatementKey, tuple[tuple[float, ...], bool]]:
        """Last cumulative counters and presence of every known statement of a target."""
        tid = self.target_id(kind, name)
        cols = statements.c
        with self.engine.connect() as c:
            rows = c.execute(
                select(
                    cols.queryid, cols.dbid, cols.userid, cols.toplevel, cols.last_counters, cols.present
                ).where(cols.target_id == tid)
            )
            return {
                StatementKey(r.queryid, r.dbid, r.userid, bool(r.toplevel)): (
                    tuple(json.loads(r.last_counters or "[]")),
                    bool(r.present),
                )
                for r in rows
            }

    def own_statements(self, kind: str, name: str) -> set[StatementKey]:
        """Statements the collectors ran themselves (their text starts with the marker)."""
        tid = self.target_id(kind, name)
        c = statements.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.queryid, c.dbid, c.userid, c.toplevel).where(
                    c.target_id == tid, c.query.startswith(OWN_MARKER, autoescape=True)
                )
            )
            return {StatementKey(r.queryid, r.dbid, r.userid, bool(r.toplevel)) for r in rows}

    def untexted_statements(self, kind: str, name: str) -> set[StatementKey]:
        """Statements stored without their text (first seen in a cycle that was not saved)."""
        tid = self.target_id(kind, name)
        c = statements.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.queryid, c.dbid, c.userid, c.toplevel).where(c.target_id == tid, c.query.is_(None))
            )
            return {StatementKey(r.queryid, r.dbid, r.userid, bool(r.toplevel)) for r in rows}

    def series_state(self, kind: str, name: str) -> dict[SeriesKey, float]:
        tid = self.target_id(kind, name)
        with self.engine.connect() as c:
            rows = c.execute(
                select(series.c.name, series.c.labels, series.c.last_value).where(
                    series.c.target_id == tid, series.c.kind == "counter", series.c.last_value.is_not(None)
                )
            )
            return {(r.name, r.labels): r.last_value for r in rows}

    def status_details(self, kind: str, name: str) -> dict[str, Any]:
        tid = self.target_id(kind, name)
        with self.engine.connect() as c:
            raw = c.execute(select(target_status.c.details).where(target_status.c.target_id == tid)).scalar()
        return json.loads(raw) if raw else {}

    # -- the cycle --------------------------------------------------------------------------
    def write_cycle(self, cycle: Cycle) -> None:
        self.write_cycles([cycle])

    def write_cycles(self, cycles: Sequence[Cycle]) -> None:
        """Save cycles (of any targets, in order) in one transaction: all of them or none."""
        with self._lock:
            try:
                with self.engine.begin() as conn:
                    for cycle in cycles:
                        self._write_cycle(conn, cycle)
            except Exception:
                # Ids handed out inside the rolled-back transaction do not exist: look them up again.
                self._statement_ids.clear()
                self._series_ids.clear()
                raise

    def _write_cycle(self, conn: Connection, cycle: Cycle) -> None:
        tid = self.target_id(cycle.kind, cycle.target, conn)
        ids = self._write_statements(conn, tid, cycle)
        written = self._write_statement_deltas(conn, tid, cycle, ids)
        written += self._write_points(conn, tid, cycle.ts, cycle.points)
        written += self._write_slowlog(conn, tid, cycle)
        self._write_status(conn, tid, cycle, written)

    def _known_ids(self, conn: Connection, tid: int) -> dict[StatementKey, int]:
        if tid not in self._statement_ids:
            c = statements.c
            rows = conn.execute(
                select(c.id, c.queryid, c.dbid, c.userid, c.toplevel).where(c.target_id == tid)
            )
            self._statement_ids[tid] = {
                StatementKey(r.queryid, r.dbid, r.userid, bool(r.toplevel)): r.id for r in rows
            }
        return self._statement_ids[tid]

    def _write_statements(self, conn: Connection, tid: int, cycle: Cycle) -> dict[StatementKey, int]:
        ids = self._known_ids(conn, tid)
        moved = {d.key for d in cycle.deltas}
        unmoved: list[tuple[Any, ...]] = []  # rows of _ENTRY_COLUMNS + id
        touched: list[tuple[Any, ...]] = []  # rows of _MOVED_COLUMNS + id
        for entry in cycle.entries:
            values = _entry_values(entry)
            sid = ids.get(entry.key)
            if sid is None:
                ids[entry.key] = _insert_statement(conn, tid, cycle, entry, values)
            elif entry.key in moved:
                touched.append((*values, cycle.ts, entry.datname, entry.rolname, sid))
            else:
                unmoved.append((*values, sid))
        _update_by_id(conn, statements, _ENTRY_COLUMNS, unmoved)
        _update_by_id(conn, statements, _MOVED_COLUMNS, touched)
        missing_text = [(ids[k], t) for k, t in cycle.texts.items() if k in ids]
        if missing_text:  # a text fetched later (e.g. it was '<insufficient privilege>' before)
            conn.execute(
                update(statements)
                .where(statements.c.id == bindparam("sid"), statements.c.query.is_(None))
                .values(query=bindparam("text")),
                [{"sid": i, "text": t} for i, t in missing_text],
            )
        if cycle.vanished:
            conn.execute(
                update(statements).where(statements.c.id == bindparam("sid")).values(present=False),
                [{"sid": ids[k]} for k in cycle.vanished if k in ids],
            )
        return ids

    def _write_statement_deltas(
        self, conn: Connection, tid: int, cycle: Cycle, ids: dict[StatementKey, int]
    ) -> int:
        rows = [(ids[d.key], *d.deltas) for d in cycle.deltas if d.key in ids]
        if not rows:
            return 0
        # Two cycles in the same second (two quick `collect --once`) add up rather than collide.
        for level in LEVELS:
            sql = _stmt_upsert_sql(STMT[level].name, _placeholder(conn))
            head = (tid, _bucket(cycle.ts, level))
            conn.exec_driver_sql(sql, [head + r for r in rows])
        return len(rows)

    def _series_id(self, conn: Connection, tid: int, point: Point) -> int:
        known = self._series_ids.setdefault(tid, {})
        key = (point.name, point.labels)
        if key not in known:
            where = and_(
                series.c.target_id == tid, series.c.name == point.name, series.c.labels == point.labels
            )
            found = conn.execute(select(series.c.id).where(where)).scalar()
            if found is None:
                found = conn.execute(
                    series.insert()
                    .values(target_id=tid, name=point.name, labels=point.labels, kind=point.kind)
                    .returning(series.c.id)
                ).scalar_one()
            known[key] = found
        return known[key]

    def _write_points(self, conn: Connection, tid: int, ts: int, points: Sequence[Point]) -> int:
        added: list[_StoredPoint] = []  # counter deltas: add up within one second
        replaced: list[_StoredPoint] = []  # gauges: keep the latest
        stored: list[_StoredPoint] = []  # both, in order (the roll-ups' float sums)
        counters: list[tuple[float, int, int]] = []  # (last_value, last_ts, series id)
        for p in points:
            sid = self._series_id(conn, tid, p)
            at = p.ts or ts  # back-filled points carry their own time
            if p.kind == "counter":
                if p.value is not None:
                    counters.append((p.value, at, sid))
                if p.delta is not None:
                    added.append((sid, at, p.delta))
                    stored.append(added[-1])
            elif p.value is not None:
                replaced.append((sid, at, p.value))
                stored.append(replaced[-1])
        _update_by_id(conn, series, ("last_value", "last_ts"), counters)
        _write_raw_points(conn, added, add=True)
        _write_raw_points(conn, replaced, add=False)
        _write_rollup_points(conn, stored)
        return len(stored)

    @staticmethod
    def _write_slowlog(conn: Connection, tid: int, cycle: Cycle) -> int:
        rows = [{"target_id": tid, **dataclasses.asdict(e)} for e in cycle.slowlog]
        if rows:
            stmt = _insert(conn, slowlog).on_conflict_do_nothing(
                index_elements=["target_id", "ts", "entry_id"]
            )
            conn.execute(stmt, rows)
        return len(rows)

    def _write_status(self, conn: Connection, tid: int, cycle: Cycle, written: int) -> None:
        st = cycle.status
        ok = st.state != "down"
        previous = conn.execute(select(target_status).where(target_status.c.target_id == tid)).first()
        values: dict[str, Any] = {
            "state": st.state,
            "last_attempt": cycle.ts,
            "last_error": st.error,
            "hints": json.dumps(st.hints),
            "failures": 0 if ok else (previous.failures + 1 if previous else 1),
            "duration_ms": cycle.duration_ms,
            "samples": (previous.samples if previous else 0) + written,
        }
        if ok:
            values["last_success"] = cycle.ts
            values["details"] = json.dumps(st.details)
        if st.server_version:
            values["server_version"] = st.server_version
        if previous is None:
            conn.execute(target_status.insert().values(target_id=tid, **values))
        else:
            conn.execute(update(target_status).where(target_status.c.target_id == tid).values(**values))

    def write_advice(
        self, kind: str, name: str, datname: str, ts: int, report: dict, duration_ms: float
    ) -> None:
        """Replace the advisor's report for one database of a target."""
        with self._lock, self.engine.begin() as conn:
            tid = self.target_id(kind, name, conn)
            conn.execute(advice.delete().where(advice.c.target_id == tid, advice.c.datname == datname))
            conn.execute(
                advice.insert().values(
                    target_id=tid, datname=datname, ts=ts, duration_ms=duration_ms, report=json.dumps(report)
                )
            )

    # -- retention --------------------------------------------------------------------------
    def prune(self, retention: Retention, now: int) -> dict[str, int]:
        """Drop detail older than the retention of its level; returns rows deleted per table."""
        keep = {"raw": retention.raw, "hourly": retention.hourly, "daily": retention.daily}
        deleted: dict[str, int] = {}
        with self._lock, self.engine.begin() as conn:
            for level, seconds in keep.items():
                horizon = now - int(seconds)
                for table in (STMT[level], POINTS[level]):
                    result = conn.execute(table.delete().where(table.c.ts < horizon))
                    deleted[table.name] = result.rowcount
            # Slow-log entries are few and are detail worth keeping as long as hourly figures.
            result = conn.execute(slowlog.delete().where(slowlog.c.ts < now - int(retention.hourly)))
            deleted["slowlog"] = result.rowcount
        return deleted


def _now() -> int:
    return int(time.time())


def _bucket(ts: int, level: str) -> int:
    width = BUCKET_SECONDS.get(level)
    return ts - ts % width if width else ts


# The state of a statement the collector persists, in this order (see _entry_values).
_ENTRY_COLUMNS = ("present", "last_counters", "min_ms", "max_ms", "mean_ms", "stddev_ms", "stats_since")
_MOVED_COLUMNS = (*_ENTRY_COLUMNS, "last_seen", "datname", "rolname")  # entries whose counters moved
_StoredPoint = tuple[int, int, float]  # (series id, ts, value)


def _entry_values(entry: StatementEntry) -> tuple[Any, ...]:
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


def _insert_statement(
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
            **dict(zip(_ENTRY_COLUMNS, values, strict=True)),
        )
        .returning(statements.c.id)
    ).scalar_one()


def _insert(conn: Connection, table: Table):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


# -- driver-level SQL for the per-cycle hot paths ---------------------------------------------
# Hundreds of rows per cycle go straight to the driver's executemany as positional tuples:
# SQLAlchemy's per-row parameter processing cost ~20 µs/row (measured), several times SQLite's
# own work. The texts are the same upserts SQLAlchemy renders (ON CONFLICT works on both
# backends); only the placeholder differs. Identifiers are quoted: `rows`, `min`, `max`, `sum`.
def _placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"  # sqlite3 | psycopg


def _q(name: str) -> str:
    return f'"{name}"'


def _marks(placeholder: str, count: int) -> str:
    return ", ".join([placeholder] * count)


@functools.cache
def _update_sql(table: str, columns: tuple[str, ...], placeholder: str) -> str:
    sets = ", ".join(f"{_q(c)} = {placeholder}" for c in columns)
    return f"UPDATE {_q(table)} SET {sets} WHERE id = {placeholder}"


def _update_by_id(conn: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """UPDATE rows by id; each row holds the `columns` values, then the id."""
    if rows:
        conn.exec_driver_sql(_update_sql(table.name, columns, _placeholder(conn)), rows)


@functools.cache
def _stmt_upsert_sql(table: str, placeholder: str) -> str:
    """Row: (target_id, ts, statement_id, *STATEMENT_COUNTERS); counters add up on conflict."""
    columns = ", ".join(_q(c) for c in ("target_id", "ts", "statement_id", *STATEMENT_COUNTERS))
    sets = ", ".join(f"{_q(c)} = {_q(table)}.{_q(c)} + excluded.{_q(c)}" for c in STATEMENT_COUNTERS)
    return (
        f"INSERT INTO {_q(table)} ({columns}) VALUES ({_marks(placeholder, 3 + len(STATEMENT_COUNTERS))})"
        f" ON CONFLICT (target_id, ts, statement_id) DO UPDATE SET {sets}"
    )


@functools.cache
def _raw_point_sql(placeholder: str, add: bool) -> str:
    """Row: (series_id, ts, value); a counter's value adds up, a gauge's replaces."""
    table = _q(POINTS["raw"].name)
    value = f"{table}.value + excluded.value" if add else "excluded.value"
    return (
        f"INSERT INTO {table} (series_id, ts, value) VALUES ({_marks(placeholder, 3)})"
        f" ON CONFLICT (series_id, ts) DO UPDATE SET value = {value}"
    )


@functools.cache
def _rollup_point_sql(table: str, placeholder: str, dialect: str) -> str:
    """Row: (series_id, bucket, value, value, value) for sum, min and max; count starts at 1."""
    # SQLite's two-argument min()/max() are scalar functions; PostgreSQL's are least()/greatest().
    lesser, greater = ("least", "greatest") if dialect == "postgresql" else ("min", "max")
    t = _q(table)
    return (
        f'INSERT INTO {t} (series_id, ts, "sum", "count", "min", "max")'
        f" VALUES ({placeholder}, {placeholder}, {placeholder}, 1, {placeholder}, {placeholder})"
        f' ON CONFLICT (series_id, ts) DO UPDATE SET "sum" = {t}."sum" + excluded."sum",'
        f' "count" = {t}."count" + 1, "min" = {lesser}({t}."min", excluded."min"),'
        f' "max" = {greater}({t}."max", excluded."max")'
    )


def _write_raw_points(conn: Connection, rows: list[_StoredPoint], *, add: bool) -> None:
    if rows:
        conn.exec_driver_sql(_raw_point_sql(_placeholder(conn), add), rows)


def _write_rollup_points(conn: Connection, stored: list[_StoredPoint]) -> None:
    if not stored:
        return
    for level in BUCKET_SECONDS:
        sql = _rollup_point_sql(POINTS[level].name, _placeholder(conn), conn.dialect.name)
        conn.exec_driver_sql(sql, [(sid, _bucket(ts, level), v, v, v) for sid, ts, v in stored])
