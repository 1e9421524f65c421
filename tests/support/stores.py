"""Configurations and collector cycles, as `observatory collect` makes them."""

from __future__ import annotations

import time

from sqlalchemy import update

from collectors.scheduler import Scheduler
from dashboard.core import config as config_mod
from dashboard.core.records import Cycle, Status
from dashboard.store import Store
from dashboard.store.schema import target_status


def make_config(store: str, targets: list[dict] | None = None, **extra) -> config_mod.Config:
    return config_mod.from_dict({"store": store, "targets": {"postgres": targets or []}, **extra})


def collect_once(config: config_mod.Config, store: Store, now: int | None = None):
    """One cycle of every target, as `observatory collect --once` runs it."""
    clock = (lambda: float(now)) if now is not None else time.time
    return Scheduler(config, store, clock=clock).run_once()


def stored_details(store: Store, kind: str, name: str, text: str, ts: int = 1_000) -> int:
    """A target whose last successful cycle left `text` in target_status.details, as it is (a row
    written by another version of the collector); returns the target's id."""
    store.write_cycle(Cycle(kind, name, ts, Status()))
    tid = store.target_id(kind, name)
    with store.engine.begin() as conn:
        conn.execute(update(target_status).where(target_status.c.target_id == tid).values(details=text))
    return tid
