"""Query detail (/query?id=N): one statement's text, figures for the window, history and facts."""

from __future__ import annotations

import streamlit as st

from dashboard.analysis import statements
from dashboard.analysis.reader import Reader
from dashboard.analysis.sqltext import format_sql
from dashboard.analysis.targets import Target
from dashboard.core.records import StatementInfo
from dashboard.ui import cached, charts, plots, sql_block
from dashboard.ui import frame as ui


def statement_id() -> int | None:
    raw = st.query_params.get("id")
    return int(raw) if raw and raw.strip().isdigit() else None


def not_found() -> None:
    raw = st.query_params.get("id")
    if raw:
        st.error(f"No statement with id '{ui.md_escape(raw)}' in this store.", icon=":material/search_off:")
    else:
        st.info("No statement chosen: open one from the Queries page.", icon=":material/info:")
    st.page_link(ui.QUERIES_PAGE, label="Go to Queries", icon=":material/list:")


def window_figures(summary: dict[str, float]) -> None:
    cols = st.columns(5)
    cols[0].metric("Calls", ui.fmt_count(summary["calls"]), border=True)
    cols[1].metric("Total time", ui.fmt_ms(summary["exec_ms"]), border=True)
    cols[2].metric("Mean time", ui.fmt_ms(summary["mean_ms"]), border=True)
    cols[3].metric("Rows per call", ui.fmt_count(summary["rows_per_call"]), border=True)
    cols[4].metric("Cache hit ratio", ui.fmt_pct(summary["hit_ratio"]), border=True)


def history(reader: Reader, info: StatementInfo, window) -> None:
    target = Target(info.target_id, info.target)
    timeline = statements.statement_timeline(reader, info.id, target, window)
    io = {"read_ms": "read", "write_ms": "write"}
    blocks = {"shared_hit": "hit", "shared_read": "read"}
    shown = [
        charts.statement_rates(timeline, {"calls": "calls"}, "Calls", "calls/min"),
        charts.statement_mean(timeline),
        charts.statement_rates(timeline, {"exec_ms": "execution"}, "Total time", "ms/min"),
        charts.statement_rates(timeline, io, "I/O time", "ms/min"),
        charts.statement_rates(timeline, blocks, "Shared blocks", "blocks/min"),
    ]
    plots.show(shown, window)
    if not timeline[list(io)].to_numpy().any():
        st.caption("No I/O time recorded: PostgreSQL times block I/O only with `track_io_timing = on`.")


def server_stats(info: StatementInfo) -> None:
    since = ui.utc(info.stats_since) if info.stats_since else "the entry was created"
    st.subheader("Execution time as the server reports it")
    st.caption(f"Since {since} (pg_stat_statements' own figures, not limited to the window).")
    cols = st.columns(4)
    for col, (label, value) in zip(
        cols,
        (("Min", info.min_ms), ("Max", info.max_ms), ("Mean", info.mean_ms), ("Std dev", info.stddev_ms)),
        strict=True,
    ):
        col.metric(label, ui.fmt_ms(value), border=True)


def index_advice(reader: Reader, info: StatementInfo) -> None:
    """What the index advisor's latest report for this statement's database says about it."""
    found = statements.statement_advice(reader, info.target_id, info.datname, info.query)
    if found is None:
        return
    made = f"index advisor, {ui.ago(found.ts)}"
    s = found.suggestion
    if s is None:
        st.caption(f"No index suggested: {ui.md_escape(found.skipped or '')} ({made}).")
        return
    st.subheader("Suggested index")
    sql_block.show(s.create_sql)
    before, after = s.cost_before, s.cost_after
    if after is None:
        cost = f"Planner cost {before:,.0f} now; not proven by the planner (see why below)"
    else:
        cost = f"Planner cost **{ui.fmt_cost_change(before, after)}**, proven with HypoPG"
    saved = f" · saves about **{ui.fmt_ms(s.saved_ms_per_day)}** per day" if s.saved_ms_per_day else ""
    st.markdown(f"{cost}{saved} · suggestion {found.rank} for {ui.md_escape(found.datname)}")
    st.caption(f"{ui.md_escape(s.reason)} ({made}).")
    st.page_link(
        ui.INDEXES_PAGE,
        label="All index suggestions for this database",
        icon=":material/bolt:",
        query_params={"db": f"{found.target}/{found.datname}"},
    )


def facts(info: StatementInfo) -> None:
    st.subheader("About this statement")
    rows = {
        "target": info.target,
        "database": info.datname or "unknown",
        "user": info.rolname or "unknown",
        "queryid": str(info.queryid),
        "top level": "yes" if info.toplevel else "no (run inside a function or procedure)",
        "first seen": ui.utc(info.first_seen),
        "last seen (last time it ran)": ui.utc(info.last_seen),
        "still tracked by the server": "yes" if info.present else "no: evicted from pg_stat_statements",
    }
    cols = st.columns(2)
    for i, (label, value) in enumerate(rows.items()):
        cols[i % 2].markdown(f"**{label}:** {ui.md_escape(value)}")


reader = cached.reader()
sid = statement_id()
info = statements.statement(reader, sid) if sid is not None else None
st.title("Query detail")
if info is None:
    not_found()
    st.stop()

window = ui.current_window()
about = " · ".join(ui.md_escape(value or "unknown") for value in (info.target, info.datname, info.rolname))
st.caption(f"Statement #{sid} on {about} · {ui.window_label()}")
sql_block.show(format_sql(info.query or "(text not available)"))
if info.query:
    st.page_link(
        ui.INVESTIGATE_PAGE,
        label="Explain this statement",
        icon=":material/troubleshoot:",
        query_params={"id": str(sid)},
        help="Its plan on the server now: where the time goes, the slow node, why, and the fix",
    )
summary = statements.statement_summary(reader, sid, window)
if summary["calls"]:
    window_figures(summary)
else:
    st.info(f"This statement did not run in this window; it last ran {ui.ago(info.last_seen)}.")
index_advice(reader, info)
history(reader, info, window)
server_stats(info)
facts(info)
