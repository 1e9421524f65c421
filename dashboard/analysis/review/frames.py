"""The review's records as the tables the Weekly review page draws: pure pandas, no Streamlit."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dashboard.analysis import slo
from dashboard.analysis.review.model import Objective, Review, StatementChange, StatementTotal
from dashboard.analysis.sqltext import one_line

TEXT_CHARS = 300  # of a statement, in a table cell (its page shows all of it)


def _frame(rows: Sequence[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(list(rows), columns=columns)


def scorecard(objectives: Sequence[Objective]) -> pd.DataFrame:
    """One row per objective, one column per week (oldest first): "✓ 150 ms", "✗ 250 ms", "–"."""
    weeks = sorted({o.week for o in objectives})
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for o in objectives:
        cell = "–" if o.value is None else f"{'✓' if o.met else '✗' if o.met is False else ''} {_value(o)}"
        rows.setdefault((o.name, o.target), {})[o.week] = cell.strip()
    records = [{"objective": name, "target": target, **cells} for (name, target), cells in rows.items()]
    return _frame(records, ["objective", "target", *weeks]).fillna("–")


def _value(o: Objective) -> str:
    """As the report and the Services page write it: a ratio in %, ms, or its unit."""
    return slo.fmt_value(o.value, o.unit)


def objective_lines(objectives: Sequence[Objective]) -> pd.DataFrame:
    """Long frame (week, series, value, met) of the measured objectives, for the trend chart."""
    rows = [
        {"week": o.week, "series": o.name, "value": o.value, "met": o.met}
        for o in objectives
        if o.value is not None
    ]
    return _frame(rows, ["week", "series", "value", "met"])


CHANGE_COLUMNS = ["statement_id", "target", "datname", "query", "calls_before", "calls", "mean_before",
                  "mean", "change", "z", "rows_per_call", "read_per_call", "total_ms", "trend"]  # fmt: skip


def changes(found: Sequence[StatementChange]) -> pd.DataFrame:
    """Regressions or improvements, as ranked: before -> after, how sure, the daily trend."""
    rows = [
        {
            "statement_id": c.statement_id,
            "target": c.target,
            "datname": c.datname,
            "query": one_line(c.query, TEXT_CHARS),
            "calls_before": c.calls[0],
            "calls": c.calls[1],
            "mean_before": c.mean_ms[0],
            "mean": c.mean_ms[1],
            "change": c.change - 1.0,
            "z": c.z,
            "rows_per_call": f"{c.rows_per_call[0]:,.3g} → {c.rows_per_call[1]:,.3g}",
            "read_per_call": f"{c.read_per_call[0]:,.3g} → {c.read_per_call[1]:,.3g}",
            "total_ms": c.total_ms,
            "trend": [v if v is not None else 0.0 for v in c.daily_mean_ms],
        }
        for c in found
    ]
    return _frame(rows, CHANGE_COLUMNS)


def totals(found: Sequence[StatementTotal]) -> pd.DataFrame:
    rows = [
        {
            "statement_id": s.statement_id,
            "target": s.target,
            "datname": s.datname,
            "query": one_line(s.query, TEXT_CHARS),
            "calls": s.calls,
            "mean": s.mean_ms,
            "total_ms": s.total_ms,
        }
        for s in found
    ]
    return _frame(rows, ["statement_id", "target", "datname", "query", "calls", "mean", "total_ms"])


def series(review: Review) -> pd.DataFrame:
    rows = [
        {
            "source": s.kind,
            "target": s.target,
            "figure": s.name,
            "before": s.baseline,
            "now": s.value,
            "unit": s.unit,
            "change": (s.value / s.baseline - 1.0) if s.value is not None and s.baseline else None,
            "verdict": {True: "better", False: "worse", None: ""}[s.better],
        }
        for s in review.series
        if s.baseline is not None or s.value is not None  # collected in at least one of the weeks
    ]
    return _frame(rows, ["source", "target", "figure", "before", "now", "unit", "change", "verdict"])


def indexes(review: Review) -> pd.DataFrame:
    rows = []
    for i in review.indexes:
        faster = [e for e in i.statements if None not in e.mean_ms]
        rows.append(
            {
                "verdict": i.verdict,
                "index": i.index,
                "table": i.table,
                "target": i.target,
                "datname": i.datname,
                "created": pd.Timestamp(i.created, unit="s"),
                "ours": "suggested by the advisor" if i.ours else "",
                "statements": len(i.statements),
                "reads": "; ".join(f"{e.mean_ms[0]:,.3g} → {e.mean_ms[1]:,.3g} ms" for e in faster[:3]),
                "writes": _pair(i.writes_ms, "ms"),
                "definition": i.definition,
            }
        )
    columns = ["verdict", "index", "table", "target", "datname", "created", "ours", "statements", "reads",
               "writes", "definition"]  # fmt: skip
    return _frame(rows, columns)


def _pair(pair: tuple[float | None, float | None], unit: str) -> str:
    if None in pair:
        return "–"
    return f"{pair[0]:,.3g} → {pair[1]:,.3g} {unit}"


def alerts(review: Review) -> pd.DataFrame:
    rows = [
        {
            "alert": a.name,
            "severity": a.severity,
            "fired": pd.Timestamp(a.fired, unit="s"),
            "resolved": pd.Timestamp(a.resolved, unit="s") if a.resolved else None,
            "firing_s": float(a.firing_s),
            "summary": a.summary,
        }
        for a in review.alerts
    ]
    return _frame(rows, ["alert", "severity", "fired", "resolved", "firing_s", "summary"])


def suggestions(review: Review) -> pd.DataFrame:
    rows = [s._asdict() for s in review.suggestions]
    return _frame(rows, ["target", "datname", "create_sql", "benefit"])


def unused(review: Review) -> pd.DataFrame:
    rows = [u._asdict() for u in review.unused]
    return _frame(rows, ["target", "index", "table", "bytes", "reason"])


def growth(review: Review) -> pd.DataFrame:
    rows = [
        {"target": g.target, "table": g.table, "before": g.bytes[0], "now": g.bytes[1]}
        | {"growth": g.growth_bytes}
        for g in review.growth
    ]
    return _frame(rows, ["target", "table", "before", "now", "growth"])
