"""The sessions health part (collectors/postgres/parts.py): who is connected, who blocks whom, what
runs long or sits idle in a transaction; read from pg_stat_activity (cluster-wide) every
`health.sessions` (15 s), in one query of about a third of a millisecond (sql/sessions.13.sql).

Series: client connections per database, user and application, the TOP_CLIENTS largest combinations
by name and the rest summed as "(other)", so the labels stay few whatever connects; and per database
the blocked, long-running and idle-in-transaction sessions and the age of the oldest such
transaction. Connections by state and max_connections are the cycle's own (activity.13.sql).

The snapshot (SessionsNow) names the sessions: each blocked one with its blockers and the root
blockers of its chain, every blocker (blocked or not, whatever process it is), the long-running and
idle-in-transaction ones; statements redacted (passwords) and cut to QUERY_CHARS.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from collectors.postgres.parts import Part, PartRead
from dashboard.core import metrics
from dashboard.core.health import SessionsNow
from dashboard.core.health.sessions import ClientCount, Session
from dashboard.core.records import Point
from dashboard.core.statement_redaction import redact_statement

TOP_CLIENTS = 20  # (database, user, application) combinations kept as series; the rest is OTHER
OTHER = "(other)"
QUERY_CHARS = 2000  # the SQL cuts the text too: less to transfer
OWN = frozenset({"observatory", "observatory-advisor", "observatory-investigate"})  # as in the SQL
DATABASE_SERIES = {
    "blocked": metrics.PG_SESSIONS_BLOCKED,
    "long_running": metrics.PG_SESSIONS_LONG_RUNNING,
    "idle_in_transaction": metrics.PG_SESSIONS_IDLE_IN_TRANSACTION,
}


def read(rows: list[dict[str, Any]], now: int) -> PartRead:
    """sessions.13.sql's one row -> the cycle's points and the snapshot of now."""
    if not rows:
        return PartRead([], SessionsNow(ts=now))
    row = rows[0]
    limit = float(row["long_running_s"])
    groups: list[dict[str, Any]] = row["clients"]
    clients = top_clients(groups)
    ordered = sorted(row["sessions"], key=lambda s: (-(s["query_s"] or 0.0), s["pid"]))  # longest first
    sessions = _with_roots([_session(s, limit) for s in ordered])
    snapshot = SessionsNow(
        ts=now,
        long_running_s=limit,
        clients=tuple(clients),
        sessions=tuple(sessions),
        roots=root_blockers(sessions),
        blocked_total=sum(g["blocked"] for g in groups),
        long_running_total=sum(g["long_running"] for g in groups),
        idle_in_transaction_total=sum(g["idle_in_transaction"] for g in groups),
    )
    return PartRead(_client_points(clients) + _database_points(groups), snapshot)


def top_clients(groups: list[dict[str, Any]]) -> list[ClientCount]:
    """The TOP_CLIENTS largest combinations (ties by name, so the same ones stay from cycle to
    cycle), then the others summed as one OTHER row."""
    ranked = sorted(groups, key=lambda g: (-g["connections"], g["datname"], g["usename"], g["application"]))
    kept = [_count(g, g["datname"], g["usename"], g["application"]) for g in ranked[:TOP_CLIENTS]]
    rest = ranked[TOP_CLIENTS:]
    if rest:
        summed = {k: sum(g[k] for g in rest) for k in ("connections", "active", "idle_in_transaction")}
        kept.append(_count(summed, OTHER, OTHER, OTHER))
    return kept


def _count(group: dict[str, Any], datname: str, usename: str, application: str) -> ClientCount:
    return ClientCount(
        datname=datname,
        usename=usename,
        application=application,
        connections=group["connections"],
        active=group["active"],
        idle_in_transaction=group["idle_in_transaction"],
    )


def _client_points(clients: Iterable[ClientCount]) -> list[Point]:
    return [
        Point(
            metrics.PG_CONNECTIONS_BY_CLIENT,
            float(c.connections),
            "gauge",
            metrics.encode({"datname": c.datname, "usename": c.usename, "application": c.application}),
        )
        for c in clients
    ]


def _database_points(groups: list[dict[str, Any]]) -> list[Point]:
    """Per database with client sessions: the counts, zero included (a line that drops to zero is
    an all-clear; a gap would be read as "not collected"), and the oldest idle transaction's age."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for g in groups:
        found = sums[g["datname"]]
        for key in DATABASE_SERIES:
            found[key] += g[key]
        found["oldest_s"] = max(found["oldest_s"], float(g["idle_in_transaction_oldest_s"] or 0.0))
    points = []
    for datname, found in sorted(sums.items()):
        labels = metrics.encode({"datname": datname})
        points += [Point(name, found[key], "gauge", labels) for key, name in DATABASE_SERIES.items()]
        oldest = metrics.PG_SESSIONS_IDLE_IN_TRANSACTION_OLDEST_S
        points.append(Point(oldest, found["oldest_s"], "gauge", labels))
    return points


def _session(row: dict[str, Any], limit: float) -> Session:
    client = row["backend_type"] == "client backend" and row["application"] not in OWN
    state = row["state"] or ""
    return Session(
        **{k: row[k] for k in ("pid", "datname", "usename", "application", "client", "backend_type")},
        **{k: row[k] for k in ("state", "wait_event_type", "wait_event", "xact_s", "query_s", "state_s")},
        query=redact_statement(row["query"] or "")[:QUERY_CHARS],
        blocked_by=tuple(row["blocked_by"] or ()),
        long_running=client and state == "active" and (row["query_s"] or 0.0) > limit,
        idle_in_transaction=client and state.startswith("idle in transaction"),
    )


def _with_roots(sessions: list[Session]) -> list[Session]:
    """Each blocked session with the roots of its chains: the blockers reached through blocked_by
    that wait for no one (a prepared transaction, pid 0, is one). Sessions blocking each other in a
    circle (a deadlock, until the server ends one) have none."""
    above = {s.pid: s.blocked_by for s in sessions if s.blocked}
    return [s.model_copy(update={"roots": chain_roots(s.pid, above)}) if s.blocked else s for s in sessions]


def chain_roots(pid: int, above: dict[int, tuple[int, ...]]) -> tuple[int, ...]:
    """The roots of the chains a blocked `pid` waits in; `above` holds what each blocked pid waits for."""
    roots: list[int] = []
    seen, todo = {pid}, list(above[pid])
    while todo:
        blocker = todo.pop(0)
        if blocker in seen:
            continue
        seen.add(blocker)
        if blocker in above:
            todo += above[blocker]
        else:
            roots.append(blocker)
    return tuple(roots)


def root_blockers(sessions: Iterable[Session]) -> tuple[int, ...]:
    """Every root blocker, in the order first met (the blocked sessions come longest-waiting first)."""
    return tuple(dict.fromkeys(pid for s in sessions for pid in s.roots))


PART = Part("sessions", read)
