"""The daemon's weekly review job: at `review.schedule` (UTC) the last complete week's review goes
to the receivers, once per week, kept in the store's journal; a failed sending is tried again."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from dashboard.core import metrics
from dashboard.core.records import Cycle, Point, Status
from dashboard.report.weekly_job import LOCK, WeeklyReview, next_at
from dashboard.store import Store
from tests.support.stores import make_config

MONDAY_0900 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC).timestamp()  # ISO week 2026-W48


class Hook(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        Hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    Hook.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/review"
    server.shutdown()
    server.server_close()


def test_next_at_is_the_next_slot_in_utc() -> None:
    monday_mid = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC).timestamp()
    assert next_at(monday_mid, (1, 8, 0)) == dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC).timestamp()
    assert next_at(monday_mid, (3, 6, 30)) == dt.datetime(2026, 11, 25, 6, 30, tzinfo=dt.UTC).timestamp()
    assert next_at(monday_mid, (1, 12, 1)) == monday_mid + 60  # later the same day


def _store_with_redis(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    try:
        for day in range(14):  # W46 and W47: a cache whose hit rate falls
            ts = int(MONDAY_0900) - (14 - day) * 86400
            hits, misses = (950.0, 50.0) if day < 7 else (700.0, 300.0)
            points = [
                Point(metrics.REDIS_KEYSPACE_HITS, None, "counter", delta=hits),
                Point(metrics.REDIS_KEYSPACE_MISSES, None, "counter", delta=misses),
            ]
            store.write_cycle(Cycle("redis", "cache", ts, Status(), points=points))
    finally:
        store.close()
    return url


def test_sends_the_last_week_once_at_its_time(tmp_path: Path, hook: str) -> None:
    url = _store_with_redis(tmp_path)
    config = make_config(url, review={"schedule": "mon 08:00", "receivers": [{"webhook": hook}]})
    store = Store(url)
    clock = [MONDAY_0900 - 2 * 3600]  # 07:00: not yet
    job = WeeklyReview(config, store, clock=lambda: clock[0])
    try:
        assert job.send_due() and Hook.bodies == []
        clock[0] = MONDAY_0900
        assert job.send_due()
        assert job.send_due()  # the same day again: not twice
        restarted = WeeklyReview(config, store, clock=lambda: clock[0])  # a new daemon on the same store
        job.locks.close()  # the first one stopped
        assert restarted.send_due()
        restarted.locks.close()
    finally:
        store.close()
    (body,) = Hook.bodies
    text = json.dumps(body)
    assert "2026-W47" in text and "2026-W46" in text  # the week and its baseline


def test_a_receiver_that_failed_is_tried_again_without_the_others_getting_it_twice(
    tmp_path: Path, hook: str
) -> None:
    url = _store_with_redis(tmp_path)
    receivers = [{"webhook": hook}, {"webhook": "http://127.0.0.1:1/x"}]
    config = make_config(url, review={"schedule": "mon 08:00", "receivers": receivers})
    store = Store(url)
    try:
        job = WeeklyReview(config, store, clock=lambda: MONDAY_0900)
        assert job.send_due() is False  # the second one failed: tried again later
        assert job.send_due() is False
        assert len(Hook.bodies) == 1  # ... the first got it once
        job.locks.close()
    finally:
        store.close()


def test_two_daemons_on_one_store_send_once(tmp_path: Path, hook: str) -> None:
    url = _store_with_redis(tmp_path)
    config = make_config(url, review={"schedule": "mon 08:00", "receivers": [{"webhook": hook}]})
    first, second = Store(url), Store(url)
    try:
        jobs = [WeeklyReview(config, s, clock=lambda: MONDAY_0900) for s in (first, second)]
        assert jobs[0].locks.try_lock(*LOCK) is None  # the first daemon holds the store's review lock
        assert jobs[1].send_due() and Hook.bodies == []  # the second leaves the sending to it
        assert jobs[0].send_due() and len(Hook.bodies) == 1
        for job in jobs:
            job.locks.close()
    finally:
        first.close()
        second.close()


def test_a_bad_schedule_is_refused_with_its_path() -> None:
    with pytest.raises(Exception, match=r"review\.schedule: 'monday 8' is not a weekly time"):
        make_config("sqlite:///x.db", review={"schedule": "monday 8"})
