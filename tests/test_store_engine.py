"""The SQLite engines' page caches: the pages' readers scan with a large one, the daemon's writer keeps
a small one so its memory stays flat as the store grows (bench/fleet.py, issue 17)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from dashboard.store.engine import READER_CACHE_KIB, WRITER_CACHE_KIB, make_engine
from dashboard.store.writer import Store


def _cache_kib(engine) -> int:
    with engine.connect() as conn:
        return -conn.execute(text("PRAGMA cache_size")).scalar_one()  # negative: KiB


def test_writer_connections_keep_a_small_page_cache_and_readers_a_large_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)  # the daemon's engine, as `observatory collect` opens it
    reader = make_engine(url, readonly=True)
    try:
        assert _cache_kib(store.engine) == WRITER_CACHE_KIB == 2048
        assert _cache_kib(reader) == READER_CACHE_KIB == 65536
        with reader.connect() as conn:  # the reader still cannot write
            assert conn.execute(text("PRAGMA query_only")).scalar_one() == 1
    finally:
        store.close()
        reader.dispose()
