"""Values of a `source: store` expression now: one per label set, read from the store.

A selector names a series as the store keeps it, or a derived one:

| derived series | from | value |
|---|---|---|
| `redis.hit_rate` | `redis.keyspace.hits`, `.misses` | hits / (hits + misses), 0-1 |
| `pg.cache_hit_ratio` | `pg.db.blks_hit`, `.blks_read` (per `datname`) | hit / (hit + read), 0-1 |
| `pg.connections.used_ratio` | `pg.connections` (all states), `pg.connections.max` | 0-1 |
| `pg.checkpoints.requested_ratio` | `pg.checkpoints.requested`, `.timed` | requested / all (if 2+), 0-1 |
| `pg.statement.mean_ms` | pg_stat_statements deltas (per `queryid`, `datname`) | exec ms / calls |
| `pg.statement.calls_per_s` | the same | calls / s |
| `queue.failed_per_min` | `redis.queue.failed` (per `lib`, `queue`) | failed jobs / min |
| `queue.depth` | `redis.queue.depth` (all states but completed and failed) | jobs |
| `queue.oldest_age_s` | `redis.queue.oldest_age_s` | s |
| `target.up` | the collector's status | 1, or 0 when down |
| `target.stale_s` | the collector's status | seconds since its last successful cycle |
| `target.lateness` | the same, and the configured interval | that time in intervals (1: on time) |
| `slo.burn_rate_fast`, `_slow` | `prom.series` and their targets | error-budget burn rate (detectors.py) |
| `pg.statement.slowdown` | a statement's mean time, now and before | recent / baseline, if significant |

Without a function the value is the last one of the last `LOOKBACK` seconds (a ratio: of the last
cycle's counts; a per-second or per-minute figure: over that lookback). `avg_over`, `max_over`,
`min_over` take the points of their window, `delta` the last less the first; `rate` divides a
counter's increase over its window by the window's seconds
(counters are stored as deltas). Ratios and per-second figures are read over the function's window
whatever the function; `queue.depth` and `queue.oldest_age_s` are points like any series. Every
value carries the labels `target` and `kind` (postgres, redis, prometheus) with the series' own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import NamedTuple

from sqlalchemy import Engine, select

from dashboard.alerts import detectors
from dashboard.alerts.detectors import Slos
from dashboard.alerts.expr import Expr, Selector
from dashboard.alerts.sample import Sample
from dashboard.core import metrics
from dashboard.store.schema import points_raw, series, target_status, targets

LOOKBACK = 600.0  # "now": the last point no older than this (a few cycles of any target)
_QUEUE_DONE = {"completed", "failed"}
MIN_REQUESTED_CHECKPOINTS = 2  # pg.checkpoints.requested_ratio: fewer requested in its window is no ratio


class Known(NamedTuple):
    """What the configuration says that the store does not: the Prometheus series' targets (burn
    rates) and each target's interval, by "kind/name" (lateness)."""

    slos: Slos
    intervals: dict[str, float]


NOTHING_KNOWN = Known({}, {})


class Span(NamedTuple):
    """What a derived series is read over."""

    engine: Engine
    since: float
    until: int
    last: bool  # no function: the last cycle (ratios)
    window: float | None  # the function's window, if any
    known: Known


class Points(NamedTuple):
    labels: dict[str, str]
    points: list[tuple[int, float]]  # (ts, value), oldest first
    counter: bool


def evaluate(engine: Engine, expr: Expr, now: int, known: Known = NOTHING_KNOWN) -> list[Sample]:
    """The expression's operand now, one sample per label set (the comparison is the caller's)."""
    window = expr.window or LOOKBACK
    since = now - window
    derived = DERIVED.get(expr.selector.name)
    if derived is not None:
        read = derived(Span(engine, since, now, expr.function is None, expr.window, known))
    else:
        read = _stored(engine, expr.selector.name, since, now)
    found = [_reduce(r, expr.function, window) if isinstance(r, Points) else r for r in read]
    return [s for s in found if s is not None and _matches(s.labels, expr.selector)]


def stored_names(engine: Engine) -> set[str]:
    """Every series name the store holds (of any target)."""
    with engine.connect() as conn:
        return {name for (name,) in conn.execute(select(series.c.name).distinct())}


def _matches(labels: dict[str, str], selector: Selector) -> bool:
    return all((labels.get(m.label) == m.value) == m.equal for m in selector.matchers)


def _reduce(p: Points, function: str | None, window: float) -> Sample | None:
    values = [v for _, v in p.points]
    if not values:
        return None
    if function == "rate" or (p.counter and function is None):
        return Sample(p.labels, sum(values) / window)
    reduce: Callable[[list[float]], float] = {
        None: lambda v: v[-1],
        "delta": lambda v: v[-1] - v[0],
        "avg_over": lambda v: sum(v) / len(v),
        "max_over": max,
        "min_over": min,
    }[function]
    return Sample(p.labels, reduce(values))


def _stored(engine: Engine, name: str, since: float, until: int) -> list[Points]:
    """Every series of that name, of every target, with its raw points in (since, until]."""
    query = (
        select(
            targets.c.name,
            targets.c.kind,
            series.c.labels,
            series.c.kind,
            points_raw.c.ts,
            points_raw.c.value,
        )
        .join(series, series.c.target_id == targets.c.id)
        .join(points_raw, points_raw.c.series_id == series.c.id)
        .where(series.c.name == name, points_raw.c.ts > since, points_raw.c.ts <= until)
        .order_by(points_raw.c.ts)
    )
    grouped: dict[tuple[str, str, str], Points] = {}
    with engine.connect() as conn:
        for target, kind, labels, series_kind, ts, value in conn.execute(query):
            key = (target, kind, labels)
            if key not in grouped:
                own = {"target": target, "kind": kind, **metrics.decode(labels)}
                grouped[key] = Points(own, [], series_kind == "counter")
            grouped[key].points.append((ts, value))
    return list(grouped.values())


def _totals(span: Span, name: str) -> dict[tuple, float]:
    """Sum of a series' points in the span (without a function: its last point), per label set."""
    out: dict[tuple, float] = defaultdict(float)
    for p in _stored(span.engine, name, span.since, span.until):
        kept = p.points[-1:] if span.last else p.points
        out[tuple(sorted(p.labels.items()))] += sum(v for _, v in kept)
    return out


def _ratio(part: dict, other: dict) -> list[Sample]:
    """part / (part + other), per label set, where there was anything to count."""
    found = []
    for key, value in part.items():
        total = value + other.get(key, 0.0)
        if total > 0:
            found.append(Sample(dict(key), value / total))
    return found


def _redis_hit_rate(span: Span) -> list[Sample]:
    return _ratio(_totals(span, "redis.keyspace.hits"), _totals(span, "redis.keyspace.misses"))


def _pg_cache_hit_ratio(span: Span) -> list[Sample]:
    return _ratio(_totals(span, "pg.db.blks_hit"), _totals(span, "pg.db.blks_read"))


def _pg_checkpoints_requested_ratio(span: Span) -> list[Sample]:
    """Checkpoints requested (max_wal_size reached, CHECKPOINT, a base backup) among all of them,
    where at least MIN_REQUESTED_CHECKPOINTS were requested: one CHECKPOINT or base backup is no
    pattern, and on a server whose checkpoint_timeout is an hour or more it would be all of them."""
    requested = {
        k: v
        for k, v in _totals(span, metrics.PG_CHECKPOINTS_REQUESTED).items()
        if v >= MIN_REQUESTED_CHECKPOINTS
    }
    return _ratio(requested, _totals(span, metrics.PG_CHECKPOINTS_TIMED))


def _last_per_target(span: Span, name: str) -> dict[str, tuple[dict, float]]:
    """Per target: the sum over label sets of each series' last value (e.g. connections in all states)."""
    out: dict[str, tuple[dict, float]] = {}
    for p in _stored(span.engine, name, span.since, span.until):
        base = {"target": p.labels["target"], "kind": p.labels["kind"]}
        value = p.points[-1][1] if p.points else 0.0
        out[base["target"]] = (base, out.get(base["target"], (base, 0.0))[1] + value)
    return out


def _pg_connections_used_ratio(span: Span) -> list[Sample]:
    used, limit = _last_per_target(span, "pg.connections"), _last_per_target(span, "pg.connections.max")
    return [
        Sample(labels, value / limit[t][1])
        for t, (labels, value) in used.items()
        if t in limit and limit[t][1] > 0
    ]


def _pg_statement_mean_ms(span: Span) -> list[Sample]:
    totals = detectors.statement_sums(span.engine, "raw", span.since, span.until)
    return [Sample(labels, ms / calls) for labels, calls, ms in totals.values() if calls > 0]


def _pg_statement_calls_per_s(span: Span) -> list[Sample]:
    totals = detectors.statement_sums(span.engine, "raw", span.since, span.until)
    seconds = max(span.until - span.since, 1.0)
    return [Sample(labels, calls / seconds) for labels, calls, _ in totals.values()]


def _queue_failed_per_min(span: Span) -> list[Sample]:
    minutes = max(span.until - span.since, 1.0) / 60
    whole = span._replace(last=False)  # failures over the whole span, not its last cycle
    return [Sample(dict(k), v / minutes) for k, v in _totals(whole, "redis.queue.failed").items()]


def _queue_depth(span: Span) -> list[Points]:
    """Jobs not done yet (every state but completed and failed), per queue, at each cycle."""
    out: dict[tuple, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for p in _stored(span.engine, "redis.queue.depth", span.since, span.until):
        if p.labels.get("state") not in _QUEUE_DONE:
            labels = {k: v for k, v in p.labels.items() if k != "state"}
            for ts, value in p.points:
                out[tuple(sorted(labels.items()))][ts] += value
    return [Points(dict(k), sorted(by_ts.items()), False) for k, by_ts in out.items()]


def _queue_oldest_age_s(span: Span) -> list[Points]:
    return _stored(span.engine, "redis.queue.oldest_age_s", span.since, span.until)


def _statuses(span: Span) -> list[tuple[str, str, str, int | None]]:
    query = select(targets.c.name, targets.c.kind, target_status.c.state, target_status.c.last_success).join(
        target_status, target_status.c.target_id == targets.c.id
    )
    with span.engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(query)]
    configured = span.known.intervals  # a target taken out of the configuration is no longer watched
    return [r for r in rows if not configured or f"{r[1]}/{r[0]}" in configured]


def _target_up(span: Span) -> list[Sample]:
    return [
        Sample({"target": t, "kind": k}, 0.0 if state == "down" else 1.0)
        for t, k, state, _ in _statuses(span)
    ]


def _target_lateness(span: Span) -> list[Sample]:
    """Seconds since the last successful cycle, in the target's intervals (1: on time)."""
    found = []
    for t, k, _, last in _statuses(span):
        interval = span.known.intervals.get(f"{k}/{t}")
        if last is not None and interval:
            found.append(Sample({"target": t, "kind": k}, (span.until - last) / interval))
    return found


def _target_stale_s(span: Span) -> list[Sample]:
    return [
        Sample({"target": t, "kind": k}, float(span.until - last))
        for t, k, _, last in _statuses(span)
        if last is not None
    ]


# The functions a derived series takes. Those read over a window take avg_over(window, ...) to set it;
# those that are a state now (a target's, a ratio of the last readings) take none; queue.depth and
# queue.oldest_age_s are points and take any.
_OVER_A_WINDOW = {"redis.hit_rate", "pg.cache_hit_ratio", "pg.checkpoints.requested_ratio",
                  "pg.statement.mean_ms", "pg.statement.calls_per_s", "pg.statement.slowdown",
                  "queue.failed_per_min"}  # fmt: skip
_NOW_ONLY = {"pg.connections.used_ratio", "target.up", "target.stale_s", "target.lateness",
             "slo.burn_rate_fast", "slo.burn_rate_slow"}  # fmt: skip


def unfit_function(expr: Expr) -> str | None:
    """Why the expression's function does not apply to its series (None when it does)."""
    name, function = expr.selector.name, expr.function
    if function is None or name not in DERIVED or name not in _OVER_A_WINDOW | _NOW_ONLY:
        return None
    if name in _NOW_ONLY:
        return f"{name} is a value now: it takes no function (write `{name} ...` alone)"
    if function != "avg_over":
        return f"{name} is read over a window: only avg_over(window, {name}) sets it"
    return None


DERIVED: dict[str, Callable[[Span], list[Sample] | list[Points]]] = {
    "redis.hit_rate": _redis_hit_rate,
    "pg.cache_hit_ratio": _pg_cache_hit_ratio,
    "pg.connections.used_ratio": _pg_connections_used_ratio,
    "pg.checkpoints.requested_ratio": _pg_checkpoints_requested_ratio,
    "pg.statement.mean_ms": _pg_statement_mean_ms,
    "pg.statement.calls_per_s": _pg_statement_calls_per_s,
    "pg.statement.slowdown": lambda span: detectors.slowdowns(span.engine, span.until, span.window),
    "queue.failed_per_min": _queue_failed_per_min,
    "queue.depth": _queue_depth,
    "queue.oldest_age_s": _queue_oldest_age_s,
    "target.up": _target_up,
    "target.stale_s": _target_stale_s,
    "target.lateness": _target_lateness,
    "slo.burn_rate_fast": lambda span: detectors.burn_rates(
        span.engine, span.until, span.known.slos, detectors.FAST
    ),
    "slo.burn_rate_slow": lambda span: detectors.burn_rates(
        span.engine, span.until, span.known.slos, detectors.SLOW
    ),
}
