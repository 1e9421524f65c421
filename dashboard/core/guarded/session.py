"""The one door through which foreign SQL reaches a PostgreSQL server: a guarded session.

Layers, each enough on its own for the case it covers:
- `check()` (statement.py) lets through exactly one plannable statement, as the server parses it;
- that statement only ever travels as one extended-protocol message, where the server itself refuses
  a second statement; it is only planned (EXPLAIN without ANALYZE, PREPARE), never executed;
- read-only transactions that are always rolled back, with statement, lock and idle timeouts given as
  connection options: in force before any foreign text arrives, and no foreign text can be a SET;
- a client-side deadline cancels a statement the server does not stop in time;
- statements that would make the planner run a function that is neither built in nor from an
  extension are not planned at all (the planner folds IMMUTABLE calls and calls operator and STABLE
  functions on constants, with the rights of the planning role);
- sessions of roles that could run programs, read or write server files or end other sessions are
  refused unless explicitly allowed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Self

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict

from dashboard.core.guarded.statement import ForeignStatement, Refused
from dashboard.core.records import OWN_MARKER
from dashboard.core.redaction import password_of, postgres_conninfo, redact
from dashboard.core.sqlfiles import SqlFiles

# Membership in any of these (or superuser) lets SQL run programs, read or write the server's files
# or end other sessions: too much power for a role that plans statements written by others.
POWERFUL_ROLES = (
    "pg_execute_server_program",
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_signal_backend",
)
LEAST_PRIVILEGE = (
    "CREATE ROLE observatory_advisor LOGIN; GRANT pg_monitor, pg_read_all_data TO observatory_advisor;"
)
_PREPARED = "observatory_plan"


class SessionRefused(RuntimeError):
    """No guarded session: the server is unreachable, or the role is too powerful. Says what to do."""


class Unsafe(Refused):
    """Planning the statement would run code that is neither built in nor from an extension."""


@dataclass(frozen=True)
class Limits:
    statement_ms: int = 10_000  # server side, per statement
    lock_ms: int = 1_000  # planning takes AccessShareLock: never queue behind a DDL for long
    idle_ms: int = 60_000  # a session left in a transaction is ended by the server
    deadline_s: float = 15.0  # client side: cancel what the server has not stopped by then
    abandon_s: float = 5.0  # after the cancel: stop waiting for a server that ignores it

    def options(self) -> str:
        return (
            f"-c statement_timeout={self.statement_ms} -c lock_timeout={self.lock_ms}"
            f" -c idle_in_transaction_session_timeout={self.idle_ms}"
            " -c default_transaction_read_only=on -c plan_cache_mode=force_generic_plan"
            # The server must read the text as pglast did: strings as the standard says, bytes as UTF-8.
            " -c standard_conforming_strings=on -c client_encoding=UTF8"
            # The planner's search stays the default's whatever a database or role sets: exhaustive
            # join search over many tables does not look at a cancel request.
            " -c join_collapse_limit=8 -c from_collapse_limit=8 -c geqo=on -c geqo_threshold=12"
            " -c geqo_effort=5 -c geqo_pool_size=0 -c geqo_generations=0"
            " -c constraint_exclusion=partition"
        )


@dataclass(frozen=True)
class Run:
    """How `GuardedSession.run_explain` runs EXPLAIN: estimated or executed (ANALYZE), with values."""

    analyze: bool = False  # execute the statement, in a transaction always rolled back
    values: tuple[str | None, ...] | None = None  # $1..$n as text (None: NULL); None: a generic plan
    writes: bool = False  # let ANALYZE run a statement that writes (still rolled back)

    def command(self, generic: bool) -> str:
        words = ["ANALYZE"] if self.analyze else []
        words += ["VERBOSE", "BUFFERS", "SETTINGS"] + (["GENERIC_PLAN"] if generic else [])
        return f"EXPLAIN ({', '.join(words)})"


# Volatile built-ins an executed statement may call: they read a clock or draw a random number, or
# wait (statement_timeout ends that). Sequences advance (nextval is not rolled back) only for writes.
VOLATILE_OK = (
    *("pg_sleep", "random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid"),
    *("system", "bernoulli"),  # TABLESAMPLE's methods: they pick which blocks or rows to read
)
VOLATILE_OK_WRITING = (*VOLATILE_OK, "nextval", "currval", "lastval")

sql = SqlFiles(Path(__file__).with_name("sql"))


class GuardedSession:
    """A read-only connection for planning foreign statements, and for the project's own reads."""

    def __init__(self, conn: psycopg.Connection, limits: Limits) -> None:
        self.conn = conn  # the project's own SQL only; foreign text goes through explain()
        self.limits = limits
        self._oids: dict[str, int | None] = {}  # relations by the name statements write
        self.search_path, self.schemas = self._pin_search_path()
        # The statements' JIT setting, as the database gives it, then off for the project's own SQL:
        # catalog queries with recursive CTEs look costly to the planner, and JIT would add 0.6 s.
        self.jit = conn.execute(OWN_MARKER + "SELECT pg_catalog.current_setting('jit')").fetchone()[0]
        conn.execute(OWN_MARKER + "SET jit = off")

    @classmethod
    def connect(
        cls,
        dsn: str,
        password_env: str | None = None,
        *,
        limits: Limits | None = None,
        allow_privileged: bool = False,
        application_name: str = "observatory-advisor",
    ) -> Self:
        limits = limits or Limits()
        try:
            # The DSN's own options (a search_path, say) stay; ours come last, so they win.
            own = conninfo_to_dict(dsn).get("options")
            conninfo = postgres_conninfo(
                dsn, password_env, application_name=application_name, connect_timeout=10,
                options=f"{own} {limits.options()}" if own else limits.options(),
            )  # fmt: skip
            # No automatic server-side preparation: each foreign text is parsed and planned afresh.
            conn = psycopg.connect(conninfo, autocommit=True, prepare_threshold=None)
        except (psycopg.Error, ValueError) as err:
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SessionRefused(redact(message, password_of(dsn))) from None
        try:
            session = cls(conn, limits)
            if not allow_privileged:
                session._refuse_powerful_roles()
        except psycopg.Error as err:
            conn.close()
            raise SessionRefused(redact(first_line(err), password_of(dsn))) from None
        except BaseException:
            conn.close()
            raise
        return session

    def _pin_search_path(self) -> tuple[str, list[str]]:
        """The statements' search_path (text, and its schemas in order); from here on the project's
        own SQL resolves functions and operators in pg_catalog only.

        Otherwise a user's function with a closer match (public.unnest(text[]) beside
        pg_catalog.unnest(anyarray)) would run inside the project's catalog queries. SHOW and a
        schema-qualified call with a constant are all that run before the pin.
        """
        path = self.conn.execute(OWN_MARKER + "SHOW search_path").fetchone()[0]
        schemas = self.conn.execute(OWN_MARKER + "SELECT pg_catalog.current_schemas(true)").fetchone()[0]
        self.conn.execute(OWN_MARKER + "SET search_path = pg_catalog, pg_temp")
        return path, list(schemas)

    def relation_oids(self, written: list[str]) -> dict[str, int | None]:
        """Relations as a statement writes them, found along the statement's search_path; kept for
        the session, for the advisor's analysis. The check before each plan finds them afresh."""
        new = [name for name in written if name not in self._oids]
        if new:
            try:
                params = {"relations": new, "schemas": self.schemas}
                rows = self.conn.execute(sql("resolve_relations"), params)
            except psycopg.Error as err:
                raise Refused(f"cannot read its relation names: {first_line(err)}") from None
            self._oids.update(dict(rows.fetchall()))
        return {name: self._oids.get(name) for name in written}

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def server_version(self) -> int:
        return self.conn.info.server_version

    def _refuse_powerful_roles(self) -> None:
        rows = self.conn.execute(sql("role_powers"), {"roles": list(POWERFUL_ROLES)}).fetchall()
        for name, superuser, powers in rows:
            held = "a superuser (or may become one)" if superuser else _powers(powers)
            if held:
                raise SessionRefused(
                    f"role {name} is {held}: planning statements others wrote would run with that power. "
                    f"Connect as a least-privilege role instead: {LEAST_PRIVILEGE} "
                    "(or allow it with advise_privileged: true / --allow-privileged, at your own risk)"
                )

    # -- what a statement would run ------------------------------------------------------------
    def untrusted_calls(
        self, statement: ForeignStatement, cur: psycopg.Cursor | None = None, schemas: list[str] | None = None
    ) -> list[tuple[str, str]]:
        """(function, how the statement reaches it) for each function a database user wrote that
        planning it could run. Asked afresh each time: views and operators can change meanwhile."""
        params = {
            "names": sorted(statement.names),
            "relations": sorted(statement.relations),
            "schemas": self.schemas if schemas is None else schemas,
        }
        try:
            rows = (cur or self.conn).execute(_untrusted_calls(), params).fetchall()
            return [(fn, via) for fn, via in rows]
        except psycopg.Error as err:
            raise Refused(f"cannot check what it calls: {first_line(err)}") from None

    def refuse_untrusted(
        self, statement: ForeignStatement, cur: psycopg.Cursor | None = None, schemas: list[str] | None = None
    ) -> None:
        found = self.untrusted_calls(statement, cur, schemas)
        if found:
            names = ", ".join(fn if via == "called" else f"{fn} (via {via})" for fn, via in found[:5])
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            raise Unsafe(
                f"not planned: it calls {names}{more}, neither built in nor from an extension, "
                "which the planner may run while planning"
            )

    def _refuse_side_effects(
        self, statement: ForeignStatement, cur: psycopg.Cursor, schemas: list[str], writes: bool
    ) -> None:
        """Before running a statement: what planning it would run is checked as for any plan, then
        what running it would, for effects a rollback does not undo (untrusted_calls.executed.sql)."""
        self.refuse_untrusted(statement, cur, schemas)
        params = {
            "names": sorted(statement.names),
            "calls": sorted(statement.called),
            "relations": sorted(statement.relations),
            "schemas": schemas,
            "writes": statement.changes in ("delete", "write"),  # triggers fire, foreign keys cascade
            "fills": statement.changes == "write",  # defaults, checks and index expressions run
            "volatile_ok": list(VOLATILE_OK_WRITING if writes else VOLATILE_OK),
        }
        try:
            found = cur.execute(_untrusted_calls("executed"), params).fetchall()
        except psycopg.Error as err:
            raise Refused(f"cannot check what it runs: {first_line(err)}") from None
        if found:
            names = ", ".join(what if via == "called" else f"{what} ({via})" for what, via in found[:5])
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            raise Unsafe(
                f"not run: it reaches {names}{more}, with effects a rollback does not undo (or written "
                "by a database user); its estimated plan (without ANALYZE) is safe"
            )

    # -- the door ------------------------------------------------------------------------------
    def explain(self, statement: ForeignStatement) -> tuple[Any, str]:
        """The statement's estimated plan as (EXPLAIN's JSON, EXPLAIN's text); generic for `$n`.

        Raises Refused (Unsafe) for statements that must not be planned, psycopg.Error when the
        server refuses the plan (a QueryCanceled once a timeout or the deadline strikes).
        """
        with self._deadline():
            if statement.params and self.server_version < 160000:
                return self._explain_prepared(statement)
            generic = ["GENERIC_PLAN"] if statement.params else []
            with self._read_only(statement) as cur:
                json_options = ", ".join([*generic, "FORMAT JSON"])
                tree = _foreign(cur, f"EXPLAIN ({json_options}) {statement.text}").fetchone()[0]
                # Always an option list: a statement opening with '(' is never read as one.
                text_options = ", ".join([*generic, "FORMAT TEXT"])
                rows = _foreign(cur, f"EXPLAIN ({text_options}) {statement.text}").fetchall()
                return tree, "\n".join(r[0] for r in rows)

    def _explain_prepared(self, statement: ForeignStatement) -> tuple[Any, str]:
        """Before 16: PREPARE, then EXPLAIN EXECUTE with NULLs under force_generic_plan."""
        prepared = False
        try:
            with self._read_only(statement) as cur:
                _foreign(cur, f"PREPARE {_PREPARED} AS {statement.text}")
                prepared = True
                execute = f"EXECUTE {_PREPARED}({', '.join(['NULL'] * statement.params)})"
                tree = cur.execute(f"{OWN_MARKER}EXPLAIN (FORMAT JSON) {execute}").fetchone()[0]  # type: ignore[call-overload]
                rows = cur.execute(f"{OWN_MARKER}EXPLAIN (FORMAT TEXT) {execute}").fetchall()  # type: ignore[call-overload]
                return tree, "\n".join(r[0] for r in rows)
        finally:
            if prepared:  # prepared statements outlive transactions
                self.conn.execute(f"{OWN_MARKER}DEALLOCATE {_PREPARED}")  # type: ignore[call-overload]

    def run_explain(self, statement: ForeignStatement, run: Run) -> tuple[Any, str, bool]:
        """EXPLAIN (VERBOSE, BUFFERS, SETTINGS, FORMAT JSON) of the statement, executed when
        `run.analyze`: (EXPLAIN's JSON, the command as people read it, whether the plan is generic).

        Raises Refused for what must not run (a write without `run.writes`, a function with side
        effects, $n without values under ANALYZE), psycopg.Error when the server refuses (a
        QueryCanceled once a timeout or the deadline strikes). Whatever ran is rolled back.
        """
        _refuse_run(statement, run)
        generic = bool(statement.params) and run.values is None
        options = run.command(generic and self.server_version >= 160000).removeprefix("EXPLAIN ")
        json_options = options[:-1] + ", FORMAT JSON)"
        plain = not statement.params or (generic and self.server_version >= 160000)
        try:
            with self._deadline(), self._read_only(statement, run) as cur:
                cur.execute(_JIT, (self.jit,))
                if plain:
                    tree = _foreign(cur, f"EXPLAIN {json_options} {statement.text}").fetchone()[0]
                else:
                    tree = self._explain_execute(cur, statement, run, json_options)
        finally:
            if not plain and not self.lost:  # prepared statements outlive the transaction
                self.conn.execute(OWN_MARKER + "DEALLOCATE ALL")
        return tree, f"EXPLAIN {options}", generic

    def _explain_execute(
        self, cur: psycopg.Cursor, statement: ForeignStatement, run: Run, options: str
    ) -> Any:
        """PREPARE, then EXPLAIN EXECUTE: with NULLs under force_generic_plan for a generic plan
        (before 16), or with the values given, planned for them as a custom plan."""
        _foreign(cur, f"PREPARE {_PREPARED} AS {statement.text}")
        values: tuple[str | None, ...] = run.values or (None,) * statement.params
        if run.values is not None:
            cur.execute(_CUSTOM_PLAN)
        # The arguments of EXECUTE inside EXPLAIN get no type from the statement: each value is a
        # literal (quoted by psycopg) cast to the type the server inferred for its $n.
        types = cur.execute(_PARAMETER_TYPES, (_PREPARED,)).fetchone()[0]
        args = pgsql.SQL(", ").join(
            pgsql.SQL("CAST({} AS {})").format(pgsql.Literal(v), pgsql.SQL(t))
            for v, t in zip(values, types, strict=True)
        )
        execute = pgsql.SQL(f"{OWN_MARKER}EXPLAIN {options} EXECUTE {_PREPARED}({{}})").format(args)
        return cur.execute(execute).fetchone()[0]

    @contextmanager
    def _read_only(self, statement: ForeignStatement, run: Run | None = None) -> Iterator[psycopg.Cursor]:
        """A read-only transaction, rolled back whatever happens inside it, in which the statement
        was just found to reach no user's function: the check and the plan are milliseconds apart.
        Read-write (still rolled back) only to run a statement that writes, when `run.writes`."""
        writes = run is not None and run.analyze and run.writes and bool(statement.changes)
        with self.conn.cursor() as cur:
            cur.execute(OWN_MARKER + f"BEGIN TRANSACTION READ {'WRITE' if writes else 'ONLY'}")
            try:
                schemas = self._statement_schemas(cur)
                self._lock_relations(cur, statement, schemas)
                if run is not None and run.analyze:
                    self._refuse_side_effects(statement, cur, schemas, writes)
                else:
                    self.refuse_untrusted(statement, cur, schemas)
                # The statement is planned as its author's session would: along their search_path.
                cur.execute(_SET_PATH, (self.search_path,))
                yield cur
            finally:
                cur.execute(OWN_MARKER + "ROLLBACK")

    def _statement_schemas(self, cur: psycopg.Cursor) -> list[str]:
        """The schemas the statement's search_path names now (a schema named "$user" may have been
        created since the session began); the session's own path is back to pg_catalog after."""
        # One round trip: the target list is evaluated left to right.
        row = cur.execute(
            OWN_MARKER + "SELECT pg_catalog.set_config('search_path', %s, true),"
            " pg_catalog.current_schemas(true),"
            " pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)",
            (self.search_path,),
        ).fetchone()
        return list(row[1])

    def _lock_relations(self, cur: psycopg.Cursor, statement: ForeignStatement, schemas: list[str]) -> None:
        """Share-lock every relation the statement reaches before the check, so no view or policy
        can be replaced between the check and the plan. NOWAIT: a relation locked elsewhere refuses
        the statement, so no session can hold the plan back while it changes the catalog."""
        params = {"names": [], "relations": sorted(statement.relations), "schemas": schemas}
        found = cur.execute(_untrusted_calls("relations"), params).fetchall()
        busy = [f"{schema}.{name}" for schema, name, changing in found if changing]
        if busy:
            raise Refused(f"{busy[0]} is locked or being changed by another session: not planned now")
        if not found:
            return
        tables = pgsql.SQL(", ").join(pgsql.Identifier(schema, name) for schema, name, _ in found)
        try:
            cur.execute(pgsql.SQL(OWN_MARKER + "LOCK TABLE {} IN ACCESS SHARE MODE NOWAIT").format(tables))
        except psycopg.errors.LockNotAvailable:
            raise Refused("a table it reads is locked by another session: not planned now") from None

    @contextmanager
    def _deadline(self) -> Iterator[None]:
        """Cancel the statement under way if the server has not ended it `deadline_s` from now, and
        give up on the connection if it still has not answered `abandon_s` later (some planner
        loops never look at a cancel request): the call then fails and the session is lost."""
        timers = [
            threading.Timer(self.limits.deadline_s, self.conn.cancel_safe),
            threading.Timer(self.limits.deadline_s + self.limits.abandon_s, self._abandon),
        ]
        for timer in timers:
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            for timer in timers:
                timer.cancel()

    def _abandon(self) -> None:
        # Shut the socket down under libpq (a duplicate descriptor: libpq's own stays valid), so the
        # waiting call sees the connection end instead of waiting for the server.
        with contextlib.suppress(OSError, psycopg.Error):
            sock = socket.socket(fileno=os.dup(self.conn.fileno()))
            with sock:
                sock.shutdown(socket.SHUT_RDWR)

    @property
    def lost(self) -> bool:
        return self.conn.broken or self.conn.closed


_PARAMETER_TYPES = (
    OWN_MARKER
    + "SELECT parameter_types::pg_catalog.text[] FROM pg_catalog.pg_prepared_statements WHERE name = %s"
)
_JIT = OWN_MARKER + "SELECT pg_catalog.set_config('jit', %s, true)"
_CUSTOM_PLAN = OWN_MARKER + "SELECT pg_catalog.set_config('plan_cache_mode', 'force_custom_plan', true)"
_SET_PATH = OWN_MARKER + "SELECT pg_catalog.set_config('search_path', %s, true)"


@cache
def _untrusted_calls(final: str = "final") -> pgsql.Composed:
    """The check's query (its walk of what a statement reaches, with the relation lookup inside it:
    one round trip), ending in `untrusted_calls.<final>.sql`: the functions, or the relations."""
    resolved = sql.fragment("resolve_relations")
    ending = sql.fragment(f"untrusted_calls.{final}")
    return pgsql.SQL(sql("untrusted_calls")).format(resolved=pgsql.SQL(resolved), final=pgsql.SQL(ending))


def _foreign(cur: psycopg.Cursor, query: str) -> psycopg.Cursor:
    """Send text holding foreign SQL: binary results force the extended protocol (one statement
    only, enforced by the server) and no parameters mean psycopg leaves every '%' alone."""
    # Marked, so pg_stat_statements' record of it is never taken for the workload.
    return cur.execute((OWN_MARKER + query).encode("utf-8"), binary=True)  # type: ignore[call-overload]


def _refuse_run(statement: ForeignStatement, run: Run) -> None:
    """What no target setting allows: ANALYZE of a write unless asked for, of $n without values."""
    if run.values is not None and len(run.values) != statement.params:
        wanted = statement.params
        raise Refused(f"{len(run.values)} values given for {wanted} placeholders ($1..${wanted})")
    if not run.analyze:
        return
    if statement.changes and not run.writes:
        what = statement.kind.upper() if statement.kind != "select" else "a writing WITH, or FOR UPDATE/SHARE"
        raise Refused(
            f"it writes or locks rows ({what}): EXPLAIN ANALYZE would run it. Allowed only with "
            "explain_analyze_writes: true for the target (the transaction is rolled back)"
        )
    if statement.params and run.values is None:
        raise Refused(
            f"it has placeholders ($1..${statement.params}): give values to run it with ANALYZE, "
            "or explain it without ANALYZE for a generic plan"
        )


def _powers(held: list[str]) -> str | None:
    roles = [p for p in held if p != "CREATEROLE"]
    words = [f"a member of {', '.join(roles)}"] if roles else []
    words += ["allowed to CREATEROLE (it could grant itself those powers)"] if "CREATEROLE" in held else []
    return " and ".join(words) or None


def first_line(err: BaseException) -> str:
    """An error's first line, cut to 300 characters: what a report or a status shows of it."""
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
