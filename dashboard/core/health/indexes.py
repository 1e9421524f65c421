"""The indexes of the database a target connects to, as last read: each one's identity, so the
store can tell when an index first appeared (collectors/postgres/health/indexes.py).

Not kept in PostgresDetails: a database may have thousands of indexes, and what matters of them is
their history, which the cycle writer keeps in the store's index_catalog (first and last seen).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from dashboard.core.health.snapshot import Snapshot

LISTED = 5000  # the most indexes one reading lists (sql/indexes.13.sql's LIMIT), largest first


class IndexSeen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    index_name: str  # schema-qualified, quoted where needed: public.orders_ref_idx
    table_name: str  # likewise
    definition: str | None = None  # pg_get_indexdef
    keys: tuple[str, ...] = ()  # each key column or expression, without ordering or operator class


class IndexesNow(Snapshot):
    """Every user index of the database, up to LISTED of them."""

    datname: str | None = None
    indexes: tuple[IndexSeen, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether the reading lists every index (a capped one leaves the smallest out)."""
        return len(self.indexes) < LISTED
