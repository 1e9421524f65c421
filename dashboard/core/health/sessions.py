"""Sessions now: blocked ones with their blockers, long-running queries, idle in transaction.

Filled in by collectors/postgres/health/sessions.py from sql/sessions.*.sql. Ages are in seconds as
of the reading (`ts`), measured by the server's clock, so a collector whose clock is off shows the
right ages. The lists are capped (50 of each kind); the totals count every session.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from dashboard.core.health.snapshot import Snapshot

PREPARED = 0  # pg_blocking_pids() names a prepared transaction that holds the lock as pid 0


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ClientCount(_Frozen):
    """Client sessions of one database, user and application now (the largest ones, then the rest
    as one "(other)" row)."""

    datname: str
    usename: str
    application: str
    connections: int
    active: int = 0
    idle_in_transaction: int = 0


class Session(_Frozen):
    """One server process as pg_stat_activity showed it; `query` is redacted and cut."""

    pid: int
    datname: str | None = None
    usename: str | None = None
    application: str | None = None
    client: str | None = None  # the client's address (None: a Unix socket)
    backend_type: str | None = None
    state: str | None = None  # active, idle in transaction, ...
    wait_event_type: str | None = None  # Lock: waiting for another session
    wait_event: str | None = None
    query: str = ""  # the current or last statement
    xact_s: float | None = None  # age of its transaction
    query_s: float | None = None  # time since its statement started (waiting included)
    state_s: float | None = None  # time in its state (idle in transaction for ...)
    blocked_by: tuple[int, ...] = ()  # pg_blocking_pids(): who holds what it waits for
    roots: tuple[int, ...] = ()  # blocked: the blockers at the ends of its chains (not blocked)
    # Client sessions only (a blocker may be anything): active for longer than
    # SessionsNow.long_running_s, or idle in a transaction.
    long_running: bool = False
    idle_in_transaction: bool = False

    @property
    def blocked(self) -> bool:
        return bool(self.blocked_by)


class SessionsNow(Snapshot):
    """Sessions now: blocked ones with their blockers, long-running queries, idle in transaction."""

    long_running_s: float = 60.0  # the threshold the reading used
    clients: tuple[ClientCount, ...] = ()
    # Blocked sessions, every blocker, long-running and idle-in-transaction ones: each once.
    sessions: tuple[Session, ...] = ()
    roots: tuple[int, ...] = ()  # the root blockers: they block others and wait for no one
    blocked_total: int = 0  # every client session counted, not only those listed
    long_running_total: int = 0
    idle_in_transaction_total: int = 0

    def by_pid(self) -> dict[int, Session]:
        return {s.pid: s for s in self.sessions}

    def blocked(self) -> list[Session]:
        return [s for s in self.sessions if s.blocked]

    def long_running(self) -> list[Session]:
        return sorted((s for s in self.sessions if s.long_running), key=lambda s: -(s.query_s or 0))

    def idle_in_transaction(self) -> list[Session]:
        return sorted((s for s in self.sessions if s.idle_in_transaction), key=lambda s: -(s.xact_s or 0))
