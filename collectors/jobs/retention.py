"""Retention as a daemon job: the store pruned to the configured retention, once an hour.

The scheduler runs `prune` every `PRUNE_EVERY` seconds, the first time when the daemon starts. A
failure is logged and tried again an hour later: it must not stop the daemon.
"""

from __future__ import annotations

import logging

from dashboard.core.config import Retention
from dashboard.store import Store

log = logging.getLogger("observatory.collect")  # the daemon's log, where retention always wrote
PRUNE_EVERY = 3600.0


def prune(store: Store, retention: Retention, now: int) -> None:
    """Delete what is older than the retention allows; log what went."""
    try:
        deleted = store.prune(retention, now)
        if any(deleted.values()):
            log.info("retention: deleted %s", {k: n for k, n in deleted.items() if n})
    except Exception as err:
        log.error("retention failed: %s", err)
