"""The Replication page's figures: pure pandas, no Streamlit, from the store only.

A target's last reading is its `PostgresDetails.replication` (dashboard.core.health.ReplicationNow):
its role, replicas and slots now. Its series over time (metrics.PG_REPLICATION_*) come as long
frames (ts, series, value) for dashboard.ui.charts, each bucket's peak: a lag that came and went
inside an hour-long bucket still shows. What needs doing is said as `Finding`s, with the foreign
name kept apart from our words so the page can escape it.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import pandas as pd

from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core import metrics
from dashboard.core.details import PostgresDetails
from dashboard.core.health.replication import Replica, ReplicationNow, Slot
from dashboard.store.reads import Window

LAG_HEALTHY_S = 5.0  # PgHero: a replica is healthy below 5 s of lag
MIB = 2**20
SERIES = (
    metrics.PG_REPLICATION_LAG_S,
    metrics.PG_REPLICATION_LAG_BYTES,
    metrics.PG_REPLICATION_SLOT_RETAINED_BYTES,
    metrics.PG_REPLICATION_REPLAY_DELAY_S,
)
LONG_COLUMNS = ["ts", "series", "value"]


class Finding(NamedTuple):
    """Something to act on: `subject` is a replica's or slot's name (foreign text, escape it)."""

    level: Literal["error", "warning"]
    subject: str
    problem: str
    fix: str


def current(reader: Reader, target: Target) -> ReplicationNow | None:
    """The target's last reading of the replication part; None before the part was first read."""
    details = reader.store.details(int(target.id))
    return details.replication if isinstance(details, PostgresDetails) else None


def series(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """The target's replication series at chart resolution."""
    return reader.series([target], SERIES, window)


def by_label(frame: pd.DataFrame, name: str, key: str | None, scale: float = 1.0) -> pd.DataFrame:
    """A gauge's peak per bucket, one line per value of label `key` (None: the one unlabelled line,
    called by the series' name)."""
    points = frame[frame["name"] == name]
    if points.empty:
        return pd.DataFrame(columns=LONG_COLUMNS)
    names = points["labels"].map(lambda lb: metrics.decode(lb).get(key, lb)) if key else name
    out = pd.DataFrame({"ts": points["ts"], "series": names, "value": points["max"] * scale})
    return out.reset_index(drop=True)


def lag_seconds(frame: pd.DataFrame) -> pd.DataFrame:
    return by_label(frame, metrics.PG_REPLICATION_LAG_S, "replica")


def lag_mib(frame: pd.DataFrame) -> pd.DataFrame:
    return by_label(frame, metrics.PG_REPLICATION_LAG_BYTES, "replica", 1 / MIB)


def retained_mib(frame: pd.DataFrame) -> pd.DataFrame:
    return by_label(frame, metrics.PG_REPLICATION_SLOT_RETAINED_BYTES, "slot", 1 / MIB)


def replay_delay(frame: pd.DataFrame) -> pd.DataFrame:
    long = by_label(frame, metrics.PG_REPLICATION_REPLAY_DELAY_S, None)
    return long.assign(series="replay delay")


# -- what needs doing ---------------------------------------------------------------------------
def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def size(n: float) -> str:
    """WAL bytes in binary units, as the page's figures show them."""
    for unit, scale in (("GiB", 2**30), ("MiB", MIB), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:.0f} B"


def slot_findings(now: ReplicationNow) -> list[Finding]:
    """Slots that lost WAL, may lose it, or keep WAL (and rows, by their xmin) for a consumer that
    is gone. Temporary slots vanish with their session: left out."""
    found = []
    for slot in now.slots:
        drop = f"SELECT pg_drop_replication_slot({sql_literal(slot.name)});"
        if slot.wal_status == "lost":
            problem = "lost WAL its consumer needs: that consumer cannot resume from it"
            fix = f"drop the slot ({drop}) and rebuild its replica or subscription"
            found.append(Finding("error", slot.name, problem, fix))
        elif slot.wal_status == "unreserved":
            problem = (
                "keeps more WAL than max_slot_wal_keep_size: the next checkpoint may remove what it needs"
            )
            fix = f"bring its consumer back now, or drop the slot ({drop})"
            found.append(Finding("error", slot.name, problem, fix))
        elif not slot.active and not slot.temporary:
            found.append(Finding("warning", slot.name, _inactive_problem(slot), _inactive_fix(slot, drop)))
    return found


def _inactive_problem(slot: Slot) -> str:
    kept = [f"{size(slot.retained_bytes)} of WAL"] if slot.retained_bytes else []
    if slot.xmin_age:
        kept.append(f"rows of {slot.xmin_age:,} transactions from vacuum")
    keeps = f", and keeps {' and '.join(kept)}" if kept else ""
    return f"is inactive: no consumer is connected{keeps}, growing until the disk fills"


def _inactive_fix(slot: Slot, drop: str) -> str:
    consumer = "its replica" if slot.slot_type == "physical" else "its subscriber or decoding client"
    return f"bring {consumer} back, or drop the slot if nothing will use it again ({drop})"


def replica_findings(now: ReplicationNow) -> list[Finding]:
    """Replicas this server streams to that are not streaming, or lag PgHero's 5 s or more."""
    found = []
    for replica in now.replicas:
        if replica.state != "streaming":
            problem = f"is {replica.state or 'in an unknown state'}, not streaming"
            fix = "it is catching up or starting: if it stays so, read its server log"
            found.append(Finding("warning", replica.name, problem, fix))
        elif replica.lag_s is not None and replica.lag_s >= LAG_HEALTHY_S:
            problem = f"replays {replica.lag_s:,.1f} s behind (healthy below {LAG_HEALTHY_S:g} s)"
            fix = "check its disk and CPU, long queries that conflict with replay, and the network"
            found.append(Finding("warning", replica.name, problem, fix))
    return found


def gone_replicas(frame: pd.DataFrame, now: ReplicationNow) -> list[Finding]:
    """Replicas with series in the window that this server no longer streams to: a replica that
    disconnected leaves no row in pg_stat_replication, only the gap in its lines."""
    seen = by_label(frame, metrics.PG_REPLICATION_LAG_BYTES, "replica")
    connected = {r.name for r in now.replicas}
    found = []
    for name, last in seen.groupby("series")["ts"].max().items():
        if name not in connected and (now.ts is None or last < now.ts):
            problem = (
                f"streamed from this server in this window, and is not connected now (last seen {_utc(last)})"
            )
            fix = "check that it is up, its primary_conninfo and its log (a slot of its keeps WAL meanwhile)"
            found.append(Finding("warning", str(name), problem, fix))
    return found


def _utc(ts: float) -> str:
    return pd.Timestamp(int(ts), unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")


def standby_findings(now: ReplicationNow, target: str) -> list[Finding]:
    """On a replica: not receiving WAL, replay paused, or a replay delay of 5 s or more."""
    if now.role != "replica":
        return []
    found = []
    if now.receiver_status != "streaming":
        problem = f"receives no WAL from its primary (WAL receiver {now.receiver_status or 'not running'})"
        fix = "check primary_conninfo, that the primary is up, and this server's log"
        found.append(Finding("error", target, problem, fix))
    if now.replay_paused:
        found.append(Finding("warning", target, "has its replay paused", "SELECT pg_wal_replay_resume();"))
    if now.replay_delay_s is not None and now.replay_delay_s >= LAG_HEALTHY_S:
        problem = (
            f"replays {now.replay_delay_s:,.1f} s behind its primary (healthy below {LAG_HEALTHY_S:g} s)"
        )
        fix = "check its disk and CPU, and long queries that conflict with replay"
        found.append(Finding("warning", target, problem, fix))
    return found


# -- one line each --------------------------------------------------------------------------------
def replica_line(replica: Replica) -> str:
    """A replica in one line, as text: its state, sync state, replay lag and WAL not replayed."""
    parts = [replica.state or "state unknown", replica.sync_state or "sync unknown"]
    lag = replica.lag_s
    parts.append("replay lag –" if lag is None else f"replay lag {lag:,.2f} s")
    if replica.replay_bytes is not None:
        parts.append(f"{size(replica.replay_bytes)} of WAL not replayed")
    return f"{replica.name}: {', '.join(parts)}"


def slot_line(slot: Slot) -> str:
    """A slot in one line, as text: its type (and database), active or not, WAL status, retained WAL
    and the age of the rows it keeps from vacuum."""
    kind = f"{slot.slot_type}, {slot.database}" if slot.database else slot.slot_type
    parts = ["active" if slot.active else "inactive", f"WAL {slot.wal_status or 'status unknown'}"]
    if slot.retained_bytes is not None:
        parts.append(f"{size(slot.retained_bytes)} retained")
    if slot.xmin_age:
        parts.append(f"xmin age {slot.xmin_age:,}")
    if slot.temporary:
        parts.append("temporary")
    return f"{slot.name} ({kind}): {', '.join(parts)}"


# -- tables ---------------------------------------------------------------------------------------
def replicas_table(now: ReplicationNow) -> pd.DataFrame:
    """One row per replica: name, address, state, sync state, lags (s) and WAL behind (MiB)."""
    columns = ["replica", "client_addr", "state", "sync_state", "lag_s", "write_lag_s", "flush_lag_s",
               "replay_mib", "unsent_mib"]  # fmt: skip
    rows = [
        {
            "replica": r.name,
            "lag_s": r.lag_s,
            "replay_mib": _mib(r.replay_bytes),
            "unsent_mib": _mib(r.unsent_bytes),
            **r.model_dump(exclude={"name"}),
        }
        for r in now.replicas
    ]
    return pd.DataFrame(rows, columns=columns)


def _mib(n: float | None) -> float | None:
    return None if n is None else n / MIB


def slots_table(now: ReplicationNow) -> pd.DataFrame:
    """One row per slot: name, type, database, active, WAL status, retained and safe WAL (MiB),
    xmin age, temporary."""
    columns = ["slot", "slot_type", "database", "active", "wal_status", "retained_mib", "safe_wal_mib",
               "xmin_age", "temporary"]  # fmt: skip
    rows = [
        {
            "slot": s.name,
            "retained_mib": _mib(s.retained_bytes),
            "safe_wal_mib": _mib(s.safe_wal_bytes),
            **s.model_dump(exclude={"name"}),
        }
        for s in now.slots
    ]
    return pd.DataFrame(rows, columns=columns)
