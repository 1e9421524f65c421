"""A new SQLite store is readable by its owner only; an existing file keeps its mode. A writer that
may not write the store (the readers' role, read-only sessions) is refused when it opens it."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dashboard.analysis.reader import StoreReads
from dashboard.cli.common import open_store
from dashboard.core import config as config_mod
from dashboard.core.config import Retention
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.schema import metadata
from dashboard.store.writable import StoreNotWritable, refuse_unwritable
from tests.support.cli import observatory
from tests.support.cycles import DAY, T0, cycle

PASSWORD = "Unseen-store-pw-4417"


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


# -- a writer that may not write (PostgreSQL) -----------------------------------------------------
def _store_database(pg: ThrowawayPostgres) -> tuple[str, str]:
    """A new store database migrated by its owner, and a role with the readers' grants on it."""
    suffix = uuid.uuid4().hex[:10]
    name, reader = f"store_{suffix}", f"reader_{suffix}"
    _as_superuser(pg, "postgres", f"CREATE DATABASE {name}", f"CREATE ROLE {reader} LOGIN")
    Store(pg.dsn(dbname=name)).close()
    _as_superuser(pg, name, f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}")
    return name, reader


def _targets(pg: ThrowawayPostgres, name: str) -> int:
    with psycopg.connect(pg.dsn(dbname=name)) as conn:
        return conn.execute("SELECT count(*) FROM targets").fetchone()[0]


def test_collect_as_the_readers_role_is_one_line_and_writes_nothing(
    pg: ThrowawayPostgres, tmp_path: Path
) -> None:
    """The readers' role in a daemon's config: before, `collect --once` printed a driver traceback
    at its first INSERT. Now one line names the role, the owner and where the README says more."""
    name, reader = _store_database(pg)
    config = tmp_path / "observatory.yaml"
    config.write_text(
        f"store: {pg.dsn(user=reader, dbname=name, password=PASSWORD)}\n"
        f"targets:\n  postgres:\n    - name: t1\n      dsn: {pg.dsn()}\n"
    )
    result = observatory("collect", "--once", config=config, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert f"role {reader} does not own the store's tables" in result.stderr
    assert "owner postgres" in result.stderr and "A shared store on PostgreSQL" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert _targets(pg, name) == 0


def _as_superuser(pg: ThrowawayPostgres, dbname: str, *statements: str) -> None:
    with psycopg.connect(pg.dsn(dbname=dbname), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _refused(pg: ThrowawayPostgres, user: str, dbname: str) -> str:
    """Why the collectors may not write the store as `user` (refuse_unwritable), or ""."""
    store = Store(pg.dsn(user=user, dbname=dbname))
    try:
        refuse_unwritable(store.engine)
    except StoreNotWritable as err:
        return str(err)
    finally:
        store.close()
    return ""


def test_a_member_of_the_owner_writes_and_read_only_sessions_are_refused(pg: ThrowawayPostgres) -> None:
    """A member of the owning role is the owner for PostgreSQL (no false refusal); the same role
    with read-only transactions (as on a standby) is refused before any cycle."""
    name, member = _store_database(pg)
    _as_superuser(pg, "postgres", f"GRANT postgres TO {member}")
    assert _refused(pg, member, name) == ""
    store = Store(pg.dsn(user=member, dbname=name))
    store.write_cycle(cycle(T0, {1: 1}))
    store.close()
    assert _targets(pg, name) == 1
    _as_superuser(pg, "postgres", f"ALTER ROLE {member} SET default_transaction_read_only = on")
    assert f"role {member} opens read-only transactions" in _refused(pg, member, name)


def test_serve_opens_the_store_as_the_readers_role(pg: ThrowawayPostgres) -> None:
    """The README's dashboards connect as the readers' role: `serve` (open_store, no `collect`)
    opens it; only the collectors are refused."""
    name, reader = _store_database(pg)
    config = config_mod.from_dict({"store": pg.dsn(user=reader, dbname=name)})
    open_store(config).close()
    with pytest.raises(config_mod.ConfigError, match=r"cannot collect into it: role \w+ does not own"):
        open_store(config, collect=True)


def test_tables_found_through_the_search_path_are_the_ones_checked(pg: ThrowawayPostgres) -> None:
    """A role with a schema of its own (first on the default search_path, "$user") finds the store's
    tables in public: those are checked, not its empty schema."""
    name, reader = _store_database(pg)
    _as_superuser(pg, name, f"CREATE SCHEMA {reader} AUTHORIZATION {reader}")
    assert f"role {reader} does not own the store's tables" in _refused(pg, reader, name)


def test_an_owner_of_the_tables_but_not_their_partitions_or_schema_is_refused(pg: ThrowawayPostgres) -> None:
    """A restored store handed over with ALTER TABLE ... OWNER TO: the existing time partitions stay
    the old owner's (retention then failed every hour on them), and without CREATE on the schema
    (PostgreSQL 15+ gives PUBLIC none on public) each new day's partition would be refused."""
    name, writer = _store_database(pg)
    store = Store(pg.dsn(dbname=name))
    store.write_cycle(cycle(T0, {1: 1}))  # its day's partitions, owned by the superuser
    store.close()
    _as_superuser(pg, name, *(f"ALTER TABLE {table} OWNER TO {writer}" for table in metadata.tables))
    with psycopg.connect(pg.dsn(dbname=name)) as conn:
        partitions = [r[0] for r in conn.execute("SELECT inhrelid::regclass::text FROM pg_inherits")]
    assert partitions
    assert re.search(
        r"does not own the store's tables \((points|stmt)_\w+_p\d{8}", _refused(pg, writer, name)
    )
    _as_superuser(pg, name, *(f"ALTER TABLE {table} OWNER TO {writer}" for table in partitions))
    assert re.search(
        rf"may not create tables in schema public.*: GRANT CREATE ON SCHEMA public TO {writer} ",
        _refused(pg, writer, name),
    )
    _as_superuser(pg, name, f"GRANT CREATE ON SCHEMA public TO {writer}")
    assert _refused(pg, writer, name) == ""  # as the message says: now it may
    store = Store(pg.dsn(user=writer, dbname=name))
    store.prune(Retention(raw=DAY), now=T0 + 10 * DAY)  # and drop the partitions it owns
    store.close()
