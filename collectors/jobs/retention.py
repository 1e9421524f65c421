"""Retention as a daemon job: the store pruned to the configured retention, once an hour.

The scheduler runs `prune` every `PRUNE_EVERY` seconds, the first time when the daemon starts. A
failure is logged and tried again an hour later: it must not stop the daemon.

A PostgreSQL store is shared by daemons on several machines, so the horizon is reckoned by the store's
clock, and a daemon whose clock is more than CLOCK_SKEW off it prunes nothing and says so: its clock
is wrong (a VM resumed, a bad time source), and so are the times it writes. On SQLite (one machine)
the daemon's clock is the store's.
"""

from __future__ import annotations

import logging

from dashboard.core.config import Retention
from dashboard.store import Store
from dashboard.store.partitions import CLOCK_SKEW, store_clock

log = logging.getLogger("observatory.collect")  # the daemon's log, where retention always wrote
PRUNE_EVERY = 3600.0


def prune(store: Store, retention: Retention, now: int) -> None:
    """Delete what is older than the retention allows (`now`: the daemon's clock); log what went."""
    try:
        shared = store.engine.dialect.name == "postgresql"
        if shared and abs(skew := now - store_clock(store.engine)) > CLOCK_SKEW:
            log.error(
                "retention skipped: this machine's clock is %+d s off the store's (more than %d s):"
                " fix its time sync",
                skew,
                CLOCK_SKEW,
            )
            return
        deleted = store.prune(retention, None if shared else now)
        if any(deleted.values()):
            log.info("retention: deleted %s", {k: n for k, n in deleted.items() if n})
    except Exception as err:
        log.error("retention failed: %s", err)
