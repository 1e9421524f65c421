"""Settings: per PostgreSQL target, the memory settings against the usual sizing for the server's
RAM, autovacuum, checkpoints and the planner, each with the value it should have and why; then the
server: checkpoints requested against timed, WAL written, wraparound headroom per database and the
sequences nearest their maximum. Reads the store only: the collector's settings and server_stats
parts fill it.

At first the page draws the memory advice, the server's figures and charts, and a line for each
finding (a setting to raise or lower, a sequence near its maximum, low wraparound headroom); the
other tables (autovacuum, checkpoints and the planner, sequences, the oldest tables, every setting)
are drawn once their expander is opened, its label counting what there is to review (issue 11: each
grid costs the browser its layout; with four of them the page took twice the one-line page's time).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard.analysis import settings as sizing
from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core.health import ServerNow, SettingsNow
from dashboard.core.health.server import SEQUENCE_FLAGGED, SEQUENCE_LISTED, WRAPAROUND_WARN_LEFT
from dashboard.ui import cached, charts, page_frame, plots
from dashboard.ui import frame as ui

NOT_READ = """**Settings not read yet.** The collector reads them every hour (`health: {settings: 1h}`
per target); this target's first reading shows here after its next cycle."""
STATUS = {
    "raise": "⬆ raise",
    "lower": "⬇ lower",
    "consider": "consider",
    "ok": "ok",
    "unknown": "RAM unknown",
}
ADVICE_COLUMNS = {
    "setting": st.column_config.TextColumn("setting"),
    "now": st.column_config.TextColumn("now", width="small"),
    "advised": st.column_config.TextColumn("advised", width="small", help="empty: keep it"),
    "status": st.column_config.TextColumn("", width="small"),
    "reason": st.column_config.TextColumn("why", width="large"),
    "source": st.column_config.TextColumn("set in", help="pg_settings.source"),
}
SETTING_COLUMNS = {
    "name": st.column_config.TextColumn("setting"),
    "setting": st.column_config.TextColumn("value"),
    "unit": st.column_config.TextColumn("unit", width="small"),
    "source": st.column_config.TextColumn("set in"),
    "boot_val": st.column_config.TextColumn("default"),
    "pending_restart": st.column_config.CheckboxColumn("restart pending", width="small"),
}
SEQUENCE_COLUMNS = {
    "sequence": st.column_config.TextColumn("sequence"),
    "column": st.column_config.TextColumn("feeds", help="the column it fills (serial, identity)"),
    "data_type": st.column_config.TextColumn("type", width="small"),
    "last_value": st.column_config.NumberColumn("last value", format="%d"),
    "limit_value": st.column_config.NumberColumn(
        "limit", format="%d", help="its maximum, or its column type's"
    ),
    "used": st.column_config.ProgressColumn("used", min_value=0.0, max_value=1.0, format="percent"),
    "flag": st.column_config.TextColumn("", width="small"),
}
TABLE_COLUMNS = {
    "table": st.column_config.TextColumn("table"),
    "xid_age": st.column_config.NumberColumn("relfrozenxid age", format="%d"),
    "size": st.column_config.TextColumn("size", width="small"),
}


def on_demand(target: Target, section: str, label: str) -> DeltaGenerator | None:
    """An expander whose body is drawn once it is opened (the project's idiom: its `open` state,
    a rerun when it changes); None while it is closed. Its key names the section and the target."""
    box = st.expander(label, key=f"settings:{section}:{target.name}", on_change="rerun")
    return box if box.open else None


@cached.view
def target_view(reader: Reader, target: Target, window) -> tuple:
    """The target's snapshots, RAM, advice and server charts, made once for every session."""
    settings, server = sizing.snapshots(reader, target)
    ram = sizing.ram_of(reader, target)
    view = sizing.server_view(reader, target, window)
    shown = [
        charts.lines(view.checkpoints, "Checkpoints per hour", "checkpoints/h"),
        charts.lines(view.wal, "WAL written per hour", "MiB/h"),
        charts.threshold_lines(
            view.headroom, "Wraparound headroom per database", "billion xids", "<", WRAPAROUND_WARN_LEFT / 1e9
        ),
    ]
    temp = sizing.temp_bytes(reader, target, window)
    return settings, server, ram, view, [c for c in shown if c.series], temp


def advice_table(advice: list[sizing.Advice]) -> None:
    """The settings as a table, then what to change, with the whole reason (a cell cuts it)."""
    frame = sizing.advice_frame(advice)
    frame["status"] = frame["status"].map(STATUS)
    ui.table(frame, ADVICE_COLUMNS)
    lines = [
        f"- {STATUS[a.status]} **{ui.md_escape(a.setting)}** from {ui.md_escape(a.now)} to "
        f"**{ui.md_escape(a.advised)}**: {ui.md_escape(a.reason)}"
        for a in advice
        if a.advised is not None
    ]
    if lines:
        st.markdown("\n".join(lines))


def deferred_advice(target: Target, section: str, title: str, advice: list[sizing.Advice]) -> None:
    """A group of settings drawn once opened: the values the rules say are wrong are warned of at
    first, in one line; the expander's label counts every setting to review (consider included)."""
    wrong = sizing.warned(advice)
    if wrong:
        changes = "; ".join(
            f"{STATUS[a.status]} **{ui.md_escape(a.setting)}** from {ui.md_escape(a.now)} to "
            f"**{ui.md_escape(a.advised)}**"
            for a in wrong
        )
        st.warning(f"{title}: {changes} (why: in the section below).", icon=":material/tune:")
    n = len(sizing.to_review(advice))
    label = f"{title} ({n} to review)" if n else f"{title} ({len(advice)} read, none to change)"
    box = on_demand(target, section, label)
    if box is not None:
        with box:
            advice_table(advice)


def ram_line(ram: sizing.Ram) -> None:
    if ram.bytes is None:
        st.info(
            ui.md_escape(ram.source) + " \\- the settings are shown without ratios.", icon=":material/memory:"
        )
    else:
        st.caption(f"RAM {ui.fmt_bytes(ram.bytes)}, from {ui.md_escape(ram.source)}")


def settings_section(
    target: Target, settings: SettingsNow, ram: sizing.Ram, view: sizing.ServerView, temp: float
) -> None:
    st.caption(f"Settings read {ui.ago(settings.ts)} ({ui.utc(settings.ts)}).")
    ram_line(ram)
    pending = settings.pending_restart
    if pending:
        names = ", ".join(ui.md_escape(s.name) for s in pending)
        st.warning(f"Changed, waiting for a restart: {names}", icon=":material/restart_alt:")
    st.markdown("**Memory**")
    advice_table(sizing.memory_advice(settings, ram.bytes, temp))
    deferred_advice(target, "autovacuum", "Autovacuum settings", sizing.autovacuum_advice(settings))
    checkpoints = sizing.checkpoint_advice(settings, view.timed, view.requested)
    deferred_advice(target, "checkpoints", "Checkpoint and planner settings", checkpoints)
    box = on_demand(target, "every", f"Every setting read ({len(settings.settings)})")
    if box is not None:
        with box:
            rows = pd.DataFrame([s.model_dump() for s in settings.settings])
            ui.table(rows[list(SETTING_COLUMNS)], SETTING_COLUMNS, max_height=600)


def server_figures(view: sizing.ServerView, server: ServerNow | None) -> None:
    cols = st.columns(3)
    done = view.timed + view.requested
    cols[0].metric(
        "Checkpoints requested",
        f"{view.requested:.0f} of {done:.0f}",
        help="in this window; the rest were timed (checkpoint_timeout). Many requested: raise max_wal_size",
        border=True,
    )
    cols[1].metric("WAL written", ui.fmt_bytes(view.wal_bytes), help="in this window", border=True)
    low = min(server.databases, key=lambda d: d.headroom) if server and server.databases else None
    cols[2].metric(
        "Lowest wraparound headroom",
        f"{low.headroom / 1e9:.2f} billion" if low else "–",
        ui.md_escape(low.datname) if low else None,
        delta_color="off",
        delta_arrow="off",
        help="transactions left before wraparound (2^31 - 1 - age(datfrozenxid)); PgHero warns below 1.5 G",
        border=True,
    )


def sequences(target: Target, server: ServerNow) -> None:
    st.markdown(
        f"**Sequences past {SEQUENCE_LISTED:.0%} of their range** in database {ui.md_escape(server.datname)}"
    )
    if server.problem:
        st.warning(ui.md_escape(server.problem), icon=":material/lock:")
    if not server.sequences:
        readable = server.sequences_total - server.sequences_unreadable
        st.caption(f"None of the {readable} sequences read is past {SEQUENCE_LISTED:.0%}.")
        return
    flagged = server.flagged_sequences
    if flagged:
        names = ", ".join(ui.md_escape(f"{s.schemaname}.{s.sequencename}") for s in flagged)
        st.error(
            f"Past {SEQUENCE_FLAGGED:.0%} of their maximum: {names}. When one reaches it, inserts fail: "
            "change the column and the sequence to bigint (ALTER SEQUENCE ... AS bigint).",
            icon=":material/warning:",
        )
    n = len(server.sequences)
    label = f"The {n} sequence{'s' * (n != 1)}: last value, limit and share used"
    box = on_demand(
        target, "sequences", label + (f" ({len(flagged)} past {SEQUENCE_FLAGGED:.0%})" if flagged else "")
    )
    if box is None:
        return
    rows = pd.DataFrame(
        {
            "sequence": [f"{s.schemaname}.{s.sequencename}" for s in server.sequences],
            "column": [f"{s.table_name}.{s.column_name}" if s.table_name else "" for s in server.sequences],
            "data_type": [s.data_type for s in server.sequences],
            "last_value": [s.last_value for s in server.sequences],
            "limit_value": [s.limit_value for s in server.sequences],
            "used": [s.used for s in server.sequences],
            "flag": ["over 90 %" if s.flagged else "" for s in server.sequences],
        }
    )
    with box:
        ui.table(rows, SEQUENCE_COLUMNS, max_height=400)


def oldest_tables(target: Target, server: ServerNow) -> None:
    if not server.tables:
        return
    n = len(server.tables)
    box = on_demand(
        target,
        "oldest",
        f"Tables with the oldest relfrozenxid in database {ui.md_escape(server.datname)} ({n})",
    )
    if box is None:
        return
    rows = pd.DataFrame(
        {
            "table": [t.table_name + (" (TOAST)" if t.toast else "") for t in server.tables],
            "xid_age": [t.xid_age for t in server.tables],
            "size": [ui.fmt_bytes(t.size_bytes) for t in server.tables],
        }
    )
    with box:
        ui.table(rows, TABLE_COLUMNS, max_height=400)
        st.caption("VACUUM (FREEZE) of the oldest ones raises the database's headroom.")


def server_section(
    target: Target, view: sizing.ServerView, server: ServerNow | None, shown: list, window
) -> None:
    st.subheader("Server")
    server_figures(view, server)
    if view.requested >= 2 and view.requested / max(view.timed + view.requested, 1) > sizing.REQUESTED_SHARE:
        st.warning(
            "Many checkpoints were requested rather than timed: WAL fills max_wal_size before "
            "checkpoint_timeout. Raise max_wal_size (see above).",
            icon=":material/speed:",
        )
    if shown:
        plots.show(shown, window)
    else:
        st.caption("No server statistics in this window (they need two collector cycles).")
    if server is None:
        st.caption(
            "Transaction ID age and sequences not read yet (every minute: `health: {server_stats: 60s}`)."
        )
        return
    for line in sizing.wraparound_warnings(server):
        st.error(ui.md_escape(line) + " \\- VACUUM (FREEZE) its oldest tables.", icon=":material/warning:")
    sequences(target, server)
    oldest_tables(target, server)


def draw(reader: Reader, target: Target, window) -> None:
    settings, server, ram, view, shown, temp = target_view(target, window)
    if settings is None:
        st.info(NOT_READ, icon=":material/info:")
    else:
        settings_section(target, settings, ram, view, temp)
    server_section(target, view, server, shown, window)


st.title("Settings")
_, _, statuses = page_frame.per_target(
    cached.reader(),
    "postgres",
    none=ui.NO_DATA,
    no_data=ui.NO_DATA,
    caption="Settings against the server's RAM, and server statistics, {window} · times in UTC",
    draw=draw,
)
ui.health(statuses)
