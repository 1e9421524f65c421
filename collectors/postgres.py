"""PostgreSQL collector: pg_stat_statements, pg_stat_database, connections and sizes.

One connection per target (application_name, statement timeout, read-only), counters read without
query text every cycle, text only for entries not seen before. Never resets server statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from collectors.base import StateSource, TargetCollector
from collectors.deltas import counter_delta, statement_deltas, vanished_keys
from collectors.pg_arrays import Int8Array, register_int8_array
from collectors.sqlfiles import sql_for
from dashboard.config import PostgresTarget
from dashboard.redaction import password_of, postgres_conninfo, redact
from dashboard.store.records import OWN_MARKER, Cycle, Point, StatementDelta, StatementEntry, StatementKey
from dashboard.store.schema import STATEMENT_COUNTERS

SOURCE = "postgres"
DB_COUNTERS = (
    "xact_commit", "xact_rollback", "blks_read", "blks_hit", "tup_returned", "tup_fetched",
    "tup_inserted", "tup_updated", "tup_deleted", "conflicts", "temp_files", "temp_bytes", "deadlocks",
)  # fmt: skip
CONNECTION_STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")
SIZES_EVERY = 300  # seconds between database sizes (pgwatch's db_size interval): they stat every file
TOTALS = ("calls", "exec_ms", "rows", "shared_hit", "shared_read", "temp_written")

HINT_PRELOAD = (
    "pg_stat_statements is not loaded: set shared_preload_libraries = 'pg_stat_statements' in "
    "postgresql.conf and restart PostgreSQL"
)
HINT_GRANT = "GRANT pg_monitor TO {role}; lets the collector see every user's statements and sizes"


def hint_create_extension(datname: str) -> str:
    return f"run CREATE EXTENSION pg_stat_statements; in database {datname} (as a superuser)"


@dataclass
class _State:
    statements: dict[StatementKey, tuple[tuple[float, ...], bool]]
    own: set[StatementKey]  # the collector's own queries: tracked, never counted as workload
    counters: dict[tuple[str, str], float]
    details: dict[str, Any] = field(default_factory=dict)
    # Each entry's signature as the server computed it last cycle (statements.*.sql), to its key:
    # sent back so that only entries that moved return. Empty after a restart: the next read is whole.
    sigs: dict[int, StatementKey] = field(default_factory=dict)
    sizes_at: int | None = None  # when database sizes were last read


class PostgresCollector(TargetCollector):
    kind: ClassVar[str] = "postgres"
    failures = (psycopg.Error, OSError, ValueError)

    def __init__(self, target: PostgresTarget, state_source: StateSource) -> None:
        super().__init__(target, state_source)
        self._conn: psycopg.Connection | None = None
        self._state: _State | None = None
        self._secret = password_of(target.dsn)

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def forget_state(self) -> None:
        self._state = None

    def _connect(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        t = self.target
        conninfo = postgres_conninfo(
            t.dsn,
            t.password_env,
            application_name="observatory",
            connect_timeout=max(1, int(t.connect_timeout)),
            options=(
                f"-c statement_timeout={int(t.statement_timeout * 1000)} "
                "-c lock_timeout=1000 -c default_transaction_read_only=on"
            ),
        )
        self._conn = psycopg.connect(conninfo, autocommit=True, row_factory=dict_row)
        register_int8_array(self._conn)
        return self._conn

    def _load_state(self) -> _State:
        if self._state is None:
            self._state = _State(
                statements=self._source.statement_state(self.kind, self.name),
                own=self._source.own_statements(self.kind, self.name),
                counters=self._source.series_state(self.kind, self.name),
                details=self._source.status_details(self.kind, self.name),
            )
        return self._state

    # -- the cycle --------------------------------------------------------------------------
    def _explain(self, err: BaseException) -> tuple[str, str]:
        return explain_connection_error(err)  # type: ignore[arg-type]

    def _redact(self, text: str) -> str:
        return redact(text, self._secret)

    def _collect(self, conn: psycopg.Connection, cycle: Cycle) -> None:
        state = self._load_state()
        server = _one(conn, sql_for(SOURCE, "server"))
        version = int(server["version_num"])
        status = cycle.status
        status.server_version = f"PostgreSQL {server['version']}"
        details: dict[str, Any] = {"postmaster_start": server["postmaster_start"]}
        restarted = state.details.get("postmaster_start") not in (None, server["postmaster_start"])
        cycle.points += self._database_points(conn, version, state)
        if state.sizes_at is None or cycle.ts - state.sizes_at >= SIZES_EVERY:
            cycle.points += _size_points(conn, version)
            state.sizes_at = cycle.ts
        cycle.points += _activity_points(conn, version)
        if not server["can_read_all"]:
            status.hints.append(HINT_GRANT.format(role=server["rolname"]))
        pgss = self._pgss_problem(server)
        if pgss:
            status.state, status.error = "degraded", pgss
            status.hints.insert(0, pgss)
        else:
            try:
                self._statements(conn, version, server, state, cycle, details, restarted)
            except psycopg.errors.ObjectNotInPrerequisiteState:  # "must be loaded via ..."
                status.state, status.error = "degraded", HINT_PRELOAD
                status.hints.insert(0, HINT_PRELOAD)
        if status.state == "ok" and not server["can_read_all"]:
            status.state = "degraded"
        status.details = details
        state.details = details

    @staticmethod
    def _pgss_problem(server: dict[str, Any]) -> str | None:
        if server["preload"] is not None:  # unknown without pg_read_all_settings: found out later
            preload = [lib.strip() for lib in server["preload"].split(",")]
            if "pg_stat_statements" not in preload:
                return HINT_PRELOAD
        if server["pgss_schema"] is None:
            return hint_create_extension(server["datname"])
        return None

    def _statements(
        self,
        conn: psycopg.Connection,
        version: int,
        server: dict[str, Any],
        state: _State,
        cycle: Cycle,
        details: dict[str, Any],
        restarted: bool,
    ) -> None:
        schema = server["pgss_schema"]
        info = _one(conn, sql_for(SOURCE, "statements_info", version), schema) if version >= 140000 else {}
        pgss_reset = info.get("stats_reset")
        details.update(pgss_reset=pgss_reset, dealloc=info.get("dealloc"), pgss_snapshot=cycle.ts)
        reset_all = state.details.get("pgss_reset") not in (None, pgss_reset) or (
            restarted and server["pgss_save"] == "off"
        )
        has_baseline = "pgss_snapshot" in state.details
        sent = {} if reset_all or not has_baseline else state.sigs
        snapshot, sigs, stale = _snapshot(conn, version, schema, sent)
        deltas, changed = statement_deltas(
            state.statements, snapshot, has_baseline=has_baseline, reset_all=reset_all
        )
        present = {e.key for e in snapshot}
        if sent:  # unreturned entries are sent ones that did not move; stale ones moved or vanished
            vanished = vanished_keys(state.statements, present, among=[sent[sig] for sig in stale])
        else:  # a complete read
            vanished = vanished_keys(state.statements, present)
        state.sigs = _next_sigs(sent, stale, snapshot, sigs)  # updates `sent` in place
        new_keys = [e.key for e in changed if e.key not in state.statements]
        cycle.texts = self._texts(conn, version, schema, new_keys)
        state.own |= {k for k, text in cycle.texts.items() if text.startswith(OWN_MARKER)}
        deltas = [d for d in deltas if d.key not in state.own]
        cycle.entries, cycle.deltas, cycle.vanished = changed, deltas, vanished
        for entry in changed:
            state.statements[entry.key] = (entry.counters, True)
        for key in vanished:
            state.statements[key] = (state.statements[key][0], False)
        if "pgss_snapshot" in state.details:
            cycle.points += _totals(deltas)
        if info.get("dealloc") and info["dealloc"] > (state.details.get("dealloc") or 0):
            cycle.status.hints.append(
                f"pg_stat_statements evicted entries (dealloc={info['dealloc']}): raise "
                f"pg_stat_statements.max (now {server['pgss_max']}) so rare statements are kept"
            )

    @staticmethod
    def _texts(
        conn: psycopg.Connection, version: int, schema: str, keys: list[StatementKey]
    ) -> dict[StatementKey, str]:
        if not keys:
            return {}
        wanted = set(keys)
        rows = _rows(
            conn,
            sql_for(SOURCE, "statement_texts", version),
            schema,
            {"queryids": list({k.queryid for k in keys})},
        )
        texts = {}
        for row in rows:
            key = StatementKey(row["queryid"], row["dbid"], row["userid"], row["toplevel"])
            if key in wanted and row["query"] and row["query"] != "<insufficient privilege>":
                texts[key] = row["query"]
        return texts

    def _database_points(self, conn: psycopg.Connection, version: int, state: _State) -> list[Point]:
        points: list[Point] = []
        for row in _rows(conn, sql_for(SOURCE, "database", version)):
            labels = f"datname={row['datname']}"
            reset_key = ("pg.db.stats_reset", labels)
            # Counters survive a clean restart; a crash or pg_stat_reset() shows as a decrease or
            # as a new stats_reset time.
            reset = state.counters.get(reset_key) not in (None, row["stats_reset"] or 0)
            state.counters[reset_key] = row["stats_reset"] or 0
            for name in DB_COUNTERS:
                key = (f"pg.db.{name}", labels)
                value = float(row[name] or 0)
                delta = counter_delta(state.counters.get(key), value, reset=reset)
                state.counters[key] = value
                points.append(Point(key[0], value, "counter", labels, delta))
        return points


def _totals(deltas: list[StatementDelta]) -> list[Point]:
    """The cycle's activity over all statements, for the Overview (cheap to chart over months)."""
    sums = [sum(column) for column in zip(*(d.deltas for d in deltas), strict=True)]
    sums = sums or [0.0] * len(STATEMENT_COUNTERS)
    return [
        Point(f"pg.statements.{n}", None, "counter", delta=sums[STATEMENT_COUNTERS.index(n)]) for n in TOTALS
    ]


def _size_points(conn: psycopg.Connection, version: int) -> list[Point]:
    return [
        Point("pg.db.size_bytes", float(row["size_bytes"]), "gauge", f"datname={row['datname']}")
        for row in _rows(conn, sql_for(SOURCE, "database_sizes", version))
        if row["size_bytes"] is not None
    ]


def _activity_points(conn: psycopg.Connection, version: int) -> list[Point]:
    counts = {state: 0 for state in CONNECTION_STATES}
    waiting = 0
    for row in _rows(conn, sql_for(SOURCE, "activity", version)):
        counts[row["state"]] = row["connections"]
        waiting += row["waiting"]
    points = [Point("pg.connections", float(n), "gauge", f"state={s}") for s, n in counts.items()]
    points.append(Point("pg.connections.waiting_on_lock", float(waiting)))
    return points


def _snapshot(
    conn: psycopg.Connection, version: int, schema: str, sent: dict[int, StatementKey]
) -> tuple[list[StatementEntry], list[int], list[int]]:
    """The entries whose signature is not among `sent` (moved, new, or back), their signatures,
    and the sent signatures that no entry has any more.

    Sending last cycle's signatures lets PostgreSQL drop the ~90 % of entries that did not run
    since, before they are transferred and decoded: that was most of a 5,000-entry cycle's cost.
    """
    query = _compose(sql_for(SOURCE, "statements", version), schema)
    with conn.cursor(row_factory=tuple_row, binary=True) as cur:
        cur.execute(query, {"sigs": Int8Array.of(sent.keys())})
        rows = cur.fetchall()
    moved = [row for row in rows if row[0] is not None]
    stale = [row[25] for row in rows if row[0] is None]
    return [_entry(StatementKey(*row[:4]), row) for row in moved], [row[24] for row in moved], stale


def _next_sigs(
    sent: dict[int, StatementKey], stale: list[int], snapshot: list[StatementEntry], sigs: list[int]
) -> dict[int, StatementKey]:
    """What to send next cycle: the signatures still current, and those of the entries returned."""
    for sig in stale:
        del sent[sig]
    sent.update(zip(sigs, (e.key for e in snapshot), strict=True))
    return sent


def _entry(key: StatementKey, row: tuple[Any, ...]) -> StatementEntry:
    """A row of statements.*.sql: key, the 13 counters (STATEMENT_COUNTERS order), gauges, names."""
    min_ms, max_ms, mean_ms, stddev_ms, stats_since, datname, rolname = row[17:24]
    return StatementEntry(
        key=key,
        counters=tuple(row[4:17]),
        datname=datname,
        rolname=rolname,
        min_ms=min_ms,
        max_ms=max_ms,
        mean_ms=mean_ms,
        stddev_ms=stddev_ms,
        stats_since=stats_since,
    )


def _compose(text: str | None, schema: str | None) -> sql.Composed | sql.SQL:
    if text is None:
        raise ValueError("no SQL for this server version")
    if "{pgss}" in text:
        return sql.SQL(text).format(pgss=sql.Identifier(schema or "public"))
    return sql.SQL(text)


def _rows(conn: psycopg.Connection, text: str | None, schema: str | None = None, params=None):
    with conn.cursor() as cur:
        cur.execute(_compose(text, schema), params)
        return cur.fetchall()


def _one(conn: psycopg.Connection, text: str | None, schema: str | None = None) -> dict[str, Any]:
    rows = _rows(conn, text, schema)
    return rows[0] if rows else {}


def explain_connection_error(err: Exception) -> tuple[str, str]:
    """The driver's message (first line) and what to do about it."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    lowered = str(err).lower()
    if (
        isinstance(err, psycopg.ProgrammingError)
        or "invalid connection option" in lowered
        or ('missing "="' in lowered)
    ):
        return message, "the dsn is not valid: write it as postgresql://user@host:5432/dbname"
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return message, "check the password: PGPASSWORD, ~/.pgpass, or password_env naming a variable"
    if "does not exist" in lowered and "database" in lowered:
        return message, "the database named in the dsn does not exist on that server"
    if "does not exist" in lowered and "role" in lowered:
        return message, "the user named in the dsn does not exist: create it or fix the dsn"
    if "timeout" in lowered or "timed out" in lowered:
        return message, "the server did not answer in time: check host, firewall and connect_timeout"
    if "connection refused" in lowered or "could not connect" in lowered or "connection failed" in lowered:
        return message, "is PostgreSQL running and listening on that host and port?"
    if "environment variable" in lowered:
        return message, "export the variable before starting the collector"
    return message, "see the PostgreSQL server log for details"
