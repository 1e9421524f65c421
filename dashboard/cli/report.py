"""`observatory report`: the weekly review as a file to share, from the store (read-only).

    observatory report [--week 2026-W47 | --from ISO --to ISO]
                       [--baseline-week W | --baseline-from ISO --baseline-to ISO]
                       [--format html|markdown|pdf] [--out PATH]

The period defaults to the last complete ISO week, its baseline to the period just before; a baseline
must end before its period starts. --from/--to are rounded down to the hour (the store's buckets are
hours: a window cut at 10:45 would count the 10:00 hour twice). Years 1970 to 9998 only. The
format follows --out's extension (.html, .md, .pdf) unless given; without --out the report goes to
standard output (Markdown by default; a PDF needs --out). Exit 0 with the report written, 2 for a
bad week, window or combination of options (one line on stderr), as for a store that cannot be
read. A store with no data for the period still gives a report, which says so.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from dashboard.cli.common import open_reader, store_error
from dashboard.cli.text import printable
from dashboard.core import config as config_mod

if TYPE_CHECKING:
    from dashboard.analysis.review.model import Period

FORMATS = ("html", "markdown", "pdf")
SCORECARD_WEEKS = 8  # the weeks dashboard.analysis.review.weekly.objectives reads by default
EXTENSIONS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown", ".pdf": "pdf"}


class UsageError(ValueError):
    """A bad option value or combination: one line, exit 2."""


def define(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The `report` subcommand's options (main.py registers it)."""
    p = sub.add_parser(
        "report",
        parents=[common],
        help="the weekly review as HTML (charts included, opens offline), Markdown or PDF",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--week", help="the ISO week to review, e.g. 2026-W47 (default: the last complete week)")
    p.add_argument(
        "--from", dest="start", metavar="ISO",
        help="or a window: its start (UTC unless given); --from/--to are rounded down to the hour",
    )  # fmt: skip
    p.add_argument(
        "--to", dest="end", metavar="ISO", help="the window's end (exclusive), rounded down to the hour"
    )
    p.add_argument(
        "--baseline-week", metavar="W", help="compare with this ISO week (default: the period before)"
    )
    p.add_argument(
        "--baseline-from", metavar="ISO", help="or with this window: its start (rounded down to the hour)"
    )
    p.add_argument(
        "--baseline-to", metavar="ISO", help="the baseline window's end (exclusive, rounded down to the hour)"
    )
    p.add_argument("--format", choices=FORMATS, help="default: from --out's extension, else markdown")
    p.add_argument("--out", metavar="PATH", help="where to write it (default: standard output; - as well)")


def run(args: argparse.Namespace, config: config_mod.Config) -> int:
    try:
        kind = _format(args.format, args.out)
        period = _period(args.week, args.start, args.end, "--week", "--from/--to")
        baseline = _period(args.baseline_week, args.baseline_from, args.baseline_to, "--baseline-week",
                           "--baseline-from/--baseline-to")  # fmt: skip
    except UsageError as err:
        print(f"observatory report: {printable(err)}", file=sys.stderr)
        return 2
    from dashboard.analysis import review as review_mod
    from dashboard.report import render

    reader = open_reader(config)
    try:
        period = period or review_mod.default_period(reader.now())
        baseline = _baseline(period, baseline)
        review = review_mod.build(reader, period, baseline, review_mod.settings_of(config))
    except UsageError as err:
        print(f"observatory report: {printable(err)}", file=sys.stderr)
        return 2
    except SQLAlchemyError as err:
        raise store_error(config, "cannot read", err) from None
    finally:
        reader.store.close()
    try:
        document = {"html": render.html, "markdown": render.markdown, "pdf": render.pdf}[kind](review)
    except render.ReportError as err:
        print(f"observatory report: {printable(err)}", file=sys.stderr)
        return 2
    return _write(document, args.out)


def _format(given: str | None, out: str | None) -> str:
    to_stdout = out in (None, "-")
    kind = given or ("markdown" if to_stdout else EXTENSIONS.get(Path(out).suffix.lower(), "markdown"))
    if kind == "pdf" and to_stdout:
        raise UsageError("a PDF needs --out PATH")
    return kind


def _period(
    week: str | None, start: str | None, end: str | None, week_flag: str, window_flags: str
) -> Period | None:
    """The period the options name, or None for the default."""
    from dashboard.analysis.review.model import Period

    if week and (start or end):
        raise UsageError(f"give {week_flag} or {window_flags}, not both")
    if week:
        try:
            return Period.iso_week(week)
        except ValueError as err:
            raise UsageError(str(err)) from None
    if bool(start) != bool(end):
        raise UsageError(f"{window_flags} go together: give both")
    if start and end:
        try:
            return Period.between(_instant(start), _instant(end))
        except ValueError as err:
            raise UsageError(str(err)) from None
    return None


def _baseline(period: Period, given: Period | None) -> Period:
    """The baseline: `given`, which must end before the period starts, or the period before."""
    from dashboard.analysis.review.model import WEEK, Period

    if given is not None and given.end > period.start:
        raise UsageError(f"the baseline must end before the period starts ({given.label} vs {period.label})")
    try:
        # The scorecard reads the weeks up to the period's end: the first of them must be nameable.
        Period.week_of(period.end - 1 - (SCORECARD_WEEKS - 1) * WEEK)
        return given or period.before()
    except ValueError as err:
        raise UsageError(f"{period.label} is too early to review: {err}") from None


def _instant(text: str) -> int:
    """An ISO date or time as Unix seconds; UTC when it names no zone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{text!r} is not an ISO date or time (2026-11-16 or 2026-11-16T08:00Z)") from None
    try:
        return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
    except (OverflowError, ValueError):
        raise UsageError(f"{text!r} is out of range: the years 1970 to 9998 only") from None


def _write(document: str | bytes, out: str | None) -> int:
    if out in (None, "-"):
        if isinstance(document, bytes):
            sys.stdout.buffer.write(document)
        else:
            sys.stdout.write(document)
        return 0
    try:
        path = Path(out)
        if isinstance(document, bytes):
            path.write_bytes(document)
        else:
            path.write_text(document, encoding="utf-8")
    except OSError as err:
        reason = printable(err.strerror or err)
        print(f"observatory report: cannot write {printable(out)}: {reason}", file=sys.stderr)
        return 2
    print(f"observatory report: wrote {printable(out)} ({len(document):,} bytes)", file=sys.stderr)
    return 0
