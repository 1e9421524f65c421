"""Configurations and collector cycles, as `observatory collect` makes them."""

from __future__ import annotations

import time

from collectors.scheduler import Scheduler
from dashboard.core import config as config_mod
from dashboard.store import Store


def make_config(store: str, targets: list[dict] | None = None, **extra) -> config_mod.Config:
    return config_mod.from_dict({"store": store, "targets": {"postgres": targets or []}, **extra})


def collect_once(config: config_mod.Config, store: Store, now: int | None = None):
    """One cycle of every target, as `observatory collect --once` runs it."""
    clock = (lambda: float(now)) if now is not None else time.time
    return Scheduler(config, store, clock=clock).run_once()
