"""Replicas and slots now (on a primary), or the replay delay (on a replica)."""

from __future__ import annotations

from dashboard.core.health.snapshot import Snapshot


class ReplicationNow(Snapshot):
    """Replicas and slots now (on a primary), or the replay delay (on a replica)."""
