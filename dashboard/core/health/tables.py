"""The tables of the database a target connects to, as last read: sizes, live and dead rows, the
last vacuum and analyze, scans (collectors/postgres/health/tables.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from dashboard.core.health.snapshot import Snapshot

DEAD_RATIO_WARN = 0.2  # dead rows over live + dead: autovacuum's default scale factor, doubled


class TableNow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    table_name: str  # schema-qualified, quoted where needed
    total_bytes: int
    table_bytes: int
    index_bytes: int
    toast_bytes: int
    live: int
    dead: int
    modified_since_analyze: int
    vacuumed: int | None  # Unix s of the later of last_vacuum and last_autovacuum
    analyzed: int | None  # likewise for analyze
    seq_scan: int
    idx_scan: int
    xid_age: int

    @property
    def dead_ratio(self) -> float:
        rows = self.live + self.dead
        return self.dead / rows if rows else 0.0


class TablesNow(Snapshot):
    """The largest tables (50) of the database the target connects to."""

    datname: str | None = None
    tables: tuple[TableNow, ...] = ()
