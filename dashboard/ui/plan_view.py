"""Drawing a plan: its figures, the findings in words, the tree as a table, where the time goes as an
icicle, the JSON, and two plans side by side.

Every text of a plan is foreign (relation, index and alias names come from the server's catalog, a
loaded plan file from anyone): in Markdown it goes through `md_escape`, in the icicle's HTML through
`html.escape`, in tables as cell text.

The icicle is positioned blocks of HTML: a chart library would cost the page over a second to load
(measured: Plotly's icicle took 1.4 s of 3.7).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.plans.compare import Comparison, NodeChange
from dashboard.plans.findings import Finding
from dashboard.plans.tree import Plan, PlanNode
from dashboard.ui import frame as ui

SEVERITY = {  # severity -> (the alert it is shown as, its icon)
    "high": (st.error, ":material/error:"),
    "medium": (st.warning, ":material/warning:"),
    "low": (st.info, ":material/info:"),
}
HOT = "●"  # the hottest path's marker in the tree table (no emoji: not every browser draws them)
INDENT = "\u2003"  # an em space per level: the grid draws it, it never collapses
TABLE_MAX_PX = 560
ICICLE_LEVEL_PX = 44
DETAIL_SKIP = {"Plans", "Node Type", "Parent Relationship", "Parallel Aware", "Async Capable"}


# -- the figures ----------------------------------------------------------------------------------
def figures(plan: Plan, *, generic: bool = False, command: str = "") -> None:
    """Total cost, execution and planning time, the rows, as metrics; how the plan was made below."""
    cols = st.columns(4)
    cols[0].metric("Total cost", f"{plan.total_cost:,.1f}", help="the planner's estimate, in its own units")
    if plan.analyzed:
        cols[1].metric("Execution time", ui.fmt_ms(plan.execution_ms))
    else:
        cols[1].metric("Execution time", "not run", help="an estimated plan: EXPLAIN without ANALYZE")
    cols[2].metric("Planning time", ui.fmt_ms(plan.planning_ms))
    root = plan.root
    rows = root.rows_total if root.rows_total is not None else root.est_rows
    cols[3].metric("Rows", ui.fmt_count(rows), help="actual" if plan.analyzed else "estimated")
    how = ["executed (ANALYZE): actual rows and times" if plan.analyzed else "estimated: nothing was run"]
    if generic:
        how.append("a generic plan: $n without values, as a prepared statement may run")
    if command:
        how.append(command)
    st.caption(" · ".join(ui.md_escape(h) for h in how))


# -- findings -------------------------------------------------------------------------------------
def findings(plan: Plan, items: Sequence[Finding]) -> None:
    """Each finding in words, pointing at its node (id and label), most severe first."""
    if not items:
        st.caption("Nothing stands out in this plan.")
        return
    for item in items:
        show, icon = SEVERITY.get(item.severity, SEVERITY["low"])
        lines = [f"**{ui.md_escape(item.title)}**"]
        where = node_name(plan, item.node)
        if where:
            lines.append(f"at {ui.md_escape(where)}")
        if item.detail:
            lines.append(ui.md_escape(item.detail))
        if item.fix:
            lines.append(f"**To fix:** {ui.md_escape(item.fix)}")
        show("\\\n".join(lines), icon=icon)


def node_name(plan: Plan, node: int | None) -> str:
    """'#5 Seq Scan on public.orders o', or '' for the whole plan (or a node the plan lacks)."""
    if node is None or not 0 <= node < len(plan.nodes):
        return ""
    return f"#{node} {plan.nodes[node].label}"


# -- the tree as a table --------------------------------------------------------------------------
def tree_frame(plan: Plan, items: Sequence[Finding] = ()) -> pd.DataFrame:
    """One row a node, depth-first (the tree's order): the label indented by depth, its own share,
    own and inclusive time (or cost), rows estimated and actual, the misestimate factor, loops,
    buffers, the hottest path and the findings pointing at it. Columns an estimated plan cannot
    fill are left out."""
    hot = set(plan.hottest_path())
    marks: dict[int, list[str]] = {}
    for item in items:
        if item.node is not None:
            marks.setdefault(item.node, []).append(f"{item.kind} ({item.severity})")
    rows: list[dict[str, Any]] = []
    for n in plan.nodes:
        row = {
            "hot": HOT if n.id in hot else "",
            "id": n.id,
            "node": INDENT * n.depth + ("↳ " if n.depth else "") + n.label,
            "share": plan.share(n),
            "own": plan.own(n),
            "inclusive": plan.inclusive(n),
            "est_rows": n.est_rows,
        }
        if plan.analyzed:
            row.update(
                actual_rows=n.actual_rows,
                misestimate=n.misestimate,
                loops=n.loops,
                hit=n.buffers.get("shared_hit"),
                read=n.buffers.get("shared_read"),
            )
        row["findings"] = ", ".join(marks.get(n.id, []))
        rows.append(row)
    return pd.DataFrame(rows)


def tree_columns(plan: Plan) -> dict[str, Any]:
    unit, fmt = ("ms", "%.3f ms") if plan.analyzed else ("cost", "%.1f")
    what = "time" if plan.analyzed else "cost"
    return {
        "hot": st.column_config.TextColumn(
            "", width=40, help="the hottest path: from the top, the child holding the most each step down"
        ),
        "id": st.column_config.NumberColumn("#", width=40),
        "node": st.column_config.TextColumn("node", width="large"),
        "share": st.column_config.ProgressColumn(
            "share",
            help=f"the node's own part of the plan's {what}",
            format="percent",
            min_value=0.0,
            max_value=1.0,
            width="small",
        ),
        "own": st.column_config.NumberColumn(f"own {unit}", format=fmt, help=f"{what} of the node alone"),
        "inclusive": st.column_config.NumberColumn(
            f"total {unit}", format=fmt, help=f"{what} of the node with its children, all loops"
        ),
        "est_rows": st.column_config.NumberColumn("rows est.", format="%.0f", help="estimated, per loop"),
        "actual_rows": st.column_config.NumberColumn("rows actual", format="%.0f", help="per loop"),
        "misestimate": st.column_config.NumberColumn(
            "off by", format="%.1f×", help="how many times the row estimate was off (1×: right)"
        ),
        "loops": st.column_config.NumberColumn("loops", format="%.0f"),
        "hit": st.column_config.NumberColumn("hit", format="%d", help="shared buffers found in the cache"),
        "read": st.column_config.NumberColumn("read", format="%d", help="shared buffers read from disk"),
        "findings": st.column_config.TextColumn("findings"),
    }


def tree_table(plan: Plan, items: Sequence[Finding] = (), *, key: str) -> PlanNode:
    """The tree table; a row picked shows that node's details below (by default the hottest node).
    Returns the node shown."""
    table = tree_frame(plan, items)
    event = ui.table(
        table,
        tree_columns(plan),
        max_height=TABLE_MAX_PX,
        key=key,
        on_select="rerun",
        selection_mode="single-row",
    )
    picked = list(getattr(getattr(event, "selection", None), "rows", None) or [])
    node = plan.nodes[picked[0]] if picked and picked[0] < len(plan.nodes) else plan.hottest()
    chosen = "picked" if picked else f"the node with the most own {'time' if plan.analyzed else 'cost'}"
    st.caption(f"Node {ui.md_escape(node_name(plan, node.id))} ({chosen}; pick a row for another):")
    ui.preformatted(node_detail(node))
    return node


def node_detail(node: PlanNode) -> str:
    """What EXPLAIN said of the node (its conditions, filters, sort keys, rows removed ...), one line
    a key; lists one item a line."""
    lines = []
    for key, value in node.detail.items():
        if key in DETAIL_SKIP or (key.endswith(" Blocks") and value == 0):
            continue
        if isinstance(value, list):
            items = [json.dumps(v) if isinstance(v, dict | list) else str(v) for v in value]
            joined = ", ".join(items)
            shown = joined if len(joined) <= 100 else "".join(f"\n    {item}" for item in items)
        elif isinstance(value, dict):
            shown = json.dumps(value)
        else:
            shown = str(value)
        lines.append(f"{key}: {shown}")
    return "\n".join(lines) or "(nothing more)"


# -- where the time goes --------------------------------------------------------------------------
def icicle_values(plan: Plan) -> list[float]:
    """Each node's inclusive time (or cost), raised where needed so that a parent is never smaller
    than its children together (an InitPlan's time is outside its parent's)."""
    values = [max(plan.inclusive(n), 0.0) for n in plan.nodes]
    for n in reversed(plan.nodes):  # children come after their parent: bottom-up
        below = sum(values[c] for c in n.children)
        if below > 0 and values[n.id] < below * (1 + 1e-9):
            values[n.id] = below * (1 + 1e-9)  # and a hair more, against rounding
    return values


ICICLE_ROW_PX = 26
ICICLE_MIN_WIDTH = 0.002  # a node narrower than 0.2 % of the plan is too thin to draw or to read


@dataclass(frozen=True)
class Box:
    """A node's place in the icicle: from `left` over `width` (fractions of the whole) at its depth."""

    node: PlanNode
    left: float
    width: float
    value: float  # its inclusive time or cost, as drawn (icicle_values)
    share: float  # its own share of the plan


def icicle_boxes(plan: Plan) -> list[Box]:
    """Each node drawn under its parent, as wide as its inclusive time (or cost) makes it, children
    left to right in plan order; nodes too thin to see are left out."""
    values = icicle_values(plan)
    place = {0: (0.0, 1.0)}
    for n in plan.nodes:  # parents come before their children
        start, width = place[n.id]
        for c in n.children:
            part = values[c] / values[n.id] if values[n.id] > 0 else 1 / len(n.children)
            place[c] = (start, width * part)
            start += width * part
    return [
        Box(n, *place[n.id], values[n.id], plan.share(n))
        for n in plan.nodes
        if place[n.id][1] >= ICICLE_MIN_WIDTH
    ]


def icicle_html(plan: Plan) -> str:
    """The icicle as positioned blocks of HTML: no chart library to load, a tooltip on each block.
    Every text is escaped; the darker a block, the more of the plan it spends itself."""
    fmt = ui.fmt_ms if plan.analyzed else (lambda v: f"{v:,.1f}")
    blocks = []
    for b in icicle_boxes(plan):
        light = 96 - 50 * b.share
        text = f"#{b.node.id} {b.node.label}"
        own, whole = fmt(plan.own(b.node)), fmt(plan.inclusive(b.node))
        tip = f"{text}\nown: {own} ({b.share:.1%})\nwith its children: {whole}"
        style = (
            f"left:{b.left:.4%};width:{b.width:.4%};top:{b.node.depth * ICICLE_ROW_PX}px;"
            f"background:hsl(16,85%,{light:.0f}%);color:{'#fff' if light < 62 else '#262730'}"
        )
        parent = "" if b.node.parent is None else str(b.node.parent)
        blocks.append(
            f'<div class="block" data-node="{b.node.id}" data-parent="{parent}" data-value="{b.value!r}" '
            f'style="{style}" title="{html.escape(tip)}">{html.escape(text, quote=False)}</div>'
        )
    height = (max(n.depth for n in plan.nodes) + 1) * ICICLE_ROW_PX
    return f'<style>{ICICLE_CSS}</style><div class="icicle" style="height:{height}px">{"".join(blocks)}</div>'


ICICLE_CSS = (
    ".icicle{position:relative;width:100%;font:12px/24px sans-serif}"
    ".icicle .block{position:absolute;height:24px;box-sizing:border-box;border:1px solid #fff;"
    "padding:0 4px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;border-radius:3px}"
)


def icicle(plan: Plan) -> None:
    what = "time (ms, all loops)" if plan.analyzed else "estimated cost"
    st.caption(
        f"Each node as wide as its {what} with its children; the darker, the more it spends itself. "
        "Point at a node for its figures."
    )
    st.html(icicle_html(plan))


# -- the JSON -------------------------------------------------------------------------------------
def json_box(plan: Plan, file: Callable[[], str], file_name: str, *, key: str) -> None:
    """The plan as JSON: a download (`file` makes its text once clicked), and EXPLAIN's JSON in an
    expander drawn once opened."""
    st.download_button(
        "Download the plan (JSON)",
        file,
        file_name=file_name,
        mime="application/json",
        icon=":material/download:",
        on_click="ignore",
        key=f"{key}:download",
    )
    shown = st.expander("The plan as EXPLAIN (FORMAT JSON) gave it", key=f"{key}:json", on_change="rerun")
    if shown.open:
        with shown:
            ui.preformatted(plan.to_json())


# -- two plans ------------------------------------------------------------------------------------
CHANGE_MARK = {"changed": "changed", "added": "added", "removed": "removed"}
CHANGES_SHOWN = 12


def comparison(found: Comparison, titles: tuple[str, str]) -> None:
    """Two plans compared: the summary in words, the totals, the nodes that changed (and how), then
    the two plans side by side as EXPLAIN's text form draws them. Text, not grids: a grid costs the
    page 0.3-0.4 s to load, and a page may hold two comparisons."""
    st.markdown(ui.md_escape(found.summary))
    cols = st.columns(3)
    cols[0].metric(
        "Total cost", f"{found.cost_b:,.1f}", _change(found.cost_a, found.cost_b), delta_color="inverse",
        help=ui.md_escape(f"{titles[1]}, against {found.cost_a:,.1f} in {titles[0]}"),
    )  # fmt: skip
    if found.timed:
        cols[1].metric(
            "Execution time", ui.fmt_ms(found.execution_ms_b),
            _change(found.execution_ms_a, found.execution_ms_b), delta_color="inverse",
            help=ui.md_escape(f"{titles[1]}, against {ui.fmt_ms(found.execution_ms_a)} in {titles[0]}"),
        )  # fmt: skip
    changed = found.changed
    same = len(found.nodes) - len(changed)
    cols[-1].metric("Nodes changed", f"{len(changed)}", help=f"{same} the same in both plans")
    if changed:
        st.markdown(change_lines(found, changed[:CHANGES_SHOWN]))
        if len(changed) > CHANGES_SHOWN:
            st.caption(f"and {len(changed) - CHANGES_SHOWN} more changes: the two plans below show them all.")
    marked = (
        {n.a.id for n in changed if n.a is not None},
        {n.b.id for n in changed if n.b is not None},
    )
    for col, plan, title, ids in zip(st.columns(2), (found.a, found.b), titles, marked, strict=True):
        with col:
            st.markdown(f"**{ui.md_escape(title)}**")
            small_figures(plan)
            ui.preformatted(outline(plan, ids))


def change_lines(found: Comparison, changes: Sequence[NodeChange]) -> str:
    """One Markdown list item a changed node: what it was, what it is, how it changed."""
    lines = []
    for n in changes:
        before = ui.md_escape(node_name(found.a, n.a.id)) if n.a is not None else ""
        after = ui.md_escape(node_name(found.b, n.b.id)) if n.b is not None else ""
        what = f"{before} → {after}" if before and after else before or after
        how = f": {ui.md_escape(n.reason)}" if n.reason else ""
        lines.append(f"- **{CHANGE_MARK.get(n.kind, ui.md_escape(n.kind))}** {what}{how}")
    return "\n".join(lines)


def outline(plan: Plan, marked: set[int] | frozenset[int] = frozenset()) -> str:
    """The plan as EXPLAIN's text form draws it, a node a line with its figures; `marked` nodes
    (those that changed) begin with '*'."""
    lines = []
    for n in plan.nodes:
        arrow = "      " * (n.depth - 1) + "  ->  " if n.depth else ""
        figures = f"cost {n.total_cost:,.1f}, rows {n.est_rows:,.0f}"
        if n.total_ms is not None:
            rows = "–" if n.actual_rows is None else f"{n.actual_rows:,.0f}"
            figures += f"; {ui.fmt_ms(n.total_ms)}, rows {rows}, loops {n.loops or 0:,.0f}"
        lines.append(f"{'*' if n.id in marked else ' '} {arrow}#{n.id} {n.label}  ({figures})")
    return "\n".join(lines)


def _change(was: float | None, now: float | None) -> str | None:
    if was is None or now is None or was <= 0:
        return None
    return f"{(now - was) / was:+.1%}"


def small_figures(plan: Plan) -> None:
    parts = [f"cost {plan.total_cost:,.1f}"]
    if plan.analyzed:
        parts.append(f"executed in {ui.fmt_ms(plan.execution_ms)}")
    parts.append(f"{len(plan.nodes)} node{'s' if len(plan.nodes) != 1 else ''}")
    st.caption(" · ".join(parts))
