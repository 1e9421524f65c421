"""What the PostgreSQL collector's health parts keep of "now" (`PostgresDetails`): the sessions
that block or run long, the replicas and slots, the settings. Series over time go to the store as
points; these are the last reading, for the pages and `observatory health`.

One model per part, filled in by its module under collectors/postgres/health/.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Snapshot(BaseModel):
    """A part's last reading: frozen, and an unknown key (a newer version wrote it) is ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ts: int | None = None  # when it was read (Unix s)


class SessionsNow(Snapshot):
    """Sessions now: blocked ones with their blockers, long-running queries, idle in transaction."""


class ReplicationNow(Snapshot):
    """Replicas and slots now (on a primary), or the replay delay (on a replica)."""


class ServerNow(Snapshot):
    """What is close to a limit now: transaction ID age per database and table, sequences."""


class SettingsNow(Snapshot):
    """The server's settings that its sizing and maintenance depend on."""
