"""`observatory collect [--once]`: the collector daemon, or one cycle of every target."""

from __future__ import annotations

import argparse
import signal
import sys

from dashboard.cli.common import open_store
from dashboard.core import config as config_mod
from dashboard.core import sources


def run(args: argparse.Namespace, config: config_mod.Config) -> int:
    from collectors.scheduler import Scheduler
    from dashboard.report.weekly_job import WeeklyReview

    store = open_store(config)
    # The weekly review's sending is the daemon's too (review.schedule), handed to it from here:
    # the collectors do not import the analyses.
    scheduler = Scheduler(config, store, jobs=[WeeklyReview(config, store)])
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
