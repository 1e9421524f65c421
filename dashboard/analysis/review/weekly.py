"""The weekly review's objectives, service, Redis and PostgreSQL figures, alerts and table growth.

Everything is read at the hourly level while the store keeps the window at that level, else daily
(`_level`): a week's mean or sum is the same at either, and an hour's buckets are 60 times fewer rows
than raw points. A Period is half-open, a store Window inclusive (`_window`).

Objectives (the seed's targets, week by week; `value` None: not measured that week)
----------------------------------------------------------------------------------
- API p95, CPU, memory, error rate, availability: the Prometheus targets' recorded series named
  `api_p95_ms`, `cpu_utilisation`, `memory_utilisation`, `error_ratio` and `availability` (the
  names of the `seed` preset and of the built-in "services" alert rules), scored by
  `slo.scorecard`: the week's value is the mean of its readings, held against the series' own
  target, or the seed's (`prometheus_preset.seed_series`) when the series has none and is recorded
  in the seed's unit. Any other configured series with a target is an objective too, by its name.
- DB query p95 (of statement means): pg_stat_statements keeps no percentiles. What the store does
  keep is each statement's calls and total time, so this is the calls-weighted 95th percentile of
  the week's per-statement mean times: the mean time of the statement whose calls take the
  cumulative share of the week's calls past 95 %, slowest statements last. It is the time 95 % of
  calls stay under *if every call took its statement's mean*: it sees a slow statement among fast
  ones, not the slow calls of a statement that is fast on average (its spread is not stored per
  week). Transaction and session control (BEGIN, COMMIT, SET, SHOW...) is left out: it takes
  microseconds, and its numbers would pull the percentile of a busy server down to that. Target < 100 ms.
- cache hit rate: Redis keyspace hits / (hits + misses) over the week, from the counters' deltas.
  Target > 90 % (objectives.CACHE_HIT_RATE).
- buffer cache hit ratio: PostgreSQL's blks_hit / (blks_hit + blks_read) over the week, every
  database of a target together. Target > 90 % (objectives.BUFFER_HIT_RATIO).

With several sources of one objective (two Prometheus targets, a query returning several label
sets, two Redis nodes), each is its own row, named "API p95 (target, labels)". An objective no
target records has one row per week with value None.

Series changes: per target, the figure over the baseline and over the period; `better` says whether
the change is good news where a figure has a direction (the series' target, or the seed's on a seed
series without one: under a "<" target lower is better; Redis' hit rate and evictions;
PostgreSQL's buffer cache hit ratio), else None (and None when the figure moved less than 1 %,
and for a ratio also less than 0.001: `_better`).
Gauges are the mean of their hourly means; rates are the counters' sums over the time the cycles
covered (store.rates).

Alerts fired: from the alert history, each alert (one rule and label set) firing for some time in
the period (one resolved at the period's start did not): when it first fired in it (the period's
start if it was firing then), its last resolution (None while it still fires at the period's end)
and its firing seconds in the period.
Its summary is the annotation of the alert if it is still active; else the rule's summary template
filled with the labels and the value it fired with (the history keeps no annotations); else its
rule and labels.

Table growth: `pg.table.total_bytes` (the 50 largest tables of each target's database) at the end
of the baseline and at the end of the period (the last hour's mean); a table not read at the end of
the baseline (new, or newly among the 50 largest) is counted from its first reading in the period.
Only tables that grew are listed, the largest growth first.
"""

from __future__ import annotations

import functools
import json
import math
from collections import defaultdict
from collections.abc import Sequence

import pandas as pd

from dashboard.alerts import rules as rules_mod
from dashboard.analysis import alerts as alerts_mod
from dashboard.analysis import objectives as targets_mod
from dashboard.analysis import redis as redis_mod
from dashboard.analysis import services, slo
from dashboard.analysis.reader import Reader
from dashboard.analysis.review.model import AlertFired, Objective, Period, SeriesChange, TableGrowth
from dashboard.analysis.targets import Target
from dashboard.core import metrics
from dashboard.core.config import Series
from dashboard.core.guarded.statement import is_session_control
from dashboard.core.prometheus_preset import seed_series
from dashboard.store.reads import Window

HOUR = 3600
TABLE_TOTAL_BYTES = "pg.table.total_bytes"  # collectors/postgres/health/tables.py, {table}
XACTS = (metrics.PG_DB + "xact_commit", metrics.PG_DB + "xact_rollback")
BLOCKS = (metrics.PG_DB_BLKS_HIT, metrics.PG_DB_BLKS_READ)
LOOKUPS = (metrics.REDIS_KEYSPACE_HITS, metrics.REDIS_KEYSPACE_MISSES)
SEED = seed_series()  # the seed's service targets, as the preset records them
# The objectives in the order the scorecard lists them: key, name; Prometheus ones keyed by series.
OBJECTIVES = (
    ("api_p95_ms", "API p95"),
    ("db", "DB query p95 (of statement means)"),
    ("cache", "cache hit rate"),
    ("buffer", "buffer cache hit ratio"),
    ("cpu_utilisation", "CPU"),
    ("memory_utilisation", "memory"),
    ("error_ratio", "error rate"),
    ("availability", "availability"),
)
NAMES = dict(OBJECTIVES)
DB_P95_TARGET = ("<", 100.0, "ms")
CACHE_TARGET = (">", targets_mod.CACHE_HIT_RATE, "ratio")
BUFFER_TARGET = (">", targets_mod.BUFFER_HIT_RATIO, "ratio")
LOWER_IS_BETTER = {"<": True, "<=": True, ">": False, ">=": False}
SEVERITY_ORDER = {"critical": 0, "warning": 1}


# -- helpers ------------------------------------------------------------------------------------
def _window(period: Period) -> Window:
    return Window(period.start, period.end - 1)  # a Period is half-open, a Window inclusive


def _level(reader: Reader, *periods: Period) -> str:
    """Hourly while the store keeps every period at that level, else daily (reads.choose_level)."""
    window = Window(min(p.start for p in periods), max(p.end for p in periods) - 1)
    return reader.level(window, math.ceil(window.seconds / HOUR) + 1)


def _within(frame: pd.DataFrame, period: Period) -> pd.DataFrame:
    return frame[(frame["ts"] >= period.start) & (frame["ts"] < period.end)]


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _unit(unit: str) -> str:
    """An Objective's unit: "ratio" for every ratio unit (the scorecard shows it in %)."""
    return "ratio" if unit.lower() in slo.RATIO_UNITS else unit


def _named(name: str, sources: int, target: str, labels: str = "") -> str:
    """The objective's name, with its source when it has several: "API p95 (services, job=api)"."""
    if sources <= 1:
        return name
    shown = slo.shown_labels(labels) if labels else ""
    return f"{name} ({target}, {shown})" if shown else f"{name} ({target})"


def _ratio(part: float, other: float) -> float | None:
    whole = part + other
    return part / whole if whole > 0 else None


def _sum(frame: pd.DataFrame, name: str) -> float:
    """A counter's activity over the frame, every label set (0 when absent)."""
    return float(frame.loc[frame["name"] == name, "sum"].sum())


def _has(frame: pd.DataFrame, name: str) -> bool:
    return bool((frame["name"] == name).any())


def _gauge_mean(frame: pd.DataFrame, name: str) -> float | None:
    """A gauge summed over its label sets in each bucket, averaged over the buckets."""
    points = frame[frame["name"] == name]
    if points.empty:
        return None
    per_bucket = (points["sum"] / points["count"].where(points["count"] > 0)).groupby(points["ts"]).sum()
    return _number(float(per_bucket.mean()))


def _weeks(period: Period, weeks: int) -> list[Period]:
    """`weeks` ISO weeks, oldest first, the last the week holding the period's end."""
    found = [Period.week_of(period.end - 1)]
    while len(found) < weeks:
        found.insert(0, found[0].before())
    return found


# -- objectives ---------------------------------------------------------------------------------
def objectives(reader: Reader, period: Period, weeks: int = 8) -> tuple[Objective, ...]:
    """The seed's targets (and every other configured series with a target) per ISO week, for
    `weeks` weeks ending with `period`'s week: week by week, oldest first, in OBJECTIVES' order
    (method: the module's docstring)."""
    found = _weeks(period, weeks)
    level = _level(reader, *found)
    by_key = _service_objectives(reader, found, level)
    by_key["db"] = _db_objectives(reader, found)
    by_key["cache"] = _ratio_objectives(reader, "redis", LOOKUPS, "cache", CACHE_TARGET, found, level)
    by_key["buffer"] = _ratio_objectives(reader, "postgres", BLOCKS, "buffer", BUFFER_TARGET, found, level)
    keys = [key for key, _ in OBJECTIVES] + sorted(k for k in by_key if k not in NAMES)
    ordered = [o for key in keys for o in by_key[key]]
    week_index = {w.label: i for i, w in enumerate(found)}
    return tuple(sorted(ordered, key=lambda o: week_index[o.week]))  # stable: objectives keep their order


def _unmeasured(name: str, target: str, unit: str, weeks: Sequence[Period]) -> list[Objective]:
    return [Objective(name, target, w.label, None, None, unit) for w in weeks]


def _with_seed_targets(configured: dict[str, Series]) -> dict[str, Series]:
    """The seed's target on a seed series that has none of its own, when it is in the seed's unit."""
    out = dict(configured)
    for name, seed in SEED.items():
        mine = out.get(name)
        same_unit = mine is not None and slo.display_scale(mine.unit) == slo.display_scale(seed.unit)
        if mine is not None and mine.slo is None and same_unit:
            out[name] = mine.model_copy(update={"target": seed.target})
    return out


def _service_objectives(reader: Reader, weeks: list[Period], level: str) -> dict[str, list[Objective]]:
    """Every Prometheus series with a target, by series name, per source and week (slo.scorecard)."""
    span = Window(weeks[0].start, weeks[-1].end - 1)
    cells: dict[tuple[str, str, str], dict[str, dict]] = defaultdict(dict)  # (series, target, labels)
    for target in reader.targets("prometheus"):
        configured = _with_seed_targets(services.configured(reader, target))
        frame = reader.series([target], (metrics.PROM_SERIES,), span, level)
        for week in weeks:
            part = _within(frame, week)
            for row in slo.scorecard(part, part, part.iloc[:0], configured).to_dict("records"):
                cells[(row["series"], target.name, row["labels"])][week.label] = row
    # A source is a label set that had readings, or the series itself when it had none at all.
    read = {key for key, by_week in cells.items() if any(r["readings"] for r in by_week.values())}
    series_read = {(s, t) for s, t, _ in read}
    sources = sorted(key for key in cells if key in read or (key[0], key[1]) not in series_read)
    out: dict[str, list[Objective]] = defaultdict(list)
    count = defaultdict(int)
    for name, _, _ in sources:
        count[name] += 1
    for key in sources:
        series, target, labels = key
        any_row = next(iter(cells[key].values()))
        shown = _named(NAMES.get(series, series), count[series], target, labels)
        text = slo.fmt_target(any_row["op"], any_row["threshold"], any_row["unit"])
        for week in weeks:
            row = cells[key].get(week.label)
            value = _number(row["value"]) if row and row["readings"] else None
            met = row["passed"] if value is not None else None
            out[series].append(Objective(shown, text, week.label, value, met, _unit(any_row["unit"])))
    for name, seed in SEED.items():
        if name not in out:
            op, threshold = seed.slo or ("<", math.nan)
            text = slo.fmt_target(op, threshold, seed.unit)
            out[name] = _unmeasured(NAMES[name], text, _unit(seed.unit), weeks)
    return out


def _db_objectives(reader: Reader, weeks: list[Period]) -> list[Objective]:
    """DB query p95 (of statement means) per PostgreSQL target and week."""
    op, threshold, unit = DB_P95_TARGET
    name, text = NAMES["db"], slo.fmt_target(op, threshold, unit)
    targets = reader.targets("postgres")
    if not targets:
        return _unmeasured(name, text, unit, weeks)
    ids = tuple(sorted(t.id for t in targets))
    # Weeks are whole UTC days and the p95 needs only each statement's sums: the daily level holds
    # them in a 24th of the hourly rows (eight weeks of 5,000 statements: seconds saved).
    by_week = {w.label: reader.store.statement_window_totals(ids, _window(w), "daily") for w in weeks}
    out = []
    for target in targets:
        shown = _named(name, len(targets), target.name)
        for week in weeks:
            frame = by_week[week.label]
            value = p95_of_means(planned(frame[frame["target_id"] == target.id]))
            out.append(Objective(shown, text, week.label, value, slo.passes(value, op, threshold), unit))
    return out


def planned(frame: pd.DataFrame) -> pd.DataFrame:
    """The statements that do work, not BEGIN, COMMIT, SET and the like (is_session_control): those
    take microseconds and, by their numbers, would make the percentile of any busy server a few
    microseconds. CALL, COPY, DO and VACUUM stay: they are the database's work too."""
    if frame.empty:
        return frame
    return frame[~frame["query"].map(_utility).astype(bool)]


@functools.lru_cache(maxsize=20_000)
def _utility(text: str | None) -> bool:
    return text is not None and is_session_control(text)


def p95_of_means(frame: pd.DataFrame, q: float = 0.95) -> float | None:
    """The calls-weighted `q` quantile of the statements' mean times (exec_ms / calls): the mean of
    the first statement, fastest first, at which the cumulative calls reach `q` of all calls."""
    frame = frame[frame["calls"] > 0]
    if frame.empty:
        return None
    means = (frame["exec_ms"] / frame["calls"]).to_numpy(dtype=float)
    calls = frame["calls"].to_numpy(dtype=float)
    order = means.argsort(kind="stable")
    cumulative = calls[order].cumsum()
    at = int((cumulative >= q * cumulative[-1] - 1e-9).argmax())
    return float(means[order][at])


def _ratio_objectives(
    reader: Reader,
    kind: str,
    names: tuple[str, str],
    key: str,
    target_spec: tuple[str, float, str],
    weeks: list[Period],
    level: str,
) -> list[Objective]:
    """part / (part + other) of two counters (`names`) over each week, per target of `kind`."""
    op, threshold, unit = target_spec
    name, text = NAMES[key], slo.fmt_target(op, threshold, unit)
    targets = reader.targets(kind)
    if not targets:
        return _unmeasured(name, text, unit, weeks)
    frame = reader.series(targets, names, Window(weeks[0].start, weeks[-1].end - 1), level)
    out = []
    for target in targets:
        mine = frame[frame["target_id"] == target.id]
        shown = _named(name, len(targets), target.name)
        for week in weeks:
            part = _within(mine, week)
            value = _ratio(_sum(part, names[0]), _sum(part, names[1]))
            out.append(Objective(shown, text, week.label, value, slo.passes(value, op, threshold), unit))
    return out


# -- series changes -----------------------------------------------------------------------------
def series_changes(
    reader: Reader, targets: Sequence[Target], period: Period, baseline: Period
) -> tuple[SeriesChange, ...]:
    """Each Prometheus target's configured series, each Redis node's hit rate, ops/s, used memory
    and evictions, each PostgreSQL target's buffer cache hit ratio, transactions/s and connections:
    over the baseline and over the period. Prometheus first, then Redis, then PostgreSQL."""
    level = _level(reader, period, baseline)
    found: list[SeriesChange] = []
    parts = (("prometheus", _service_changes), ("redis", _redis_changes), ("postgres", _pg_changes))
    for kind, figures in parts:
        for target in sorted((t for t in targets if t.kind == kind), key=lambda t: t.name):
            found += figures(reader, target, period, baseline, level)
    return tuple(found)


def _better(baseline: float | None, value: float | None, lower_is_better: bool | None) -> bool | None:
    """Whether the value is better than the baseline; None without a direction, a figure, or a
    change: a move under 1 % of the baseline, and for ratios (both in 0..1) also under 0.001,
    since a hit ratio's 0.990 -> 0.985 is under 1 % yet half as many misses again."""
    if lower_is_better is None or baseline is None or value is None:
        return None
    moved = abs(value - baseline)
    ratios = min(baseline, value) >= 0.0 and max(baseline, value) <= 1.0
    if moved == 0 or (moved < 0.01 * abs(baseline) and (not ratios or moved < 0.001)):
        return None
    return (value < baseline) if lower_is_better else (value > baseline)


def _change(kind: str, target: Target, name: str, unit: str, pair: tuple, lower: bool | None) -> SeriesChange:
    before, after = (_number(v) for v in pair)
    return SeriesChange(kind, target.name, name, unit, before, after, _better(before, after, lower))


def _service_changes(
    reader: Reader, target: Target, period: Period, baseline: Period, level: str
) -> list[SeriesChange]:
    configured = _with_seed_targets(services.configured(reader, target))
    means = []
    for p in (baseline, period):
        points = slo.readings(reader.series([target], (metrics.PROM_SERIES,), _window(p), level))
        sums = points.groupby(["series", "labels"])[["sum", "count"]].sum()
        means.append({key: r["sum"] / r["count"] for key, r in sums.iterrows() if r["count"] > 0})
    out = []
    for name, series in sorted(configured.items()):
        labelsets = sorted({labels for s, labels in (*means[0], *means[1]) if s == name}) or [""]
        lower = LOWER_IS_BETTER[series.slo[0]] if series.slo else None
        for labels in labelsets:
            shown = f"{name} ({slo.shown_labels(labels)})" if labels else name
            pair = (means[0].get((name, labels)), means[1].get((name, labels)))
            out.append(_change("prometheus", target, shown, series.unit, pair, lower))
    return out


def _redis_changes(
    reader: Reader, target: Target, period: Period, baseline: Period, level: str
) -> list[SeriesChange]:
    names = (*LOOKUPS, metrics.REDIS_OPS, metrics.REDIS_MEMORY_USED_BYTES, metrics.REDIS_KEYS_EVICTED)
    figures = []
    for p in (baseline, period):
        frame = reader.series([target], names, _window(p), level)
        node = redis_mod.node_figures(frame)
        evicted = node.evicted if _has(frame, metrics.REDIS_KEYS_EVICTED) else None
        figures.append(
            (node.hit_rate, node.ops_per_s, _gauge_mean(frame, metrics.REDIS_MEMORY_USED_BYTES), evicted)
        )
    rows = (("hit rate", "ratio", False), ("ops/s", "ops/s", None), ("used memory", "bytes", None),
            ("evictions", "keys", True))  # fmt: skip
    return [
        _change("redis", target, name, unit, (figures[0][i], figures[1][i]), lower)
        for i, (name, unit, lower) in enumerate(rows)
    ]


def _pg_changes(
    reader: Reader, target: Target, period: Period, baseline: Period, level: str
) -> list[SeriesChange]:
    figures = []
    for p in (baseline, period):
        frame = reader.series([target], (*BLOCKS, *XACTS, metrics.PG_CONNECTIONS), _window(p), level)
        seconds = redis_mod.covered_seconds(frame, XACTS[0])
        xacts = _sum(frame, XACTS[0]) + _sum(frame, XACTS[1])
        tps = xacts / seconds if seconds > 0 and _has(frame, XACTS[0]) else None
        hit = _ratio(_sum(frame, BLOCKS[0]), _sum(frame, BLOCKS[1]))
        figures.append((hit, tps, _gauge_mean(frame, metrics.PG_CONNECTIONS)))
    rows = (("buffer cache hit ratio", "ratio", False), ("transactions/s", "tx/s", None),
            ("connections", "", None))  # fmt: skip
    return [
        _change("postgres", target, name, unit, (figures[0][i], figures[1][i]), lower)
        for i, (name, unit, lower) in enumerate(rows)
    ]


# -- alerts -------------------------------------------------------------------------------------
def alerts_fired(reader: Reader, period: Period) -> tuple[AlertFired, ...]:
    """Every alert firing at some moment of the period (module docstring), critical first, then the
    longest firing."""
    end = int(min(period.end, max(reader.now(), period.start)))
    before = reader.store.alert_states(period.start)
    events = reader.store.alert_history(_window(period))
    firing_at_start = before[before["state"] == "firing"]
    spans: dict[str, list[list[int | None]]] = {}  # fingerprint -> [fired, resolved or None]
    last: dict[str, tuple[str, dict, float]] = {}  # fingerprint -> rule, labels, value it fired with
    for r in firing_at_start.itertuples():
        spans[r.fingerprint] = [[period.start, None]]
        last[r.fingerprint] = (str(r.rule), _labels(r.labels), _value(r.value))
    for r in events.itertuples():
        found = spans.setdefault(r.fingerprint, [])
        open_ = bool(found) and found[-1][1] is None
        if r.state == "firing" and not open_:
            found.append([int(r.ts), None])
            last[r.fingerprint] = (str(r.rule), _labels(r.labels), _value(r.value))
        elif r.state == "resolved" and open_:
            found[-1][1] = int(r.ts)
    summaries = _Summaries(reader)
    out = []
    for fp, spells in spans.items():
        found = [s for s in spells if (s[1] if s[1] is not None else end) > s[0]]  # no time: not fired
        if not found:
            continue
        rule, labels, value = last[fp]
        seconds = sum((stop if stop is not None else end) - start for start, stop in found)
        resolved = found[-1][1]
        out.append(
            AlertFired(
                name=rule,
                severity=labels.get("severity", ""),
                summary=summaries.of(fp, rule, labels, value),
                fired=int(found[0][0]),
                resolved=int(resolved) if resolved is not None else None,
                firing_s=int(max(seconds, 0)),
            )
        )
    out.sort(key=lambda a: (SEVERITY_ORDER.get(a.severity, 2), -a.firing_s, a.fired, a.name))
    return tuple(out)


def _labels(text: object) -> dict[str, str]:
    try:
        found = json.loads(str(text))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _value(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


class _Summaries:
    """An alert's summary: its annotation while active, else its rule's template filled in, else
    its rule and labels. The rules are loaded once, when first needed."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._active = {a.fingerprint: a for a in reader.store.alerts()}
        self._templates: dict[str, str] | None = None

    def of(self, fingerprint: str, rule: str, labels: dict[str, str], value: float) -> str:
        alert = self._active.get(fingerprint)
        if alert is not None and alert.annotations.get("summary"):
            return alert.annotations["summary"]
        template = self._rule_templates().get(rule)
        if template:
            return rules_mod.render(template, labels, value)
        shown = alerts_mod.labels_text(labels, skip=("alertname", "severity"))
        return f"{rule} ({shown})" if shown else rule

    def _rule_templates(self) -> dict[str, str]:
        if self._templates is None:
            try:
                found, _ = alerts_mod.loaded_rules(self._reader.config)
            except Exception:  # a rule file that cannot be read now: the labels still say what fired
                found = []
            self._templates = {r.name: r.annotations.get("summary", "") for r in found}
        return self._templates


# -- table growth -------------------------------------------------------------------------------
def growth(
    reader: Reader, targets: Sequence[Target], period: Period, baseline: Period, top: int = 10
) -> tuple[TableGrowth, ...]:
    """The `top` tables that grew the most in bytes between the end of the baseline and the end of
    the period (module docstring), the largest growth first."""
    pg = [t for t in targets if t.kind == "postgres"]
    if not pg:
        return ()
    level = _level(reader, period, baseline)
    names = {t.id: t.name for t in pg}
    before = _sizes(reader.series(pg, (TABLE_TOTAL_BYTES,), _window(baseline), level))
    after = _sizes(reader.series(pg, (TABLE_TOTAL_BYTES,), _window(period), level))
    rows = []
    for key, (first, last) in after.items():
        then = before[key][1] if key in before else None
        grew = last - (then if then is not None else first)
        if grew > 0:
            target_id, table = key
            rows.append(TableGrowth(names[target_id], table, (then, last), grew))
    rows.sort(key=lambda g: (-g.growth_bytes, g.target, g.table))
    return tuple(rows[:top])


def _sizes(frame: pd.DataFrame) -> dict[tuple[int, str], tuple[float, float]]:
    """(target id, table) -> (first, last) bucket mean of the frame."""
    if frame.empty:
        return {}
    frame = frame.assign(value=frame["sum"] / frame["count"].where(frame["count"] > 0))
    frame = frame.dropna(subset=["value"])
    out = {}
    for (target_id, labels), points in frame.sort_values("ts").groupby(["target_id", "labels"]):
        table = metrics.decode(labels).get("table", labels)
        out[(int(target_id), table)] = (float(points["value"].iloc[0]), float(points["value"].iloc[-1]))
    return out
