"""Derived series that are tests rather than readings: error-budget burn rates and statements that
became slower than their own past.

**Burn rates** (`slo.burn_rate_fast`, `slo.burn_rate_slow`), for every Prometheus series that has a
target (`series: {target: "< 200"}`, the seed preset's five). The budget is what the target allows
to go wrong: for a ratio whose target is the budget itself (`error_ratio < 0.001`: bad = the
ratio; `availability >= 0.999`: bad = 1 - availability) the mean over the window against that
budget; for any other target (latency, CPU, memory) the share of readings that missed it against
`READINGS_BUDGET` (1 %). Burn rate = bad / budget: 1 spends the budget exactly over the SLO period,
14.4 spends a 30-day budget's 2 % in an hour. As Google's SRE workbook's multi-window alerts:
`burn_rate_fast` is the lower of the 1 h and 5 min burn rates (both over 14.4 pages someone),
`burn_rate_slow` the lower of the 6 h and 30 min ones (both over 6 opens a ticket); the short window
makes the alert stop soon after the burning does.

**Slowdown** (`pg.statement.slowdown`): a statement's mean time over the rule's window (15 min by
default) against its own baseline, the 24 hours before the window (hourly buckets). It is reported
only when the change is both large and not noise: at least `MIN_CALLS` calls in the window and
`MIN_HOURS` hours of baseline with calls, the recent mean at least 1.5x the baseline mean, and above
the baseline mean plus three standard deviations of its hourly means. The value is recent / baseline.
"""

from __future__ import annotations

import math
from collections import defaultdict

from sqlalchemy import Engine, func, select

from dashboard.alerts.sample import Sample
from dashboard.core import metrics
from dashboard.store.schema import BUCKET_SECONDS, STMT, points_raw, series, statements, targets

READINGS_BUDGET = 0.01  # for a threshold target: 99 % of readings should meet it
FAST, SLOW = (3600, 300), (6 * 3600, 1800)
MIN_CALLS, MIN_HOURS, MIN_RATIO, SIGMAS = 20, 3, 1.5, 3.0
BASELINE = 24 * 3600
_DEFAULT_WINDOW = 900.0


Slos = dict[str, dict[str, tuple[str, float]]]  # Prometheus target -> series name -> (op, threshold)


def _passes(value: float, op: str, threshold: float) -> bool:
    return {
        "<": value < threshold,
        "<=": value <= threshold,
        ">": value > threshold,
        ">=": value >= threshold,
    }[op]


def _bad_and_budget(values: list[float], op: str, threshold: float) -> tuple[float, float]:
    """(how much went wrong, how much may) over readings of one series in a window."""
    mean = sum(values) / len(values)
    if op in ("<", "<=") and 0 < threshold < 1:  # a ratio whose target is its budget (error ratio)
        return mean, threshold
    if op in (">", ">=") and 0 < threshold < 1:  # a ratio that should stay high (availability)
        return 1 - mean, 1 - threshold
    missed = sum(not _passes(v, op, threshold) for v in values)
    return missed / len(values), READINGS_BUDGET


def _readings(engine: Engine, since: float, until: int) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """`prom.series` readings per (target, stored labels) in the window."""
    query = (
        select(targets.c.name, series.c.labels, points_raw.c.ts, points_raw.c.value)
        .select_from(points_raw)
        .join(series, series.c.id == points_raw.c.series_id)
        .join(targets, targets.c.id == series.c.target_id)
        .where(series.c.name == "prom.series", points_raw.c.ts > since, points_raw.c.ts <= until)
        .order_by(points_raw.c.ts)
    )
    out: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    with engine.connect() as conn:
        for target, labels, ts, value in conn.execute(query):
            out[(target, labels)].append((ts, value))
    return out


def burn_rates(engine: Engine, until: int, slos: Slos, windows: tuple[int, int]) -> list[Sample]:
    """The lower of the long and short windows' burn rates, per series that has a target."""
    readings = _readings(engine, until - windows[0], until)
    found = []
    for (target, stored), points in readings.items():
        labels = metrics.decode(stored)
        spec = slos.get(target, {}).get(labels.get("name", ""))
        if spec is None:
            continue
        rates = []
        for window in windows:
            values = [v for ts, v in points if ts > until - window]
            if not values:
                break
            bad, budget = _bad_and_budget(values, *spec)
            rates.append(bad / budget)
        if len(rates) == len(windows):
            op, threshold = spec
            own = {"target": target, "kind": "prometheus", "series": labels.pop("name"), **labels}
            found.append(Sample({**own, "objective": f"{op} {threshold:g}"}, min(rates)))
    return found


def slowdowns(engine: Engine, until: int, window: float | None) -> list[Sample]:
    """Statements whose recent mean time is markedly and significantly above their own baseline."""
    window = window or _DEFAULT_WINDOW
    recent = statement_sums(engine, "raw", until - window, until)
    baseline = _hourly_means(engine, until - window - BASELINE, until - window)
    found = []
    for sid, (labels, calls, ms) in recent.items():
        hours = baseline.get(sid, [])
        if calls < MIN_CALLS or len(hours) < MIN_HOURS:
            continue
        base_calls = sum(c for c, _ in hours)
        base_mean = sum(m for _, m in hours) / base_calls
        means = [m / c for c, m in hours]
        spread = math.sqrt(sum((x - base_mean) ** 2 for x in means) / (len(means) - 1))
        now_mean = ms / calls
        if base_mean > 0 and now_mean >= MIN_RATIO * base_mean and now_mean > base_mean + SIGMAS * spread:
            found.append(Sample(labels, now_mean / base_mean))
    return found


def statement_sums(
    engine: Engine, level: str, since: float, until: float
) -> dict[int, tuple[dict, float, float]]:
    table = STMT[level]
    query = (
        select(
            table.c.statement_id,
            targets.c.name,
            statements.c.queryid,
            statements.c.datname,
            func.sum(table.c.calls),
            func.sum(table.c.exec_ms),
        )
        .select_from(table)
        .join(statements, statements.c.id == table.c.statement_id)
        .join(targets, targets.c.id == statements.c.target_id)
        .where(table.c.ts > since, table.c.ts <= until)
        .group_by(table.c.statement_id, targets.c.name, statements.c.queryid, statements.c.datname)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return {
        sid: (
            {
                "target": t,
                "kind": "postgres",
                "statement_id": str(sid),
                "queryid": str(q),
                "datname": d or "",
            },
            float(calls or 0),
            float(ms or 0),
        )
        for sid, t, q, d, calls, ms in rows
    }


def _hourly_means(engine: Engine, since: float, until: float) -> dict[int, list[tuple[float, float]]]:
    """Per statement: (calls, exec ms) of each hour of the baseline that had calls."""
    table = STMT["hourly"]
    hour = BUCKET_SECONDS["hourly"]
    query = select(table.c.statement_id, table.c.calls, table.c.exec_ms).where(  # whole hours only:
        table.c.ts >= since,
        table.c.ts + hour <= until,
        table.c.calls > 0,  # none holds the window's calls
    )
    out: dict[int, list[tuple[float, float]]] = defaultdict(list)
    with engine.connect() as conn:
        for sid, calls, ms in conn.execute(query):
            out[sid].append((float(calls), float(ms)))
    return out
