"""The Connections page's figures: pure pandas, no Streamlit; reads only the store.

Two sources, both written by the PostgreSQL collector: the series (connections by state and
max_connections every cycle; per database the blocked, long-running and idle-in-transaction
sessions and per client combination the connections, from the sessions health part), and the
sessions part's last snapshot (SessionsNow in the target's status details), which names the sessions.
Frames out are long frames (ts, series, value) that dashboard.ui.charts draws, or tables.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd

from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core import metrics
from dashboard.core.details import PostgresDetails
from dashboard.core.health.sessions import PREPARED, Session, SessionsNow
from dashboard.store.reads import Window

SERIES = (
    metrics.PG_CONNECTIONS,
    metrics.PG_CONNECTIONS_MAX,
    metrics.PG_CONNECTIONS_BY_CLIENT,
    metrics.PG_SESSIONS_BLOCKED,
    metrics.PG_SESSIONS_LONG_RUNNING,
    metrics.PG_SESSIONS_IDLE_IN_TRANSACTION,
    metrics.PG_SESSIONS_IDLE_IN_TRANSACTION_OLDEST_S,
)
LONG_COLUMNS = ["ts", "series", "value"]
TOP_LINES = 8  # applications or users drawn as their own line; the rest is one OTHERS line
OTHERS = "(other)"  # as the collector names the combinations past its top 20
INDENT = "\u2003\u2003"  # em spaces: the grid keeps them (it trims ordinary leading spaces)


# -- what the page reads ------------------------------------------------------------------------
def series(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """The target's connection and session series at chart resolution."""
    return reader.series([target], SERIES, window)


def sessions_now(reader: Reader, target: Target) -> SessionsNow | None:
    """The sessions part's last reading, as the collector left it in the target's status details
    (None before its first reading, or from a collector that does not read it)."""
    details = reader.store.details(target.id)
    return details.sessions if isinstance(details, PostgresDetails) else None


# -- series -------------------------------------------------------------------------------------
def _named(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame[frame["name"] == name]


def _mean(points: pd.DataFrame) -> pd.Series:
    return points["sum"] / points["count"].where(points["count"] > 0)


def _summed(frame: pd.DataFrame, name: str, label: str) -> pd.DataFrame:
    """A gauge's mean per bucket, summed over its labels, as one line."""
    points = _named(frame, name)
    if points.empty:
        return pd.DataFrame(columns=LONG_COLUMNS)
    value = points.assign(value=_mean(points)).groupby("ts")["value"].sum()
    return pd.DataFrame({"ts": value.index, "series": label, "value": value.to_numpy()})


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LONG_COLUMNS)


def used_and_max(frame: pd.DataFrame) -> pd.DataFrame:
    """Client connections (every state) against max_connections, per bucket."""
    return _concat(
        [
            _summed(frame, metrics.PG_CONNECTIONS, "connections"),
            _summed(frame, metrics.PG_CONNECTIONS_MAX, "max_connections"),
        ]
    )


def session_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Blocked, long-running and idle-in-transaction sessions, every database summed."""
    return _concat(
        [
            _summed(frame, metrics.PG_SESSIONS_BLOCKED, "blocked"),
            _summed(frame, metrics.PG_SESSIONS_LONG_RUNNING, "long-running"),
            _summed(frame, metrics.PG_SESSIONS_IDLE_IN_TRANSACTION, "idle in transaction"),
        ]
    )


def by_label(
    frame: pd.DataFrame, name: str, key: str, top: int = TOP_LINES, how: str = "sum"
) -> pd.DataFrame:
    """A labelled gauge per value of label `key` (per database, application, user), its label sets
    combined by `how` (sum: counts; max: ages): the `top` largest over the window as lines of their
    own, the rest combined as OTHERS."""
    points = _named(frame, name)
    if points.empty:
        return pd.DataFrame(columns=LONG_COLUMNS)
    long = pd.DataFrame(
        {
            "ts": points["ts"],
            "series": points["labels"].map(lambda lb: metrics.decode(lb).get(key, lb)),
            "value": _mean(points),
        }
    )
    ranked = long.groupby("series")["value"].mean().sort_values(ascending=False, kind="stable")
    order = {name: i for i, name in enumerate([*ranked.index[:top], OTHERS])}
    long["series"] = long["series"].where(long["series"].isin(order), OTHERS)
    long = long.groupby(["series", "ts"], as_index=False)["value"].agg(how)
    long = long.assign(rank=long["series"].map(order)).sort_values(["rank", "ts"])
    long["series"] = long["series"].replace("", "(no name)")
    return long[LONG_COLUMNS].reset_index(drop=True)


class Figures(NamedTuple):
    """The metrics row: the last reading of the window (NaN when the series is absent)."""

    connections: float
    max_connections: float
    blocked: float
    long_running: float
    idle_in_transaction: float
    oldest_idle_s: float


def _last(frame: pd.DataFrame, name: str, how: str = "sum") -> float:
    points = _named(frame, name)
    if points.empty:
        return math.nan
    last = points[points["ts"] == points["ts"].max()]
    values = _mean(last)
    return float(values.max() if how == "max" else values.sum())


def figures(frame: pd.DataFrame) -> Figures:
    return Figures(
        connections=_last(frame, metrics.PG_CONNECTIONS),
        max_connections=_last(frame, metrics.PG_CONNECTIONS_MAX),
        blocked=_last(frame, metrics.PG_SESSIONS_BLOCKED),
        long_running=_last(frame, metrics.PG_SESSIONS_LONG_RUNNING),
        idle_in_transaction=_last(frame, metrics.PG_SESSIONS_IDLE_IN_TRANSACTION),
        oldest_idle_s=_last(frame, metrics.PG_SESSIONS_IDLE_IN_TRANSACTION_OLDEST_S, "max"),
    )


# -- who blocks whom ------------------------------------------------------------------------------
class Chain(NamedTuple):
    """A root blocker and every session waiting behind it, directly or through others."""

    root: int
    session: Session | None  # None: a prepared transaction (pid 0), or a process not listed
    blocked: int  # sessions waiting behind it
    longest_wait_s: float


def chains(now: SessionsNow) -> list[Chain]:
    """One per root blocker, the most sessions waiting first."""
    by_pid = now.by_pid()
    found = []
    for root in now.roots:
        behind = [s for s in now.blocked() if root in s.roots]
        longest = max((s.query_s or 0.0 for s in behind), default=0.0)
        found.append(Chain(root, by_pid.get(root), len(behind), longest))
    return sorted(found, key=lambda c: (-c.blocked, -c.longest_wait_s))


def blocking_rows(now: SessionsNow) -> list[tuple[int, Session | None, int]]:
    """(depth, session, pid) in the order the page lists them: each root blocker, then the
    sessions it blocks indented under it, and theirs under them; a session blocked by several is
    listed under the first. Sessions waiting in a circle (no root) come last, at depth 0."""
    by_pid = now.by_pid()
    waiting: dict[int, list[Session]] = {}
    for s in now.blocked():
        for blocker in s.blocked_by:
            waiting.setdefault(blocker, []).append(s)
    rows: list[tuple[int, Session | None, int]] = []
    shown: set[int] = set()

    def walk(pid: int, depth: int) -> None:
        shown.add(pid)
        rows.append((depth, by_pid.get(pid), pid))
        for s in waiting.get(pid, []):
            if s.pid not in shown:
                walk(s.pid, depth + 1)

    for chain in chains(now):
        walk(chain.root, 0)
    for s in now.blocked():
        if s.pid not in shown:
            walk(s.pid, 0)
    return rows


def describe(pid: int, session: Session | None) -> str:
    """What a blocker is, when its row says little or is missing."""
    if pid == PREPARED:
        return "a prepared transaction (see pg_prepared_xacts)"
    if session is None:
        return "not listed (it ended, or is a server process)"
    return session.backend_type or ""


def blocking_table(now: SessionsNow) -> pd.DataFrame:
    """Who blocks whom: the roots first, the sessions they block indented below."""
    blocking = {pid for s in now.blocked() for pid in s.blocked_by}
    records = []
    for depth, s, pid in blocking_rows(now):
        label = f"{INDENT * depth}{'↳ ' if depth else ''}{pid}"
        records.append(_row(s, pid) | {"session": label, "role": _role(s, pid, blocking), "depth": depth})
    return _frame(records, ["session", "role", "depth", *ROW_COLUMNS])


def _role(s: Session | None, pid: int, blocking: set[int]) -> str:
    if s is None or not s.blocked:
        return "root blocker"
    if not s.roots:
        return "waiting in a circle"
    return "blocked, blocks others" if pid in blocking else "blocked"


ROW_COLUMNS = ["pid", "datname", "usename", "application", "state", "waiting", "for_s", "xact_s",
               "blocked_by", "query", "client"]  # fmt: skip


def _row(s: Session | None, pid: int) -> dict:
    if s is None:
        return {"pid": pid, "query": describe(pid, None)}
    waiting = ": ".join(x for x in (s.wait_event_type, s.wait_event) if x)
    return {
        "pid": s.pid,
        "datname": s.datname,
        "usename": s.usename,
        "application": s.application,
        "state": _state(s),
        "waiting": waiting or None,
        # blocked and running: since its statement started; idle in transaction: since it went idle
        "for_s": s.state_s if s.idle_in_transaction else s.query_s,
        "xact_s": s.xact_s,
        "blocked_by": ", ".join(map(str, s.blocked_by)) or None,
        "query": s.query,
        "client": s.client,
    }


def _state(s: Session) -> str | None:
    if s.backend_type in (None, "client backend"):
        return s.state
    return f"{s.state or 'no state'} ({s.backend_type})"  # a blocker that is not a client's session


def _frame(records: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records, columns=columns)


def long_running_table(now: SessionsNow) -> pd.DataFrame:
    """Statements active longer than the threshold, the longest first."""
    return _frame([_row(s, s.pid) for s in now.long_running()], ROW_COLUMNS)


def idle_table(now: SessionsNow) -> pd.DataFrame:
    """Sessions idle in a transaction, the oldest transaction first: they hold their locks and keep
    vacuum from removing rows newer than their snapshot."""
    return _frame([_row(s, s.pid) for s in now.idle_in_transaction()], ROW_COLUMNS)


def clients_table(now: SessionsNow) -> pd.DataFrame:
    """Client connections now per database, user and application, the most first."""
    return pd.DataFrame(
        [c.model_dump() for c in now.clients],
        columns=["datname", "usename", "application", "connections", "active", "idle_in_transaction"],
    )
