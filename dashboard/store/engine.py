"""Engines for the store: one writer (the collectors) and read-only readers (the pages).

SQLite runs in WAL mode so readers never block the writer; reader connections set `query_only` so a
page can never write, the way Datasette opens its databases. Only the writer creates a SQLite file
(readable by its owner only, mode 0600); a reader of a file that does not exist yet sees an empty
store (dashboard.analysis.reader).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import OperationalError

READER_CACHE_KIB = 65536  # SQLite page cache per reader connection (the pages' scans)
WRITER_CACHE_KIB = 2048  # per writer connection: the daemon's memory stays flat (see _sqlite_pragmas)


def normalize_url(url: str) -> str:
    """Accept postgresql:// for the store and use psycopg 3 for it."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def make_engine(url: str, *, readonly: bool = False) -> Engine:
    """The store's engine; `readonly`: a reader's, which never creates the SQLite file."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4, hide_parameters=True)
        if readonly:
            event.listen(engine, "connect", _postgres_readonly)
        else:
            event.listen(engine, "handle_error", _read_only_is_an_outage)
        return engine
    if parsed.database and parsed.database != ":memory:" and not readonly:
        _create_private(Path(parsed.database))
    # hide_parameters: a failed statement's values (a target's error text) stay out of its message.
    engine = create_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True
    )
    event.listen(engine, "connect", _sqlite_pragmas(readonly))
    return engine


def _read_only_is_an_outage(context: ExceptionContext) -> None:
    """A store turned read-only under the writer (its primary demoted in a failover, or
    default_transaction_read_only set) is away for writing, like a store that is down: the cycles
    wait and are retried. As psycopg's InternalError it was a refusal of the cycles' data: after 3
    they were dropped, and a daemon's thread for the target ended (its lease could not be taken)."""
    if getattr(context.original_exception, "sqlstate", None) == "25006":  # read_only_sql_transaction
        # And the session is dropped: one opened while the store was read-only stays read-only
        # (default_transaction_read_only is read at connect), and the pool's ping passes on it.
        context.is_disconnect = True
        raise OperationalError(None, None, context.original_exception, hide_parameters=True)


def _create_private(path: Path) -> None:
    """Create a new SQLite file with mode 0600 (SQLite gives its -wal and -shm files the database
    file's mode); an existing file's mode is left as it is. SQLite takes an empty file as a new database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


def _sqlite_pragmas(readonly: bool):
    def on_connect(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        if not readonly:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
            # Checkpoint every ~16 MB of WAL rather than 4 MB: a 5,000-statement cycle writes a few MB,
            # and a checkpoint per cycle doubled its cost. The file is trimmed back after each one.
            cur.execute("PRAGMA wal_autocheckpoint=4000")
            cur.execute("PRAGMA journal_size_limit=67108864")
        cur.execute("PRAGMA busy_timeout=10000")
        # Readers: 64 MiB page cache, so the dashboard's roll-up scans stay in memory. The writer's
        # connections (the daemon's, up to 15 in its pool) keep 2 MiB each: with 64 MiB each they grew
        # with the store (SQLite's heap 60 MiB at 4 min in bench/fleet.py, 2 MiB with this; RSS 714 MiB
        # after the 30-minute soak). Its work is appends and point reads, same CPU per cycle either way.
        cur.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB if readonly else WRITER_CACHE_KIB}")
        cur.execute("PRAGMA temp_store=MEMORY")
        if readonly:
            cur.execute("PRAGMA query_only=ON")
        cur.close()

    return on_connect


def _postgres_readonly(dbapi_conn, _record) -> None:
    with dbapi_conn.cursor() as cur:
        cur.execute("SET default_transaction_read_only = on")
    dbapi_conn.commit()


def missing_sqlite_file(url: str | URL) -> bool:
    """Whether `url` names a SQLite file that does not exist (yet): nothing to read, nothing to create."""
    parsed = url if isinstance(url, URL) else make_url(normalize_url(url))
    return (
        parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not (Path(parsed.database).exists())
    )
