"""The weekly performance review as records: what the Weekly review page and `observatory report`
both show, built once by `dashboard.analysis.review.build` from the store (no Streamlit).

Named tuples: the page caches a Review (cached.view pickles it) and the report's templates read
their fields by name. Times are Unix seconds (UTC); means in ms; `None` is "not measured".
"""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

WEEK = 7 * 86400
_ISO_WEEK = re.compile(r"^\s*(\d{4})-?W(\d{2})\s*$", re.I)


class Period(NamedTuple):
    """A half-open window [start, end) with its name ("2026-W47", or "2026-11-16 00:00 to 2026-11-23
    00:00"). Years 1970 to 9998 only (ISO years for a week): the store holds Unix times, and a week
    of 9999 would end past what a datetime can hold."""

    start: int
    end: int
    label: str

    HOUR = 3600  # the store's hourly and daily buckets cannot be cut: a window is whole hours
    FIRST_YEAR, LAST_YEAR = 1970, 9998

    @classmethod
    def iso_week(cls, text: str) -> Period:
        """The ISO week `text` names ("2026-W47"), Monday 00:00 UTC to the next Monday; ValueError
        when it names none."""
        match = _ISO_WEEK.match(text)
        if not match:
            raise ValueError(f"{text!r} is not an ISO week: write it like 2026-W47")
        year, week = int(match.group(1)), int(match.group(2))
        if not cls.FIRST_YEAR <= year <= cls.LAST_YEAR:
            raise ValueError(f"{text!r} is out of range: {cls._years()}")
        try:
            monday = dt.date.fromisocalendar(year, week, 1)
        except ValueError as err:
            raise ValueError(f"{text!r} is not an ISO week: {err}") from None
        start = int(dt.datetime.combine(monday, dt.time(), dt.UTC).timestamp())
        return cls(start, start + WEEK, f"{year}-W{week:02d}")

    @classmethod
    def week_of(cls, ts: float) -> Period:
        """The ISO week holding `ts`; ValueError outside the ISO years 1970 to 9998."""
        year, week, _ = cls._moment(ts).isocalendar()
        return cls.iso_week(f"{year}-W{week:02d}")

    @classmethod
    def between(cls, start: float, end: float) -> Period:
        """Any window, named by its UTC times. Both ends are rounded down to the hour: the store's
        hourly and daily buckets cannot be cut, so a window ending at 10:45 and the next starting
        there would both count the 10:00 hour. ValueError when it is empty once rounded, or its
        start is outside the years 1970 to 9998."""
        start, end = int(start // cls.HOUR * cls.HOUR), int(end // cls.HOUR * cls.HOUR)
        if (first := cls._moment(start)).year > cls.LAST_YEAR:
            raise ValueError(f"{first.date().isoformat()} is out of range: {cls._years()}")
        if end <= start:
            raise ValueError("a period must end after it starts (both are rounded down to the hour)")
        day = lambda ts: cls._moment(ts).strftime("%Y-%m-%d %H:%M")  # noqa: E731
        return cls(start, end, f"{day(start)} to {day(end)}")

    def before(self) -> Period:
        """The period of the same length just before: the default baseline."""
        length = self.end - self.start
        if length == WEEK and re.match(r"^\d{4}-W\d{2}$", self.label):
            return Period.week_of(self.start - 1)
        return Period.between(self.start - length, self.start)

    @property
    def seconds(self) -> int:
        return self.end - self.start

    @classmethod
    def _moment(cls, ts: float) -> dt.datetime:
        """`ts` in UTC; ValueError (one line) before ISO year 1970 or past what a datetime holds."""
        first = dt.datetime.fromisocalendar(cls.FIRST_YEAR, 1, 1).replace(tzinfo=dt.UTC)
        try:
            moment = first + dt.timedelta(seconds=ts - first.timestamp())
        except OverflowError:
            raise ValueError(f"Unix time {ts:.0f} is out of range: {cls._years()}") from None
        if moment < first:
            raise ValueError(f"{moment.date().isoformat()} is out of range: {cls._years()}")
        return moment

    @classmethod
    def _years(cls) -> str:
        return f"the years {cls.FIRST_YEAR} to {cls.LAST_YEAR} only"


class Settings(NamedTuple):
    """How large and how sure a change must be to be reported (README: "Weekly review")."""

    min_change: float = 0.30  # a mean time 30 % higher (or lower) at least
    min_calls: int = 100  # in each period: fewer, and the mean is not compared
    z: float = 3.0  # the change must be this many standard errors away from none
    top: int = 10  # rows per list


class StatementChange(NamedTuple):
    """One statement in both periods (a regression or an improvement)."""

    statement_id: int
    target: str
    datname: str | None
    query: str
    calls: tuple[int, int]  # baseline, period
    mean_ms: tuple[float, float]
    rows_per_call: tuple[float, float]
    read_per_call: tuple[float, float]  # shared blocks read (not found in the buffer cache) per call
    total_ms: float  # in the period: what the change costs or saves, to rank by
    change: float  # period mean / baseline mean
    z: float  # standard errors between the two means (method: review/statements.py)
    daily_mean_ms: tuple[float | None, ...] = ()  # both periods day by day, the sparkline


class StatementTotal(NamedTuple):
    """A statement that appeared (first seen in the period) or vanished (ran in the baseline only)."""

    statement_id: int
    target: str
    datname: str | None
    query: str
    calls: int
    mean_ms: float
    total_ms: float


class SeriesChange(NamedTuple):
    """A service (Prometheus) or Redis figure over both periods."""

    kind: str  # prometheus, redis, postgres
    target: str
    name: str  # "api_p95_ms", "hit rate", "ops/s", "used memory"
    unit: str
    baseline: float | None
    value: float | None
    better: bool | None  # the change is good news (None: no direction, or no change)


class Objective(NamedTuple):
    """One of the seed's targets in one week: met or not."""

    name: str  # "API p95", "DB query p95", "cache hit rate", "CPU", "memory", "error rate", "availability"
    target: str  # "< 200 ms"
    week: str  # "2026-W47"
    value: float | None  # None: not measured that week
    met: bool | None
    unit: str = ""


class IndexEffect(NamedTuple):
    """A statement that uses a new index: before and after."""

    statement_id: int
    query: str
    mean_ms: tuple[float | None, float | None]
    read_per_call: tuple[float | None, float | None]


class IndexOutcome(NamedTuple):
    """An index created in the period: did it help?"""

    target: str
    datname: str | None
    index: str
    table: str
    created: int  # between the two catalog reads that did not and did see it: the later one
    definition: str | None
    ours: bool  # the advisor had suggested it before it was created
    statements: tuple[IndexEffect, ...]
    writes_ms: tuple[float | None, float | None]  # the table's writing statements' mean time
    verdict: str  # "helped", "no effect", "hurt", "not used yet"


class AlertFired(NamedTuple):
    name: str
    severity: str
    summary: str
    fired: int
    resolved: int | None  # None: still firing at the period's end
    firing_s: int


class TableGrowth(NamedTuple):
    target: str
    table: str
    bytes: tuple[float | None, float | None]  # at the end of the baseline, of the period
    growth_bytes: float


class OpenSuggestion(NamedTuple):
    target: str
    datname: str
    create_sql: str
    benefit: str  # "cost 12,219 -> 608 for 3 statements"


class UnusedIndex(NamedTuple):
    target: str
    index: str
    table: str
    bytes: float
    reason: str


class Review(NamedTuple):
    period: Period
    baseline: Period
    settings: Settings
    generated: int
    objectives: tuple[Objective, ...]  # the last 8 weeks, the period's last
    regressions: tuple[StatementChange, ...]
    improvements: tuple[StatementChange, ...]
    new: tuple[StatementTotal, ...]
    gone: tuple[StatementTotal, ...]
    series: tuple[SeriesChange, ...]
    indexes: tuple[IndexOutcome, ...]
    alerts: tuple[AlertFired, ...]
    suggestions: tuple[OpenSuggestion, ...]
    unused: tuple[UnusedIndex, ...]
    growth: tuple[TableGrowth, ...]
    notes: tuple[str, ...] = ()  # what could not be measured, and why

    @property
    def empty(self) -> bool:
        """Nothing measured in the period: no statement ran, no figure was read, nothing fired."""
        period = self.period.label
        return not (
            self.regressions or self.improvements or self.new or self.gone or self.indexes or self.alerts
            or any(s.value is not None for s in self.series)
            or any(o.week == period and o.value is not None for o in self.objectives)
        )  # fmt: skip
