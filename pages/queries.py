"""Queries: the top statements of the window, sortable and filterable; a row opens its detail."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.analysis import statements
from dashboard.analysis.sqltext import one_line
from dashboard.ui import cached
from dashboard.ui import frame as ui

COLUMNS = {
    "link": st.column_config.LinkColumn("id", display_text=r"id=(\d+)", width="small"),
    "query": st.column_config.TextColumn("query", width=330),
    "trend": st.column_config.LineChartColumn("query time", y_min=0, width="small"),
    "share": st.column_config.ProgressColumn(
        "share of time", min_value=0.0, max_value=1.0, format="percent", width="small"
    ),
    "total_s": st.column_config.NumberColumn("total time", format="%.2f s", width="small"),
    "calls": st.column_config.NumberColumn("calls", format="%d", width="small"),
    "mean_ms": st.column_config.NumberColumn("mean time", format="%.3f ms", width="small"),
    "rows_per_call": st.column_config.NumberColumn("rows/call", format="%.1f", width="small"),
    "hit_ratio": st.column_config.NumberColumn("cache hit", format="percent", width="small"),
    "shared_read": st.column_config.NumberColumn("blocks read", format="%d", help="shared blocks read"),
    "temp_written": st.column_config.NumberColumn("temp written", format="%d", help="temp blocks written"),
    "datname": st.column_config.TextColumn("database", width="small"),
    "rolname": st.column_config.TextColumn("user", width="small"),
    "target": st.column_config.TextColumn("target", width="small"),
}


def table(frame: pd.DataFrame, sparks: dict[int, list]) -> pd.DataFrame:
    """The statements as displayed: short text, seconds, a deep link and a sparkline per row."""
    shown = frame.assign(
        link=[f"query?id={sid}{ui.window_query()}" for sid in frame["statement_id"]],
        query=frame["query"].map(lambda q: one_line(q, 160)),
        total_s=frame["exec_ms"] / 1000,
        trend=frame["statement_id"].map(sparks),
    )
    several_targets = frame["target"].nunique() > 1
    columns = [c for c in COLUMNS if several_targets or c != "target"]
    return shown[columns]


st.title("Queries")
reader = cached.reader()
targets = ui.current_targets("postgres")
window = ui.current_window()
st.caption(f"Statements recorded by pg_stat_statements, {ui.window_label()}. Select a row for its detail.")
if not reader.has_data("postgres"):
    st.info(ui.NO_DATA, icon=":material/info:")
    st.stop()
if not targets:
    st.info("Pick at least one target in the sidebar.")
    st.stop()

databases, users = statements.filters(reader, targets)
c_order, c_db, c_user, c_text = st.columns([1, 1, 1, 2])
order = c_order.selectbox("Sort by", list(statements.ORDERS), format_func=statements.ORDERS.get)
database = c_db.selectbox("Database", [None, *databases], format_func=lambda d: d or "all")
user = c_user.selectbox("User", [None, *users], format_func=lambda u: u or "all")
text = c_text.text_input("Text contains", placeholder="e.g. orders")

frame = statements.top_statements(
    reader, targets, window, database=database, user=user, text=text, order=order
)
if frame.empty:
    st.info("No statement matches in this window: widen the window or clear the filters.")
    st.stop()

sparks = statements.sparklines(reader, frame["statement_id"].tolist(), targets, window)
event = ui.table(
    table(frame, sparks),
    COLUMNS,
    max_height=760,
    on_select="rerun",
    selection_mode="single-row",
    key="statements",
)
if event.selection.rows:
    chosen = int(frame["statement_id"].iloc[event.selection.rows[0]])
    st.switch_page(ui.QUERY_PAGE, query_params={"id": str(chosen)})
st.caption(f"{len(frame)} statements · total time is the window's execution time of each statement.")
