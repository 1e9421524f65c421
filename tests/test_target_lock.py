"""One collecting process per target: real `observatory collect` processes on one store, one real
PostgreSQL target, and the calls stored checked against the server's pg_stat_statements."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from dashboard.core.records import OWN_MARKER
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.locks import FileLocks, lock_key, target_locks
from dashboard.store.reads import target_statuses
from dashboard.store.schema import STMT, statements
from tests.support.cli import observatory
from tests.support.postgres import run_workload


def test_a_second_taker_is_refused_and_told_who_holds_it(store_url: str) -> None:
    first, second = target_locks(store_url), target_locks(store_url)
    try:
        assert first.try_lock("postgres", "erp") is None
        assert first.try_lock("postgres", "erp") is None  # kept, not taken twice
        holder = second.try_lock("postgres", "erp")
        assert holder is not None and holder.pid == os.getpid()
        assert holder.host and socket.gethostname().startswith(holder.host)
        assert holder.since and f"pid {os.getpid()}" in str(holder)
        if isinstance(first, FileLocks):
            assert holder.command == shlex.join(sys.orig_argv)
            assert stat.S_IMODE(first.path("postgres", "erp").stat().st_mode) == 0o600
        else:
            assert holder.command == f"observatory collect {holder.host}:{os.getpid()}"
            assert holder.backend_pid and holder.address == "127.0.0.1"
        assert second.try_lock("redis", "erp") is None  # another target: free
        first.release("postgres", "erp")
        assert second.try_lock("postgres", "erp") is None
        assert first.try_lock("postgres", "erp") is not None
    finally:
        first.close()
        second.close()
    with pytest.raises(ValueError):
        first.try_lock("postgres", "../x")


def test_advisory_lock_lost_with_its_session(pg: ThrowawayPostgres, database: str) -> None:
    """The store ends the holder's session: another process may take the lock, and the first one
    learns it lost it at its next try; once it is free again the first one takes it back."""
    url = pg.dsn(dbname=database)
    first, second = target_locks(url), target_locks(url)
    try:
        assert first.try_lock("postgres", "t1") is None
        with psycopg.connect(pg.dsn(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND database = (SELECT oid FROM pg_database WHERE datname = %s)",
                (database,),
            )
        wait_for("the lock to go", lambda: second.try_lock("postgres", "t1") is None, timeout=5)
        assert first.try_lock("postgres", "t1") is not None and not first.holds("postgres", "t1")
        second.close()
        assert first.try_lock("postgres", "t1") is None
    finally:
        first.close()
        second.close()


def test_a_holder_keeps_on_while_the_store_is_away(pg: ThrowawayPostgres, database: str) -> None:
    """Its cycles wait in memory meanwhile; when the store is back it holds the lock again."""
    url = pg.dsn(dbname=database)
    first, second = target_locks(url), target_locks(url)
    with psycopg.connect(pg.dsn(), autocommit=True) as admin:
        try:
            assert first.try_lock("postgres", "t1") is None
            admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,)
            )
            assert first.try_lock("postgres", "t1") is None and first.holds("postgres", "t1")
            with pytest.raises(Exception, match="not currently accepting connections"):
                second.try_lock("postgres", "t1")  # never held: it cannot say it holds it
            admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
            assert first.try_lock("postgres", "t1") is None  # taken again
            assert second.try_lock("postgres", "t1") is not None
        finally:
            admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
            first.close()
            second.close()


def test_lock_key_is_stable() -> None:
    """The key is the same in every process and every release (not Python's salted hash())."""
    assert lock_key("postgres", "erp-primary") == lock_key("postgres", "erp-primary")
    assert lock_key("postgres", "erp-primary") == 1661518940470500851
    assert lock_key("postgres", "erp") != lock_key("redis", "erp")


# -- real processes ---------------------------------------------------------------------------
class Daemon:
    """`observatory collect` in the background, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        with open(log, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dashboard", "-c", str(config), "collect"],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.pid = self.proc.pid

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[[Path], Daemon]]:
    started: list[Daemon] = []

    def start(config: Path) -> Daemon:
        daemon = Daemon(config, tmp_path / f"daemon-{len(started)}.log")
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)


def write_config(tmp_path: Path, store_url: str, dsn: str) -> Path:
    path = tmp_path / "observatory.yaml"
    path.write_text(
        f"store: {store_url}\ntargets:\n  postgres:\n"
        f"    - name: t1\n      dsn: {dsn}\n      interval: 1s\n      advise: false\n"
    )
    return path


def wait_for(what: str, done: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def last_success(store: Store) -> int:
    frame = target_statuses(store.engine)
    values = frame.loc[frame["name"] == "t1", "last_success"].dropna()
    return int(values.iloc[0]) if len(values) else 0


def collected_after(store: Store, moment: float) -> Callable[[], bool]:
    """Whether a cycle that started after `moment` is saved (a cycle's ts is its start, in seconds)."""
    return lambda: last_success(store) > int(moment)


def server_calls(pg: ThrowawayPostgres, datname: str) -> int:
    """Calls of the database's statements in pg_stat_statements, less the collector's own; read from
    another database so that this read is not one of them."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s AND s.query NOT LIKE %s",
            (datname, OWN_MARKER + "%"),
        ).fetchone()
    return int(row[0])


def stored_calls(store: Store, datname: str) -> int:
    raw = STMT["raw"]
    query = (
        select(func.coalesce(func.sum(raw.c.calls), 0))
        .select_from(raw.join(statements, statements.c.id == raw.c.statement_id))
        .where(statements.c.datname == datname)
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


@pytest.mark.slow  # daemons collecting for real: about 7 s
def test_two_daemons_and_collect_once_count_every_call_once(
    pg: ThrowawayPostgres, database: str, store_url: str, tmp_path: Path, daemons
) -> None:
    """A second daemon waits and `collect --once` is refused while the first daemon collects; when
    the first stops, the second takes over from the state it saved. Every call is stored once."""
    dsn = pg.dsn(dbname=database)
    config = write_config(tmp_path, store_url, dsn)
    store = Store(store_url)
    before = server_calls(pg, database)
    first = daemons(config)
    wait_for("the first daemon's baseline cycle", lambda: last_success(store) > 0)
    second = daemons(config)
    waiting = f"postgres/t1: waiting: held by pid {first.pid} on "
    wait_for("the second daemon to wait", lambda: waiting in second.text())
    run_workload(dsn)
    once = observatory("-c", str(config), "collect", "--once")
    assert once.returncode == 1, once.stderr
    assert f"postgres/t1: not collected: held by pid {first.pid} on " in once.stderr
    assert "statements moved" not in once.stdout
    run_workload(dsn)
    ran = time.time()
    wait_for("a cycle of the first daemon", collected_after(store, ran))
    assert "lock taken" not in second.text()
    run_workload(dsn)  # after the first daemon's last cycle: for the second to find
    first.stop()
    assert first.proc.returncode == 0
    stopped = time.time()
    wait_for("the second daemon to take over", lambda: "postgres/t1: lock taken, collecting" in second.text())
    wait_for("a cycle of the second daemon", collected_after(store, stopped))
    second.stop()
    assert second.proc.returncode == 0
    assert stored_calls(store, database) == server_calls(pg, database) - before >= 3 * 80
    store.close()


@pytest.mark.slow  # daemons collecting for real: about 5 s
def test_lock_of_a_killed_daemon_is_free_and_a_waiting_daemon_stops_at_once(
    pg: ThrowawayPostgres, database: str, store_url: str, tmp_path: Path, daemons
) -> None:
    config = write_config(tmp_path, store_url, pg.dsn(dbname=database))
    store = Store(store_url)
    daemon = daemons(config)
    wait_for("the daemon's first cycle", lambda: last_success(store) > 0)
    refused = observatory("-c", str(config), "collect", "--once")
    assert refused.returncode == 1 and f"held by pid {daemon.pid} on " in refused.stderr
    waiting = daemons(config)
    wait_for("the second daemon to wait", lambda: "postgres/t1: waiting: held by" in waiting.text())
    asked = time.monotonic()
    waiting.stop()  # a target waiting for its lock does not hold up the stop
    assert waiting.proc.returncode == 0 and time.monotonic() - asked < 5
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.proc.wait(timeout=10)
    locks = target_locks(store_url)  # PostgreSQL ends the session a moment after the process
    wait_for("the lock to be free", lambda: locks.try_lock("postgres", "t1") is None, timeout=5)
    locks.close()
    once = observatory("-c", str(config), "collect", "--once")
    assert once.returncode == 0, once.stderr
    assert "postgres/t1: ok" in once.stdout
    store.close()


# -- one SQLite store through several paths -----------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
HOLD = """
import sys
from dashboard.store.locks import target_locks
locks = target_locks(sys.argv[1])
holder = locks.try_lock("postgres", "t1")
print("held" if holder is None else f"refused: pid {holder.pid}: {holder}", flush=True)
if holder is None:
    sys.stdin.read()  # holds it until the test closes its stdin
"""


@contextlib.contextmanager
def lock_in_child(url: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """Another process tries the lock of postgres/t1 in the store at `url`, and keeps it while this
    block runs if it got it; yields the process and what it said ("held", or "refused: pid N: ...")."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        said = proc.stdout.readline().strip()
        yield proc, said
    finally:
        proc.stdin.close()
        if proc.wait(timeout=30) != 0:
            pytest.fail(f"the child exited {proc.returncode}: {said!r}")
        proc.stdout.close()


@pytest.mark.parametrize("layout", ["file symlink", "directory symlink", "both", "not created yet"])
def test_every_path_to_a_sqlite_store_takes_one_lock(tmp_path: Path, layout: str) -> None:
    """A process holding a target's lock through the database's real path refuses one coming through a
    symlink to it, and the other way round; the refused one is told who holds it."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    real = tmp_path / "a" / "obs.db"
    if layout != "not created yet":
        Store(f"sqlite:///{real}").close()
    (tmp_path / "b" / "obs.db").symlink_to(Path("..") / "a" / "obs.db")  # dangling until created
    (tmp_path / "c").symlink_to("a", target_is_directory=True)
    (tmp_path / "d").symlink_to("b", target_is_directory=True)
    other = {
        "file symlink": tmp_path / "b" / "obs.db",
        "directory symlink": tmp_path / "c" / "obs.db",
        "both": tmp_path / "d" / "obs.db",  # a symlinked directory holding a symlink to the file
        "not created yet": tmp_path / "d" / "obs.db",
    }[layout]
    resolved = Path(os.path.realpath(tmp_path)) / "a" / "obs.db.locks"
    assert FileLocks(other).folder == FileLocks(real).folder == resolved

    for holding, taking in [(real, other), (other, real)]:
        with lock_in_child(f"sqlite:///{holding}") as (child, said):
            assert said == "held"
            locks = target_locks(f"sqlite:///{taking}")
            try:
                holder = locks.try_lock("postgres", "t1")
                assert holder is not None and holder.pid == child.pid
                assert f"pid {child.pid} on " in str(holder)
                assert holder.command.endswith(" " + shlex.quote(f"sqlite:///{holding}"))
                assert not locks.holds("postgres", "t1")
            finally:
                locks.close()
        # The child is gone, and its lock with it: this process takes it, and refuses another process.
        locks = target_locks(f"sqlite:///{taking}")
        try:
            assert locks.try_lock("postgres", "t1") is None
            with lock_in_child(f"sqlite:///{holding}") as (_, said):
                assert said.startswith(f"refused: pid {os.getpid()}: pid {os.getpid()} on ")
        finally:
            locks.close()
    assert sorted(p.name for p in resolved.iterdir()) == ["postgres-t1.lock"]
    assert not (tmp_path / "b" / "obs.db.locks").exists() and not (tmp_path / "d" / "obs.db.locks").exists()
