"""PostgreSQL collector: pg_stat_statements, pg_stat_database, connections and sizes.

One connection per target (application_name, statement timeout, read-only), counters read without
query text every cycle, text only for entries not seen before. Never resets server statistics.

The queries and their pipeline are in ``reads.py``, connection errors explained in ``errors.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import psycopg
from psycopg.rows import dict_row, tuple_row

from collectors.base import StateSource, TargetCollector
from collectors.deltas import LastCounters, counter_delta
from collectors.postgres.arrays import Int8Array, float8_rows, register_int8_array
from collectors.postgres.chains import ChainTracker
from collectors.postgres.errors import explain_connection_error
from collectors.postgres.health import PARTS
from collectors.postgres.parts import Part, due
from collectors.postgres.reads import _Reads
from collectors.postgres.waits import Sample, WaitSampler, sample_of, wait_points
from dashboard.core import metrics
from dashboard.core.config import PostgresTarget
from dashboard.core.details import PostgresDetails
from dashboard.core.health.indexes import IndexesNow
from dashboard.core.records import (
    Cycle,
    Deferred,
    Point,
    StatementDelta,
    StatementEntry,
    StatementKey,
    is_own,
)
from dashboard.core.redaction import env_values, password_of, postgres_conninfo, redact
from dashboard.core.statement_redaction import redact_statement
from dashboard.store.schema import STATEMENT_COUNTERS

DB_COUNTERS = (
    "xact_commit", "xact_rollback", "blks_read", "blks_hit", "tup_returned", "tup_fetched",
    "tup_inserted", "tup_updated", "tup_deleted", "conflicts", "temp_files", "temp_bytes", "deadlocks",
)  # fmt: skip
CONNECTION_STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")
# Seconds between reads of what changes slowly: database sizes (pg_database_size stats every file;
# pgwatch reads them every 300 s too) and database and role names.
SLOW_EVERY = 300
TOTALS = ("calls", "exec_ms", "rows", "shared_hit", "shared_read", "temp_written")
PGSS_MARKERS = ("pgss_reset", "dealloc", "pgss_snapshot")  # set only by a cycle that read pg_stat_statements

HINT_PRELOAD = (
    "pg_stat_statements is not loaded: set shared_preload_libraries = 'pg_stat_statements' in "
    "postgresql.conf and restart PostgreSQL"
)
HINT_GRANT = "GRANT pg_monitor TO {role}; lets the collector see every user's statements and sizes"


def hint_create_extension(datname: str) -> str:
    return f"run CREATE EXTENSION pg_stat_statements; in database {datname} (as a superuser)"


@dataclass
class _State:
    statements: LastCounters
    own: set[StatementKey]  # the collector's own queries: tracked, never counted as workload
    untexted: set[StatementKey]  # stored without their text: it is read when they next move
    counters: dict[tuple[str, str], float]
    details: PostgresDetails = field(default_factory=PostgresDetails)  # of the last successful cycle
    # Each entry's signature as the server computed it last cycle (statements.*.sql): sent back so
    # that only entries that moved return. Empty after a restart: the next read is complete.
    sigs: dict[StatementKey, int] = field(default_factory=dict)
    slow_at: int | None = None  # when sizes and names were last read
    names: dict[str, dict[int, str]] = field(default_factory=dict)  # database|role -> oid -> name
    parts_at: dict[str, int] = field(default_factory=dict)  # health part -> when it was last read


@dataclass
class _StatementsRead:
    info: dict[str, Any]  # pg_stat_statements_info: dealloc, stats_reset (14+)
    reset_all: bool
    evicted: bool
    rows: list[tuple[Any, ...]]  # statements.*.sql: every entry if `complete`, else those that moved
    keys: list[StatementKey]
    complete: bool
    names: dict[str, dict[int, str]]
    texts: dict[StatementKey, str]  # of the entries not seen before
    ts: int


class PostgresCollector(TargetCollector):
    kind: ClassVar[str] = "postgres"
    failures = (psycopg.Error, OSError, ValueError)

    def __init__(self, target: PostgresTarget, state_source: StateSource) -> None:
        super().__init__(target, state_source)
        self._conn: psycopg.Connection | None = None
        self._state: _State | None = None
        self._server: dict[str, Any] | None = None  # server.sql's row, as last read on this connection
        self._secrets = [s for s in (password_of(target.dsn), *env_values(target.password_env)) if s]
        self._sampler = WaitSampler(self._open, _sample_query, self._redact)
        self._chains = ChainTracker(target.blocking_history_after)
        self.sample_every: float = target.health.waits

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        self._server = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def forget_state(self) -> None:
        self._state = None

    def sample_waits(self) -> bool:
        """One sample of wait events and lock waits for the next cycle, on the sampler's own
        connection (the daemon's sampling job calls it every health.waits); whether it was taken."""
        return self._sampler.sample()

    def close_sampler(self) -> None:
        """Close the sampler's connection and drop what it kept (from the thread that samples:
        the daemon stops, or another process took the target over)."""
        self._sampler.close()
        self._sampler.drain()

    def _connect(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = self._open()
        self._server = None  # read again: this may be another server behind the same address
        register_int8_array(self._conn)
        return self._conn

    def _open(self) -> psycopg.Connection:
        """A new connection to the target, set up as every one of the collector's."""
        t = self.target
        self._secrets += [s for s in env_values(t.password_env) if s not in self._secrets]
        conninfo = postgres_conninfo(
            t.dsn,
            t.password_env,
            application_name="observatory",
            connect_timeout=max(1, int(t.connect_timeout)),
            options=(
                f"-c statement_timeout={int(t.statement_timeout * 1000)} "
                "-c lock_timeout=1000 -c default_transaction_read_only=on"
                # Functions and operators in its SQL are pg_catalog's (pg_stat_statements is named
                # with its schema): a user's closer match on the search_path never runs here.
                " -c search_path=pg_catalog,pg_temp" + _long_running(t.long_running_after)
            ),
        )
        return psycopg.connect(conninfo, autocommit=True, row_factory=dict_row)

    def _load_state(self) -> _State:
        if self._state is None:
            self._state = _State(
                statements=LastCounters(
                    len(STATEMENT_COUNTERS), self._source.statement_state(self.kind, self.name)
                ),
                own=self._source.own_statements(self.kind, self.name),
                untexted=self._source.untexted_statements(self.kind, self.name),
                counters=self._source.series_state(self.kind, self.name),
                details=self._stored_details(PostgresDetails),
            )
        return self._state

    # -- the cycle --------------------------------------------------------------------------
    def _explain(self, err: BaseException) -> tuple[str, str]:
        return explain_connection_error(err)  # type: ignore[arg-type]

    def _redact(self, text: str) -> str:
        return redact(text, *self._secrets)

    def _collect(self, conn: psycopg.Connection, cycle: Cycle) -> None:
        state = self._load_state()
        if self._server is None:  # a new connection: the version picks the SQL, so read it first
            self._server = _Reads(conn, version=0, schema=None).query("server")[0]
        version, schema = int(self._server["version_num"]), self._server["pgss_schema"]
        pgss = self._pgss_problem(self._server)  # as the last read saw it: it changes rarely
        slow = state.slow_at is None or cycle.ts - state.slow_at >= SLOW_EVERY
        health = due(PARTS, state.parts_at, self.target.health, cycle.ts)
        reads = _Reads(conn, version, schema)
        try:
            with conn.pipeline():  # one round trip for the cycle's reads
                reads.send("server", "database", "activity", *(("database_sizes", "names") if slow else ()))
                if not pgss:  # 13 cannot count evictions: it reads every entry each cycle
                    reads.send_statements(state.sigs if version >= 140000 else {})
        except psycopg.errors.ObjectNotInPrerequisiteState:  # "must be loaded via ..."
            pgss = HINT_PRELOAD
        server = self._server = reads.rows("server")[0]
        status = cycle.status
        status.server_version = f"PostgreSQL {server['version']}"
        restarted = state.details.postmaster_start not in (None, server["postmaster_start"])
        # Every query runs before the state moves on: a cycle that fails changes nothing.
        read = None if pgss else self._read_statements(reads, server, state, cycle.ts, restarted)
        fetched = self._fetch_parts(reads, health, cycle)
        samples = self._sampler.drain() or self._sample_now(reads, cycle)
        cycle.points += self._database_points(reads.rows("database"), state)
        cycle.points += _activity_points(reads.rows("activity"))
        if slow:
            cycle.points += _size_points(reads.rows("database_sizes"))
            state.names = _names(reads.rows("names"))
            state.slow_at = cycle.ts
        snapshots = self._health(fetched, state, cycle)
        self._waits(samples, cycle)
        if not server["can_read_all"]:
            status.hints.append(HINT_GRANT.format(role=server["rolname"]))
        if read is None:
            status.state, status.error = "degraded", pgss
            status.hints.insert(0, pgss)
            # The last reading of pg_stat_statements stays the baseline (the extension dropped and
            # created again keeps its counters): forgetting it lost what ran until the next reading.
            # Only the markers a reading set are passed, so a target never read stores none.
            kept = state.details.model_dump(include=set(PGSS_MARKERS), exclude_unset=True)
            details = PostgresDetails(postmaster_start=server["postmaster_start"], **kept, **snapshots)
        else:
            self._statements(read, server, state, cycle)
            details = PostgresDetails(
                postmaster_start=server["postmaster_start"],
                pgss_reset=read.info.get("stats_reset"),
                dealloc=read.info.get("dealloc"),
                pgss_snapshot=read.ts,
                **snapshots,
            )
        if status.state == "ok" and not server["can_read_all"]:
            status.state = "degraded"
        status.details = state.details = details

    def _fetch_parts(self, reads: _Reads, health: list[Part], cycle: Cycle) -> dict[Part, list | None]:
        """The rows of each health part due, each read on its own after the cycle's pipeline and
        before the state moves on. One the server refuses (a timeout on a huge catalog, a view
        this version lacks) is a hint and None; a lost connection fails the cycle."""
        fetched: dict[Part, list | None] = {}
        for part in health:
            try:
                fetched[part] = reads.fetch(part.name)
            except psycopg.Error as err:
                if reads.conn.broken:  # the server is gone: the cycle fails, the target is down
                    raise
                self._part_failed(cycle, part, err)
                fetched[part] = None
            except ValueError as err:  # no SQL of the part for this server's version
                self._part_failed(cycle, part, err)
                fetched[part] = None
        return fetched

    def _health(self, fetched: dict[Part, list | None], state: _State, cycle: Cycle) -> dict[str, Any]:
        """The parts' readings into the cycle and the state. A part whose rows cannot be read
        (a bug, a value of an unexpected shape) is a hint too, its counters left as they were.
        Returns every part's snapshot: this cycle's, or the last one kept."""
        snapshots = {p.name: getattr(state.details, p.name, None) for p in PARTS}
        for part, rows in fetched.items():
            state.parts_at[part.name] = cycle.ts  # read, or tried: next at its interval
            if rows is None:
                continue
            last = dict(state.counters)  # moved on only if the part reads cleanly
            try:
                found = part.read(rows, cycle.ts, last) if part.counters else part.read(rows, cycle.ts)
            except Exception as err:  # one part's surprise must not take the target down
                self._part_failed(cycle, part, err)
                continue
            state.counters = forget_absent(last, found.points)
            cycle.points += found.points
            if isinstance(found.snapshot, IndexesNow):  # kept as history by the store, not in the details
                cycle.indexes = self._catalog(found.snapshot)
            else:
                snapshots[part.name] = found.snapshot
        return {name: snap for name, snap in snapshots.items() if snap is not None}

    def _catalog(self, found: IndexesNow) -> IndexesNow:
        """The index catalog named by its database, read from the server when it lists no index."""
        if found.datname is None and self._server is not None:
            return found.model_copy(update={"datname": self._server["datname"]})
        return found

    def _sample_now(self, reads: _Reads, cycle: Cycle) -> list[Sample]:
        """One sample of waits on the cycle's connection, when the sampler took none since the
        last cycle (no daemon: `collect --once`; or it could not reach the server)."""
        try:
            return [sample_of(reads.fetch("waits")[0])]
        except (psycopg.Error, ValueError) as err:  # ValueError: a text that is not UTF-8
            if reads.conn.broken:
                raise
            cycle.status.hints.append(f"wait events could not be sampled: {self._redact(_first_line(err))}")
            return []

    def _waits(self, samples: list[Sample], cycle: Cycle) -> None:
        """The samples' wait events as the cycle's points; the blocking chains they ended, and
        those still going, that lasted long enough to keep."""
        cycle.points += wait_points(samples)
        for sample in samples:
            cycle.chains += self._chains.observe(sample)
        cycle.chains += self._chains.ongoing()

    def _part_failed(self, cycle: Cycle, part: Part, err: BaseException) -> None:
        reason = self._redact(_first_line(err))
        cycle.status.hints.append(f"health part {part.name} could not be read: {reason}")

    @staticmethod
    def _pgss_problem(server: dict[str, Any]) -> str | None:
        if server["preload"] is not None:  # unknown without pg_read_all_settings: found out later
            preload = [lib.strip() for lib in server["preload"].split(",")]
            if "pg_stat_statements" not in preload:
                return HINT_PRELOAD
        if server["pgss_schema"] is None:
            return hint_create_extension(server["datname"])
        return None

    def _read_statements(
        self, reads: _Reads, server: dict[str, Any], state: _State, ts: int, restarted: bool
    ) -> _StatementsRead:
        """What the cycle needs from pg_stat_statements, read without changing the state."""
        info = reads.rows("statements_info")[0] if reads.sent("statements_info") else {}
        reset_all = _reset_since(state.details.pgss_reset, info.get("stats_reset")) or (
            restarted and server["pgss_save"] == "off"
        )
        evicted = (info.get("dealloc") or 0) > (state.details.dealloc or 0)
        rows, complete = reads.rows("statements"), not reads.sigs_sent
        if (reset_all or evicted) and not complete:
            # Entries were removed, and some may be back with the very signature they had: read
            # every entry, so none is mistaken for unchanged and every vanished one is found.
            rows, complete = (
                reads.query("statements", {"sigs": Int8Array.of([])}, row_factory=tuple_row),
                True,
            )
        names = state.names
        if any(r[1] not in names.get("database", {}) or r[2] not in names.get("role", {}) for r in rows):
            names = _names(reads.query("names"))  # a database or role created since
        keys = [StatementKey(*row[:4]) for row in rows]
        texts = _texts(reads, [k for k in keys if k not in state.statements or k in state.untexted])
        return _StatementsRead(info, reset_all, evicted, rows, keys, complete, names, texts, ts)

    def _statements(self, read: _StatementsRead, server: dict[str, Any], state: _State, cycle: Cycle) -> None:
        """Move the state on to what was read, and put the cycle's records and totals in `cycle`
        (the details are moved on by the caller, after this)."""
        info, keys, rows = read.info, read.keys, read.rows
        has_baseline = state.details.pgss_snapshot is not None
        current = float8_rows([row[4] for row in rows], len(STATEMENT_COUNTERS))
        change = state.statements.advance(keys, current, has_baseline=has_baseline, reset_all=read.reset_all)
        sigs = zip(keys, (row[10] for row in rows), strict=True)
        if read.complete:  # every entry was read: those not in it vanished
            cycle.vanished = state.statements.vanished(set(keys))
            state.sigs = dict(sigs)
        else:  # an entry reset alone is found when it runs again, by its lower counters
            state.sigs.update(sigs)
        state.names = names = read.names  # records are made from these in the writer's thread
        cycle.texts = read.texts
        state.untexted -= read.texts.keys()
        state.own |= {k for k, text in read.texts.items() if is_own(text)}
        counted = change.moved & np.fromiter((k not in state.own for k in keys), dtype=bool, count=len(keys))
        cycle.entries = Deferred(
            int(change.save.sum()), lambda: _entries(keys, current, change.save, rows, names)
        )
        cycle.deltas = Deferred(int(counted.sum()), lambda: _deltas(keys, change.deltas, counted))
        if has_baseline:
            cycle.points += _totals(change.deltas[counted].sum(axis=0).tolist())
        if read.evicted:
            cycle.status.hints.append(
                f"pg_stat_statements evicted entries (dealloc={info['dealloc']}): raise "
                f"pg_stat_statements.max (now {server['pgss_max']}) so rare statements are kept"
            )

    def _database_points(self, rows: list[dict[str, Any]], state: _State) -> list[Point]:
        points: list[Point] = []
        for row in rows:
            labels = metrics.encode({"datname": row["datname"]})
            reset_key = ("pg.db.stats_reset", labels)
            # Counters survive a clean restart; a crash or pg_stat_reset() shows as a decrease or
            # as a new stats_reset time.
            reset = state.counters.get(reset_key) not in (None, row["stats_reset"] or 0)
            state.counters[reset_key] = row["stats_reset"] or 0
            for name in DB_COUNTERS:
                key = (metrics.PG_DB + name, labels)
                value = float(row[name] or 0)
                delta = counter_delta(state.counters.get(key), value, reset=reset)
                state.counters[key] = value
                points.append(Point(key[0], value, "counter", labels, delta))
        return points


def _long_running(seconds: float | None) -> str:
    """The long-running threshold as a setting of the connection, which wins over the role's
    (sessions.13.sql reads it); plain decimals: the query reads digits and a point, not 1e+06."""
    return f" -c observatory.long_running_s={seconds:.3f}" if seconds else ""


def _sample_query(conn: psycopg.Connection) -> dict[str, Any]:
    """The sampler's one row (waits.*.sql for the server's version)."""
    return _Reads(conn, conn.info.server_version, None).fetch("waits")[0]


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def forget_absent(last: dict[tuple[str, str], float], points: list[Point]) -> dict[tuple[str, str], float]:
    """`last` without the counters a part no longer returns (a table out of its top 50, a table
    dropped): one that comes back starts from a new baseline, instead of a delta that would put
    all the activity of its absence in one point."""
    read = {(p.name, p.labels) for p in points if p.kind == "counter"}
    names = {name for name, _ in read}
    return {key: value for key, value in last.items() if key[0] not in names or key in read}


def _totals(sums: list[float]) -> list[Point]:
    """The cycle's activity over all statements, for the Overview (cheap to chart over months)."""
    return [
        Point(metrics.PG_STATEMENTS + n, None, "counter", delta=sums[STATEMENT_COUNTERS.index(n)])
        for n in TOTALS
    ]


def _size_points(rows: list[dict[str, Any]]) -> list[Point]:
    return [
        Point(
            metrics.PG_DB_SIZE_BYTES,
            float(row["size_bytes"]),
            "gauge",
            metrics.encode({"datname": row["datname"]}),
        )
        for row in rows
        if row["size_bytes"] is not None
    ]


def _activity_points(rows: list[dict[str, Any]]) -> list[Point]:
    counts = {state: 0 for state in CONNECTION_STATES}
    oldest = {state: 0.0 for state in CONNECTION_STATES}
    waiting = 0
    for row in rows:
        counts[row["state"]] = row["connections"]
        oldest[row["state"]] = float(row["oldest_s"] or 0.0)
        waiting += row["waiting"]
    points = [
        Point(metrics.PG_CONNECTIONS, float(n), "gauge", metrics.encode({"state": s}))
        for s, n in counts.items()
    ]
    points += [
        Point("pg.connections.oldest_s", age, "gauge", metrics.encode({"state": s}))
        for s, age in oldest.items()
    ]
    points.append(Point("pg.connections.waiting_on_lock", float(waiting)))
    if rows:  # the setting, read with the connections (alerts compare them: pg.connections.used_ratio)
        points.append(Point("pg.connections.max", float(rows[0]["max_connections"])))
    return points


def _names(rows: list[dict[str, Any]]) -> dict[str, dict[int, str]]:
    names: dict[str, dict[int, str]] = {"database": {}, "role": {}}
    for row in rows:
        names[row["kind"]][row["oid"]] = row["name"]
    return names


def _reset_since(before: float | None, now: float | None) -> bool:
    """Whether pg_stat_statements was reset since the last cycle. Reset times are read to the
    microsecond (two resets can fall in one second); one saved by an older version, to the second,
    still matches its own second."""
    if before is None or now is None:
        return False
    return int(now) != before if isinstance(before, int) else now != before


def _texts(reads: _Reads, keys: list[StatementKey]) -> dict[StatementKey, str]:
    """The text of new entries, without passwords (CREATE ROLE ... PASSWORD '...' is kept with its
    literal by pg_stat_statements). Any text read makes PostgreSQL read the whole query text file."""
    if not keys:
        return {}
    wanted = set(keys)
    texts = {}
    for row in reads.query("statement_texts", {"queryids": list({k.queryid for k in keys})}):
        key = StatementKey(row["queryid"], row["dbid"], row["userid"], row["toplevel"])
        if key in wanted and row["query"] and row["query"] != "<insufficient privilege>":
            texts[key] = redact_statement(row["query"])
    return texts


def _entries(
    keys: list[StatementKey],
    counters: np.ndarray,
    save: np.ndarray,
    rows: list[tuple[Any, ...]],
    names: dict[str, dict[int, str]],
) -> list[StatementEntry]:
    """The entries to save: counters (STATEMENT_COUNTERS order), names, and the gauges of
    statements.*.sql (min, max, mean and stddev of the execution time, stats_since)."""
    databases, roles = names.get("database", {}), names.get("role", {})
    return [
        StatementEntry(
            keys[i], tuple(values), databases.get(keys[i].dbid), roles.get(keys[i].userid), *rows[i][5:10]
        )
        for i, values in zip(np.flatnonzero(save).tolist(), counters[save].tolist(), strict=True)
    ]


def _deltas(keys: list[StatementKey], deltas: np.ndarray, counted: np.ndarray) -> list[StatementDelta]:
    rows = deltas[counted].tolist()
    return [
        StatementDelta(keys[i], tuple(row))
        for i, row in zip(np.flatnonzero(counted).tolist(), rows, strict=True)
    ]
