"""Daemons split the targets: real `observatory collect` processes on one PostgreSQL store, six
Redis targets, each daemon taking at most ceil(targets / live daemons); a daemon killed leaves its
targets to the others, and no target is ever counted by two daemons at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from collectors.scheduler import Scheduler
from dashboard.cli import collect as collect_cli
from dashboard.core import config as config_mod
from dashboard.core.metrics import REDIS_OPS
from dashboard.report.weekly_job import LOCK as REVIEW_LOCK
from dashboard.servers.throwaway import ThrowawayPostgres, ThrowawayRedis
from dashboard.store import Store
from dashboard.store import locks as locks_mod
from dashboard.store.locks import APP_NAME, group_key, lock_key, target_locks
from dashboard.store.writer import LeaseLost
from tests.support.cli import env_without_config
from tests.support.stores import new_store_dsn, ops_stored

TARGETS = [f"r{n}" for n in range(1, 7)]


class Daemon:
    def __init__(self, config: Path, log: Path) -> None:
        with open(log, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dashboard", "-c", str(config), "collect"],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env_without_config(),
            )
        self.pid = self.proc.pid
        self.log = log


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[[Path], Daemon]]:
    started: list[Daemon] = []

    def start(config: Path) -> Daemon:
        started.append(Daemon(config, tmp_path / f"daemon-{len(started)}.log"))
        return started[-1]

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)


def holders(dsn: str) -> dict[str, int]:
    """Target -> pid of the daemon holding its lock, read from the store's pg_locks."""
    by_key = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT l.classid::bigint, l.objid::bigint, a.application_name FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.objsubid = 1"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
    for hi, lo, app in rows:
        match = APP_NAME.match(app or "")
        if match:
            by_key[(hi << 32 | lo) - (1 << 64 if hi >= 1 << 31 else 0)] = int(match["pid"])
    return {t: by_key[lock_key("redis", t)] for t in TARGETS if lock_key("redis", t) in by_key}


def split(dsn: str) -> list[int]:
    """How many targets each daemon holds, most first."""
    return sorted(Counter(holders(dsn).values()).values(), reverse=True)


def wait_for(what: str, done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def steady(dsn: str, expected: list[int], seconds: float = 2.5) -> dict[str, int]:
    """The split holds for `seconds` (no flapping), the same daemon on each target throughout."""
    first = holders(dsn)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.25)
        assert holders(dsn) == first and split(dsn) == expected
    return first


def by_key(targets: list[str]) -> list[str]:
    return sorted(targets, key=lambda t: lock_key("redis", t))


@pytest.mark.slow  # four daemons collecting for real: about 30 s
def test_daemons_split_the_targets_and_fail_over(
    pg: ThrowawayPostgres, redis_server: ThrowawayRedis, tmp_path: Path, daemons
) -> None:
    name = f"store_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn = pg.dsn(dbname=name)
    config = tmp_path / "observatory.yaml"
    lines = [f"store: {dsn}", "targets:", "  redis:"]
    for target in TARGETS:  # six names of one server: each its own target, state and lock
        lines += [f"    - name: {target}", f"      url: {redis_server.url}", "      interval: 1s"]
    config.write_text("\n".join(lines) + "\n")
    ops_before = int(redis.Redis.from_url(redis_server.url).info()["total_commands_processed"])

    first = daemons(config)
    wait_for("the first daemon to take all six", lambda: split(dsn) == [6], timeout=20)
    second = daemons(config)
    wait_for("a 3/3 split", lambda: split(dsn) == [3, 3], timeout=20)
    now = steady(dsn, [3, 3])
    kept = sorted(t for t, pid in now.items() if pid == first.pid)
    assert kept == sorted(by_key(TARGETS)[:3])  # the first let go of the three highest keys
    assert "handed over" in first.log.read_text()

    os.kill(second.pid, signal.SIGKILL)
    second.proc.wait(timeout=10)
    wait_for("the survivor to take all six", lambda: split(dsn) == [6], timeout=15)
    assert set(holders(dsn).values()) == {first.pid}

    third, fourth = daemons(config), daemons(config)
    wait_for("a 2/2/2 split", lambda: split(dsn) == [2, 2, 2], timeout=20)
    assert set(steady(dsn, [2, 2, 2]).values()) == {first.pid, third.pid, fourth.pid}

    for daemon in (first, third, fourth):
        daemon.proc.terminate()
    for daemon in (first, third, fourth):
        assert daemon.proc.wait(timeout=30) == 0

    # Never two daemons on one target: each target's stored deltas of a counter add up to at most
    # what the server counted since the start (a target collected twice at once counts twice).
    ops_after = int(redis.Redis.from_url(redis_server.url).info()["total_commands_processed"])
    store = Store(dsn)
    try:
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT t.name, s.last_value, sum(p.value), count(*) FROM series s"
                " JOIN targets t ON t.id = s.target_id JOIN points_raw p ON p.series_id = s.id"
                " WHERE s.name = %s GROUP BY t.name, s.last_value",
                (REDIS_OPS,),
            ).all()
    finally:
        store.close()
    assert sorted(r[0] for r in rows) == TARGETS
    for target, last, total, cycles in rows:
        assert ops_before < last <= ops_after
        assert 0 < total <= last - ops_before, target
        assert cycles >= 5, target


def test_daemons_count_the_live_ones_of_their_group(store_url: str) -> None:
    """On either store: each daemon's membership lock counts it, in its group only, until it closes."""
    first, second, other = target_locks(store_url), target_locks(store_url), target_locks(store_url)
    try:
        group = group_key([("redis", t) for t in TARGETS])
        assert group != group_key([("redis", "r1")]) and group == group_key(
            [("redis", t) for t in reversed(TARGETS)]
        )
        first.join(group)
        assert first.live(group) == 1
        second.join(group)
        other.join(group + 1)
        assert first.live(group) == second.live(group) == 2 and other.live(group + 1) == 1
        second.close()
        assert first.live(group) == 1
    finally:
        for locks in (first, second, other):
            locks.close()


def test_a_lone_daemon_takes_every_target_and_shares_by_lock_key(store_url: str) -> None:
    """In-process: the share is every target alone; with a second member of the group, half, and the
    targets let go are those of the highest lock keys."""
    targets = [{"name": t, "url": "redis://127.0.0.1:1/0", "interval": "1s"} for t in TARGETS]
    config = config_mod.from_dict({"store": store_url, "targets": {"redis": targets}})
    store = Store(store_url)
    scheduler = Scheduler(config, store)
    peer = target_locks(store_url)
    try:
        scheduler.locks.join(scheduler.group)
        assert scheduler.share() == 6
        for collector in scheduler.collectors:
            assert scheduler._take(collector) is None
        peer.join(scheduler.group)
        time.sleep(1.1)  # the count of live daemons is kept a second
        assert scheduler.share() == 3
        over = [c.name for c in scheduler.collectors if scheduler._over_share((c.kind, c.name))]
        assert sorted(over) == sorted(by_key(TARGETS)[3:])
        for collector in scheduler.collectors:
            if collector.name in over:
                assert scheduler._hand_over(collector)
        assert scheduler._take(scheduler.collectors[0]) is not None  # at its share, or just let go
        assert all(peer.try_lock("redis", t) is None for t in over)
    finally:
        scheduler.locks.close()
        peer.close()
        store.close()


def leased_cycle(scheduler: Scheduler, ts: int):
    """A cycle of the scheduler's one target as its loop makes it: under the target's lease."""
    (collector,) = scheduler.collectors
    lease = scheduler._lease(collector)
    assert lease is not None
    cycle = scheduler.collect(collector)
    cycle.ts, cycle.lease = ts, lease
    return cycle


def end_lock_session(dsn: str, scheduler: Scheduler) -> None:
    """What a store restart or a network cut does to a daemon's locks: its session ends."""
    pid = scheduler.locks._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()  # type: ignore[union-attr]
    with psycopg.connect(dsn, autocommit=True) as admin:
        # with a timeout it waits for the backend to exit, and so to let its locks go
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone() == (True,)


@pytest.mark.parametrize("taken_over", [True, False], ids=["taken-over", "taken-back"])
def test_cycles_that_waited_while_the_lock_was_lost_count_once(
    pg: ThrowawayPostgres, redis_server: ThrowawayRedis, taken_over: bool
) -> None:
    """Daemon A's lock session ends while a cycle of its target waits in its writer's queue. If B
    took the target meanwhile (and went on from the state saved), A's cycle is refused: its
    interval is B's to count. If no one did, A takes its lock back and the cycle is saved: a
    store restart loses nothing."""
    dsn = new_store_dsn(pg)
    targets = [{"name": "r1", "url": redis_server.url, "interval": "1s"}]
    config = config_mod.from_dict({"store": dsn, "targets": {"redis": targets}})
    client = redis.Redis.from_url(redis_server.url)
    a, b = Scheduler(config, Store(dsn)), Scheduler(config, Store(dsn))
    (ca,), (cb,) = a.collectors, b.collectors
    try:
        first = int(client.info()["total_commands_processed"])
        now = int(time.time())
        assert a._take(ca) is None
        assert a.writer.write_now([leased_cycle(a, now - 3)]) == []
        for _ in range(300):
            client.ping()
        a.writer.submit(leased_cycle(a, now - 2))  # queued: the store was slow, say
        end_lock_session(dsn, a)
        if taken_over:
            assert b._take(cb) is None  # the lock A lost is free
            assert b.writer.write_now([leased_cycle(b, now - 1)]) == []
            assert a._try_lock(ca) is not None  # A sees it lost the target
        else:
            assert a._try_lock(ca) is None  # A's lock back in a new session
        a.writer.save(a.writer._take(timeout=0))  # A's writer goes on with its queue
        ran = int(client.info()["total_commands_processed"]) - first
        stored = ops_stored(dsn, "r1")
        assert stored <= ran, f"{stored:.0f} commands stored, the server ran {ran}"
        assert stored >= 300  # the pings are counted, once: by B, or by A's cycle that waited
        assert a.writer.pending() == 0 and (("redis", "r1") in a._resync) == taken_over
    finally:
        for s in (a, b):
            s.locks.close()
            s.store.close()
        client.close()


def test_collect_once_beside_a_daemon_that_lost_its_session_counts_once(
    pg: ThrowawayPostgres, redis_server: ThrowawayRedis
) -> None:
    """Daemon A's lock session ends (a store restart, a pause past the idle timeout); a
    `collect --once` finds the lock free and saves the interval from the stored state; then A takes
    its lock back in a new session. `--once` took the lease too, so A's next cycle, diffed against
    its older state, is refused and A reloads. Before, `--once` saved unfenced: 811 stored, 512 ran."""
    dsn = new_store_dsn(pg)
    targets = [{"name": "r1", "url": redis_server.url, "interval": "1s"}]
    config = config_mod.from_dict({"store": dsn, "targets": {"redis": targets}})
    client = redis.Redis.from_url(redis_server.url)
    a, once = Scheduler(config, Store(dsn)), Scheduler(config, Store(dsn))
    (ca,) = a.collectors
    try:
        first = int(client.info()["total_commands_processed"])
        now = int(time.time())
        assert a._take(ca) is None
        assert a.writer.write_now([leased_cycle(a, now - 5)]) == []  # A's baseline
        for _ in range(300):
            client.ping()
        end_lock_session(dsn, a)
        assert [c.status.state for c in once.run_once()] == ["ok"] and not once.held_elsewhere
        for _ in range(200):
            client.ping()
        assert a._try_lock(ca) is None  # A's lock back, in a new session
        ((cycle, err),) = a.writer.write_now([leased_cycle(a, now + 2)])
        assert isinstance(err, LeaseLost)
        a._dropped(cycle, str(err))  # as the daemon's writer does with a cycle refused
        a.writer.write_now([leased_cycle(a, now + 3)])  # a new lease, the state reloaded
        ran = int(client.info()["total_commands_processed"]) - first
        stored = ops_stored(dsn, "r1")
        assert 500 <= stored <= ran, f"{stored:.0f} commands stored, the server ran {ran}"
    finally:
        for s in (a, once):
            s.locks.close()
            s.store.close()
        client.close()


def test_only_a_beating_process_loses_its_locks_when_idle(
    pg: ThrowawayPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon frozen whole (SIGSTOP) stops beating: the server ends its session and its targets
    go to the others. A process that never beats (`collect --once` waiting for a slow target)
    keeps its locks however long it works: with the timeout on every session, a second run took
    a target after 20 s and counted its interval again."""
    monkeypatch.setattr(locks_mod, "IDLE_SESSION_TIMEOUT_S", 2)
    dsn = new_store_dsn(pg)
    Store(dsn).close()
    working, frozen, other = target_locks(dsn), target_locks(dsn), target_locks(dsn)
    try:
        assert working.try_lock("redis", "r2") is None
        frozen.start_beating()
        assert frozen.try_lock("redis", "r1") is None
        frozen.beat()
        time.sleep(3.5)  # neither beats: one never did, the other stopped
        assert other.try_lock("redis", "r2") is not None  # still held by the working one
        assert other.try_lock("redis", "r1") is None  # the frozen one's session was ended
    finally:
        for held in (working, frozen, other):
            held.close()


def test_a_frozen_daemon_lets_the_weekly_review_go_with_its_targets(
    pg: ThrowawayPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The weekly review's sender shares the daemon's lock session, which the main thread beats:
    frozen, the daemon loses the review's lock with its targets (a session of its own, never beaten,
    kept it until the daemon died); working, it keeps it however long a review takes to build."""
    monkeypatch.setattr(locks_mod, "IDLE_SESSION_TIMEOUT_S", 2)
    dsn = new_store_dsn(pg)
    targets = {"redis": [{"name": "r1", "url": "redis://127.0.0.1:9/0"}]}
    scheduler = collect_cli.daemon(config_mod.from_dict({"store": dsn, "targets": targets}), Store(dsn))
    (review,) = scheduler.jobs
    other = target_locks(dsn)
    try:
        scheduler.locks.start_beating()  # as run_forever does
        assert scheduler.locks.try_lock("redis", "r1") is None
        assert review.locks.try_lock(*REVIEW_LOCK) is None
        time.sleep(3.5)  # frozen: its main thread does not beat
        assert other.try_lock("redis", "r1") is None and other.try_lock(*REVIEW_LOCK) is None
    finally:
        other.close()
        scheduler.locks.close()
        scheduler.store.close()


def test_a_lock_session_on_a_server_turned_read_only_lets_go() -> None:
    """A switchover fences the old primary read-only (ALTER SYSTEM and a reload: its sessions stay
    open, and advisory locks still work there). The writer leaves it at its first refused write; the
    lock session, which never writes, leaves it at its next beat, so its targets follow the store's
    name. Before, a daemon kept them on the old server while another took them on the new one."""
    with ThrowawayPostgres() as server:
        dsn = server.dsn()
        fenced, other = target_locks(dsn), target_locks(dsn)
        try:
            fenced.start_beating()
            assert fenced.try_lock("redis", "r1") is None
            fenced.beat()
            assert other.try_lock("redis", "r1") is not None  # held, the server still writable
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
                admin.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)  # the reload reaches every session
            # the session sees the reload at its next command; it closes its connection, and the
            # lock goes when the old backend has exited
            let_go = lambda: (fenced.beat(), other.try_lock("redis", "r1") is None)[1]  # noqa: E731
            wait_for("the fenced session to let go", let_go, timeout=5)
        finally:
            fenced.close()
            other.close()
