"""The daemon's weekly review job (`review: {schedule: "mon 08:00", receivers: [...]}`): at that time
each week (UTC), the last complete week's review, sent to the receivers once.

The collectors cannot import the analyses, so the CLI hands this job to the daemon
(`Scheduler(jobs=...)`). "Once" is kept in the store's journal (`review:<week>`): a daemon restarted
after the time sends the week it missed, and one started on a later day does not send it twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from dashboard.analysis.reader import Reader
from dashboard.analysis.review import Period, build, default_period, settings_of
from dashboard.core.config import Config
from dashboard.report import send
from dashboard.store import Store
from dashboard.store.locks import TargetLocks, target_locks

log = logging.getLogger("observatory.review")
RETRY_S = 600.0  # after a failed sending: the receivers may be back soon
LOCK = ("review", "sender")  # taken like a target's: one process per store sends the reviews


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
    """Callable by the daemon with its stop event; `send_due` does one round.

    One process per store sends (the store's `review` lock, as alerts have theirs); each receiver
    gets the week once (the journal keeps `review:<week>:<receiver>`), so a receiver that failed is
    tried again later without the others getting it twice.
    """

    __name__ = "review"

    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Callable[[], float] = time.time,
        locks: TargetLocks | None = None,
    ) -> None:
        """`locks`: the daemon's, which its main thread beats: a daemon frozen whole lets the review
        go with its targets, and one building a long review keeps it. Else a session of its own."""
        self.config, self.store, self.clock = config, store, clock
        self._own_locks = locks is None
        self.locks = target_locks(store.url) if locks is None else locks

    def __call__(self, stop: threading.Event) -> None:
        when = self.config.review.when
        if when is None or not self.config.review.receivers:
            return
        try:
            while not stop.is_set():
                try:
                    done = self.send_due()
                except Exception:  # the store away for a moment, a bug: next week must still go out
                    log.exception("review: the weekly sending failed; trying again in %.0f s", RETRY_S)
                    done = False
                stop.wait(max(1.0, RETRY_S if not done else next_at(self.clock(), when) - self.clock()))
        finally:
            if self._own_locks:
                self.locks.close()
            else:
                self.locks.release(*LOCK)

    def send_due(self) -> bool:
        """Send the last complete week's review to each receiver that did not get it, if its time
        has come and this process holds the store's review lock; whether nothing is left to do
        (False: a receiver failed, try again later)."""
        when = self.config.review.when
        now = self.clock()
        if when is None or last_slot(now, when) < Period.week_of(now).start:
            return True  # this week's time has not come: last week's review waits for it
        if self.locks.try_lock(*LOCK) is not None:
            return True  # another process sends the reviews of this store
        week = default_period(now)
        due = [(r, f"review:{week.label}:{name_of(r)}") for r in self.config.review.receivers]
        due = [(r, key) for r, key in due if not self.store.journal(key)]
        if not due:
            return True
        reader = Reader.open(self.config)
        try:
            review = build(reader, week, settings=settings_of(self.config))
        finally:
            reader.store.close()
        failed = []
        for receiver, key in due:
            (delivery,) = send.send(review, [receiver], self.config)
            if delivery.delivered:
                self.store.save_journal(key, str(int(now)))
            else:
                failed.append(f"{delivery.receiver}: {delivery.reason or 'not delivered'}")
        if failed:
            log.warning("review %s: not sent to every receiver: %s", week.label, "; ".join(failed))
            return False
        log.info("review %s sent to %d receivers", week.label, len(due))
        return True


def name_of(receiver: Any) -> str:
    """A receiver's key in the journal: its kind and a digest of its settings (never a secret)."""
    text = receiver.model_dump_json()
    return f"{type(receiver).__name__}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
