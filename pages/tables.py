"""Tables & maintenance: per PostgreSQL target, the connected database's largest and fastest-growing
tables, dead rows against vacuum and analyze, tables read mostly by sequential scans, wraparound
headroom and partitioning candidates, and the largest tables over time. Reads the store only: the
collector's tables and server_stats parts and its recorded statements fill it.

At first the page draws the figures, the charts and the warnings; each table (largest, growing,
dead rows, sequential scans, wraparound, partitioning) is drawn once its expander is opened (issue
11: a page's first grid costs a first visit the grid's code, each grid the browser's layout; with
six of them the page took twice the one-line page's time)."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard.analysis import tables
from dashboard.analysis.reader import Reader
from dashboard.analysis.sqltext import one_line
from dashboard.analysis.targets import Target
from dashboard.core.health.server import WRAPAROUND_WARN_LEFT, XID_LIMIT
from dashboard.core.health.tables import DEAD_RATIO_WARN
from dashboard.ui import cached, charts, page_frame, plots, sql_block
from dashboard.ui import frame as ui

NOT_READ = """**Tables not read yet.** The collector reads the 50 largest tables of the database each
target connects to every 5 minutes (`health: {tables: 5m}` per target); this target's first
reading shows here after its next cycle."""
LEFT_HELP = (
    "2^31 - 1 - the xid age (of datfrozenxid, relfrozenxid): transactions left before wraparound "
    f"protection stops writes; PgHero warns below {WRAPAROUND_WARN_LEFT / 1e9:g} billion"
)

SIZE_COLUMNS = {
    "table": st.column_config.TextColumn("table", width="medium"),
    "total_bytes": st.column_config.NumberColumn("total", format="bytes", help="table + indexes + TOAST"),
    "table_bytes": st.column_config.NumberColumn("table", format="bytes", help="the heap (main fork)"),
    "index_bytes": st.column_config.NumberColumn("indexes", format="bytes"),
    "toast_bytes": st.column_config.NumberColumn("TOAST", format="bytes", help="out-of-line values"),
    "live": st.column_config.NumberColumn("live rows", format="compact"),
    "per_day": st.column_config.NumberColumn("growth per day", format="bytes", help="over the window"),
}
GROWTH_COLUMNS = {
    "table": st.column_config.TextColumn("table", width="medium"),
    "per_day": st.column_config.NumberColumn("growth per day", format="bytes"),
    "grown_bytes": st.column_config.NumberColumn("grown", format="bytes", help="first to last reading"),
    "first_bytes": st.column_config.NumberColumn("first", format="bytes"),
    "last_bytes": st.column_config.NumberColumn("last", format="bytes"),
    "span_days": st.column_config.NumberColumn("over", format="%.2f d"),
}
DEAD_COLUMNS = {
    "table": st.column_config.TextColumn("table", width="medium"),
    "flag": st.column_config.TextColumn("", width="small"),
    "dead_ratio": st.column_config.ProgressColumn(
        "dead ratio", min_value=0.0, max_value=1.0, format="percent", help="dead / (live + dead) rows"
    ),
    "dead": st.column_config.NumberColumn("dead rows", format="compact"),
    "live": st.column_config.NumberColumn("live rows", format="compact"),
    "vacuum": st.column_config.TextColumn("last vacuum", help="the later of VACUUM and autovacuum"),
    "analyze": st.column_config.TextColumn("last analyze", help="the later of ANALYZE and autoanalyze"),
    "modified_since_analyze": st.column_config.NumberColumn(
        "changed since analyze", format="compact", help="rows inserted, updated or deleted since"
    ),
}
SEQ_COLUMNS = {
    "table": st.column_config.TextColumn("table", width="medium"),
    "seq_scan": st.column_config.NumberColumn("sequential scans", format="compact"),
    "idx_scan": st.column_config.NumberColumn("index scans", format="compact"),
    "seq_share": st.column_config.ProgressColumn(
        "sequential", min_value=0.0, max_value=1.0, format="percent"
    ),
    "rows_per_scan": st.column_config.NumberColumn("rows per scan", format="compact"),
    "seq_tup_read": st.column_config.NumberColumn("rows read", format="compact", help="by sequential scans"),
    "live": st.column_config.NumberColumn("live rows", format="compact"),
}
HEADROOM_COLUMNS = {
    "database": st.column_config.TextColumn("database"),
    "table": st.column_config.TextColumn("table", width="medium"),
    "xid_age": st.column_config.NumberColumn("xid age", format="%d"),
    "xid_left": st.column_config.NumberColumn("transactions left", format="%d", help=LEFT_HELP),
    "used": st.column_config.ProgressColumn("used", min_value=0.0, max_value=1.0, format="percent"),
    "flag": st.column_config.TextColumn("", width="small"),
}


def on_demand(target: Target, section: str, label: str) -> DeltaGenerator | None:
    """An expander whose body is drawn once it is opened (the project's idiom: its `open` state,
    a rerun when it changes); None while it is closed. Its key names the section and the target."""
    box = st.expander(label, key=f"tables:{section}:{target.name}", on_change="rerun")
    return box if box.open else None


@cached.view
def target_view(reader: Reader, target: Target, window) -> tuple[tables.TablesView, list[charts.Chart]]:
    """The target's tables, made once for every session (cached.view)."""
    found = tables.view(reader, target, window)
    shown = [
        charts.lines(found.dead_over_time, "Dead rows", "rows"),
        charts.lines(found.size_over_time, "Total size of the largest tables", "MiB"),
    ]
    return found, [c for c in shown if not c.empty]


@cached.view
def partition_view(reader: Reader, target: Target, window) -> tables.Partitioning:
    """The partitioning candidates, made when the section is first opened (cached.view)."""
    return tables.candidates(reader, target, window)


def figures(view: tables.TablesView) -> None:
    frame = view.tables
    cols = st.columns(4)
    cols[0].metric(
        "Total size",
        ui.fmt_bytes(float(frame["total_bytes"].sum())),
        f"{len(frame)} largest tables",
        delta_color="off",
        delta_arrow="off",
        border=True,
    )
    flagged = int(frame["dead_flag"].sum())
    cols[1].metric(
        "Tables with many dead rows",
        str(flagged),
        help=f"over {DEAD_RATIO_WARN:.0%} of their rows dead: autovacuum is behind",
        border=True,
    )
    never = int(frame["vacuumed"].isna().sum())
    cols[2].metric("Never vacuumed", str(never), help="neither VACUUM nor autovacuum has run", border=True)
    low = view.server.databases if view.server else ()
    headroom = min((d.headroom for d in low), default=XID_LIMIT - int(frame["xid_age"].max() or 0))
    cols[3].metric(
        "Wraparound headroom",
        f"{headroom / 1e9:.2f} billion",
        help=LEFT_HELP,
        border=True,
    )


def largest(target: Target, view: tables.TablesView) -> None:
    st.subheader("Size and growth")
    frame = view.tables.head(tables.LARGEST)
    box = on_demand(target, "largest", f"The {len(frame)} largest of the {len(view.tables)} tables read")
    if box is not None:
        per_day = view.growth.set_index("table")["per_day"] if len(view.growth) else pd.Series(dtype=float)
        shown = frame.assign(per_day=frame["table"].map(per_day))
        with box:
            ui.table(shown[list(SIZE_COLUMNS)], SIZE_COLUMNS, max_height=420)
            st.caption(
                "By total size (table, indexes and TOAST); growth is that of the total size over the "
                "window, per day."
            )
    growing = view.growth[view.growth["per_day"] > 0].head(tables.GROWING)
    if growing.empty:
        st.caption("No table grew in this window (it takes two readings, 5 minutes apart by default).")
        return
    n = len(growing)
    box = on_demand(target, "growth", f"Fastest-growing tables ({n} grew)")
    if box is not None:
        with box:
            ui.table(growing[list(GROWTH_COLUMNS)], GROWTH_COLUMNS, max_height=400)


def dead_rows(target: Target, view: tables.TablesView) -> None:
    st.subheader("Dead rows and vacuum")
    frame = view.tables
    flagged = frame[frame["dead_flag"]]
    if len(flagged):
        names = ", ".join(
            f"**{ui.md_escape(t)}** ({r:.0%})"
            for t, r in zip(flagged["table"], flagged["dead_ratio"], strict=True)
        )
        st.warning(
            f"Over {DEAD_RATIO_WARN:.0%} of the rows are dead in {names}: autovacuum is behind. VACUUM "
            "them now, then let autovacuum keep up: lower autovacuum_vacuum_scale_factor for large "
            "tables (ALTER TABLE ... SET (autovacuum_vacuum_scale_factor = 0.02)), or raise "
            "autovacuum_max_workers and autovacuum_vacuum_cost_limit when it is always busy.",
            icon=":material/cleaning_services:",
        )
        sql_block.show(tables.vacuum_sql(frame))
    box = on_demand(target, "dead", f"Dead rows, last vacuum and analyze of the {len(frame)} tables")
    if box is None:
        return
    shown = tables.dead_rows(frame)
    shown = shown.assign(
        flag=shown["dead_flag"].map({True: "⚠ vacuum", False: ""}),
        vacuum=shown["vacuumed"].map(ago),
        analyze=shown["analyzed"].map(ago),
    )
    with box:
        ui.table(shown[list(DEAD_COLUMNS)], DEAD_COLUMNS, max_height=420)
        st.caption(
            f"Highest dead ratio first; flagged over {DEAD_RATIO_WARN:.0%}. Autovacuum runs on a table "
            "once its dead rows pass autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor (0.2) x "
            "its rows; analyze once the rows changed since the last one pass the analyze threshold. Rows "
            "counts are the statistics' estimates."
        )


def ago(ts: object) -> str:
    return "never" if ts is None or ts != ts else ui.ago(float(ts))  # type: ignore[arg-type]


def sequential(target: Target, view: tables.TablesView) -> None:
    st.subheader("Read mostly by sequential scans")
    frame = view.sequential
    if frame.empty:
        st.caption(
            f"No table of {tables.SEQ_SCAN_MIN_ROWS:,} rows or more was read mostly by sequential scans "
            "in this window."
        )
        return
    st.caption(
        f"Tables of {tables.SEQ_SCAN_MIN_ROWS:,} live rows or more whose scans in this window were over "
        f"{tables.SEQ_SCAN_SHARE:.0%} sequential, most rows read first. Many rows per scan on a large "
        "table usually means a missing index: the Indexes page's advisor names it."
    )
    n = len(frame)
    box = on_demand(target, "sequential", f"The {n} table{'s' * (n != 1)}: scans and rows read")
    if box is not None:
        with box:
            ui.table(frame[list(SEQ_COLUMNS)], SEQ_COLUMNS, max_height=400)


def wraparound(target: Target, view: tables.TablesView) -> None:
    st.subheader("Wraparound headroom")
    databases = tables.database_headroom(view.server)
    oldest = tables.table_headroom(view.tables)
    low = pd.concat(
        [databases.loc[databases["xid_flag"], "database"], oldest.loc[oldest["xid_flag"], "table"]]
    )
    if len(low):
        names = ", ".join(ui.md_escape(n) for n in low)
        st.error(
            f"Fewer than {WRAPAROUND_WARN_LEFT / 1e9:g} billion transactions left in {names}: run "
            "VACUUM (FREEZE) on the oldest tables before PostgreSQL stops accepting writes.",
            icon=":material/warning:",
        )
    st.caption(f"PgHero warns with fewer than {WRAPAROUND_WARN_LEFT / 1e9:g} billion transactions left.")
    box = on_demand(target, "wraparound", "Transactions left per database, and the oldest tables")
    if box is None:
        return
    with box:
        headroom_tables(databases, oldest)


def headroom_tables(databases: pd.DataFrame, oldest: pd.DataFrame) -> None:
    cols = st.columns(2)
    with cols[0]:
        st.markdown("**Per database**")
        if databases.empty:
            st.caption(
                "Not read yet: the server_stats part reads it every minute (`health: {server_stats: 60s}`)."
            )
        else:
            shown = databases.assign(flag=databases["xid_flag"].map({True: "⚠ low", False: ""}))
            ui.table(
                shown[["database", "xid_age", "xid_left", "used", "flag"]], HEADROOM_COLUMNS, max_height=300
            )
    with cols[1]:
        st.markdown("**Oldest tables**")
        shown = oldest.assign(flag=oldest["xid_flag"].map({True: "⚠ low", False: ""}))
        ui.table(shown[["table", "xid_age", "xid_left", "used", "flag"]], HEADROOM_COLUMNS, max_height=300)


def partitioning(target: Target, window) -> None:
    st.subheader("Partitioning candidates")
    box = on_demand(target, "partitioning", "Large tables the top statements filter by a time range")
    if box is None:
        return
    with box:
        candidates(partition_view(target, window))


def candidates(found: tables.Partitioning) -> None:
    st.caption(
        f"A table is a candidate when it is among the {tables.PARTITION_TOP_SIZES} largest and one of the "
        f"window's {tables.PARTITION_STATEMENTS} most expensive statements of its database (by total time) "
        "filters it with a range (<, <=, >, >=, BETWEEN) on a column that looks like a time, by its name "
        "(created_at, order_date ...) or by what it is compared with (now(), an interval, a date). The "
        "statements are read with sqlglot; the store knows no column types."
    )
    if found.unread:
        st.caption(
            f"{found.unread} of the {found.statements} statements could not be read and were left out."
        )
    if not found.candidates:
        st.caption("None: no large table is filtered by a time range in the top statements.")
        return
    for c in found.candidates:
        with st.container(border=True):
            st.markdown(
                f"**{ui.md_escape(c.table)}** · {ui.fmt_bytes(c.total_bytes)} · by range on "
                f"**{ui.md_escape(c.column)}** &nbsp; :blue-badge[:material/calendar_month: time range]"
            )
            st.markdown(ui.md_escape(c.reason))
            st.caption(
                f"Partition it BY RANGE ({ui.md_escape(c.column)}), a partition a month or a week: queries "
                "on recent rows read only the recent partitions, and old rows go by DETACH or DROP "
                "PARTITION instead of DELETE and VACUUM."
            )
            for sid, text in zip(c.statement_ids, c.queries, strict=True):
                label = f"#{sid} {ui.md_escape(one_line(text, 140))}"
                st.page_link(ui.QUERY_PAGE, label=label, query_params={"id": sid}, icon=":material/search:")


def draw(reader: Reader, target: Target, window) -> None:
    view, shown = target_view(target, window)
    snapshot = view.snapshot
    if snapshot is None:
        st.info(NOT_READ, icon=":material/info:")
        return
    st.caption(
        f"Database **{ui.md_escape(snapshot.datname or '?')}** · its {len(view.tables)} largest tables, "
        f"read {ui.ago(snapshot.ts)} ({ui.utc(snapshot.ts)})"
    )
    if view.tables.empty:
        st.caption("The database has no table of its own.")
        return
    figures(view)
    if shown:
        plots.show(shown, window)
    else:
        st.caption("No table series in this window yet.")
    largest(target, view)
    dead_rows(target, view)
    sequential(target, view)
    wraparound(target, view)
    partitioning(target, window)


st.title("Tables & maintenance")
_, _, statuses = page_frame.per_target(
    cached.reader(),
    "postgres",
    none=ui.NO_DATA,
    no_data=ui.NO_DATA,
    caption="The largest tables of each target's database, dead rows, scans and wraparound, {window} · "
    "times in UTC",
    draw=draw,
)
ui.health(statuses)
