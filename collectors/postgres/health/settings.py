"""The settings health part (collectors/postgres/parts.py), every hour by default: the settings
sizing, autovacuum and checkpoints depend on, with unit, source and pending_restart, as one
snapshot (SettingsNow). No points: a setting changes rarely, and the snapshot says when it was read."""

from __future__ import annotations

from typing import Any

from collectors.postgres.parts import Part, PartRead
from dashboard.core.health import SettingsNow
from dashboard.core.health.settings import Setting


def read(rows: list[dict[str, Any]], now: int) -> PartRead:
    return PartRead([], SettingsNow(ts=now, settings=tuple(Setting.model_validate(r) for r in rows)))


PART = Part("settings", read)
