"""The daemon's weekly review job (`review: {schedule: "mon 08:00", receivers: [...]}`): at that time
each week (UTC), the last complete week's review, sent to the receivers once.

The collectors cannot import the analyses, so the CLI hands this job to the daemon
(`Scheduler(jobs=...)`). "Once" is kept in the store's journal (`review:<week>`): a daemon restarted
after the time sends the week it missed, and one started on a later day does not send it twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from dashboard.analysis.reader import Reader
from dashboard.analysis.review import Period, build, default_period, settings_of
from dashboard.core.config import Config
from dashboard.report import send
from dashboard.store import Store

log = logging.getLogger("observatory.review")
RETRY_S = 600.0  # after a failed sending: the receivers may be back soon


def next_at(now: float, when: tuple[int, int, int]) -> float:
    """The first time at (ISO weekday, hour, minute) UTC after `now`."""
    weekday, hour, minute = when
    today = dt.datetime.fromtimestamp(now, dt.UTC)
    slot = today.replace(hour=hour, minute=minute, second=0, microsecond=0)
    slot += dt.timedelta(days=(weekday - today.isoweekday()) % 7)
    if slot.timestamp() <= now:
        slot += dt.timedelta(days=7)
    return slot.timestamp()


def last_slot(now: float, when: tuple[int, int, int]) -> float:
    return next_at(now, when) - 7 * 86400


class WeeklyReview:
    """Callable by the daemon with its stop event; `send_due` does one round."""

    __name__ = "review"

    def __init__(self, config: Config, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.config, self.store, self.clock = config, store, clock

    def __call__(self, stop: threading.Event) -> None:
        when = self.config.review.when
        if when is None or not self.config.review.receivers:
            return
        while not stop.is_set():
            wait = RETRY_S if not self.send_due() else next_at(self.clock(), when) - self.clock()
            stop.wait(max(1.0, wait))

    def send_due(self) -> bool:
        """Send the last complete week's review if its time has come and it was not sent; whether
        nothing is left to do (False: the sending failed, try again later)."""
        when = self.config.review.when
        now = self.clock()
        if when is None or last_slot(now, when) < Period.week_of(now).start:
            return True  # this week's time has not come: last week's review waits for it
        week = default_period(now)
        key = f"review:{week.label}"
        if self.store.journal(key):
            return True
        reader = Reader.open(self.config)
        try:
            review = build(reader, week, settings=settings_of(self.config))
        finally:
            reader.store.close()
        failed = [d for d in send.send(review, self.config.review.receivers, self.config) if not d.delivered]
        if failed:
            why = "; ".join(f"{d.receiver}: {d.reason or 'not delivered'}" for d in failed)
            log.warning("review %s: not sent to every receiver: %s", week.label, why)
            return False
        self.store.save_journal(key, str(int(now)))
        log.info("review %s sent to %d receivers", week.label, len(self.config.review.receivers))
        return True
