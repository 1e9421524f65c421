"""`observatory status [--json]`: per target, its state, last success, last error and samples."""

from __future__ import annotations

import argparse
import json
import time

from dashboard.cli.common import open_store
from dashboard.core import config as config_mod
from dashboard.core.redaction import redact


def run(args: argparse.Namespace, config: config_mod.Config) -> int:
    from dashboard.analysis.targets import merge_statuses
    from dashboard.store.reads import target_statuses

    # Every target of every source: the store's, then the configured ones never collected.
    frame = merge_statuses(target_statuses(open_store(config).engine), config)
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
        }
        for r in frame.to_dict("records")
    ]
    if args.json:
        print(json.dumps({"store": redact(config.store), "targets": rows}, indent=2))
        return 0
    print(f"store: {redact(config.store)}")
    for r in rows:
        print(f"{r['kind']}/{r['name']}: {r['state']}, last success {r['last_success'] or 'never'}, "
              f"{r['samples']} samples")  # fmt: skip
        if r["last_error"]:
            print(f"  error: {r['last_error']}")
        for hint in r["hints"]:
            print(f"  hint: {hint}")
    return 0


def _known(value: object) -> object:
    """None for a missing value (None, or NaN where the merge added a never-collected target)."""
    return None if value is None or value != value else value


def _iso(ts: float | None) -> str | None:
    if ts is None or ts != ts:  # None or NaN from an outer join
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))
