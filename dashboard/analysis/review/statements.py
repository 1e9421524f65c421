"""The weekly review's statements: what got slower, what got faster, what is new and what is gone.

Per statement of the PostgreSQL targets, the stored per-interval deltas are summed over each period
(at the hourly level while the store keeps it, else daily: `_level`): calls, mean time
(exec_ms / calls), rows and shared blocks read per call, total time.

When is a change real (the method the README's "Weekly review" cites)
---------------------------------------------------------------------
A statement is compared only with at least `Settings.min_calls` calls in each period. Its mean time
must then move by `Settings.min_change` at least (a regression: period mean >= (1 + min_change) x
baseline mean; an improvement: <= (1 - min_change) x) AND be significant: |z| >= `Settings.z`, where

    z = (mean_period - mean_baseline) / sqrt(se_baseline^2 + se_period^2)

and each period's standard error of its mean is the larger of two estimates:

(a) the within-call spread the server reports: sigma / sqrt(calls), sigma being
    pg_stat_statements' stddev_exec_time (the store keeps the latest, `statements.stddev_ms`, so
    both periods use the same sigma). It assumes every call is an independent draw.

(b) the bucket-to-bucket spread (bucket: an hour, or a day at the daily level) of that period's
    bucket means m_h = exec_ms_h / calls_h. The period's mean is the calls-weighted mean of the
    m_h, so its variance is s^2 * sum(c_h^2) / (sum c_h)^2 = s^2 / n_eff, with s^2 the variance of
    one bucket's mean and n_eff = (sum c_h)^2 / sum(c_h^2) Kish's effective number of buckets.
    s^2 is estimated by the calls-weighted variance of the m_h, made unbiased for n_eff buckets
    (x n_eff / (n_eff - 1)), which gives se^2 = weighted variance / (n_eff - 1). With the same
    calls every hour n_eff is the number of hours and this is the plain standard error of the
    hourly means (sample standard deviation / sqrt(hours)); where a few busy hours carry most of
    the calls, n_eff is about their number, not the number of hours that had any call (dividing
    by sqrt(hours with calls) would count the quiet hours as evidence and flag noise).

    Under two effective buckets (n_eff < 2: a weekly job run in one busy hour) a period has no
    spread of its own to measure, and (a) alone would judge one hour's shared load as thousands of
    independent calls. Such a period borrows the other period's per-bucket variance:
    se^2 = s_other^2 / max(n_eff, 1) (one hour of the job is as uncertain as one hour of it
    elsewhere). When neither period has n_eff >= 2 the statement is not judged: it is in neither
    list, however large its change.

Calls within an hour share their load, plans and cache state, so they are not independent: a
statement whose mean jitters hour to hour would look certain under (a) alone with a large call
count. (b) is what keeps it from being flagged; (a) keeps a statement whose few hourly means
happen to agree from looking surer than its calls allow. Both read only what the store holds:
bucket sums (reads.statement_window_totals returns their moments) and the latest stddev.

Lists, each cut to `Settings.top`: regressions ranked by the time the change costs over the period,
(mean_period - mean_baseline) x calls_period (`StatementChange.total_ms`, positive); improvements by
the time it saves (the same figure, negative: most negative first); new statements (first seen
inside the period, with calls in it) and gone ones (calls in the baseline, none in the period),
heaviest total time first. `daily_mean_ms` is the mean time per UTC day over baseline and period
(None for a day without calls), read at the daily level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from dashboard.analysis.reader import Reader
from dashboard.analysis.review.model import Period, Settings, StatementChange, StatementTotal
from dashboard.analysis.targets import Target
from dashboard.store.reads import Window

DAY = 86400
HOUR = 3600
MIN_BUCKETS = 2.0  # effective buckets a period needs to measure its own bucket-to-bucket spread
NO_TEXT = "(text not collected)"
Lists = tuple[
    tuple[StatementChange, ...],
    tuple[StatementChange, ...],
    tuple[StatementTotal, ...],
    tuple[StatementTotal, ...],
]


def compare(
    reader: Reader, targets: Sequence[Target], period: Period, baseline: Period, settings: Settings
) -> Lists:
    """(regressions, improvements, new, gone) of the PostgreSQL targets among `targets`, each
    ranked and cut to settings.top (module docstring: the method)."""
    postgres = {t.id: t.name for t in targets if t.kind == "postgres"}
    if not postgres:
        return (), (), (), ()
    ids = tuple(sorted(postgres))
    level = _level(reader, period, baseline)
    before = _figures(reader.store.statement_window_totals(ids, _window(baseline), level))
    after = _figures(reader.store.statement_window_totals(ids, _window(period), level))
    both = before.join(after, how="inner", lsuffix="_a", rsuffix="_b")
    changes = _changes(both, settings)
    slower = changes[changes["kind"] == "regression"].sort_values(["cost", "sid"], ascending=[False, True])
    faster = changes[changes["kind"] == "improvement"].sort_values(["cost", "sid"])
    slower, faster = slower.head(settings.top), faster.head(settings.top)
    daily = _daily_means(reader, [*slower.index, *faster.index], period, baseline)
    new = after[(after["first_seen"] >= period.start) & (after["first_seen"] < period.end)]
    gone = before.loc[before.index.difference(after.index)]
    texts = _Texts(reader)
    return (
        tuple(_change(row, postgres, texts, daily) for row in slower.itertuples()),
        tuple(_change(row, postgres, texts, daily) for row in faster.itertuples()),
        _totals(new, settings.top, postgres, texts),
        _totals(gone, settings.top, postgres, texts),
    )


def _window(period: Period) -> Window:
    return Window(period.start, period.end - 1)  # a Period is half-open, a Window inclusive


def _level(reader: Reader, period: Period, baseline: Period) -> str:
    """Hourly while the store keeps both periods at that level, else daily (reads.choose_level)."""
    window = Window(min(period.start, baseline.start), max(period.end, baseline.end) - 1)
    return reader.level(window, math.ceil(window.seconds / HOUR) + 1)


def _figures(frame: pd.DataFrame) -> pd.DataFrame:
    """Per statement (indexed by id): its sums, mean, per-call figures and the mean's standard error."""
    frame = frame.set_index("statement_id").assign(sid=lambda f: f.index)
    calls = frame["calls"].astype(float)
    mean = frame["exec_ms"] / calls
    weighted_var = (frame["exec_sq_per_call"] / calls - mean**2).clip(lower=0.0)
    n_eff = calls**2 / frame["calls_sq"]
    return frame.assign(
        mean=mean,
        rows_per_call=frame["rows"] / calls,
        read_per_call=frame["shared_read"] / calls,
        within=frame["stddev_ms"].astype(float).fillna(0.0) / np.sqrt(calls),  # (a)
        n_eff=n_eff,
        # s^2, one bucket's mean's variance (b); NaN under two effective buckets: not measurable
        bucket_var=(weighted_var * n_eff / (n_eff - 1)).where(n_eff >= MIN_BUCKETS),
    )


def _standard_errors(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each period's standard error of its mean, (a) or (b) whichever is larger; a period under
    two effective buckets takes the other's per-bucket variance for (b) (module docstring)."""
    out = []
    for mine, other in (("_a", "_b"), ("_b", "_a")):
        var = rows["bucket_var" + mine].fillna(rows["bucket_var" + other])
        between = np.sqrt(var / rows["n_eff" + mine].clip(lower=1.0))
        out.append(np.maximum(rows["within" + mine], between))
    return out[0], out[1]


def _changes(both: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The statements compared (enough calls in both periods), with z, change, cost and their kind."""
    enough = (both["calls_a"] >= settings.min_calls) & (both["calls_b"] >= settings.min_calls)
    spread = both["bucket_var_a"].notna() | both["bucket_var_b"].notna()  # else not judged
    rows = both[enough & spread & (both["mean_a"] > 0)].copy()
    diff = rows["mean_b"] - rows["mean_a"]
    se_a, se_b = _standard_errors(rows)
    se = np.sqrt(se_a**2 + se_b**2)
    rows["z"] = [_z(d, s) for d, s in zip(diff, se, strict=True)]
    rows["change"] = rows["mean_b"] / rows["mean_a"]
    rows["cost"] = diff * rows["calls_b"]
    rows["sid"] = rows.index
    slower = (rows["change"] >= 1 + settings.min_change) & (rows["z"] >= settings.z)
    faster = (rows["change"] <= 1 - settings.min_change) & (rows["z"] <= -settings.z)
    rows["kind"] = np.where(slower, "regression", np.where(faster, "improvement", ""))
    return rows


def _z(diff: float, se: float) -> float:
    if se > 0:
        return float(diff / se)
    return 0.0 if diff == 0 else math.copysign(math.inf, diff)  # no spread at all: any change is sure


def _days(period: Period) -> range:
    return range(period.start - period.start % DAY, period.end, DAY)


def _daily_means(
    reader: Reader, ids: Sequence[int], period: Period, baseline: Period
) -> dict[int, tuple[float | None, ...]]:
    """Each statement's mean time per UTC day of the baseline, then of the period (None: no calls)."""
    if not ids:
        return {}
    days = list(dict.fromkeys([*_days(baseline), *_days(period)]))
    window = Window(min(days), max(period.end, baseline.end) - 1)
    frame = reader.store.statement_series(tuple(int(i) for i in ids), window, "daily")
    grouped = frame.assign(day=frame["ts"] - frame["ts"] % DAY).groupby(["statement_id", "day"])
    sums = grouped[["calls", "exec_ms"]].sum()
    means = {
        (int(sid), int(day)): float(row.exec_ms / row.calls)
        for (sid, day), row in sums.iterrows()
        if row.calls > 0
    }
    return {int(i): tuple(means.get((int(i), day)) for day in days) for i in ids}


class _Texts:
    """Statement texts, read one by one for the few rows shown."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    def __call__(self, statement_id: int) -> str:
        info = self._reader.store.statement(int(statement_id))
        return info.query if info is not None and info.query is not None else NO_TEXT


def _change(row, names: dict[int, str], texts: _Texts, daily: dict[int, tuple]) -> StatementChange:
    return StatementChange(
        statement_id=int(row.sid),
        target=names[int(row.target_id_a)],
        datname=_text_or_none(row.datname_a),
        query=texts(row.sid),
        calls=(int(row.calls_a), int(row.calls_b)),
        mean_ms=(float(row.mean_a), float(row.mean_b)),
        rows_per_call=(float(row.rows_per_call_a), float(row.rows_per_call_b)),
        read_per_call=(float(row.read_per_call_a), float(row.read_per_call_b)),
        total_ms=float(row.cost),
        change=float(row.change),
        z=float(row.z),
        daily_mean_ms=daily.get(int(row.sid), ()),
    )


def _totals(
    frame: pd.DataFrame, top: int, names: dict[int, str], texts: _Texts
) -> tuple[StatementTotal, ...]:
    heaviest = frame.sort_values(["exec_ms", "sid"], ascending=[False, True]).head(top)
    return tuple(
        StatementTotal(
            statement_id=int(row.sid),
            target=names[int(row.target_id)],
            datname=_text_or_none(row.datname),
            query=texts(row.sid),
            calls=int(row.calls),
            mean_ms=float(row.mean),
            total_ms=float(row.exec_ms),
        )
        for row in heaviest.itertuples()
    )


def _text_or_none(value) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
