"""`observatory collect [--once]`: the collector daemon, or one cycle of every target."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING

from dashboard.cli.common import open_store
from dashboard.core import config as config_mod
from dashboard.core import sources

if TYPE_CHECKING:
    from collectors.scheduler import Scheduler
    from dashboard.store import Store


def daemon(config: config_mod.Config, store: Store) -> Scheduler:
    """The scheduler, with the weekly review's sending (review.schedule) handed to it from here:
    the collectors do not import the analyses. The review's lock is in the daemon's lock session."""
    from collectors.scheduler import Scheduler
    from dashboard.report.weekly_job import WeeklyReview

    scheduler = Scheduler(config, store)
    scheduler.jobs.append(WeeklyReview(config, store, locks=scheduler.locks))
    return scheduler


def run(args: argparse.Namespace, config: config_mod.Config) -> int:
    scheduler = daemon(config, open_store(config, collect=True))
    if not scheduler.collectors:
        *others, last = [f"targets.{source.kind}" for source in sources.SOURCES]
        keys = f"{', '.join(others)} or {last}" if others else last
        print(f"observatory: no targets configured in {config.source}: add {keys}", file=sys.stderr)
        return 2
    if not args.once:
        signal.signal(signal.SIGTERM, lambda *_: scheduler.stop())
        scheduler.run_forever()
        return 0
    failed = 0
    for cycle in scheduler.run_once():
        st = cycle.status
        line = f"{cycle.kind}/{cycle.target}: {st.state} ({cycle.duration_ms:.0f} ms"
        line += f", {len(cycle.deltas)} statements moved)" if st.state != "down" else ")"
        print(
            line if st.state == "ok" else f"{line}: {st.error}",
            file=sys.stdout if st.state == "ok" else sys.stderr,
        )
        for hint in st.hints:
            print(f"  hint: {hint}", file=sys.stderr)
        failed += st.state != "ok"
    for (kind, name), why in scheduler.held_elsewhere.items():
        print(f"{kind}/{name}: not collected: {why}", file=sys.stderr)
    scheduler.evaluate_alerts(keep_lock=False)  # the alerting rules, once, over what was just collected
    scheduler.close_notifications()
    return 1 if failed or scheduler.held_elsewhere else 0
