"""The base of every health part's snapshot of "now" (PostgresDetails.<part>)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Snapshot(BaseModel):
    """A part's last reading: frozen, and an unknown key (a newer version wrote it) is ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ts: int | None = None  # when it was read (Unix s)
