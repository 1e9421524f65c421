"""Schema versions and the steps between them, so an upgrade never loses a user's history.

A new store gets the current schema at once. An older store runs each step after its version in
order, in one transaction. To change the schema: edit schema.py, bump SCHEMA_VERSION, and append a
step here that brings a store of the previous version to the new one without dropping data.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text

from dashboard.store import partitions
from dashboard.store.schema import PARTITIONED_LEVELS, POINTS, SCHEMA_VERSION, STMT, meta, metadata


def _tables_only(conn: Connection) -> None:
    """A version that only added tables: `migrate` creates them after the steps."""


def _partition_by_time(conn: Connection) -> None:
    """PostgreSQL: the raw and hourly tables become partitioned by time, their rows kept (SQLite: as is)."""
    if conn.dialect.name == "postgresql":
        tables = {t.name: t for level in PARTITIONED_LEVELS for t in (POINTS[level], STMT[level])}
        partitions.partition_existing(conn, tables)


# STEPS[n] upgrades a store at version n to version n + 1.
STEPS: dict[int, Callable[[Connection], None]] = {
    1: _tables_only,  # 2: the alert tables
    2: _tables_only,  # 3: statement_plans
    3: _tables_only,  # 4: blocking_chains
    4: _tables_only,  # 5: index_catalog, index_catalog_reads, index_suggestions
    5: _partition_by_time,  # 6
    6: _tables_only,  # 7: leases
}
MIGRATE_KEY = 0x6F62735F6D696772  # the advisory lock of migrations on a PostgreSQL store ("obs_migr")


class SchemaError(RuntimeError):
    pass


def current_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table("meta"):
        return None
    value = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    return int(value) if value is not None else None


def refuse_newer(found: int | None) -> None:
    """A store written by a newer observatory is neither migrated nor read: its schema is unknown here."""
    if found is not None and found > SCHEMA_VERSION:
        raise SchemaError(
            f"the store is at schema version {found}, newer than this observatory "
            f"({SCHEMA_VERSION}): upgrade the observatory before using this store"
        )


def _set_version(conn: Connection, version: int) -> None:
    conn.execute(meta.delete().where(meta.c.key == "schema_version"))
    conn.execute(meta.insert().values(key="schema_version", value=str(version)))


def _one_at_a_time(conn: Connection) -> None:
    """Daemons started together on a new or older store: the first migrates, the others wait for it
    and then find the store current (they failed on the tables it was creating)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_KEY})
    else:  # SQLite: take the write lock now, not at the first CREATE, after the version was read
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> int:
    """Bring the store to SCHEMA_VERSION; returns the version it was at (0 for a new store)."""
    with engine.connect() as conn:
        found = current_version(conn)
    if found == SCHEMA_VERSION:  # the usual case: nothing to wait for (a locked store still opens)
        return found
    refuse_newer(found)
    with engine.begin() as conn:
        _one_at_a_time(conn)
        found = current_version(conn)
        if found is None:
            metadata.create_all(conn)
            _set_version(conn, SCHEMA_VERSION)
            return 0
        refuse_newer(found)
        for version in range(found, SCHEMA_VERSION):
            STEPS[version](conn)
            _set_version(conn, version + 1)
        metadata.create_all(conn)  # tables added by later versions, when a step only added tables
        return found
