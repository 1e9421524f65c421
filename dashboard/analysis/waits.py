"""What sessions waited on, and the blocking chains that lasted: pure pandas, no Streamlit.

Two sources, written by the PostgreSQL collector from the wait sampler's samples
(collectors/postgres/waits.py): the series `pg.waits.sessions {datname, type, event}`, the active
sessions in each wait averaged over a cycle's samples, with `pg.waits.samples` marking the cycles
that sampled; and the blocking_chains table (BlockingChain).
"""

from __future__ import annotations

import pandas as pd

from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core import metrics
from dashboard.core.config import PostgresTarget
from dashboard.core.health.chains import BlockingChain
from dashboard.store.reads import Window

SERIES = (metrics.PG_WAITS_SESSIONS, metrics.PG_WAITS_SAMPLES)
LONG_COLUMNS = ["ts", "series", "value"]
TOP_TYPES = 8  # wait types drawn as their own area; the rest is one OTHERS area
OTHERS = "(other)"
# Colours people know from Performance Insights: running green, I/O blue, locks red.
TYPE_COLORS = {
    "CPU": "#2ca02c",
    "IO": "#1f77b4",
    "Lock": "#d62728",
    "LWLock": "#ff7f0e",
    "IPC": "#9467bd",
    "Client": "#8c564b",
    "Timeout": "#7f7f7f",
    "BufferPin": "#e377c2",
    "Activity": "#bcbd22",
    "Extension": "#17becf",
}
# What each type means, and where to look first (the PostgreSQL manual's wait event tables).
MEANING = {
    "CPU": "running on a CPU, or in a wait PostgreSQL does not instrument",
    "IO": "reading or writing data files or WAL: a cold cache, a slow disk, big sorts",
    "Lock": "waiting for a heavyweight lock another session holds: see the blocking history",
    "LWLock": "contention on a shared-memory structure (buffer mapping, WAL insertion)",
    "IPC": "waiting for another process (parallel workers, sync replication)",
    "Client": "waiting for the client to send or read: a slow application or network",
    "Timeout": "sleeping on purpose (pg_sleep, vacuum delay)",
    "BufferPin": "waiting for another process to release a buffer (vacuum behind a cursor)",
    "Extension": "waiting inside an extension",
    "Activity": "a server process waiting for work",
}


def series(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    return reader.series([target], SERIES, window)


def _per_bucket(frame: pd.DataFrame) -> pd.DataFrame:
    """Wait points with their bucket's cycles: an average over the cycles that sampled, so a cycle
    in which a wait was absent counts as zero, not as a gap."""
    cycles = frame[frame["name"] == metrics.PG_WAITS_SAMPLES].groupby("ts")["count"].sum()
    points = frame[frame["name"] == metrics.PG_WAITS_SESSIONS]
    if points.empty or cycles.empty:
        return pd.DataFrame(columns=["ts", "datname", "type", "event", "value"])
    decoded = points["labels"].map(metrics.decode)
    return pd.DataFrame(
        {
            "ts": points["ts"].to_numpy(),
            "datname": decoded.map(lambda d: d.get("datname", "")).to_numpy(),
            "type": decoded.map(lambda d: d.get("type", "")).to_numpy(),
            "event": decoded.map(lambda d: d.get("event", "")).to_numpy(),
            "value": (points["sum"] / points["ts"].map(cycles)).to_numpy(),
        }
    )


def by_type(frame: pd.DataFrame) -> pd.DataFrame:
    """Average active sessions per wait type per bucket (every database), the TOP_TYPES largest
    over the window as their own series, CPU first; zero where a sampled bucket had none."""
    waits = _per_bucket(frame)
    if waits.empty:
        return pd.DataFrame(columns=LONG_COLUMNS)
    ranked = waits.groupby("type")["value"].sum().sort_values(ascending=False, kind="stable")
    kept = list(ranked.index[:TOP_TYPES])
    waits["series"] = waits["type"].where(waits["type"].isin(kept), OTHERS)
    order = sorted(set(waits["series"]), key=lambda t: (t != "CPU", t == OTHERS, -ranked.get(t, 0)))
    wide = waits.pivot_table(index="ts", columns="series", values="value", aggfunc="sum")
    cycles = frame[frame["name"] == metrics.PG_WAITS_SAMPLES]["ts"].unique()
    wide = wide.reindex(index=sorted(cycles), columns=order).fillna(0.0)
    long = wide.reset_index().melt(id_vars="ts", var_name="series", value_name="value")
    return long[LONG_COLUMNS]


def top_events(frame: pd.DataFrame, limit: int = 15) -> pd.DataFrame:
    """The waits that held the most sessions over the window: type, event, database, average
    active sessions and share of all; what the type means."""
    waits = _per_bucket(frame)
    columns = ["type", "event", "datname", "sessions", "share", "meaning"]
    if waits.empty:
        return pd.DataFrame(columns=columns)
    buckets = frame.loc[frame["name"] == metrics.PG_WAITS_SAMPLES, "ts"].nunique()  # sampled: idle ones too
    top = waits.groupby(["type", "event", "datname"], as_index=False)["value"].sum()
    top["sessions"] = top["value"] / buckets
    total = top["sessions"].sum()
    top["share"] = top["sessions"] / total if total > 0 else 0.0
    top["meaning"] = top["type"].map(MEANING).fillna("")
    top = top.sort_values(["sessions", "type", "event"], ascending=[False, True, True], kind="stable")
    return top[columns].head(limit).reset_index(drop=True)


# -- blocking history -------------------------------------------------------------------------------
def chains(reader: Reader, target: Target, window: Window) -> list[BlockingChain]:
    return reader.blocking_chains(target.id, window)


def history_after(reader: Reader, target: Target) -> float:
    """How long a chain must last to be kept, as the target is configured (the default if not)."""
    found = [t.blocking_history_after for t in reader.config.targets.postgres if t.name == target.name]
    return found[0] if found else PostgresTarget.model_fields["blocking_history_after"].default


CHAIN_COLUMNS = ["started", "lasted_s", "waited", "most_at_once", "root", "root_state", "root_query",
                 "waiting_query", "application", "usename", "datname"]  # fmt: skip


def chain_table(found: list[BlockingChain]) -> pd.DataFrame:
    """One row per chain, the latest first: when, how long, how many waited; the root blocker (pid,
    state, statement, application, user, database) and the first statement that waited."""
    rows = []
    for c in found:
        first = c.waiting[0] if c.waiting else None
        rows.append(
            {
                "started": pd.Timestamp(c.started, unit="s"),
                "lasted_s": float(c.lasted_s),
                "waited": c.waited,
                "most_at_once": c.most_at_once,
                "root": "prepared transaction" if c.root.pid == 0 else str(c.root.pid),
                "root_state": c.root.state,
                "root_query": c.root.query,
                "waiting_query": first.query if first else None,
                "application": c.root.application,
                "usename": c.root.usename,
                "datname": c.root.datname or (first.datname if first else None),
            }
        )
    return pd.DataFrame.from_records(rows, columns=CHAIN_COLUMNS)


def chain_summary(found: list[BlockingChain]) -> tuple[int, float, str | None]:
    """How many chains, the longest (s), and the application whose sessions were the root most."""
    if not found:
        return 0, 0.0, None
    apps = pd.Series([c.root.application or "(no name)" for c in found]).value_counts()
    return len(found), float(max(c.lasted_s for c in found)), str(apps.index[0])
