"""The server_stats health part (collectors/postgres/parts.py). SKELETON: being written."""

from __future__ import annotations

from typing import Any

from collectors.postgres.parts import Part, PartRead
from dashboard.core.health import ServerNow


def read(rows: list[dict[str, Any]], now: int) -> PartRead:
    return PartRead([], ServerNow(ts=now))


PART = Part("server_stats", read)
