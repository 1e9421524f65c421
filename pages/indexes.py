"""Indexes: the index advisor's latest report per database: indexes worth creating, statements left
alone and why, and the health of the existing indexes."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.analysis import pasted, statements
from dashboard.analysis.reader import Reader
from dashboard.analysis.sqltext import one_line
from dashboard.core.advice import (
    BloatedIndex,
    Finding,
    IndexSuggestion,
    InvalidIndex,
    MissingFkIndex,
    StoredAdvice,
)
from dashboard.ui import access, cached, sql_block
from dashboard.ui import frame as ui

NO_ADVICE = """**No index advice yet.** The collector daemon (`observatory collect`, or `observatory up`
for the collector and this app together) runs the index advisor on every database of each target
shortly after it starts and then every hour (`advise_interval` per target; `advise: false` turns it
off). Its reports show here.

To advise on one database right away (the report is printed, not stored), run:
```
observatory advise --dsn postgresql://monitor@db1:5432/erp
```
The advisor only reads: with HypoPG installed in the database (`CREATE EXTENSION hypopg`) the
planner proves every suggestion, without one they are estimates."""

HEALTH = {
    "unused": "Unused indexes",
    "redundant": "Duplicate and redundant indexes",
    "invalid": "Invalid indexes",
    "missing_fk_indexes": "Foreign keys without an index",
    "bloat": "Bloated indexes (estimate)",
}
SKIPPED_COLUMNS = {
    "link": st.column_config.LinkColumn("id", display_text=r"id=(\d+)", width="small"),
    "statement": st.column_config.TextColumn("statement", width="large"),
    "reason": st.column_config.TextColumn("why no index", width="large"),
}
SKIPPED = "skipped_open"  # the expander of the statements without a suggestion
FIRST_CARDS = 3  # suggestions shown in full; the others in an expander (MORE) drawn once opened
MORE = "more_suggestions"
REPORTS = "reports_open"  # the expander of the table of every database's report
PASTE = "paste_open"  # the expander of the paste box
SAVED_HELP = (
    "Time saved: calls per day × mean time × the planner's cost reduction, unknown without HypoPG. "
    "Writes: rows written to the table per day."
)


def key(stored: StoredAdvice) -> str:
    return f"{stored.target}/{stored.datname}"  # target names never hold a '/'


def saved_per_day(stored: StoredAdvice) -> float | None:
    """The time the report's suggestions save per day; None when none of them is measured."""
    known = [s.saved_ms_per_day for s in stored.report.suggestions if s.saved_ms_per_day is not None]
    return sum(known) if known else None


def findings(stored: StoredAdvice) -> int:
    health = stored.report.health
    return 0 if health is None else sum(len(getattr(health, kind)) for kind in HEALTH)


def ranked(reports: list[StoredAdvice]) -> list[StoredAdvice]:
    """Most to gain first: time saved, then suggestions, then health findings."""
    return sorted(
        reports,
        key=lambda r: (
            -(saved_per_day(r) or 0.0),
            -len(r.report.suggestions),
            -findings(r),
            r.target,
            r.datname,
        ),
    )


def status(stored: StoredAdvice) -> str:
    report = stored.report
    if report.error:
        return f"error: {report.error}"
    if report.needs:
        return f"needs {len(report.needs)} grant{'s' if len(report.needs) != 1 else ''}: {report.needs[0]}"
    return "ok" if report.hypopg else "ok, estimates (no HypoPG)"


def overview(reports: list[StoredAdvice], several_targets: bool) -> None:
    table = pd.DataFrame(
        {
            "target": [r.target for r in reports],
            "database": [r.datname for r in reports],
            "suggestions": [len(r.report.suggestions) for r in reports],
            "saved": [ui.fmt_ms(saved_per_day(r)) for r in reports],  # '–': none, or unmeasured
            "health": [findings(r) for r in reports],
            "made": [ui.ago(r.ts) for r in reports],
            "took": [ui.fmt_ms(r.duration_ms) for r in reports],
            "status": [status(r) for r in reports],
        }
    )
    columns = {
        "target": st.column_config.TextColumn("target"),
        "database": st.column_config.TextColumn("database"),
        "suggestions": st.column_config.NumberColumn("suggested"),
        "saved": st.column_config.TextColumn("saved per day", help="time the suggestions save per day"),
        "health": st.column_config.NumberColumn("health findings"),
        "made": st.column_config.TextColumn("report made"),
        "took": st.column_config.TextColumn("took"),
        "status": st.column_config.TextColumn("status", width="large"),
    }
    shown = st.expander(f"Every database's report ({len(reports)})", key=REPORTS, on_change="rerun")
    if shown.open:  # drawn on demand, like the skipped statements: the grid costs 0.4 s to load
        with shown:
            ui.table(table[[c for c in columns if several_targets or c != "target"]], columns, max_height=320)


def choose(reports: list[StoredAdvice]) -> StoredAdvice:
    """The report to show: the only one, else the one picked (`?db=target/database`, else the first).

    The options are the keys themselves: a bound selectbox matches the URL against the text shown.
    """
    if len(reports) == 1:
        return reports[0]
    by_key = {key(r): r for r in reports}
    chosen = st.selectbox(
        "Database (target/database)", list(by_key), key="db", bind="query-params", width=480
    )
    return by_key.get(chosen or "", reports[0])


def header(stored: StoredAdvice) -> bool:
    """When and how the report was made; False when it holds nothing but an error."""
    body = stored.report
    made = (
        f"**{ui.md_escape(stored.datname)}** on **{ui.md_escape(stored.target)}** · report made "
        f"{ui.ago(stored.ts)} ({ui.utc(stored.ts)}) in {ui.fmt_ms(stored.duration_ms)}"
    )
    if body.error:
        st.caption(made)
        st.error(
            f"The advisor could not read this database: {ui.md_escape(body.error)}",
            icon=":material/error:",
        )
        return False
    served = {text for s in body.suggestions for text in s.statements}
    analysed = len(served | {item.statement for item in body.skipped})
    st.caption(
        f"{made} · {analysed} statement{'s' if analysed != 1 else ''} of the recorded workload analysed"
    )
    for need in body.needs or ():
        st.warning(f"Not everything could be planned. {ui.md_escape(need)}", icon=":material/lock:")
    if body.hint:
        st.warning(
            f"Suggestions here are estimates. To fix: {ui.md_escape(body.hint)}.", icon=":material/build:"
        )
    return True


def suggestions(reader: Reader, stored: StoredAdvice) -> None:
    st.subheader("Suggested indexes")
    items = stored.report.suggestions
    if not items:
        st.caption("None: no statement of the recorded workload gets markedly cheaper with a new index.")
        return
    st.caption(
        "Ranked by the time they save per day, less the time spent keeping them up to date on writes. "
        "Nothing is created for you: run each statement on its own (CONCURRENTLY cannot run inside a "
        "transaction block)."
    )
    texts = [text for s in items for text in s.statements]
    ids = statements.statement_ids(reader, stored.target_id, stored.datname, texts)
    for rank, suggestion in enumerate(items[:FIRST_CARDS], start=1):
        card(rank, suggestion, ids, key=f"plans:{key(stored)}:{rank}")
    rest = items[FIRST_CARDS:]
    if not rest:
        return
    more = st.expander(
        f"{len(rest)} more suggestion{'s' if len(rest) != 1 else ''}",
        key=f"{MORE}:{key(stored)}",
        on_change="rerun",
    )
    if more.open:  # drawn on demand: each card is some 30 elements for the browser to lay out
        with more:
            for rank, suggestion in enumerate(rest, start=FIRST_CARDS + 1):
                card(rank, suggestion, ids, key=f"plans:{key(stored)}:{rank}")


def card(rank: int, s: IndexSuggestion, ids: dict[str, int], key: str | None) -> None:
    """One suggestion; its plans (`key`: their expander's) are drawn once the expander is opened,
    or at once without a key (a pasted statement's card: its form's result lasts one run only)."""
    with st.container(border=True):
        badge = (
            ":green-badge[:material/verified: proven by the planner with HypoPG]"
            if s.proven
            else ":orange-badge[:material/calculate: estimate: not proven by the planner]"
        )
        columns = ui.md_escape(", ".join(s.columns))
        st.markdown(f"**{rank}. {ui.md_escape(s.table)}** ({columns}) &nbsp; {badge}")
        sql_block.show(s.create_sql)
        st.markdown(facts(s), help=SAVED_HELP)
        st.caption(ui.md_escape(s.reason))
        n = len(s.statements)
        st.markdown(f"**Serves {n} statement{'s' if n != 1 else ''}**")
        for text in s.statements:
            sid = ids.get(text)
            if sid is None:
                st.caption(f"{ui.md_escape(one_line(text, 140))} (not in the store)")
            else:
                label = f"#{sid} {ui.md_escape(one_line(text, 140))}"
                st.page_link(ui.QUERY_PAGE, label=label, query_params={"id": sid}, icon=":material/search:")
        plans = st.expander("Plans before and after", key=key, on_change="rerun" if key else "ignore")
        if key and not plans.open:  # drawn on demand: a page of cards with their plans took 0.3 s longer
            return
        with plans:
            st.caption("Now")
            ui.preformatted(s.plan_before or "(no plan)")
            st.caption("With the index (a hypothetical one, HypoPG)")
            ui.preformatted(s.plan_after or "(not planned with the index: the reason above says why)")


def facts(s: IndexSuggestion) -> str:
    """The suggestion's figures on one line of text: four st.metric in columns were a fifth of the
    page's elements for the browser to lay out, three cards of them."""
    before, after = s.cost_before, s.cost_after
    cost = f"{before:,.0f} → ?" if after is None else ui.fmt_cost_change(before, after)
    return (
        f"Time saved per day **{ui.fmt_ms(s.saved_ms_per_day)}** · planner cost **{cost}** · "
        f"writes per day **{ui.fmt_count(s.writes_per_day)}** · table rows **{ui.fmt_count(s.table_rows)}**"
    )


def skipped(reader: Reader, stored: StoredAdvice) -> None:
    st.subheader("Statements without a suggestion")
    items = stored.report.skipped
    if not items:
        st.caption("None.")
        return
    n = len(items)
    shown = st.expander(
        f"The {n} statement{'s' if n != 1 else ''} and why", key=f"{SKIPPED}:{key(stored)}", on_change="rerun"
    )
    if not shown.open:  # drawn on demand: the table's grid alone costs the page 0.4 s to load
        return
    texts = [item.statement for item in items]
    ids = statements.statement_ids(reader, stored.target_id, stored.datname, texts)
    table = pd.DataFrame(
        {
            "link": [f"query?id={ids[t]}{ui.window_query()}" if t in ids else None for t in texts],
            "statement": [one_line(t, 200) for t in texts],
            "reason": [item.reason for item in items],
        }
    )
    with shown:
        ui.table(table, SKIPPED_COLUMNS, max_height=420)


def health(stored: StoredAdvice) -> None:
    st.subheader("Index health")
    found = stored.report.health
    if found is None:
        st.caption("Not checked in this report.")
        return
    st.caption("Existing indexes that cost more than they give, and foreign keys that need one.")
    clean = [title for kind, title in HEALTH.items() if not getattr(found, kind)]
    for kind, title in HEALTH.items():
        items: list[Finding] = getattr(found, kind)
        if not items:
            continue
        st.markdown(f"**{title}** · {len(items)}\n\n{health_lines(kind, items)}")
        fixes = [fix_sql(item) for item in items if item.fix_sql]
        if fixes:
            sql_block.show("\n".join(fixes))
    if clean:  # one line, not a heading and a "None found." each: ten elements on a healthy database
        st.caption(f"None found: {', '.join(title[0].lower() + title[1:] for title in clean)}.")
    for note in found.notes:
        st.caption(ui.md_escape(note))


def health_lines(kind: str, items: list[Finding]) -> str:
    """One markdown line per finding (names escaped, the reason in full): a list, not st.table,
    whose JavaScript the page would load for these few rows alone (issue 11)."""
    lines = []
    for i in items:
        name = (i.constraint if isinstance(i, MissingFkIndex) else None) or i.index or ""
        size = f"{i.size} table" if kind == "missing_fk_indexes" else i.size
        bloat = f" · {i.bloat} bloat ({i.bloat_percent:g} %)" if isinstance(i, BloatedIndex) else ""
        lines.append(
            f"- **{ui.md_escape(name)}** on {ui.md_escape(i.table)} · {ui.md_escape(size + bloat)}: "
            f"{ui.md_escape(i.reason)}"
        )
    return "\n".join(lines)


def fix_sql(item: Finding) -> str:
    alternative = item.alternative_sql if isinstance(item, InvalidIndex) else None
    if not alternative:
        return item.fix_sql or ""
    other = "\n".join(f"--   {line}" for line in alternative.splitlines())
    return f"{item.fix_sql}\n-- or drop and recreate it:\n{other}"


def paste_box(reader: Reader, reports: list[StoredAdvice]) -> None:
    """Advise on a statement the user pastes, in a database of a configured target."""
    choices = [key(r) for r in reports] or [
        f"{t.name}/{db}"
        for t in ui.current_targets("postgres")
        for db in [pasted.target_database(reader.config, t.name)]
        if db
    ]
    if not access.sql_allowed(reader.config):  # it plans the statement on the target: SQL
        return
    pasting = st.expander(
        "Advise on a statement you paste", icon=":material/content_paste:", key=PASTE, on_change="rerun"
    )
    if not pasting.open:  # drawn on demand: its form's widgets were a tenth of the page's elements
        return
    with pasting:
        if not choices:
            st.caption("No PostgreSQL target is configured.")
            return
        with st.form("paste"):
            where = st.selectbox("Database (target/database)", choices)
            text = st.text_area(
                "Statement",
                placeholder="SELECT * FROM orders WHERE customer_id = $1",
                help="One SELECT, WITH, VALUES, INSERT, UPDATE, DELETE or MERGE statement. It is planned "
                "in a read-only transaction that is rolled back, never run.",
            )
            asked = st.form_submit_button("Advise")
        if not (asked and text.strip()):
            return
        target, _, datname = where.partition("/")
        result = cached.advise_pasted(target, datname, text)
        if result.error is not None:
            st.error(ui.md_escape(result.error))
            return
        for rank, suggestion in enumerate(result.suggestions, start=1):
            card(rank, suggestion, {}, key=None)
        for item in result.skipped:
            st.info(f"No index suggested: {ui.md_escape(item.reason)}", icon=":material/info:")


st.title("Indexes")
st.caption(
    "The index advisor's latest report for each database: new indexes that make the recorded workload "
    "faster, the statements it left alone and why, and the health of the existing indexes."
)
reader = cached.reader()
targets = ui.current_targets("postgres")
if ui.known_targets("postgres") and not targets:
    st.info("Pick at least one target in the sidebar.")
    st.stop()
reports = ranked(statements.advice(reader, targets))
if not reports:
    st.info(NO_ADVICE, icon=":material/info:")
    paste_box(reader, reports)
    st.stop()

several_targets = len({r.target for r in reports}) > 1
if len(reports) > 1:
    overview(reports, several_targets)
report = choose(reports)
if header(report):
    suggestions(reader, report)
    skipped(reader, report)
    health(report)
paste_box(reader, reports)
