"""Weekly review: a week against the one before (or any two weeks): the objectives week by week,
statements that regressed or improved (significant, not noise), new and gone ones, service, Redis
and PostgreSQL figures, whether the indexes created helped, alerts fired, open suggestions, unused
indexes, growing tables; and the same as a report to download (HTML, Markdown).

Reads the store only, through dashboard.analysis.review.build: `observatory report` prints the same.
"""

from __future__ import annotations

import time

import streamlit as st

from dashboard.analysis.reader import Reader
from dashboard.analysis.review import Period, Review, build, default_period, frames, settings_of
from dashboard.ui import cached
from dashboard.ui import frame as ui

WEEKS_OFFERED = 12
SECONDS = {"format": "%.1f s", "width": "small"}
MS = {"format": "%.2f ms", "width": "small"}
PERCENT = {"format": "percent", "width": "small"}
LINK = st.column_config.LinkColumn("id", display_text=r"id=(\d+)", width="small")
CHANGE_COLUMNS = {
    "link": LINK,
    "target": st.column_config.TextColumn("target", width="small"),
    "datname": st.column_config.TextColumn("database", width="small"),
    "query": st.column_config.TextColumn("statement", width="large"),
    "calls_before": st.column_config.NumberColumn("calls before", format="%d", width="small"),
    "calls": st.column_config.NumberColumn("calls", format="%d", width="small"),
    "mean_before": st.column_config.NumberColumn("mean before", **MS),
    "mean": st.column_config.NumberColumn("mean", **MS),
    "change": st.column_config.NumberColumn("change", **PERCENT),
    "z": st.column_config.NumberColumn(
        "z", format="%.1f", width="small", help="standard errors between the two means (3 or more: not noise)"
    ),
    "rows_per_call": st.column_config.TextColumn("rows per call", width="small"),
    "read_per_call": st.column_config.TextColumn("blocks read per call", width="small"),
    "total_ms": st.column_config.NumberColumn("time this week", format="%.0f ms", width="small"),
    "trend": st.column_config.LineChartColumn("mean per day", y_min=0, width="small"),
}
TOTALS = ("link", "target", "datname", "query", "calls", "mean", "total_ms")
TOTAL_COLUMNS = {k: CHANGE_COLUMNS[k] for k in TOTALS}


def _review(reader: Reader, period: Period, baseline: Period) -> Review:
    return build(reader, period, baseline, settings_of(reader.config))


_recent, _past = cached.view(_review), cached.settled_view(_review)


def review_of(period: Period, baseline: Period) -> Review:
    """The review, kept an hour once its week is over (a past week's figures do not move), else
    as every page's figures are (30 s): it takes seconds on a large store."""
    return (_past if period.end <= time.time() else _recent)(period, baseline)


def pick_periods(now: float) -> tuple[Period, Period]:
    """The week reviewed (the last complete one by default) and its baseline (the week before)."""
    this = Period.week_of(now)
    weeks = [this]
    for _ in range(WEEKS_OFFERED - 1):
        weeks.append(weeks[-1].before())
    names = {w.label: w for w in weeks}
    label = lambda name: f"{name} (so far)" if name == this.label else name  # noqa: E731
    cols = st.columns(2)
    asked = st.query_params.get("week")  # a link to a week's review: /review?week=2026-W46
    default = asked if asked in names else _default(now, this).label
    offered = list(names)
    chosen = names[cols[0].selectbox("Week", offered, index=offered.index(default), format_func=label)]
    others = [w for w in weeks if w.start < chosen.start] or [chosen.before()]
    base_names = {w.label: w for w in others}
    against = cols[1].selectbox("Against", list(base_names), index=0, help="the week before, by default")
    baseline = base_names[against]
    return chosen, baseline


def _default(now: float, this: Period) -> Period:
    """The last complete week; this week so far when the store holds nothing of that one (a new
    installation: its first review is of the days it has)."""
    last = default_period(now)
    if review_of(last, last.before()).empty and not review_of(this, last).empty:
        return this
    return last


def linked(frame):
    """The statement's id as a link to its Query detail, first; the rest as the frame orders it."""
    link = [f"query?id={sid}" for sid in frame["statement_id"]]
    return frame.drop(columns="statement_id").assign(link=link)[["link", *frame.columns[1:]]]


def statements(review: Review) -> None:
    st.subheader("Statements")
    s = review.settings
    st.caption(
        f"A regression is a mean time at least {s.min_change:.0%} higher, over {s.min_calls} calls or "
        f"more in each week, and {s.z:g} standard errors or more from no change (README: Weekly review); "
        "ranked by the time the change cost or saved this week."
    )
    for title, found, none in (
        ("Regressed", review.regressions, "No statement got significantly slower."),
        ("Improved", review.improvements, "No statement got significantly faster."),
    ):
        st.markdown(f"**{title}**")
        if found:
            ui.table(linked(frames.changes(found)), CHANGE_COLUMNS, max_height=420)
        else:
            st.caption(none)
    for title, found, none in (
        ("New this week, heaviest first", review.new, "No statement ran for the first time this week."),
        ("Gone: ran the week before, not this one", review.gone, "No statement stopped running."),
    ):
        st.markdown(f"**{title}**")
        if found:
            ui.table(linked(frames.totals(found)), TOTAL_COLUMNS, max_height=320)
        else:
            st.caption(none)


def objectives(review: Review) -> None:
    st.subheader("Objectives, week by week")
    card = frames.scorecard(review.objectives)
    if card.empty:
        st.caption("No objective measured: configure Prometheus series with targets, and Redis targets.")
        return
    ui.table(card, max_height=360)
    st.caption("✓ met, ✗ missed, – not measured that week (its source was not collected).")


def figures(review: Review) -> None:
    _section(
        "Services, Redis and PostgreSQL",
        frames.series(review),
        "Nothing to compare: no figure was collected in both weeks.",
        {"change": st.column_config.NumberColumn("change", **PERCENT)},
        420,
    )


def _section(title: str, table, none: str, columns: dict | None = None, height: int = 320) -> None:
    """A subheader, then the table, or one line saying why there is none."""
    st.subheader(title)
    if table.empty:
        st.caption(none)
    else:
        ui.table(table, columns, max_height=height)


def indexes(review: Review) -> None:
    st.subheader("Did the index help?")
    table = frames.indexes(review)
    if table.empty:
        st.caption("No index was created this week (as the catalog showed between two readings).")
    else:
        ui.table(table, {"created": st.column_config.DatetimeColumn("created (UTC)")}, max_height=320)
    left, right = st.columns(2)
    with left:
        _listed("Index suggestions still open", frames.suggestions(review))
    with right:
        _listed("Indexes that went unused", frames.unused(review))


def _listed(title: str, table) -> None:
    st.markdown(f"**{title}**")
    if table.empty:
        st.caption("None.")
    else:
        ui.table(table, max_height=320)


def alerts(review: Review) -> None:
    columns = {"firing_s": st.column_config.NumberColumn("firing for", **SECONDS)}
    _section("Alerts fired", frames.alerts(review), "No alert fired this week.", columns)


def growth(review: Review) -> None:
    _section("Largest tables: growth", frames.growth(review), "No table sizes in both weeks.")


def downloads(review: Review) -> None:
    """The report, made when a button is clicked (deferred: its templates and charts cost only then)."""
    cols = st.columns(4)
    name = f"review-{review.period.label}"
    cols[0].download_button(
        "Report (HTML)", lambda: _render("html", review), f"{name}.html", "text/html", on_click="ignore"
    )
    cols[1].download_button(
        "Report (Markdown)",
        lambda: _render("markdown", review),
        f"{name}.md",
        "text/markdown",
        on_click="ignore",
    )


def _render(how: str, review: Review) -> str:
    from dashboard.report import render

    return getattr(render, how)(review)


st.title("Weekly review")
period, baseline = pick_periods(time.time())
review = review_of(period, baseline)
st.caption(
    f"{review.period.label} against {review.baseline.label}, every target · times in UTC · the sidebar's "
    "time window does not apply here"
)
for note in review.notes:
    st.info(ui.md_escape(note), icon=":material/info:")
downloads(review)
objectives(review)
statements(review)
figures(review)
indexes(review)
alerts(review)
growth(review)
