"""What is close to a limit now: transaction ID age per database and table, sequences."""

from __future__ import annotations

from dashboard.core.health.snapshot import Snapshot


class ServerNow(Snapshot):
    """What is close to a limit now: transaction ID age per database and table, sequences."""
