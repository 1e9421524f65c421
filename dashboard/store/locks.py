"""One collecting process per target: a lock per (kind, name) in the store, held while it collects.

Each process diffs the server's counters against its own last read, so two processes collecting one
target into one store would count its activity twice. Before collecting a target a process takes the
target's lock in the store; a second process is refused and told who holds it.

- SQLite store: `fcntl.flock` on `<db path>.locks/<kind>-<name>.lock` (mode 0600), which says who
  holds it (host, pid, command line, since when). `<db path>` is the database file's real path, its
  symlinks (to the file or to any directory above it) resolved, as SQLite resolves them for its own
  -wal and -shm files: every path to one database file takes one lock. Hard links are the exception
  (two names of one file, two lock folders); SQLite does not support them either, since each name
  gets a -wal file of its own. Nor is one file reached through two mount points (a bind mount, or
  two containers mounting one volume at different paths) known to be one.
- PostgreSQL store: `pg_try_advisory_lock` on one connection of its own, whose application_name
  says who holds it; the holder is read from `pg_locks` and `pg_stat_activity`.

Either way the lock goes with the process: the OS drops a file lock, the server ends the session,
so a killed process never leaves a stale lock.

Daemons configured with the same targets split them (collectors/scheduler.py): each daemon says it is
alive the same way, with a lock it holds for its life in a namespace of its own (`join`), so each
can count the live ones (`live`). SQLite store: a locked file `<db path>.locks/daemons/<group>-<id>.lock`;
PostgreSQL store: the two-key advisory lock (group, its session's pid), which `pg_locks` shows
with objsubid 2 and so apart from the targets' one-key locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from dashboard.store.engine import normalize_url

log = logging.getLogger("observatory.collect")

NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
# A daemon's "I am alive" lock: one key per session, so never waited for; taking it twice stacks.
DAEMON_LOCK = "SELECT pg_advisory_lock(:g, pg_backend_pid())"
# A daemon that stops without dying (SIGSTOP, a frozen VM) keeps its session, and the kernel still
# answers the keepalives: the server ends a session idle this long, freeing its targets, and a live
# daemon beats well within it (Scheduler.run_forever; the weekly review's sender shares its
# session). Only for a process that beats: a `collect --once` slower than this lost its locks.
# PostgreSQL 14+; older servers ignore it.
IDLE_SESSION_TIMEOUT_S = 20
# A server fenced by a switchover (read-only, or a standby) keeps the sessions open on it, and advisory
# locks still work there: the writer left it at its first refused write, the lock session never
# writes, so each beat asks, or two daemons on the two servers both held every target.
READ_ONLY_SERVER = "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"
BEAT_EVERY_S = 5.0
APP_NAME = re.compile(r"^observatory collect (?P<host>.*):(?P<pid>\d+)$")


@dataclass(frozen=True)
class Holder:
    """Who holds a target's lock, as far as the store can tell."""

    pid: int | None = None
    host: str | None = None
    command: str | None = None
    since: str | None = None
    address: str | None = None  # PostgreSQL store: the holder's client address
    backend_pid: int | None = None  # PostgreSQL store: the holder's session on the store

    def __str__(self) -> str:
        who = f"pid {self.pid}" if self.pid is not None else "another process"
        if self.host:
            who += f" on {self.host}"
        if self.command:
            who += f" ({self.command})"
        if self.address:
            who += f" from {self.address}"
        if self.since:
            who += f" since {self.since}"
        if self.backend_pid is not None:
            who += f", store session pid {self.backend_pid}"
        return who


def target_locks(url: str) -> TargetLocks:
    """The locks of the store at `url`."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return TargetLocks()  # a store in memory belongs to this process alone
        return FileLocks(Path(parsed.database))
    return AdvisoryLocks(normalize_url(url))


class TargetLocks:
    """The interface, and the locks of a store no other process can open (nothing to lock)."""

    def try_lock(self, kind: str, name: str) -> Holder | None:
        """Take the target's lock, or keep it: None when this process holds it, else who does."""
        _check(kind, name)
        return None

    def holds(self, kind: str, name: str) -> bool:
        """Whether this process took the target's lock (and did not lose it since, as far as it knows)."""
        return True

    def release(self, kind: str, name: str) -> None:
        pass

    def join(self, group: int) -> None:
        """Say this process is a live daemon of `group` (0 <= group < 2**31) until it closes."""

    def live(self, group: int) -> int:
        """How many daemons of `group` are alive, this one included once it joined."""
        return 1

    def start_beating(self) -> None:
        """From now on this process beats (`beat`): its locks go when it stops."""

    def beat(self) -> None:
        """Say this process is still alive, every BEAT_EVERY_S (its locks go when it stops saying so)."""

    def close(self) -> None:
        """Release every lock."""


class FileLocks(TargetLocks):
    def __init__(self, database: Path) -> None:
        # The real path, resolved now (a relative one against the current directory): a symlink to the
        # file, or to a directory above it, must not lead to a lock folder of its own. A file that does
        # not exist yet is resolved as far as it goes: its directories, and a symlink to where it will be.
        self.database = Path(os.path.realpath(database))
        self.folder = self.database.with_name(self.database.name + ".locks")
        self._files: dict[tuple[str, str], int] = {}  # held: the open lock file
        self._member: int | None = None  # the open file saying this daemon is alive
        self._mutex = threading.Lock()

    def path(self, kind: str, name: str) -> Path:
        return self.folder / f"{kind}-{name}.lock"

    def try_lock(self, kind: str, name: str) -> Holder | None:
        _check(kind, name)
        with self._mutex:
            if (kind, name) in self._files:
                return None
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self.path(kind, name)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return _read_holder(path)
            except BaseException:
                os.close(fd)
                raise
            me = {"host": socket.gethostname(), "pid": os.getpid(), "command": _command(), "since": _now()}
            os.ftruncate(fd, 0)  # in place: the lock is on this inode, so never replace the file
            os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
            self._files[(kind, name)] = fd
            return None

    def holds(self, kind: str, name: str) -> bool:
        return (kind, name) in self._files

    def release(self, kind: str, name: str) -> None:
        with self._mutex:
            fd = self._files.pop((kind, name), None)
        if fd is not None:
            os.close(fd)  # the file stays: removing it would race with a process opening it

    def join(self, group: int) -> None:
        folder = self.folder / "daemons"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"{group}-{os.getpid()}-{uuid.uuid4().hex[:8]}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # a new file of its own: never contended
        self._member = fd

    def live(self, group: int) -> int:
        alive = 0
        for path in (self.folder / "daemons").glob(f"{group}-*.lock"):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue  # removed a moment ago
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                alive += 1
            else:  # its daemon is gone (no one reuses a name): tidy it away
                with contextlib.suppress(OSError):
                    path.unlink()
            finally:
                os.close(fd)
        return alive

    def close(self) -> None:
        for kind, name in list(self._files):
            self.release(kind, name)
        if self._member is not None:
            os.close(self._member)  # the file stays until a live() finds it free
            self._member = None


def _read_holder(path: Path) -> Holder:
    for _ in range(5):  # the holder may be writing it this very moment
        try:
            data = json.loads(path.read_text())
            return Holder(**{k: data.get(k) for k in ("pid", "host", "command", "since")})
        except (OSError, ValueError):
            time.sleep(0.05)
    return Holder()


class AdvisoryLocks(TargetLocks):
    """Session-level advisory locks on one connection of their own, kept for the process's life."""

    def __init__(self, url: str) -> None:
        prefix, suffix = "observatory collect ", f":{os.getpid()}"
        host = socket.gethostname()[: 63 - len(prefix) - len(suffix)]  # 63 bytes, or the server cuts the pid
        self.application_name = prefix + host + suffix
        connect_args = {"application_name": self.application_name}
        if "connect_timeout" not in make_url(url).query:
            connect_args["connect_timeout"] = "10"
        self._engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
        self._conn: Connection | None = None
        self._held: set[int] = set()  # the keys this process holds, or held before its session ended
        self._in_session: set[int] = set()  # the keys locked in the current session
        self._group: int | None = None  # joined: taken again in each new session
        self._beating = False  # the session ends when this process stops beating
        self._mutex = threading.Lock()

    def try_lock(self, kind: str, name: str) -> Holder | None:
        _check(kind, name)
        key = lock_key(kind, name)
        with self._mutex:
            try:
                return self._try_lock(key)
            except Exception:
                self._disconnect()  # the session ended (the store restarted, say): a new one, at once
            try:
                return self._try_lock(key)
            except Exception:
                self._disconnect()
                if key in self._held:  # the store is away: keep on (the cycles wait in memory), and
                    return None  # take the lock again as soon as it is back
                raise

    def _try_lock(self, key: int) -> Holder | None:
        conn = self._connection()
        if key in self._in_session:
            conn.execute(text("SELECT 1"))  # the session, and with it the lock, is still there
            return None
        if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one():
            self._held.add(key)
            self._in_session.add(key)
            return None
        self._held.discard(key)  # taken by another process while this one's session was away
        return self._holder(conn, key)

    def holds(self, kind: str, name: str) -> bool:
        return lock_key(kind, name) in self._held

    def release(self, kind: str, name: str) -> None:
        key = lock_key(kind, name)
        with self._mutex:
            self._held.discard(key)
            if key in self._in_session and self._conn is not None:
                self._in_session.discard(key)
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                except Exception:
                    self._disconnect()  # the session ends, and its locks with it

    def join(self, group: int) -> None:
        with self._mutex:
            self._group = group
            try:
                self._connection()  # a new session takes it; one already open takes it now
                self._conn.execute(text(DAEMON_LOCK), {"g": group})  # type: ignore[union-attr]
            except Exception:
                self._disconnect()  # the store is away: the next session takes it

    def live(self, group: int) -> int:
        with self._mutex:
            try:
                count = self._connection().execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                        " AND objsubid = 2 AND classid::bigint = :g"
                        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    ),
                    {"g": group},
                )
                return int(count.scalar_one())
            except Exception:
                self._disconnect()
                return 1  # the store is away: as if alone, so nothing held is given up

    def start_beating(self) -> None:
        with self._mutex:
            self._beating = True
            if self._conn is not None:
                try:
                    self._end_when_idle(self._conn)
                except Exception:
                    self._disconnect()  # the next session gets it

    def beat(self) -> None:
        with self._mutex:
            if self._conn is None:
                return
            try:
                fenced = self._conn.execute(text(READ_ONLY_SERVER)).scalar()
            except Exception:
                self._disconnect()  # ended (a store restart, say): the next try_lock takes the locks again
                return
            if fenced:  # a switchover: the next try_lock follows the store's name to the new primary
                log.warning("store: the lock session's server is read-only now: reconnecting")
                self._disconnect()

    def close(self) -> None:
        with self._mutex:
            self._held.clear()
            if self._conn is not None and (self._in_session or self._group is not None):
                with contextlib.suppress(Exception):  # now: the session's end comes a moment later
                    self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
            self._group = None
            self._disconnect()
            self._engine.dispose()

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._disconnect()
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            # A holder whose host vanishes (no FIN, unlike a killed process): the server ends its
            # session, and so frees its locks, after about a minute rather than the OS's two hours.
            self._conn.execute(text("SET tcp_keepalives_idle = 30"))
            self._conn.execute(text("SET tcp_keepalives_interval = 10"))
            self._conn.execute(text("SET tcp_keepalives_count = 3"))
            if self._beating:
                self._end_when_idle(self._conn)
            if self._group is not None:  # alive as long as this session: one key per session
                self._conn.execute(text(DAEMON_LOCK), {"g": self._group})
        return self._conn

    @staticmethod
    def _end_when_idle(conn: Connection) -> None:
        if conn.dialect.server_version_info >= (14,):
            conn.execute(text(f"SET idle_session_timeout = '{IDLE_SESSION_TIMEOUT_S}s'"))

    def _disconnect(self) -> None:
        self._in_session.clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()  # really close it: its locks must go with it
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _holder(self, conn: Connection, key: int) -> Holder:
        row = (
            conn.execute(
                text(
                    "SELECT l.pid, a.application_name, host(a.client_addr) AS address, a.backend_start"
                    " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    " AND l.classid::bigint = :hi AND l.objid::bigint = :lo"
                ),
                {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
            )
            .mappings()
            .first()
        )
        if row is None:  # released just now
            return Holder()
        app = APP_NAME.match(row["application_name"] or "")
        return Holder(
            pid=int(app["pid"]) if app else None,
            host=app["host"] if app else None,
            command=row["application_name"] or None,
            since=_iso(row["backend_start"]),
            address=row["address"],
            backend_pid=row["pid"],
        )


def lock_key(kind: str, name: str) -> int:
    """The target's advisory lock key: a stable signed 64-bit hash of (kind, name)."""
    digest = hashlib.blake2b(f"{kind}\0{name}".encode(), digest_size=8, person=b"obs-target").digest()
    return int.from_bytes(digest, "big", signed=True)


def group_key(targets: list[tuple[str, str]]) -> int:
    """The daemons' group of a set of targets: daemons configured with the same targets split them."""
    names = "\n".join(sorted(f"{kind}\0{name}" for kind, name in targets))
    digest = hashlib.blake2b(names.encode(), digest_size=4, person=b"obs-group").digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


def _check(kind: str, name: str) -> None:
    if not (NAME.match(kind) and NAME.match(name)):
        raise ValueError(f"not a target kind and name: {kind!r}, {name!r}")


def _command() -> str:
    return shlex.join(getattr(sys, "orig_argv", None) or sys.argv)


def _now() -> str:
    return _iso(datetime.now(UTC))


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None
