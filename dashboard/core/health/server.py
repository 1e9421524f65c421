"""What is close to a limit now: transaction ID age per database, the tables holding back the
database's freeze horizon, and sequences nearing their maximum
(collectors/postgres/health/server_stats.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from dashboard.core.health.snapshot import Snapshot

XID_LIMIT = 2**31 - 1  # transaction IDs a database may age by before PostgreSQL stops writes
WRAPAROUND_WARN_LEFT = 1_500_000_000  # PgHero warns with fewer transactions left than this
SEQUENCE_LISTED = 0.5  # sequences past this share of their range are listed
SEQUENCE_FLAGGED = 0.9  # and flagged past this one (PgHero's threshold)


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class DatabaseAge(_Row):
    datname: str
    xid_age: int  # age(datfrozenxid): transactions since the database was last frozen
    mxid_age: int | None = None  # mxid_age(datminmxid): the same for multixacts

    @property
    def headroom(self) -> int:
        """Transactions left before wraparound protection stops writes."""
        return XID_LIMIT - self.xid_age


class TableAge(_Row):
    table_name: str  # schema-qualified where not on the search_path; a TOAST table by its table's name
    toast: bool = False
    xid_age: int
    size_bytes: int | None = None


class SequenceUse(_Row):
    schemaname: str
    sequencename: str
    data_type: str
    table_name: str | None = None  # the column it feeds (serial, identity), if any
    column_name: str | None = None
    last_value: int
    limit_value: int  # its maximum, or the column type's when lower (its minimum when it counts down)
    used: float  # last_value / limit_value

    @property
    def flagged(self) -> bool:
        return self.used > SEQUENCE_FLAGGED


class ServerNow(Snapshot):
    """What is close to a limit now: transaction ID age per database and table, sequences."""

    datname: str | None = None  # the database the tables and sequences are of (the target's dsn's)
    databases: tuple[DatabaseAge, ...] = ()
    tables: tuple[TableAge, ...] = ()  # oldest relfrozenxid first, 10 at most
    sequences: tuple[SequenceUse, ...] = ()  # past SEQUENCE_LISTED, fullest first
    sequences_total: int = 0
    sequences_unreadable: int = 0  # last_value hidden from the collector's role
    problem: str | None = None  # what the role could not read, and the grant that fixes it

    @property
    def flagged_sequences(self) -> tuple[SequenceUse, ...]:
        return tuple(s for s in self.sequences if s.flagged)
