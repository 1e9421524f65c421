"""Connections: per PostgreSQL target, who blocks whom now (root blockers first, the sessions they
block indented below), long-running statements and sessions idle in a transaction; connections by
state against max_connections over time; connections per application and user, now and over time.

Reads the store only: the sessions health part's last snapshot (status details) and the series.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard.analysis import connections, waits
from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core import metrics
from dashboard.core.health.sessions import SessionsNow
from dashboard.store.reads import Window
from dashboard.ui import cached, charts, page_frame, plots
from dashboard.ui import frame as ui

NO_POSTGRES = """**No PostgreSQL target.** Name the servers to watch under `targets.postgres` in
`observatory.yaml` (or the file `$OBSERVATORY_CONFIG` names), then run `observatory collect` (or
`observatory up`). The role needs `pg_monitor` to see every session's statement."""
NO_DATA = """**No PostgreSQL data yet.** Run `observatory collect` (or `observatory up`): sessions are
read every 15 s (`health: {sessions: 15s}` in the target's configuration)."""
OLDEST_IDLE = metrics.PG_SESSIONS_IDLE_IN_TRANSACTION_OLDEST_S
COUNTS_TITLE = "Blocked, long-running, idle in transaction"
SECONDS = {"format": "%.1f s", "width": "small"}
SESSION_COLUMNS = {
    "session": st.column_config.TextColumn(
        "pid", width="small", help="root blockers first, then the sessions waiting behind them, indented"
    ),
    "role": st.column_config.TextColumn("role", width="small"),
    "pid": st.column_config.NumberColumn("pid", format="%d", width="small"),
    "datname": st.column_config.TextColumn("database", width="small"),
    "usename": st.column_config.TextColumn("user", width="small"),
    "application": st.column_config.TextColumn("application", width="small"),
    "state": st.column_config.TextColumn("state", width="small"),
    "waiting": st.column_config.TextColumn("waiting on", width="small", help="wait_event_type: wait_event"),
    "for_s": st.column_config.NumberColumn(
        "for", help="blocked or active: since its statement started; idle: since it went idle", **SECONDS
    ),
    "xact_s": st.column_config.NumberColumn("transaction age", **SECONDS),
    "blocked_by": st.column_config.TextColumn("blocked by", width="small", help="pg_blocking_pids()"),
    "query": st.column_config.TextColumn("statement", width="large", help="passwords masked; cut"),
    "client": st.column_config.TextColumn("client", width="small"),
}
CLIENT_COLUMNS = {
    "datname": st.column_config.TextColumn("database"),
    "usename": st.column_config.TextColumn("user"),
    "application": st.column_config.TextColumn("application"),
    "connections": st.column_config.NumberColumn("connections", format="%d"),
    "active": st.column_config.NumberColumn("active", format="%d"),
    "idle_in_transaction": st.column_config.NumberColumn("idle in transaction", format="%d"),
}


def duration(seconds: float | None) -> str:
    return ui.fmt_ms(None if seconds is None else seconds * 1000)


def known(value: float) -> bool:
    return not math.isnan(value)


# -- now ------------------------------------------------------------------------------------------
def figures_row(now: SessionsNow | None, f: connections.Figures) -> None:
    """Connections against max_connections, then the sessions part's counts (as of its reading)."""
    cols = st.columns(4)
    used, share = "–", None
    if known(f.connections) and known(f.max_connections) and f.max_connections > 0:
        used = f"{f.connections:.0f} / {f.max_connections:.0f}"
        share = f"{f.connections / f.max_connections:.0%} of max_connections"
    cols[0].metric("Connections", used, share, delta_color="off", delta_arrow="off", border=True)
    if now is None:
        return
    roots = len(now.roots)
    cols[1].metric(
        "Blocked sessions",
        now.blocked_total,
        f"{roots} root blocker{'s' if roots != 1 else ''}" if now.blocked_total else None,
        delta_color="off",
        delta_arrow="off",
        help="waiting for a lock another session holds",
        border=True,
    )
    cols[2].metric(
        f"Running longer than {now.long_running_s:g} s",
        now.long_running_total,
        help="active statements (PgHero's threshold: 60 s); `long_running_after` under the target changes it",
        border=True,
    )
    oldest = max((s.xact_s or 0.0 for s in now.idle_in_transaction()), default=None)
    cols[3].metric(
        "Idle in transaction",
        now.idle_in_transaction_total,
        f"oldest transaction {duration(oldest)}" if oldest is not None else None,
        delta_color="off",
        delta_arrow="off",
        help="they hold their locks and keep vacuum from removing dead rows",
        border=True,
    )


def chain_warnings(now: SessionsNow) -> None:
    """One line per root blocker: who it is and how many wait behind it."""
    for chain in connections.chains(now):
        s = chain.session
        who = (
            f"pid {chain.root}: {ui.md_escape(connections.describe(chain.root, s))}"
            if s is None
            else f"pid {chain.root} (application {_name(s.application)}, user {_name(s.usename)}, "
            f"database {_name(s.datname)}, {ui.md_escape(s.state or s.backend_type or '')})"
        )
        st.warning(
            f"**Root blocker** {who} blocks {chain.blocked} session{'s' if chain.blocked != 1 else ''}, "
            f"the longest waiting {duration(chain.longest_wait_s)}",
            icon=":material/lock:",
        )


def _name(text: str | None) -> str:
    return f"**{ui.md_escape(text)}**" if text else "(none)"


def sessions_now(now: SessionsNow | None) -> None:
    st.subheader("Now")
    if now is None:
        st.info(
            "Sessions not read yet: the collector reads them every 15 s (a collector older than this "
            "page does not).",
            icon=":material/info:",
        )
        return
    st.caption(f"As of {ui.ago(now.ts)} ({ui.utc(now.ts)} UTC); ages as the server measured them.")
    chain_warnings(now)
    st.markdown("**Who blocks whom**")
    blocking = connections.blocking_table(now)
    if blocking.empty:
        st.caption("No session waits for a lock another one holds.")
    else:
        shown = [c for c in SESSION_COLUMNS if c != "pid"]
        ui.table(blocking[shown], SESSION_COLUMNS, max_height=420)
    _listed(
        f"Running longer than {now.long_running_s:g} s",
        connections.long_running_table(now),
        now.long_running_total,
        "No statement has run that long.",
    )
    _listed(
        "Idle in transaction",
        connections.idle_table(now),
        now.idle_in_transaction_total,
        "No session is idle in a transaction.",
    )


def _listed(title: str, table: pd.DataFrame, total: int, none: str) -> None:
    st.markdown(f"**{title}**")
    if table.empty:
        st.caption(none)
        return
    shown = ["pid", *(c for c in connections.ROW_COLUMNS if c not in ("pid", "blocked_by"))]
    ui.table(table[shown], SESSION_COLUMNS, max_height=420)
    if total > len(table):
        st.caption(f"The {len(table)} oldest of {total}.")


# -- over time ------------------------------------------------------------------------------------
@cached.view
def timeline(reader: Reader, target: Target, window: Window) -> tuple[connections.Figures, list, list]:
    """The metrics row, the connection charts and the application charts (cached.view)."""
    frame = connections.series(reader, target, window)
    states = [
        charts.connections_area(frame),
        charts.lines(
            connections.used_and_max(frame),
            "Connections and max_connections",
            "connections",
            dashed=("max_connections",),
        ),
        charts.lines(connections.session_counts(frame), COUNTS_TITLE, "sessions"),
        charts.lines(
            connections.by_label(frame, OLDEST_IDLE, "datname", how="max"),
            "Oldest idle-in-transaction transaction, per database",
            "seconds",
        ),
    ]
    clients = [
        charts.lines(
            connections.by_label(frame, metrics.PG_CONNECTIONS_BY_CLIENT, "application"),
            "Connections by application",
            "connections",
        ),
        charts.lines(
            connections.by_label(frame, metrics.PG_CONNECTIONS_BY_CLIENT, "usename"),
            "Connections by user",
            "connections",
        ),
    ]
    return connections.figures(frame), states, clients


# -- waits and blocking history ------------------------------------------------------------------
WAIT_COLUMNS = {
    "type": st.column_config.TextColumn("wait type", width="small"),
    "event": st.column_config.TextColumn("wait event", width="small"),
    "datname": st.column_config.TextColumn("database", width="small"),
    "sessions": st.column_config.NumberColumn(
        "average active sessions", format="%.2f", help="sessions in this wait, on average over the window"
    ),
    "share": st.column_config.ProgressColumn("share", format="percent", min_value=0.0, max_value=1.0),
    "meaning": st.column_config.TextColumn("what it means", width="large"),
}
CHAIN_COLUMNS = {
    "started": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "lasted_s": st.column_config.NumberColumn("lasted", help="at least this long", **SECONDS),
    "waited": st.column_config.NumberColumn("sessions waited", format="%d", width="small"),
    "most_at_once": st.column_config.NumberColumn("most at once", format="%d", width="small"),
    "root": st.column_config.TextColumn("root blocker pid", width="small"),
    "root_state": st.column_config.TextColumn("its state", width="small"),
    "root_query": st.column_config.TextColumn(
        "its statement", width="large", help="its current or last one: not always the one that took the lock"
    ),
    "waiting_query": st.column_config.TextColumn("first statement that waited", width="large"),
    "application": st.column_config.TextColumn("root's application", width="small"),
    "usename": st.column_config.TextColumn("root's user", width="small"),
    "datname": st.column_config.TextColumn("database", width="small"),
}


@cached.view
def wait_view(reader: Reader, target: Target, window: Window) -> tuple[list, pd.DataFrame]:
    frame = waits.series(reader, target, window)
    chart = charts.stacked_area(
        waits.by_type(frame), "Active sessions by wait type", "sessions", colors=waits.TYPE_COLORS
    )
    return [chart], waits.top_events(frame)


def wait_events(target: Target, window: Window) -> None:
    st.subheader("What sessions wait on")
    shown, top = wait_view(target, window)
    if top.empty:
        st.caption(
            "No wait events sampled in this window: the collector's daemon samples them every 5 s "
            "(`health: {waits: 5s}`)."
        )
        return
    st.caption(
        "Active sessions by what they wait on, sampled every few seconds and averaged: above the "
        "number of cores, sessions queue for CPU; Lock means they wait for each other."
    )
    plots.show(shown, window)
    first = top.iloc[0]
    label = f"The top wait events: {first['type']}: {first['event']} first, {first['share']:.0%} of the time"
    box = st.expander(ui.md_escape(label), key=f"connections:waits:{target.name}", on_change="rerun")
    if box.open:  # drawn once opened: a grid costs the page its layout (issue 11)
        with box:
            ui.table(top, WAIT_COLUMNS, max_height=420)


def blocking_history(reader: Reader, target: Target, window: Window) -> None:
    st.subheader("Blocking history")
    found = waits.chains(reader, target, window)
    after = waits.history_after(reader, target)
    if not found:
        st.caption(f"No session waited behind another for {after:g} s or more in this window.")
        return
    count, longest, app = waits.chain_summary(found)
    st.caption(
        f"{count} blocking chain{'s' if count != 1 else ''} lasted {after:g} s or more, the longest "
        f"{duration(longest)}; the most often at the root: application {_name(app)}."
    )
    label = f"Every chain, the latest first ({count})"
    box = st.expander(label, key=f"connections:chains:{target.name}", on_change="rerun")
    if box.open:  # drawn once opened, as the top wait events
        with box:
            ui.table(waits.chain_table(found), CHAIN_COLUMNS, max_height=420)


def applications(now: SessionsNow | None, shown: list, window: Window) -> None:
    st.subheader("Applications and users")
    if now is not None and now.clients:
        ui.table(connections.clients_table(now), CLIENT_COLUMNS, max_height=420)
        st.caption(
            "Client connections now, the observatory's own left out; past the 20 largest "
            "combinations the rest is one (other) row."
        )
    plots.show(shown, window)


def draw(reader: Reader, target: Target, window: Window) -> None:
    now = connections.sessions_now(reader, target)
    f, states, clients = timeline(target, window)
    figures_row(now, f)
    sessions_now(now)
    blocking_history(reader, target, window)
    st.subheader("Over time")
    plots.show(states, window)
    wait_events(target, window)
    applications(now, clients, window)


st.title("Connections")
_, _, statuses = page_frame.per_target(
    cached.reader(),
    "postgres",
    none=NO_POSTGRES,
    no_data=NO_DATA,
    caption="PostgreSQL sessions, {window} · times in UTC",
    draw=draw,
)
ui.health(statuses)
