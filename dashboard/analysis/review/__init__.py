"""The weekly performance review: what changed between a period and its baseline, what regressed,
what helped, what to do. One `build` for the Weekly review page and `observatory report`, so both
show the same figures; each part in its own module:

- statements.py: statement regressions and improvements (with the significance test), new and gone;
- weekly.py: the objectives week by week, service, Redis and PostgreSQL figures, alerts, table growth;
- indexes.py: did the indexes created in the period help; open suggestions; unused indexes.
"""

from __future__ import annotations

import time

from dashboard.analysis.reader import Reader
from dashboard.analysis.review import indexes, statements, weekly
from dashboard.analysis.review.model import Period, Review, Settings
from dashboard.core.config import Config

__all__ = ["Period", "Review", "Settings", "build", "default_period", "settings_of"]


def settings_of(config: Config) -> Settings:
    """The configuration's `review:` thresholds."""
    r = config.review
    return Settings(min_change=r.min_change, min_calls=r.min_calls, z=r.z)


def default_period(now: float) -> Period:
    """The last complete ISO week: a review is of a week that is over."""
    return Period.week_of(now).before()


DEFAULTS = Settings()


def build(
    reader: Reader, period: Period, baseline: Period | None = None, settings: Settings = DEFAULTS
) -> Review:
    """The review of `period` against `baseline` (the period before, by default), over every target
    the store holds."""
    baseline = baseline or period.before()
    targets = reader.targets()
    regressions, improvements, new, gone = statements.compare(reader, targets, period, baseline, settings)
    return Review(
        period=period,
        baseline=baseline,
        settings=settings,
        generated=int(time.time()),
        objectives=weekly.objectives(reader, period),
        regressions=regressions,
        improvements=improvements,
        new=new,
        gone=gone,
        series=weekly.series_changes(reader, targets, period, baseline),
        indexes=indexes.outcomes(reader, targets, period, baseline),
        alerts=weekly.alerts_fired(reader, period),
        suggestions=indexes.open_suggestions(reader, targets),
        unused=indexes.unused(reader, targets),
        growth=weekly.growth(reader, targets, period, baseline, settings.top),
        notes=_notes(reader, period, baseline),
    )


def _notes(reader: Reader, period: Period, baseline: Period) -> tuple[str, ...]:
    """What the review cannot say, and why: it is read as much as what it says."""
    notes = []
    if not reader.targets():
        notes.append("The store holds no target yet: run `observatory collect` (or `observatory up`).")
    if period.end > reader.now():
        notes.append(f"{period.label} is not over: its figures cover it until now.")
    return tuple(notes)
