"""`observatory advise --dsn DSN [--query SQL]... [--query-file PATH]...`: index suggestions and index
health for one database. Exit 0, or 1 with --fail-on-suggestion when an index is suggested (for CI);
2 when it cannot advise (a refused --query, a file that does not parse, no connection)."""

from __future__ import annotations

import argparse
import json
import sys

from dashboard.cli.text import printable
from dashboard.core.advice import AdviceReport


def run(args: argparse.Namespace) -> int:
    from dashboard.advisor.database import AdviseError, Workload, advice_report
    from dashboard.cli.query_file import QueryFileError, read_statements
    from dashboard.core.guarded import Refused, check

    for n, query in enumerate(args.query or [], start=1):
        try:
            check(query)  # before connecting: a refused statement never reaches the server
        except Refused as err:
            print(f"observatory advise: --query {n} not advised: {err}", file=sys.stderr)
            return 2
    try:  # a file's statements that cannot be planned (DDL, SET, COMMIT ...) are reported as skipped
        from_files = [s for path in args.query_file or () for s in read_statements(path)]
    except QueryFileError as err:
        print(f"observatory advise: {err}", file=sys.stderr)
        return 2
    workload = Workload(min_calls=args.min_calls, min_mean_ms=args.min_mean_ms, limit=args.limit)
    try:
        report = advice_report(
            args.dsn,
            queries=(args.query or []) + from_files,
            workload=workload,
            allow_privileged=args.allow_privileged,
        )
    except AdviseError as err:
        print(f"observatory advise: {err}", file=sys.stderr)
        return 2
    print_report(report, as_json=args.json)
    if not args.fail_on_suggestion:
        return 0
    return 1 if report.suggestions else _incomplete(report)


def _incomplete(report: AdviceReport) -> int:
    """For --fail-on-suggestion: 2 when some statement could not be checked (a CI gate must not
    pass on statements it never planned), else 0."""
    from dashboard.advisor.advise import UNCHECKED

    unchecked = [s for s in report.skipped if s.reason.startswith(UNCHECKED)]
    if not unchecked and not report.needs:
        return 0
    what = f"{len(unchecked)} statement{'s' if len(unchecked) != 1 else ''} could not be checked"
    first = f" (first: {printable(unchecked[0].reason)})" if unchecked else ""
    needs = f"; the role needs: {printable(report.needs[0])}" if report.needs else ""
    print(f"observatory advise: {what}{first}{needs}", file=sys.stderr)
    return 2


def print_report(report: AdviceReport, as_json: bool = False) -> None:
    """The report as JSON (the stored shape, indented), or a summary for people."""
    if as_json:
        print(json.dumps(json.loads(report.to_stored()), indent=2))
        return
    print(f"database {printable(report.database or '')}: {len(report.suggestions)} suggested indexes")
    for s in report.suggestions:
        print(f"\n  {printable(s.create_sql)}\n    {printable(s.reason)}")
    for skipped in report.skipped:
        print(f"\n  skipped: {printable(skipped.statement)[:100]}\n    {printable(skipped.reason)}")
    for need in report.needs or ():
        print(f"\nneeds: {printable(need)}")
    if report.hint:
        print(f"\nhint: {printable(report.hint)}")
    for kind, findings in report.health or ():
        if findings:
            print(f"\n{kind.replace('_', ' ')}: {len(findings)}")
