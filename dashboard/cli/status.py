"""`observatory status [--json]`: every target of every source, configured or stored, with its state,
last success, last error, hints, samples and the daemon collecting it (the holder of its lease,
host:pid:id). Exit 0, 1 when a target is down (a monitor can run it), 2 when there is no target at
all (saying how to start). Grouped by kind (analysis.targets.merge_statuses): the stored targets by
name, then the configured ones never collected, in the configuration's order (state "never
collected", a hint to start collecting).

The store is only read (the analyses' `Reader`, as the pages read it): a store nobody wrote yet lists
the configured targets, and nothing is created or migrated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from dashboard.cli.common import open_reader, store_error
from dashboard.cli.text import printable
from dashboard.core import config as config_mod
from dashboard.core.redaction import redact

NO_TARGETS = (
    "name the servers to watch under targets.postgres, targets.redis or targets.prometheus in "
    "observatory.yaml (or the file $OBSERVATORY_CONFIG names), then run `observatory up`; "
    "`observatory demo` shows one running"
)

if TYPE_CHECKING:
    import pandas as pd

    from dashboard.analysis.reader import Reader


def run(args: argparse.Namespace, config: config_mod.Config) -> int:
    reader = open_reader(config)
    try:
        # Every target of every source: the store's, then the configured ones never collected.
        frame = reader.statuses()
        headlines = _headlines(reader, frame)
    except SQLAlchemyError as err:  # the server went away, a store another version wrote
        raise store_error(config, "cannot read", err) from None
    finally:
        reader.store.close()
    rows = [
        {
            "kind": r["kind"],
            "name": r["name"],
            "configured": bool(r["configured"]),
            "state": _known(r["state"]) or "never collected",
            "last_attempt": _iso(r["last_attempt"]),
            "last_success": _iso(r["last_success"]),
            "last_error": _known(r["last_error"]),
            "hints": r["hints"],
            "failures": int(_known(r["failures"]) or 0),
            "server_version": _known(r["server_version"]),
            "samples": int(r["samples"]),
            "collected_by": _known(r["collected_by"]),
            **(
                {"health": headlines[r["name"]]} if r["kind"] == "postgres" and r["name"] in headlines else {}
            ),
        }
        for r in frame.to_dict("records")
    ]
    if not rows:
        print(f"observatory: no target is configured in {config.source} and the store holds none: "
              f"{NO_TARGETS}", file=sys.stderr)  # fmt: skip
        return 2
    down = any(r["state"] == "down" for r in rows)
    if args.json:
        print(json.dumps({"store": redact(config.store), "targets": rows}, indent=2))
        return 1 if down else 0
    print(f"store: {redact(config.store)}")
    for r in rows:
        print(f"{r['kind']}/{r['name']}: {r['state']}, last success {r['last_success'] or 'never'}, "
              f"{r['samples']} samples")  # fmt: skip
        if r["collected_by"]:
            print(f"  last collected by: {printable(r['collected_by'])}")  # its lease: now, or before it went
        if r["last_error"]:
            print(f"  error: {r['last_error']}")
        for hint in r["hints"]:
            print(f"  hint: {printable(hint)}")
        for area, worst in (r.get("health") or {}).items():
            if worst:
                print(f"  health: {area}: {worst['level']}: {printable(worst['subject'])}: "
                      f"{printable(worst['problem'])}")  # fmt: skip
    return 1 if down else 0


def _headlines(reader: Reader, frame: pd.DataFrame) -> dict[str, dict[str, dict | None]]:
    """Each stored PostgreSQL target's worst health finding per area (`observatory health` lists all)."""
    from dashboard.analysis import health
    from dashboard.analysis.targets import Target

    found = {}
    for r in frame[(frame["kind"] == "postgres") & frame["target_id"].notna()].to_dict("records"):
        worst = health.headline(health.findings(reader, Target(int(r["target_id"]), r["name"])))
        found[r["name"]] = {area: f._asdict() if f else None for area, f in worst.items()}
    return found


def _known(value: object) -> object:
    """None for a missing value (None, or NaN where the merge added a never-collected target)."""
    return None if value is None or value != value else value


def _iso(ts: float | None) -> str | None:
    if ts is None or ts != ts:  # None or NaN from an outer join
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))
