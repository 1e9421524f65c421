"""`observatory health --target NAME [--json]`: a PostgreSQL target's health findings with their
fixes, area by area (connections, replication, server, settings, tables), as the daemon's last
readings left them in the store. Exit 0 when nothing is wrong or only warnings, 1 with an error-level
finding (a monitor can use it), 2 when the target is unknown or has no health readings yet.

The store is only read, like `observatory status`; nothing connects to the server.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from dashboard.cli.common import open_reader, store_error
from dashboard.cli.text import printable
from dashboard.core import config as config_mod


def run(args: argparse.Namespace, config: config_mod.Config) -> int:
    from dashboard.analysis import health

    reader = open_reader(config)
    try:
        target = next((t for t in reader.targets("postgres") if t.name == args.target), None)
        if target is None:
            names = ", ".join(t.name for t in reader.targets("postgres")) or "none collected yet"
            print(f"observatory health: no PostgreSQL target {printable(args.target)} in the store ({names})")
            return 2
        read_at = health.read_at(reader, target)
        if read_at is None:
            print(f"observatory health: {printable(args.target)} has no health readings yet: "
                  "the collector daemon takes them (observatory collect)")  # fmt: skip
            return 2
        found = health.findings(reader, target)
    except SQLAlchemyError as err:
        raise store_error(config, "cannot read", err) from None
    finally:
        reader.store.close()
    when = datetime.fromtimestamp(read_at, UTC).isoformat().replace("+00:00", "Z")
    if args.json:
        doc = {"target": target.name, "read_at": when, "findings": [f._asdict() for f in found]}
        print(json.dumps(doc, indent=2))
    else:
        print(as_text(target.name, found))
        print(f"  (as read at {when} or later)")
    return 1 if any(f.level == "error" for f in found) else 0


def as_text(name: str, found: list) -> str:  # list[health.Finding]
    if not found:
        return f"postgres/{printable(name)}: no health findings"
    lines = [f"postgres/{printable(name)}: {len(found)} health finding{'s' if len(found) != 1 else ''}"]
    for f in found:
        lines += [f"  [{f.level}] {f.area}: {printable(f.subject)}: {printable(f.problem)}",
                  f"      fix: {printable(f.fix)}"]  # fmt: skip
    return "\n".join(lines)
