"""A new SQLite store is readable by its owner only; an existing file keeps its mode."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.analysis.reader import StoreReads
from dashboard.store import Store
from tests.support.cycles import T0, cycle


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: SQLite alone would create the files 0644, so 0600 is the store's doing."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_new_store_and_its_wal_and_shm_are_0600(tmp_path: Path, open_umask) -> None:
    path = tmp_path / "new" / "store.db"
    store = Store(f"sqlite:///{path}")
    store.write_cycle(cycle(T0, {1: 1}))
    with store.engine.connect():  # the WAL and shared-memory files exist while a connection is open
        files = [path, path.with_name("store.db-wal"), path.with_name("store.db-shm")]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    store.close()


def test_a_reader_creates_no_store(tmp_path: Path, open_umask) -> None:
    """Only the writer creates the file (0600, above); a reader of a store nobody wrote yet creates
    nothing that could be left with a wider mode."""
    path = tmp_path / "store.db"
    reads = StoreReads.open(f"sqlite:///{path}")
    try:
        assert reads.statuses().empty
    finally:
        reads.close()
    assert not path.exists()


def test_existing_store_keeps_its_mode(tmp_path: Path, open_umask) -> None:
    path = tmp_path / "store.db"
    sqlite3.connect(path).close()
    path.chmod(0o640)
    store = Store(f"sqlite:///{path}")
    store.write_cycle(cycle(T0, {1: 1}))
    store.close()
    assert mode(path) == 0o640
