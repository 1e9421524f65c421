"""Replication: per PostgreSQL target, its role; on a primary its replicas' lag over time against
PgHero's 5 s and its slots (inactive ones, retained WAL, lost WAL, with what to do); on a replica
its own replay delay. Reads the store only: the collector's replication part fills it.

At first the page draws the figures, the findings, one line per replica and per slot, and the
charts; the replicas' and the slots' tables are drawn once their expander is opened (issue 11: each
grid costs the browser its layout)."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard.analysis import replication
from dashboard.analysis.reader import Reader
from dashboard.analysis.replication import LAG_HEALTHY_S, Finding
from dashboard.analysis.targets import Target
from dashboard.core.health import ReplicationNow
from dashboard.ui import cached, charts, page_frame, plots
from dashboard.ui import frame as ui

HEALTHY = ("<", LAG_HEALTHY_S)
HEALTHY_LABEL = f"healthy < {LAG_HEALTHY_S:g} s (PgHero)"
CAPTION = f"Replicas, slots and replay delay, {{window}} · times in UTC · lag {HEALTHY_LABEL}"
NOT_READ = """**Not read yet.** The collector reads replication every 30 s (`health: {replication: 30s}`
per target); this target's first reading shows here after its next cycle."""

REPLICA_COLUMNS = {
    "replica": st.column_config.TextColumn("replica", help="application_name"),
    "client_addr": st.column_config.TextColumn("address"),
    "state": st.column_config.TextColumn("state", width="small"),
    "sync_state": st.column_config.TextColumn("sync", width="small"),
    "lag_s": st.column_config.NumberColumn(
        "replay lag", format="%.2f s", help="pg_stat_replication.replay_lag; 0 once it replayed everything"
    ),
    "write_lag_s": st.column_config.NumberColumn("write lag", format="%.3f s"),
    "flush_lag_s": st.column_config.NumberColumn("flush lag", format="%.3f s"),
    "replay_mib": st.column_config.NumberColumn(
        "WAL not replayed", format="%.2f MiB", help="written here, not yet replayed there"
    ),
    "unsent_mib": st.column_config.NumberColumn("WAL not sent", format="%.2f MiB"),
}
SLOT_COLUMNS = {
    "slot": st.column_config.TextColumn("slot"),
    "slot_type": st.column_config.TextColumn("type", width="small"),
    "database": st.column_config.TextColumn("database"),
    "active": st.column_config.CheckboxColumn("active", width="small", help="a consumer is connected"),
    "wal_status": st.column_config.TextColumn(
        "WAL status", help="reserved, extended; unreserved: may lose WAL at the next checkpoint; lost"
    ),
    "retained_mib": st.column_config.NumberColumn("WAL retained", format="%.2f MiB"),
    "safe_wal_mib": st.column_config.NumberColumn(
        "safe WAL",
        format="%.2f MiB",
        help="WAL that may be written before the slot is lost (max_slot_wal_keep_size)",
    ),
    "xmin_age": st.column_config.NumberColumn(
        "xmin age", format="%d", help="transactions whose dead rows it keeps from vacuum"
    ),
    "temporary": st.column_config.CheckboxColumn("temporary", width="small"),
}


def on_demand(target: Target, section: str, label: str) -> DeltaGenerator | None:
    """An expander whose body is drawn once it is opened (the project's idiom: its `open` state,
    a rerun when it changes); None while it is closed. Its key names the section and the target."""
    box = st.expander(label, key=f"replication:{section}:{target.name}", on_change="rerun")
    return box if box.open else None


@cached.view
def target_view(reader: Reader, target: Target, window) -> tuple[ReplicationNow | None, list[Finding], list]:
    """The target's last reading, the replicas gone since the window began and its charts, made
    once for every session (cached.view)."""
    frame = replication.series(reader, target, window)
    now = replication.current(reader, target)
    gone = replication.gone_replicas(frame, now) if now is not None else []
    shown = [
        charts.slo_lines(
            replication.lag_seconds(frame), "Replay lag per replica", "s", HEALTHY, HEALTHY_LABEL
        ),
        charts.lines(replication.lag_mib(frame), "WAL not yet replayed per replica", "MiB"),
        charts.lines(replication.retained_mib(frame), "WAL retained per slot", "MiB"),
        charts.slo_lines(replication.replay_delay(frame), "Replay delay", "s", HEALTHY, HEALTHY_LABEL),
    ]
    return now, gone, [c for c in shown if not c.empty]


def findings(found: list[Finding]) -> None:
    for f in found:
        text = f"**{ui.md_escape(f.subject)}** {ui.md_escape(f.problem)}. To fix: {ui.md_escape(f.fix)}"
        (st.error if f.level == "error" else st.warning)(text, icon=":material/warning:")


def figures(now: ReplicationNow) -> None:
    cols = st.columns(4)
    cols[0].metric("Role", now.role or "–", border=True)
    if now.role == "replica":
        delay = now.replay_delay_s
        cols[1].metric(
            "Replay delay",
            "–" if delay is None else f"{delay:,.1f} s",
            help="now - the commit time of the last transaction replayed; 0 when all it received is replayed",
            border=True,
        )
        cols[2].metric("WAL receiver", now.receiver_status or "not running", border=True)
    else:
        streaming = sum(r.state == "streaming" for r in now.replicas)
        cols[1].metric("Replicas streaming", f"{streaming} / {len(now.replicas)}", border=True)
        lags = [r.lag_s for r in now.replicas if r.lag_s is not None]
        cols[2].metric("Largest replay lag", f"{max(lags):,.2f} s" if lags else "–", border=True)
    retained = sum(s.retained_bytes or 0 for s in now.slots)
    cols[3].metric(
        "Inactive slots",
        str(len(now.inactive_slots)),
        f"{ui.fmt_bytes(retained)} WAL retained by {len(now.slots)} slot{'s' * (len(now.slots) != 1)}",
        delta_color="off",
        delta_arrow="off",
        border=True,
    )


def lines(texts: list[str]) -> None:
    """Plain-text lines as a Markdown list, each escaped (names are the servers')."""
    st.markdown("\n".join(f"- {ui.md_escape(t)}" for t in texts))


def tables(target: Target, now: ReplicationNow) -> None:
    """One line per replica and per slot; their tables once opened."""
    if now.replicas:
        n = len(now.replicas)
        st.markdown("**Replicas**")
        lines([replication.replica_line(r) for r in now.replicas])
        box = on_demand(target, "replicas", f"The {n} replica{'s' * (n != 1)}: lags and WAL behind")
        if box is not None:
            with box:
                ui.table(replication.replicas_table(now), REPLICA_COLUMNS, max_height=400)
    elif now.role == "primary":
        st.caption("No replica streams from this server now.")
    if now.slots:
        n, inactive = len(now.slots), len(now.inactive_slots)
        st.markdown("**Replication slots**")
        lines([replication.slot_line(s) for s in now.slots])
        label = f"The {n} slot{'s' * (n != 1)}: WAL retained, safe WAL and xmin age ({inactive} inactive)"
        box = on_demand(target, "slots", label)
        if box is not None:
            with box:
                ui.table(replication.slots_table(now), SLOT_COLUMNS, max_height=400)
    else:
        st.caption("No replication slot.")


def draw(reader: Reader, target: Target, window) -> None:
    now, gone, shown = target_view(target, window)
    if now is None:
        st.info(NOT_READ, icon=":material/info:")
    else:
        st.caption(f"Read {ui.ago(now.ts)}.")
        figures(now)
        findings(replication.standby_findings(now, target.name))
        findings(replication.replica_findings(now) + gone)
        findings(replication.slot_findings(now))
        tables(target, now)
    if shown:
        plots.show(shown, window)
        st.caption(
            "Each bucket's peak. A replica whose replay stopped (paused, or waiting on a conflicting "
            "query) keeps its last lag on the primary while its WAL not replayed grows: its own replay "
            "delay, read on the replica as a target of its own, shows it."
        )
    elif now is not None:
        st.caption("No replication series in this window.")


st.title("Replication")
_, _, statuses = page_frame.per_target(
    cached.reader(),
    "postgres",
    none=ui.NO_DATA,
    no_data=ui.NO_DATA,
    caption=CAPTION,
    draw=draw,
)
ui.health(statuses)
