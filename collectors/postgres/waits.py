"""Wait events and lock waits, sampled every `health.waits` (5 s) between the cycles.

The daemon's sampling job calls `WaitSampler.sample` on the target's own connection for sampling
(the cycle's connection belongs to the cycle's thread); the cycle drains the samples taken since
the last one. A cycle with none (`observatory collect --once`, or the sampler down) takes one itself.
Each sample is one row of sql/waits.13.sql, about a third of a millisecond on the server.

Series, per cycle: `pg.waits.sessions {datname, type, event}`, the active sessions in each wait
averaged over the cycle's samples ("average active sessions", as Performance Insights draws them;
"CPU" is running, or a wait PostgreSQL does not instrument). The TOP_WAITS largest label sets are
kept, the rest summed as one "(other)" set, so the labels stay few whatever the server does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, NamedTuple

import psycopg

from dashboard.core import metrics
from dashboard.core.records import Point

log = logging.getLogger("observatory.collect")
TOP_WAITS = 30  # (database, type, event) sets kept as series per cycle
OTHER = "(other)"
MAX_KEPT = 720  # samples kept between cycles: an hour at 5 s, if cycles stop being taken
MAX_BACKOFF = 300.0  # seconds between tries of a server that cannot be read, at most (as the daemon's)


class Sample(NamedTuple):
    """One row of waits.13.sql: the server's time, active sessions per wait, lock waits."""

    ts: float
    waits: list[dict[str, Any]]  # {datname, type, event, sessions}
    locks: list[dict[str, Any]]  # {pid, datname, usename, application, state, query, blocked_by, ...}


def sample_of(row: dict[str, Any]) -> Sample:
    return Sample(float(row["now"]), row["waits"], row["locks"])


class WaitSampler:
    """Takes samples on a connection of its own, keeps them until the cycle drains them.

    A server it cannot read is tried again after a growing pause (5 s doubling up to MAX_BACKOFF),
    as the daemon backs off a target that is down: no reconnection every few seconds to a server
    that refuses the role (an authentication lockout), or is gone.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        query: Callable[[psycopg.Connection], Any],
        redact: Callable[[str], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect, self._query, self._redact, self._clock = connect, query, redact, clock
        self._conn: psycopg.Connection | None = None
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._failures = 0
        self._resume_at = 0.0

    def sample(self) -> bool:
        """One sample, kept for the next cycle; False when none was taken: the server could not be
        read (logged, without secrets, at the first failure of a run: the cycle reports the target's
        state), or it is still in its pause after one."""
        if self._clock() < self._resume_at:
            return False
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            taken = sample_of(self._query(self._conn))
        # ValueError: a text the server sent that is not UTF-8 (a SQL_ASCII database), a password
        # variable that is not set. Neither may end the sampling.
        except (psycopg.Error, OSError, ValueError) as err:
            self._failed(err)
            return False
        self._failures, self._resume_at = 0, 0.0
        with self._lock:
            self._samples = [*self._samples[-(MAX_KEPT - 1) :], taken]
        return True

    def _failed(self, err: BaseException) -> None:
        self.close()
        if not self._failures:
            text = str(err).strip()
            first = text.splitlines()[0] if text else type(err).__name__
            log.warning("wait sampler: %s", self._redact(first))
        self._failures += 1
        self._resume_at = self._clock() + min(MAX_BACKOFF, 5.0 * 2 ** (self._failures - 1))

    def drain(self) -> list[Sample]:
        with self._lock:
            taken, self._samples = self._samples, []
        return taken

    def close(self) -> None:
        """Close its connection (from the thread that samples)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def wait_points(samples: list[Sample]) -> list[Point]:
    """The average active sessions per (database, type, event) over `samples`, the TOP_WAITS largest
    as their own series and the rest as one OTHER set. Nothing without samples."""
    if not samples:
        return []
    # How many samples the averages are of: a cycle with samples and no active session is a zero,
    # not a gap.
    points = [Point(metrics.PG_WAITS_SAMPLES, float(len(samples)))]
    summed: dict[tuple[str, str, str], float] = defaultdict(float)
    for s in samples:
        for w in s.waits:
            summed[(w["datname"], w["type"], w["event"])] += w["sessions"]
    ranked = sorted(summed.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = ranked[:TOP_WAITS]
    rest = sum(total for _, total in ranked[TOP_WAITS:])
    if rest:
        kept.append(((OTHER, OTHER, OTHER), rest))
    return points + [
        Point(
            metrics.PG_WAITS_SESSIONS,
            total / len(samples),
            "gauge",
            metrics.encode({"datname": datname, "type": kind, "event": event}),
        )
        for (datname, kind, event), total in kept
    ]
