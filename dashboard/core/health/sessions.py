"""Sessions now: blocked ones with their blockers, long-running queries, idle in transaction."""

from __future__ import annotations

from dashboard.core.health.snapshot import Snapshot


class SessionsNow(Snapshot):
    """Sessions now: blocked ones with their blockers, long-running queries, idle in transaction."""
