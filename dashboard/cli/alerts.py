"""`observatory alerts [--json]`: what fires and what is pending now, as the daemon last evaluated;
`observatory alerts check FILE...`: a rule file's problems with their line and column (exit 1), as
`promtool check rules` does."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from dashboard.cli.common import open_reader, store_error
from dashboard.cli.text import printable
from dashboard.core import config as config_mod

RULE_ERRORS = "rule_errors"  # the journal key the daemon's alerting job writes (collectors/jobs/alerts.py)


def run(args: argparse.Namespace, config: config_mod.Config) -> int:
    reader = open_reader(config)
    try:
        alerts = reader.store.alerts()
        problems = json.loads(reader.store.alert_journal(RULE_ERRORS) or "{}")
    except SQLAlchemyError as err:
        raise store_error(config, "cannot read", err) from None
    finally:
        reader.store.close()
    rows = [
        {
            "alertname": a.name,
            "state": a.state,
            "value": a.value if math.isfinite(a.value) else str(a.value),  # JSON has no NaN or Infinity
            "labels": a.labels,
            "summary": a.annotations.get("summary", ""),
            "active_since": _iso(a.active_at),
            "firing_since": _iso(a.fired_at),
        }
        for a in alerts
    ]
    broken = problems.get("load", []) + [f"{k}: {v}" for k, v in sorted(problems.get("rules", {}).items())]
    if args.json:
        print(json.dumps({"alerts": rows, "rule_errors": broken}, indent=2))
        return 0
    if not rows:
        print("no alert firing or pending")
    for row in rows:
        since = row["firing_since"] or row["active_since"]
        labels = ", ".join(f"{k}={v}" for k, v in sorted(row["labels"].items()) if k != "alertname")
        value = row["value"] if isinstance(row["value"], str) else f"{row['value']:.4g}"
        print(f"{row['state']:8} {row['alertname']} {{{printable(labels)}}} = {value} since {since}")
        if row["summary"]:
            print(f"         {printable(row['summary'])}")
    for problem in broken:
        print(f"rule error: {printable(problem)}", file=sys.stderr)
    return 0


def check(files: list[str]) -> int:
    from dashboard.alerts.rules import read

    if not files:
        print("observatory alerts check: name the rule files to check", file=sys.stderr)
        return 2
    failed = 0
    for path in files:
        rules, errors = read(Path(path), prometheus_targets=None)
        for error in errors:
            print(printable(error), file=sys.stderr)
        if errors:
            failed += 1
        else:
            print(f"{path}: SUCCESS: {len(rules)} rule{'s' if len(rules) != 1 else ''} found")
    return 1 if failed else 0


def _iso(ts: int | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else None
