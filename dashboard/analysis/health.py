"""A PostgreSQL target's health in one list: each area's findings (connections, replication, server,
settings, tables) with their fixes, from the health parts' last readings in the store; and each
area's worst finding, the headline `observatory status` and `observatory health` print.

Each area's rules live with its page's analysis (replication.py, settings.py, connections.py,
tables.py); this gathers them in one shape. No Streamlit here.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from dashboard.analysis import replication, settings
from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core.details import PostgresDetails
from dashboard.core.health.server import WRAPAROUND_WARN_LEFT
from dashboard.core.health.sessions import PREPARED, SessionsNow
from dashboard.core.health.tables import DEAD_RATIO_WARN, TablesNow

AREAS = ("connections", "replication", "server", "settings", "tables")
PARTS = ("sessions", "replication", "server_stats", "settings", "tables")  # PostgresDetails' snapshots
DEAD_MIN_ROWS = 10_000  # dead rows matter on tables this large: a small one is vacuumed in a blink
NEVER_ANALYZED_MIN_ROWS = 1_000
Level = Literal["error", "warning"]


class Finding(NamedTuple):
    area: str  # one of AREAS
    level: Level
    subject: str  # a replica, slot, setting, table, database ... (foreign text: escape it)
    problem: str
    fix: str


def findings(reader: Reader, target: Target) -> list[Finding]:
    """Every area's findings for the target, errors first, as its last readings say."""
    details = reader.store.details(int(target.id))
    if not isinstance(details, PostgresDetails):
        return []
    found = [
        *(connection_findings(details.sessions) if details.sessions else []),
        *_replication(details, target),
        *_server(details),
        *_settings(reader, target, details),
        *_tables(details.tables),
    ]
    return sorted(found, key=lambda f: (f.level != "error", AREAS.index(f.area)))


def read_at(reader: Reader, target: Target) -> int | None:
    """When the oldest of the target's health readings was taken; None when none was ever read."""
    details = reader.store.details(int(target.id))
    if not isinstance(details, PostgresDetails):
        return None
    times = [getattr(details, part).ts for part in PARTS if getattr(details, part, None) is not None]
    return min(times) if times else None


def headline(found: list[Finding]) -> dict[str, Finding | None]:
    """Each area's worst finding (errors before warnings, then the first); None when all is well."""
    worst: dict[str, Finding | None] = dict.fromkeys(AREAS)
    for f in found:
        current = worst[f.area]
        if current is None or (current.level == "warning" and f.level == "error"):
            worst[f.area] = f
    return worst


def connection_findings(now: SessionsNow) -> list[Finding]:
    """Root blockers (each holding others up), long-running queries, old idle transactions."""
    by_pid = {s.pid: s for s in now.sessions}
    found = []
    for pid in now.roots:
        if pid == PREPARED:  # no session: a transaction PREPAREd for two-phase commit and left
            held = sum(pid in s.roots for s in now.sessions)
            problem = f"a prepared transaction blocks {held} session{'s' if held != 1 else ''}"
            fix = "find it in pg_prepared_xacts, then COMMIT PREPARED or ROLLBACK PREPARED its gid"
            found.append(Finding("connections", "error", "a prepared transaction", problem, fix))
            continue
        root = by_pid.get(pid)
        held = sum(pid in s.roots for s in now.sessions)
        who = f"pid {pid}" + (f" ({root.usename}, {root.application or 'no application'})" if root else "")
        state = f", {root.state} for {root.state_s or 0:,.0f} s" if root and root.state else ""
        problem = f"blocks {held} session{'s' if held != 1 else ''}{state}"
        fix = f"end its transaction, or SELECT pg_terminate_backend({pid});"
        found.append(Finding("connections", "error", who, problem, fix))
    for s in now.sessions:
        if s.long_running and not s.blocked_by:
            problem = f"a query running for {s.query_s or 0:,.0f} s"
            fix = "find why in Investigate (its plan), or cancel it: SELECT pg_cancel_backend"
            found.append(Finding("connections", "warning", f"pid {s.pid}", problem, f"{fix}({s.pid});"))
        if s.idle_in_transaction and s.pid not in now.roots:
            problem = f"idle in transaction for {s.state_s or 0:,.0f} s: it holds its locks and stops vacuum"
            fix = "fix the application's transaction handling; idle_in_transaction_session_timeout ends them"
            found.append(Finding("connections", "warning", f"pid {s.pid}", problem, fix))
    return found


def _replication(details: PostgresDetails, target: Target) -> list[Finding]:
    now = details.replication
    if now is None:
        return []
    found = [
        *replication.replica_findings(now),
        *replication.slot_findings(now),
        *replication.standby_findings(now, target.name),
    ]
    return [Finding("replication", f.level, f.subject, f.problem, f.fix) for f in found]


def _server(details: PostgresDetails) -> list[Finding]:
    now = details.server_stats
    if now is None:
        return []
    found = [
        Finding("server", "error", d.datname, f"{d.headroom / 1e9:.2f} billion transactions left before "
                "wraparound", f"VACUUM (FREEZE) its oldest tables in {d.datname}; check what holds back "
                "the freeze horizon (long transactions, replication slots, prepared transactions)")
        for d in now.databases
        if d.headroom < WRAPAROUND_WARN_LEFT
    ]  # fmt: skip
    found += [
        Finding("server", "error", f"{s.schemaname}.{s.sequencename}", f"{s.used:.0%} of its range used",
                f"move it (and {s.table_name or 'its column'}) to bigint before it runs out")
        for s in now.flagged_sequences
    ]  # fmt: skip
    if now.problem:
        found.append(
            Finding("server", "warning", now.datname or "", now.problem, "grant the role read access")
        )
    return found


def _settings(reader: Reader, target: Target, details: PostgresDetails) -> list[Finding]:
    now = details.settings
    if now is None:
        return []
    ram = settings.ram_of(reader, target).bytes
    advice = [*settings.memory_advice(now, ram), *settings.autovacuum_advice(now)]
    return [
        Finding(
            "settings", "warning", a.setting, f"{a.setting} = {a.now}: {a.reason}", f"set it to {a.advised}"
        )
        for a in advice
        if a.advised is not None and a.status in ("raise", "lower")
    ]


def _tables(now: TablesNow | None) -> list[Finding]:
    if now is None:
        return []
    found = []
    for t in now.tables:
        if t.dead >= DEAD_MIN_ROWS and t.dead_ratio > DEAD_RATIO_WARN:
            problem = f"{t.dead_ratio:.0%} of its rows are dead ({t.dead:,})"
            fix = f"VACUUM {t.table_name}; and lower its autovacuum_vacuum_scale_factor if autovacuum lags"
            found.append(Finding("tables", "warning", t.table_name, problem, fix))
        if t.analyzed is None and t.live >= NEVER_ANALYZED_MIN_ROWS:
            problem = f"never analyzed ({t.live:,} rows)"
            found.append(Finding("tables", "warning", t.table_name, problem, f"ANALYZE {t.table_name};"))
    return found
