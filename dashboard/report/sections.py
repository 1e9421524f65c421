"""The report's sections as plain tables of text, in the order both templates show them: the HTML
and the Markdown template draw the same rows, so the two documents cannot say different things.

Every cell is text as written (escaped by the template that shows it); a statement's text is cut to
one line in the table and kept whole in `full`, a changed statement carries its sparkline.
"""

from __future__ import annotations

from typing import NamedTuple

from dashboard.analysis.review.model import (
    IndexOutcome,
    Objective,
    Review,
    SeriesChange,
    StatementChange,
    StatementTotal,
)
from dashboard.analysis.sqltext import one_line
from dashboard.report import figures
from dashboard.report.text import (
    change_pct,
    count,
    duration,
    ms,
    number,
    pair,
    shown,
    size,
    spark_text,
    when,
    with_unit,
)

QUERY_WIDTH = 160  # characters of a statement shown in a table; the whole text is kept in `full`


class Cell(NamedTuple):
    text: str
    full: str | None = None  # the whole text, when `text` is cut
    spark: int | None = None  # the index of its sparkline in Report.sparks
    kind: str = ""  # "num", "query", "good", "bad": how the HTML styles it


class Section(NamedTuple):
    key: str  # the HTML anchor
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    empty: str  # the one line shown instead of an empty table
    intro: str = ""


class Report(NamedTuple):
    title: str
    subtitle: str
    generated: str
    criteria: str
    no_data: bool  # nothing at all was measured in either period
    scorecard: Section
    sections: tuple[Section, ...]
    notes: tuple[str, ...]
    charts: list  # dashboard.ui.charts.Chart: the SLO trend, one per measured objective
    window: list[int] | None
    sparks: list[dict]


def report(review: Review) -> Report:
    sparks: list[dict] = []
    sections = (
        _changes("regressions", "Top regressions", review.regressions, review, sparks),
        _changes("improvements", "Top improvements", review.improvements, review, sparks),
        _totals("new", "New heavy statements", review.new, "No new statement.", "first seen in the period"),
        _totals("gone", "Gone statements", review.gone, "No statement vanished.", "ran in the baseline only"),
        _series(review.series),
        _indexes(review.indexes),
        _alerts(review),
        _suggestions(review),
        _unused(review),
        _growth(review),
    )  # fmt: skip
    s = review.settings
    return Report(
        title=f"Weekly performance review: {review.period.label}",
        subtitle=f"{review.period.label} compared with {review.baseline.label}",
        generated=when(review.generated),
        criteria=(
            f"A regression or an improvement: mean time changed by {s.min_change:.0%} or more, with "
            f"at least {s.min_calls:,} calls in each period and {s.z:g} standard errors or more "
            f"between the means; top {s.top} of each list."
        ),
        no_data=_no_data(review),
        scorecard=_scorecard(review.objectives),
        sections=sections,
        notes=review.notes,
        charts=figures.objective_charts(_in_shown_units(review.objectives)),
        window=figures.trend_window(review.objectives),
        sparks=sparks,
    )


def _no_data(review: Review) -> bool:
    lists = (review.regressions, review.improvements, review.new, review.gone, review.indexes,
             review.alerts, review.suggestions, review.unused, review.growth)  # fmt: skip
    measured = any(o.value is not None for o in review.objectives) or any(
        c.value is not None or c.baseline is not None for c in review.series
    )
    return not measured and not any(lists)


def _query(text: str) -> Cell:
    short = one_line(text, QUERY_WIDTH)
    return Cell(short, text if short != " ".join(text.split()) else None, kind="query")


def _where(target: str, datname: str | None) -> str:
    return f"{target} / {datname}" if datname else target


def _scorecard(objectives: tuple[Objective, ...]) -> Section:
    weeks = tuple(dict.fromkeys(o.week for o in objectives))
    rows = []
    for name in dict.fromkeys(o.name for o in objectives):
        by_week = {o.week: o for o in objectives if o.name == name}
        target = by_week[weeks[-1]].target if weeks[-1] in by_week else next(iter(by_week.values())).target
        rows.append((Cell(name), Cell(target), *(_score(by_week.get(w)) for w in weeks)))
    return Section(
        "scorecard",
        "SLO scorecard",
        ("Objective", "Target", *weeks),
        tuple(rows),
        "No objective has been measured in these weeks.",
    )


def _in_shown_units(objectives: tuple[Objective, ...]) -> tuple[Objective, ...]:
    """Ratios as percentages, for the trend charts: their targets ("> 99 %") are written in %."""
    return tuple(
        o._replace(value=value, unit=unit) for o in objectives for value, unit in [shown(o.value, o.unit)]
    )


def _score(o: Objective | None) -> Cell:
    if o is None or o.value is None or o.met is None:
        return Cell("not measured")
    value = with_unit(o.value, o.unit, digits=5)
    return Cell(f"met {value}", kind="good") if o.met else Cell(f"missed {value}", kind="bad")


def _changes(
    key: str, title: str, changes: tuple[StatementChange, ...], review: Review, sparks: list[dict]
) -> Section:
    split = figures.baseline_days(review)
    rows = []
    for c in changes:
        spark = figures.sparkline(c, split)
        if spark is not None:
            sparks.append(spark)
        rows.append((
            _query(c.query),
            Cell(_where(c.target, c.datname)),
            Cell(pair(count(c.calls[0]), count(c.calls[1])), kind="num"),
            Cell(pair(ms(c.mean_ms[0]), ms(c.mean_ms[1])), kind="num"),
            Cell(change_pct(c.change), kind="bad" if c.change > 1 else "good"),
            Cell(number(c.z), kind="num"),
            Cell(pair(number(c.read_per_call[0]), number(c.read_per_call[1])), kind="num"),
            Cell(spark_text(c.daily_mean_ms), spark=len(sparks) - 1 if spark is not None else None),
        ))  # fmt: skip
    columns = ("Statement", "Target / database", "Calls", "Mean time", "Change", "z", "Blocks read per call",
               "Daily mean")  # fmt: skip
    return Section(key, title, columns, tuple(rows), f"No {key[:-1]} found.")


def _totals(key: str, title: str, totals: tuple[StatementTotal, ...], empty: str, intro: str) -> Section:
    rows = tuple(
        (_query(t.query), Cell(_where(t.target, t.datname)), Cell(count(t.calls), kind="num"),
         Cell(ms(t.mean_ms), kind="num"), Cell(ms(t.total_ms), kind="num"))
        for t in totals
    )  # fmt: skip
    columns = ("Statement", "Target / database", "Calls", "Mean time", "Total time")
    return Section(key, title, columns, rows, empty, intro)


def _series(changes: tuple[SeriesChange, ...]) -> Section:
    rows = tuple(
        (Cell(c.kind), Cell(c.target), Cell(c.name), Cell(with_unit(c.baseline, c.unit), kind="num"),
         Cell(with_unit(c.value, c.unit), kind="num"), _direction(c))
        for c in changes
    )  # fmt: skip
    columns = ("Kind", "Target", "Figure", "Baseline", "Period", "Verdict")
    empty = "No service or Redis figure measured."
    return Section("services", "Service & Redis changes", columns, rows, empty)


def _direction(c: SeriesChange) -> Cell:
    if c.better is None:
        return Cell("no change" if c.value is not None and c.baseline is not None else "not measured")
    return Cell("better", kind="good") if c.better else Cell("worse", kind="bad")


def _indexes(outcomes: tuple[IndexOutcome, ...]) -> Section:
    rows = tuple(
        (Cell(o.index), Cell(o.table), Cell(_where(o.target, o.datname)), Cell(when(o.created)),
         Cell("ours" if o.ours else "not ours"), Cell(o.verdict, kind=_verdict_kind(o.verdict)),
         Cell(pair(ms(o.writes_ms[0]), ms(o.writes_ms[1])), kind="num"), _effects(o))
        for o in outcomes
    )  # fmt: skip
    columns = ("Index", "Table", "Target / database", "Created", "Suggested", "Verdict", "Writes' mean time",
               "Statements using it (mean time, blocks read per call)")  # fmt: skip
    return Section("indexes", "Did the index help?", columns, rows, "No index was created in the period.")


def _verdict_kind(verdict: str) -> str:
    return {"helped": "good", "hurt": "bad"}.get(verdict, "")


def _effects(o: IndexOutcome) -> Cell:
    if not o.statements:
        return Cell("none yet")
    parts = [
        f"#{e.statement_id} {one_line(e.query, 60)}: {pair(ms(e.mean_ms[0]), ms(e.mean_ms[1]))}, "
        f"{pair(number(e.read_per_call[0]), number(e.read_per_call[1]))}"
        for e in o.statements
    ]
    return Cell("; ".join(parts), kind="query")


def _alerts(review: Review) -> Section:
    rows = tuple(
        (Cell(a.name), Cell(a.severity), Cell(a.summary), Cell(when(a.fired)),
         Cell(when(a.resolved) if a.resolved is not None else "still firing"),
         Cell(duration(a.firing_s), kind="num"))
        for a in review.alerts
    )  # fmt: skip
    columns = ("Alert", "Severity", "Summary", "Fired", "Resolved", "Firing for")
    return Section("alerts", "Alerts fired", columns, rows, "No alert fired in the period.")


def _suggestions(review: Review) -> Section:
    rows = tuple(
        (Cell(_where(s.target, s.datname)), _query(s.create_sql), Cell(s.benefit)) for s in review.suggestions
    )
    columns = ("Target / database", "Index", "Benefit")
    return Section("suggestions", "Open index suggestions", columns, rows, "No index suggestion is open.")


def _unused(review: Review) -> Section:
    rows = tuple(
        (Cell(u.target), Cell(u.index), Cell(u.table), Cell(size(u.bytes), kind="num"), Cell(u.reason))
        for u in review.unused
    )
    columns = ("Target", "Index", "Table", "Size", "Why")
    return Section("unused", "Unused indexes", columns, rows, "No unused index found.")


def _growth(review: Review) -> Section:
    rows = tuple(
        (Cell(g.target), Cell(g.table), Cell(pair(size(g.bytes[0]), size(g.bytes[1])), kind="num"),
         Cell(("+" if g.growth_bytes >= 0 else "") + size(g.growth_bytes), kind="num"))
        for g in review.growth
    )  # fmt: skip
    columns = ("Target", "Table", "Size (baseline end → period end)", "Growth")
    return Section("growth", "Growth of the largest tables", columns, rows, "No table size measured.")
