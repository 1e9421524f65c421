"""Overview: collector health, each target's figures for the window, activity over time, top queries."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.analysis import overview, statements
from dashboard.analysis.reader import Reader
from dashboard.analysis.sqltext import one_line
from dashboard.analysis.targets import Target
from dashboard.core import metrics
from dashboard.ui import cached, charts, plots
from dashboard.ui import frame as ui


def target_figures(target: Target, row: pd.Series) -> None:
    st.markdown(f"**{ui.md_escape(target.name)}**")
    if not row["seconds"] and row["hit_ratio"] != row["hit_ratio"]:
        st.caption("Nothing collected in this window.")
        return
    cols = st.columns(5)
    cols[0].metric("Total query time", ui.fmt_ms(row["exec_ms"]), border=True)
    cols[1].metric("Calls per second", ui.fmt_count(row["calls_per_s"], 2), border=True)
    cols[2].metric("Mean time", ui.fmt_ms(row["mean_ms"]), border=True)
    cols[3].metric("Rows", ui.fmt_count(row["rows"]), border=True)
    cols[4].metric("Buffer cache hit ratio", ui.fmt_pct(row["hit_ratio"]), border=True)


def activity(targets: list[Target], window) -> None:
    plots.show(activity_charts(targets, window), window)


@cached.view
def activity_charts(reader: Reader, targets: list[Target], window) -> list[charts.Chart]:
    """Made once for every session (cached.view)."""
    frame = overview.activity(reader, targets, window)
    exec_ms, calls = metrics.PG_STATEMENTS_EXEC_MS, metrics.PG_STATEMENTS_CALLS
    shown = [
        charts.rate_lines(frame, exec_ms, "Query time", "ms per second"),
        charts.rate_lines(frame, calls, "Calls per second", "calls/s"),
        charts.ratio_lines(frame, exec_ms, [calls], "Mean time", "ms"),
        charts.hit_ratio_lines(frame),
    ]
    for target in targets:
        title = "Connections by state" + (f" — {target.name}" if len(targets) > 1 else "")
        shown.append(charts.connections_area(frame[frame["target"] == target.name], title))
    return shown


def top_queries(reader: Reader, targets: list[Target], window) -> None:
    st.subheader("Top queries by total time")
    top = statements.top_statements(reader, targets, window, limit=5)
    if top.empty:
        st.caption("No statement ran in this window.")
        return
    left, right = st.columns([3, 2])
    with left:
        plots.show([charts.top_queries_bar(top, title="")], columns=1)
    for r in top.itertuples():
        right.page_link(
            ui.QUERY_PAGE,
            label=f"#{r.statement_id} {ui.md_escape(one_line(r.query, 55))}",
            query_params={"id": r.statement_id},
        )
        right.caption(f"{ui.fmt_ms(r.exec_ms)} total · {r.calls:,} calls · {ui.fmt_ms(r.mean_ms)} mean")


st.title("Overview")
reader = cached.reader()
statuses = reader.statuses("postgres")
if not reader.has_data("postgres"):
    st.info(ui.NO_DATA, icon=":material/info:")
    if len(statuses):
        ui.health(statuses)
    st.stop()

targets = ui.current_targets("postgres")
window = ui.current_window()
st.caption(f"PostgreSQL activity, {ui.window_label()} · times in UTC")
ui.problems(statuses[statuses["name"].isin([t.name for t in targets])])
if not targets:
    st.info("Pick at least one target in the sidebar.")
    st.stop()

figures = overview.summary(reader, targets, window)
for target in targets:
    target_figures(target, figures.loc[target.name])
activity(targets, window)
top_queries(reader, targets, window)
ui.health(statuses)
