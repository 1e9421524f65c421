"""The server's settings that its sizing and maintenance depend on."""

from __future__ import annotations

from dashboard.core.health.snapshot import Snapshot


class SettingsNow(Snapshot):
    """The server's settings that its sizing and maintenance depend on."""
