"""The store's only write path: one transaction per collection cycle, plus retention.

Collectors are the only writers. Each cycle's deltas go to the raw level and are added to the
hourly and daily buckets in the same transaction (an upsert), so all levels are always current.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, select, text, update

from dashboard.core import sources
from dashboard.core.advice import AdviceReport
from dashboard.core.alerts import Alert
from dashboard.core.config import Retention
from dashboard.core.details import Details
from dashboard.core.health.chains import BlockingChain
from dashboard.core.health.indexes import IndexesNow
from dashboard.core.records import OWN_MARKER, OWN_UNMARKED, Cycle, Point, StatementKey
from dashboard.store import alerting, partitions, plan_history, upserts
from dashboard.store.engine import make_engine
from dashboard.store.migrations import migrate
from dashboard.store.schema import (
    LEVELS,
    POINTS,
    STMT,
    advice,
    alert_events,
    blocking_chains,
    index_catalog,
    index_catalog_reads,
    index_suggestions,
    leases,
    series,
    slowlog,
    statement_plans,
    statements,
    target_status,
    targets,
)

SeriesKey = tuple[str, str]  # (name, labels)
# Detail kept as long as the hourly figures, by the time that ages it: slow-log entries (few, and
# worth it), the alerts' history (alerts now stay: they are current, whatever their age), plan
# shapes last seen that long ago, blocking chains (incidents), indexes gone and suggestions not
# made again since.
KEPT_AS_LONG_AS_HOURLY = (
    slowlog.c.ts,
    alert_events.c.ts,
    statement_plans.c.last_seen,
    blocking_chains.c.last_seen,
    index_catalog.c.last_seen,
    index_suggestions.c.last_suggested,
)
PRUNE_KEY = 0x6F62735F7072756E  # the advisory lock of retention on a PostgreSQL store ("obs_prun")
CHAIN_GAP_S = 60  # a root's chains this close in time are one chain seen twice (a restart between)


class LeaseLost(Exception):
    """A cycle collected under a lease the target no longer has: another daemon took the target
    (and went on from the state saved) while the cycle waited; saving it would count its interval twice."""


class Store:
    """The writer side. Thread-safe: cycles from several collector threads are serialised."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        self._lock = threading.Lock()
        self._statement_ids: dict[int, dict[StatementKey, int]] = {}
        self._series_ids: dict[int, dict[SeriesKey, int]] = {}
        migrate(self.engine)
        self.partitions = partitions.Partitions(self.engine)

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
            stmt = upserts.insert(c, targets).values(kind=kind, name=name, created_at=upserts.now())
            c.execute(stmt.on_conflict_do_nothing(index_elements=["kind", "name"]))
            return c.execute(
                select(targets.c.id).where(targets.c.kind == kind, targets.c.name == name)
            ).scalar_one()

        if conn is not None:
            return get_or_create(conn)
        with self.engine.begin() as c:
            return get_or_create(c)

    def ensure_targets(self, keys: Iterable[tuple[str, str]]) -> None:
        """Create the rows of targets (kind, name) not in the store yet, in one transaction: the
        daemon does it before its collector threads start, so their first reads write nothing."""
        with self.engine.begin() as c:
            for kind, name in keys:
                self.target_id(kind, name, c)

    def take_lease(self, kind: str, name: str, holder: str) -> int:
        """The epoch under which `holder`, which has just taken the target's lock, saves its cycles.
        A new holder raises it, so cycles collected under an earlier lease are refused; the same
        holder keeps it (its lock came back after the store did: the cycles that waited are saved)."""
        with self.engine.begin() as c:
            tid = self.target_id(kind, name, c)
            mine = leases.c.target_id == tid
            found = c.execute(select(leases.c.holder, leases.c.epoch).where(mine).with_for_update()).first()
            if found is None:
                c.execute(leases.insert().values(target_id=tid, holder=holder, epoch=1))
                return 1
            if found.holder == holder:
                return found.epoch
            c.execute(leases.update().where(mine).values(holder=holder, epoch=found.epoch + 1))
            return found.epoch + 1

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
        """Statements the observatory ran itself (records.is_own: marked, or known unmarkable)."""
        tid = self.target_id(kind, name)
        c = statements.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.queryid, c.dbid, c.userid, c.toplevel).where(
                    c.target_id == tid,
                    c.query.startswith(OWN_MARKER, autoescape=True) | c.query.in_(OWN_UNMARKED),
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

    def status_details(self, kind: str, name: str) -> Details:
        """The details of the target's last successful cycle, parsed with its source's registered
        model; the model's defaults when none were stored or they cannot be read."""
        model = sources.BY_KIND[kind].details
        tid = self.target_id(kind, name)
        with self.engine.connect() as c:
            raw = c.execute(select(target_status.c.details).where(target_status.c.target_id == tid)).scalar()
        found = model.from_stored(raw)
        return found if found is not None else model()

    # -- the cycle --------------------------------------------------------------------------
    def write_cycle(self, cycle: Cycle) -> None:
        self.write_cycles([cycle])

    def write_cycles(self, cycles: Sequence[Cycle]) -> None:
        """Save cycles (of any targets, in order) in one transaction: all of them or none."""
        with self._lock:
            try:
                self.partitions.ensure(partitions.cycle_times(cycles))  # before: in a short transaction
                with self.engine.begin() as conn:
                    for cycle in cycles:
                        self._write_cycle(conn, cycle)
            except Exception:
                # Ids handed out inside the rolled-back transaction do not exist: look them up again;
                # so are the partitions (another daemon's retention may have dropped one).
                self._statement_ids.clear()
                self._series_ids.clear()
                self.partitions.forget()
                raise

    def _write_cycle(self, conn: Connection, cycle: Cycle) -> None:
        tid = self.target_id(cycle.kind, cycle.target, conn)
        if cycle.lease is not None:
            _check_lease(conn, tid, cycle)
        ids = self._write_statements(conn, tid, cycle)
        written = self._write_statement_deltas(conn, tid, cycle, ids)
        written += self._write_points(conn, tid, cycle.ts, cycle.points)
        written += self._write_slowlog(conn, tid, cycle)
        self._write_chains(conn, tid, cycle)
        self._write_catalog(conn, tid, cycle)
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
        unmoved: list[tuple[Any, ...]] = []  # rows of upserts.ENTRY_COLUMNS + id
        touched: list[tuple[Any, ...]] = []  # rows of upserts.MOVED_COLUMNS + id
        for entry in cycle.entries:
            values = upserts.entry_values(entry)
            sid = ids.get(entry.key)
            if sid is None:
                ids[entry.key] = upserts.insert_statement(conn, tid, cycle, entry, values)
            elif entry.key in moved:
                touched.append((*values, cycle.ts, entry.datname, entry.rolname, sid))
            else:
                unmoved.append((*values, sid))
        upserts.update_by_id(conn, statements, upserts.ENTRY_COLUMNS, unmoved)
        upserts.update_by_id(conn, statements, upserts.MOVED_COLUMNS, touched)
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
            sql = upserts.stmt_upsert_sql(STMT[level].name, upserts.placeholder(conn))
            head = (tid, upserts.bucket(cycle.ts, level))
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
        added: list[upserts.StoredPoint] = []  # counter deltas: add up within one second
        replaced: list[upserts.StoredPoint] = []  # gauges: keep the latest
        stored: list[upserts.StoredPoint] = []  # both, in order (the roll-ups' float sums)
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
        upserts.update_by_id(conn, series, ("last_value", "last_ts"), counters)
        upserts.write_raw_points(conn, added, add=True)
        upserts.write_raw_points(conn, replaced, add=False)
        upserts.write_rollup_points(conn, stored)
        return len(stored)

    @staticmethod
    def _write_slowlog(conn: Connection, tid: int, cycle: Cycle) -> int:
        rows = [{"target_id": tid, **dataclasses.asdict(e)} for e in cycle.slowlog]
        if rows:
            stmt = upserts.insert(conn, slowlog).on_conflict_do_nothing(
                index_elements=["target_id", "ts", "entry_id"]
            )
            conn.execute(stmt, rows)
        return len(rows)

    @staticmethod
    def _write_chains(conn: Connection, tid: int, cycle: Cycle) -> None:
        """Each chain as it stands now: one that goes on replaces the row the last cycle wrote. A
        row of the same root that overlaps it is the same chain, as a restarted collector saw it
        (from its first sample, the earliest waiters may have left): the two become one row."""
        c = blocking_chains.c
        for chain in cycle.chains:
            same = (
                c.target_id == tid,
                c.root_pid == chain.root.pid,
                c.last_seen >= chain.started - CHAIN_GAP_S,
                c.started <= chain.last_seen,
            )
            rows = conn.execute(select(c.chain).where(*same)).scalars()
            before = [BlockingChain.model_validate_json(text) for text in rows]
            merged = chain.model_copy(
                update={
                    "started": min([chain.started, *(b.started for b in before)]),
                    "waited": max([chain.waited, *(b.waited for b in before)]),
                    "most_at_once": max([chain.most_at_once, *(b.most_at_once for b in before)]),
                }
            )
            conn.execute(blocking_chains.delete().where(*same))
            conn.execute(
                blocking_chains.insert().values(
                    target_id=tid,
                    started=merged.started,
                    root_pid=merged.root.pid,
                    last_seen=merged.last_seen,
                    waited=merged.waited,
                    chain=merged.model_dump_json(),
                )
            )

    @staticmethod
    def _write_catalog(conn: Connection, tid: int, cycle: Cycle) -> None:
        if cycle.indexes is not None and cycle.indexes.datname is not None:
            _record_catalog(conn, tid, cycle.indexes, cycle.ts)

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
            values["details"] = st.details.to_stored() if st.details is not None else None
        if st.server_version:
            values["server_version"] = st.server_version
        if previous is None:
            conn.execute(target_status.insert().values(target_id=tid, **values))
        else:
            conn.execute(update(target_status).where(target_status.c.target_id == tid).values(**values))

    def write_advice(
        self,
        kind: str,
        name: str,
        datname: str,
        ts: int,
        report: AdviceReport,
        duration_ms: float,
    ) -> None:
        """Replace the advisor's report for one database of a target."""
        text = report.to_stored()
        with self._lock, self.engine.begin() as conn:
            tid = self.target_id(kind, name, conn)
            conn.execute(advice.delete().where(advice.c.target_id == tid, advice.c.datname == datname))
            row = {"target_id": tid, "datname": datname, "ts": ts, "duration_ms": duration_ms, "report": text}
            conn.execute(advice.insert().values(**row))
            _record_suggestions(conn, tid, datname, ts, report)

    def write_plans(self, kind: str, name: str, datname: str, now: int, plans: Mapping[str, Any]) -> int:
        """Keep the advisor's plans (statement text -> EXPLAIN's JSON) of one database of a target,
        one transaction: a new row per changed shape (plan_history.record); returns how many."""
        if not plans:
            return 0
        with self._lock, self.engine.begin() as conn:
            tid = self.target_id(kind, name, conn)
            return plan_history.record(conn, tid, datname, now, plans)

    # -- alerts (dashboard.alerts): the daemon's evaluation is their only writer -------------------
    def save_alerts(self, active: Sequence[Alert], changes: Sequence[Alert], now: int) -> None:
        """The alerts pending or firing now, replacing the last set, and each change of state."""
        with self.engine.begin() as conn:
            alerting.replace_now(conn, active, changes, now)

    def active_alerts(self) -> list[Alert]:
        return alerting.active(self.engine)

    def journal(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return alerting.journal(conn, key)

    def save_journal(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            alerting.save_journal(conn, key, value)

    # -- retention --------------------------------------------------------------------------
    def prune(self, retention: Retention, now: int | None = None) -> dict[str, int]:
        """Drop detail older than the retention of its level, as of `now`: the store's clock unless
        given (tests and the history generator prune at the times they simulate; the daemon's job
        prunes by the store's clock). Returns rows deleted per table. On PostgreSQL one daemon prunes
        at a time (the others skip: the same work, the same moment), whole partitions go first, each
        in a short transaction of its own (partitions.py), and the next few are made ahead."""
        keep = {"raw": retention.raw, "hourly": retention.hourly, "daily": retention.daily}
        deleted: dict[str, int] = {}
        with self._lock, partitions.exclusive(self.engine, PRUNE_KEY) as mine:
            if not mine:
                return deleted
            now = partitions.store_clock(self.engine) if now is None else now
            horizons = {t: now - int(keep[level]) for level in keep for t in (STMT[level], POINTS[level])}
            for table, horizon in horizons.items():
                if self.partitions.enabled and table.name in partitions.SPANS:
                    deleted[table.name] = partitions.drop_before(self.engine, table.name, horizon)
            with self.engine.begin() as conn:
                if self.partitions.enabled:
                    conn.execute(text(f"SET LOCAL lock_timeout = '{partitions.LOCK_TIMEOUT}'"))
                for table, horizon in horizons.items():
                    result = conn.execute(table.delete().where(table.c.ts < horizon))
                    deleted[table.name] = deleted.get(table.name, 0) + result.rowcount
                horizon = now - int(retention.hourly)
                for column in KEPT_AS_LONG_AS_HOURLY:
                    deleted[column.table.name] = conn.execute(
                        column.table.delete().where(column < horizon)
                    ).rowcount
        self.partitions.forget()
        self.partitions.ahead(now)
        return deleted


def _check_lease(conn: Connection, tid: int, cycle: Cycle) -> None:
    """Raise LeaseLost unless the target's lease is still the cycle's. The row stays locked until
    the cycle is saved (PostgreSQL; SQLite has one writer), so a daemon taking the target over
    waits for this save before it reads the state it goes on from."""
    epoch = conn.execute(select(leases.c.epoch).where(leases.c.target_id == tid).with_for_update()).scalar()
    if epoch != cycle.lease:
        raise LeaseLost(
            f"{cycle.kind}/{cycle.target}: collected under lease {cycle.lease}, the target is at {epoch}:"
            " another daemon took it over meanwhile"
        )


def _record_catalog(conn: Connection, tid: int, found: IndexesNow, ts: int) -> None:
    """The indexes a catalog read saw: each known one's last_seen moves on; a new one (or one absent
    from the last read, or with another definition: made again) is first seen now, created since
    the last read. At the first read ever they are a baseline, not creations (previous_read NULL)."""
    r, c = index_catalog_reads.c, index_catalog.c
    mine = (c.target_id == tid, c.datname == found.datname)
    previous = conn.execute(
        select(r.last_read).where(r.target_id == tid, r.datname == found.datname)
    ).scalar()
    known = {
        row.index_name: row
        for row in conn.execute(select(c.index_name, c.definition, c.last_seen).where(*mine))
    }
    # A capped reading leaves the smallest out: one entering it later is not known to be new.
    since = previous if found.complete else None
    seen, new = [], []
    for index in found.indexes:
        row = known.get(index.index_name)
        values = {"table": index.table_name, "keys_json": json.dumps(list(index.keys))}
        gone = row is not None and previous is not None and row.last_seen < previous
        if row is None or gone or row.definition != index.definition:
            new.append({"target_id": tid, "datname": found.datname, "index_name": index.index_name,
                        "definition": index.definition, "table_name": values["table"],
                        "key_columns": values["keys_json"], "first_seen": ts,
                        "previous_read": since, "last_seen": ts})  # fmt: skip
        else:
            seen.append({"name": index.index_name, "seen": ts, **values})
    if seen:
        moved = {
            "last_seen": bindparam("seen"),
            "table_name": bindparam("table"),
            "key_columns": bindparam("keys_json"),
        }
        conn.execute(
            update(index_catalog).where(*mine, c.index_name == bindparam("name")).values(moved), seen
        )
    if new:
        conn.execute(index_catalog.delete().where(*mine, c.index_name.in_([n["index_name"] for n in new])))
        conn.execute(index_catalog.insert(), new)
    if previous is None:
        read = {"target_id": tid, "datname": found.datname, "first_read": ts, "last_read": ts}
        conn.execute(index_catalog_reads.insert().values(read))
    else:
        where = (r.target_id == tid, r.datname == found.datname)
        conn.execute(update(index_catalog_reads).where(*where).values(last_read=max(previous, ts)))


def _record_suggestions(conn: Connection, tid: int, datname: str, ts: int, report: AdviceReport) -> None:
    """Keep the report's suggestions in their history: a new one first suggested now, one made
    before suggested again now (what says later that an index created was ours)."""
    c = index_suggestions.c
    for found in report.suggestions:
        key = {"target_id": tid, "datname": datname, "table_name": found.table}
        key["key_columns"] = json.dumps(found.columns)
        where = [c[name] == value for name, value in key.items()]
        values = {"create_sql": found.create_sql, "proven": found.proven, "last_suggested": ts}
        if conn.execute(select(c.first_suggested).where(*where)).first() is None:
            conn.execute(index_suggestions.insert().values(**key, **values, first_suggested=ts))
        else:
            conn.execute(update(index_suggestions).where(*where).values(**values))
