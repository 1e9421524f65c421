"""Replicas and slots now (on a primary), or the replay delay (on a replica).

Read by collectors/postgres/health/replication.py from pg_stat_replication, pg_replication_slots,
pg_stat_wal_receiver and the recovery functions (sql/replication.*.sql). Byte figures are WAL
bytes; a figure PostgreSQL did not report (a replica that has not replied yet) is None.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from dashboard.core.health.snapshot import Snapshot


class _Row(BaseModel):
    # As Snapshot: frozen, and a key a newer version wrote is ignored.
    model_config = ConfigDict(frozen=True, extra="ignore")


class Replica(_Row):
    """A standby this server streams WAL to (a row of pg_stat_replication)."""

    name: str  # application_name; with its address when two replicas share one
    client_addr: str | None = None
    state: str | None = None  # startup, catchup, streaming, backup, stopping
    sync_state: str | None = None  # async, potential, sync, quorum
    write_lag_s: float | None = None  # pg_stat_replication's lags: None once idle and caught up
    flush_lag_s: float | None = None
    replay_lag_s: float | None = None
    unsent_bytes: float | None = None  # WAL written here, not yet sent to it
    replay_bytes: float | None = None  # WAL written here, not yet replayed there

    @property
    def lag_s(self) -> float | None:
        """Its replay lag, 0 once it has replayed everything: pg_stat_replication keeps showing the
        last lag measured for a while after a replica caught up."""
        return 0.0 if self.replay_bytes == 0 else self.replay_lag_s


class Slot(_Row):
    """A replication slot (pg_replication_slots): the WAL (and rows, by its xmin) it keeps."""

    name: str
    slot_type: str  # physical | logical
    database: str | None = None  # a logical slot's database
    active: bool = False  # a consumer is connected to it now
    temporary: bool = False
    wal_status: str | None = None  # reserved, extended, unreserved (about to be lost), lost
    retained_bytes: float | None = None  # WAL kept for it; None when it reserves none
    safe_wal_bytes: float | None = None  # WAL that may be written before it is lost (max_slot_wal_keep_size)
    xmin_age: int | None = None  # transactions its xmin (or catalog_xmin) holds back from vacuum

    @property
    def lost(self) -> bool:
        """WAL it needs is gone (lost) or may go at the next checkpoint (unreserved)."""
        return self.wal_status in ("lost", "unreserved")


class ReplicationNow(Snapshot):
    """Replicas and slots now (on a primary), or the replay delay (on a replica)."""

    role: Literal["primary", "replica"] | None = None  # replica: pg_is_in_recovery()
    replicas: tuple[Replica, ...] = ()  # also on a replica that streams to others (cascading)
    slots: tuple[Slot, ...] = ()
    # A replica's own: seconds since its last replayed transaction was committed on the primary
    # (0 when it replayed all it received: an idle primary is not lag), the WAL received but not
    # yet replayed, whether replay is paused (pg_wal_replay_pause), and its WAL receiver's status
    # (None when it receives nothing: no primary connected, or restoring from an archive).
    replay_delay_s: float | None = None
    replay_bytes: float | None = None
    replay_paused: bool | None = None
    receiver_status: str | None = None

    @property
    def inactive_slots(self) -> tuple[Slot, ...]:
        return tuple(s for s in self.slots if not s.active)
