"""The replication health part (collectors/postgres/parts.py). SKELETON: being written."""

from __future__ import annotations

from typing import Any

from collectors.postgres.parts import Part, PartRead
from dashboard.core.health import ReplicationNow


def read(rows: list[dict[str, Any]], now: int) -> PartRead:
    return PartRead([], ReplicationNow(ts=now))


PART = Part("replication", read)
