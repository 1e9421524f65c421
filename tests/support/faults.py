"""Faults caused for real: a listener that never answers, processes killed mid-write, a store locked
by another process, a full filesystem, corrupted bytes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FULL_DISK = Path("/run/observatory-tests/full")  # scripts/test.sh mounts a small tmpfs here under CI


def child_env() -> dict[str, str]:
    """This environment, with the project importable and without a configuration of its own."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {k: v for k, v in os.environ.items() if k != "OBSERVATORY_CONFIG"}
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def wait_for(what: str, done: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class SilentListener:
    """A TCP port that accepts connections and never sends a byte: a connect that hangs after the
    handshake, as behind a stuck proxy or a half-dead host."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> SilentListener:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = self._sock.accept()
                self.accepted.append(conn)  # kept open, never read nor answered


# -- a process writing cycles through the real store API, killed in the middle of a write ----------
WRITER = """
import sys, time
from dashboard.store import Store
from tests.support.cycles import cycle
url, first, count, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = Store(url)
for i in range(count):
    ts = first + 60 * i
    batch = cycle(ts, {n: float(i + 1) for n in range(width)}, cumulative=float(ts))
    print("writing", ts, flush=True)
    store.write_cycle(batch)
    print("saved", ts, flush=True)
time.sleep(600)
"""


def kill_mid_write(
    url: str, first: int, *, saved_before: int, width: int = 3000
) -> tuple[list[int], int] | None:
    """A child writes cycles of `width` statements (statement n runs i + 1 times in the i-th cycle,
    every 60 s from `first`) through Store.write_cycle; once `saved_before` are saved it is SIGKILLed
    early in writing the next one. Returns the timestamps it said were saved and the one it was
    writing when killed; None if that write was over before the kill landed (a loaded machine)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(first), str(saved_before + 5), str(width)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    saved: list[int] = []
    took: list[float] = []
    try:
        started = 0.0
        while True:
            line = _readline(proc, timeout=30)
            word, ts = line.split()
            if word == "writing" and len(saved) == saved_before:
                time.sleep(min(took) / 5)  # early in a write as long as the others
                break
            if word == "writing":
                started = time.monotonic()
            else:
                took.append(time.monotonic() - started)
                saved.append(int(ts))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        return None if "saved" in proc.stdout.read() else (saved, int(ts))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    """The child's next line of output, failing with its stderr if it ends or says nothing in time."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not got or not got[0]:
        proc.kill()
        raise AssertionError(f"the writer said nothing: {proc.stderr.read()[-2000:]}")
    return got[0]


# -- a SQLite store locked by another process ---------------------------------------------------
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")  # the write lock, held until stdin closes
conn.execute("CREATE TABLE IF NOT EXISTS held_by_another (x)")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


@contextlib.contextmanager
def sqlite_write_locked(path: Path) -> Iterator[subprocess.Popen]:
    """Another process holds an open write transaction on the SQLite file while the block runs."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _readline(proc, timeout=10).strip() == "locked"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def integrity(path: Path) -> str:
    """SQLite's own check of the file ("ok" when sound), read through a separate connection."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


# -- a full filesystem ---------------------------------------------------------------------------
def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def is_tmpfs(path: Path) -> bool:
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    return any(line.split()[1] == str(path) and line.split()[2] == "tmpfs" for line in mounts)


@contextlib.contextmanager
def small_filesystem(fallback: Path, size_mb: int = 8) -> Iterator[Path]:
    """A small tmpfs to fill: the one scripts/test.sh mounts (FULL_DISK), else, as root, one mounted
    at `fallback` for the block. Under CI a missing one fails; elsewhere, without root, it skips."""
    import pytest

    if is_tmpfs(FULL_DISK):
        folder = FULL_DISK / f"t{os.getpid()}-{time.monotonic_ns()}"
        folder.mkdir()
        try:
            yield folder
        finally:
            subprocess.run(["rm", "-rf", str(folder)], check=False)
        return
    if in_ci():
        pytest.fail(f"no tmpfs at {FULL_DISK}: scripts/test.sh mounts it under CI")
    if os.geteuid() != 0:
        pytest.skip(f"a full filesystem needs a tmpfs: run as root, or mount one at {FULL_DISK}")
    fallback.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(fallback)], check=True)
    try:
        yield fallback
    finally:
        subprocess.run(["umount", "-l", str(fallback)], check=False)


def fill(folder: Path) -> Path:
    """Fill the filesystem of `folder` to the last byte; returns the filler (delete it to free space)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (b"\0" * 65536, b"\0"):
            with contextlib.suppress(OSError):
                while fh.write(chunk):
                    pass
    return filler


# -- a PostgreSQL crash ----------------------------------------------------------------------------
def crash_postgres(data_dir: str, sock_dir: str, timeout: float = 10.0) -> None:
    """SIGKILL the postmaster of `data_dir` and its children (a power cut, the OOM killer): nothing is
    saved on the way down, pg_stat_statements' counters included."""
    postmaster = int(Path(data_dir, "postmaster.pid").read_text().split()[0])
    children = [pid for pid in _pids() if _parent(pid) == postmaster]
    for pid in (postmaster, *children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    gone = (postmaster, *children)
    wait_for("the killed server's processes to end", lambda: not any(_alive(p) for p in gone), timeout)
    # A container's PID 1 may never reap the dead postmaster: a zombie still answers kill(pid, 0), and
    # PostgreSQL would take it for a live one. Its lock files go, as after a reboot.
    for lock in (Path(data_dir, "postmaster.pid"), *Path(sock_dir).glob(".s.PGSQL.*")):
        lock.unlink()


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
