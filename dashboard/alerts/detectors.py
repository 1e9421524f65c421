"""Derived series that are tests rather than readings: error-budget burn rates and statements that
became slower than their own past.

**Burn rates** (`slo.burn_rate_fast`, `slo.burn_rate_slow`), for every Prometheus series that has a
target (`series: {target: "< 200"}`, the seed preset's five). The budget is what the target allows
to go wrong, as the series' `budget` says: `value` for a series that is itself the share that went
wrong (`error_ratio < 0.001`: bad = the ratio, budget 0.001; `availability >= 0.999`: bad = 1 -
availability, budget 0.001), `readings` for any other (latency, CPU, memory): the share of readings
that missed the target against `READINGS_BUDGET` (1 %). A window counts only once the readings
cover `COVERED` of it: a new target, or one back from a gap, is not paged on a few readings.
Burn rate = bad / budget: 1 spends the budget exactly over the SLO period,
14.4 spends a 30-day budget's 2 % in an hour. As Google's SRE workbook's multi-window alerts:
`burn_rate_fast` is the lower of the 1 h and 5 min burn rates (both over 14.4 pages someone),
`burn_rate_slow` the lower of the 6 h and 30 min ones (both over 6 opens a ticket); the short window
makes the alert stop soon after the burning does.

**Slowdown** (`pg.statement.slowdown`): a statement's level over the rule's window (15 min by
default: the median of its cycles' mean times, so one slow call moves one cycle and not the level)
against its own baseline, the whole hours of the 24 hours before the window. It is reported only
when the change is both large and not noise: at least `MIN_CALLS` calls in the window and
`MIN_HOURS` hours of baseline with calls, the level at least 1.5x the baseline mean, and above the
baseline mean plus three standard deviations of its hourly means. The value is level / baseline.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import NamedTuple

from sqlalchemy import Engine, func, select

from dashboard.alerts.sample import Sample
from dashboard.core import metrics
from dashboard.store.schema import BUCKET_SECONDS, STMT, points_raw, series, statements, targets

READINGS_BUDGET = 0.01  # for a threshold target: 99 % of readings should meet it
COVERED = 0.9  # of a window, from its first reading to its end
FAST, SLOW = (3600, 300), (6 * 3600, 1800)
MIN_CALLS, MIN_HOURS, MIN_RATIO, SIGMAS = 20, 3, 1.5, 3.0
BASELINE = 24 * 3600
_DEFAULT_WINDOW = 900.0


class Slo(NamedTuple):
    op: str
    threshold: float
    budget: str  # readings | value (config.Series.budget)


Slos = dict[str, dict[str, Slo]]  # Prometheus target -> series name -> its objective


def _passes(value: float, op: str, threshold: float) -> bool:
    return {
        "<": value < threshold,
        "<=": value <= threshold,
        ">": value > threshold,
        ">=": value >= threshold,
    }[op]


def _bad_and_budget(values: list[float], slo: Slo) -> tuple[float, float]:
    """(how much went wrong, how much may) over readings of one series in a window."""
    if slo.budget == "value":
        mean = sum(values) / len(values)
        if slo.op in ("<", "<="):  # an error ratio: the ratio is what went wrong
            return mean, slo.threshold
        return 1 - mean, 1 - slo.threshold  # availability: the downtime is what went wrong
    missed = sum(not _passes(v, slo.op, slo.threshold) for v in values)
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
            if not values or points[0][0] > until - COVERED * window:  # too little of the window yet
                break
            bad, budget = _bad_and_budget(values, spec)
            rates.append(bad / budget)
        if len(rates) == len(windows):
            own = {"target": target, "kind": "prometheus", "series": labels.pop("name"), **labels}
            found.append(Sample({**own, "objective": f"{spec.op} {spec.threshold:g}"}, min(rates)))
    return found


def slowdowns(engine: Engine, until: int, window: float | None) -> list[Sample]:
    """Statements whose recent level is markedly and significantly above their own baseline."""
    window = window or _DEFAULT_WINDOW
    recent = _cycle_means(engine, until - window, until)
    baseline = _hourly_means(engine, until - window - BASELINE, until - window)
    found = []
    for sid, (labels, calls, means) in recent.items():
        hours = baseline.get(sid, [])
        if calls < MIN_CALLS or len(hours) < MIN_HOURS:
            continue
        base_mean = sum(m for _, m in hours) / sum(c for c, _ in hours)
        hourly = [m / c for c, m in hours]
        spread = math.sqrt(sum((x - base_mean) ** 2 for x in hourly) / (len(hourly) - 1))
        level = statistics.median(means)  # one slow call (a lock wait) moves one cycle, not the median
        if base_mean > 0 and level >= MIN_RATIO * base_mean and level > base_mean + SIGMAS * spread:
            found.append(Sample(labels, level / base_mean))
    return found


def statement_sums(
    engine: Engine, level: str, since: float, until: float
) -> dict[int, tuple[dict, float, float]]:
    """Per statement id: its labels (target, queryid, datname, statement_id), calls and exec ms."""
    out: dict[int, tuple[dict, float, float]] = {}
    for sid, labels, _, calls, ms in _statement_rows(engine, level, since, until, by_cycle=False):
        out[sid] = (labels, calls, ms)
    return out


def _cycle_means(engine: Engine, since: float, until: float) -> dict[int, tuple[dict, float, list[float]]]:
    """Per statement id: its labels, calls in the window, and the mean time of each cycle it ran in."""
    out: dict[int, tuple[dict, float, list[float]]] = {}
    for sid, labels, _, calls, ms in _statement_rows(engine, "raw", since, until, by_cycle=True):
        if calls <= 0:
            continue
        _, total, means = out.setdefault(sid, (labels, 0.0, []))
        means.append(ms / calls)
        out[sid] = (labels, total + calls, means)
    return out


def _statement_rows(engine: Engine, level: str, since: float, until: float, by_cycle: bool) -> list[tuple]:
    """(statement id, labels, ts or None, calls, exec ms) summed per statement (and cycle). Read one
    target at a time, by the level's primary key (target_id, ts, ...): grouped by statement over all
    targets, SQLite scans the whole table through the statement index (1 s on 2 days of 5,000)."""
    table = STMT[level]
    keys = [table.c.statement_id, statements.c.queryid, statements.c.datname]
    keys += [table.c.ts] if by_cycle else []
    found = []
    with engine.connect() as conn:
        postgres = conn.execute(
            select(targets.c.id, targets.c.name).where(targets.c.kind == "postgres")
        ).all()
        for tid, target in postgres:
            query = (
                select(*keys, func.sum(table.c.calls), func.sum(table.c.exec_ms))
                .select_from(table)
                .join(statements, statements.c.id == table.c.statement_id)
                .where(table.c.target_id == tid, table.c.ts > since, table.c.ts <= until)
                .group_by(*keys)
            )
            for row in conn.execute(query):
                sid, queryid, datname = row[:3]
                labels = {"target": target, "kind": "postgres", "statement_id": str(sid),
                          "queryid": str(queryid), "datname": datname or ""}  # fmt: skip
                ts = row[3] if by_cycle else None
                found.append((sid, labels, ts, float(row[-2] or 0), float(row[-1] or 0)))
    return found


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
