"""The command line every benchmark shares: --json for the figures, --quiet for no progress, and an
exit status that says whether the budget held."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

Log = Callable[[str], None]


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of the benchmark's docstring, with --json and --quiet."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print the figures as JSON (progress: stderr)")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return p


def progress(args: argparse.Namespace) -> Log:
    """Where progress goes: stderr, so stdout carries only the figures."""
    return (lambda _m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))


def finish(args: argparse.Namespace, figures: dict[str, Any], report: Callable[[], str], passed: bool) -> int:
    """Print the figures (JSON) or the report; 0 when the budget held, else 1."""
    print(json.dumps(figures, indent=2) if args.json else report())
    return 0 if passed else 1
