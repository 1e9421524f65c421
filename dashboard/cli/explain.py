"""`observatory explain --dsn DSN --query SQL [--analyze] [--json]`: a statement's plan, the node that
costs the most, and the findings in words. Exit 0 with a plan, 2 without one (refused, cancelled,
no connection); the reason goes to stderr.

The statement goes through the guarded door like every foreign statement: checked before anything
connects, planned read-only and rolled back. --analyze runs it (still rolled back); a statement that
writes needs --writes as well, the CLI's form of the target setting explain_analyze_writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from dashboard.cli.text import printable

if TYPE_CHECKING:  # the plans package loads psycopg and pglast: only when the command runs
    from dashboard.plans.run import Explained, Proposal
    from dashboard.plans.tree import Plan


def run(args: argparse.Namespace) -> int:
    from dashboard.cli.query_file import QueryFileError, read_statements
    from dashboard.plans.run import AnalyzePolicy, ExplainRequest, explain, sample_values

    text = args.query
    if args.query_file:
        try:
            texts = read_statements(args.query_file)
        except QueryFileError as err:
            print(f"observatory explain: {err}", file=sys.stderr)
            return 2
        if len(texts) != 1:
            print(f"observatory explain: {len(texts)} statements in the file: give one", file=sys.stderr)
            return 2
        text = texts[0]
    values = tuple(None if v.upper() == "NULL" else v for v in args.value) if args.value else None
    if args.sample_values:
        found = sample_values(args.dsn, text, allow_privileged=args.allow_privileged)
        if isinstance(found, str):
            print(f"observatory explain: no sample values: {printable(found)}", file=sys.stderr)
            return 2
        values = found
    request = ExplainRequest(text, analyze=args.analyze, values=values, hypothetical=not args.no_index)
    explained = explain(
        args.dsn,
        request,
        policy=AnalyzePolicy(analyze=args.analyze, writes=args.writes),
        allow_privileged=args.allow_privileged,
        timeout_s=args.timeout,
    )
    if explained.plan is None:
        print(f"observatory explain: {printable(explained.error)}", file=sys.stderr)
        return 2
    print(as_json(explained) if args.json else as_text(explained))
    return 0


def as_json(explained: Explained) -> str:
    """The plan file (loads back in the app) with the findings, the proposal and any notes."""
    from dashboard.plans import document

    saved = document.PlanDocument(
        plan=explained.plan,
        statement=explained.statement,
        target=None,
        database=explained.database,
        server_version=explained.server_version,
        captured_at=explained.captured_at,
        command=explained.command,
        generic=explained.generic,
    )
    doc = json.loads(document.dumps(saved))
    doc["findings"] = [asdict(f) for f in explained.findings]
    doc["notes"] = explained.notes
    if explained.proposal:
        p = explained.proposal
        doc["proposal"] = {
            "create_sql": p.create_sql,
            "cost_before": p.before.total_cost,
            "cost_after": p.after.total_cost,
            "plan_after": p.after.raw,
        }
    return json.dumps(doc, indent=2, default=str)


def as_text(explained: Explained) -> str:
    plan = explained.plan
    head = [f"database {printable(explained.database)} · {explained.command}"]
    if explained.generic:
        head.append("generic plan: $n without values (give --value or --sample-values for a custom plan)")
    figures = f"cost {plan.total_cost:,.0f}"
    if plan.execution_ms is not None:
        figures += f" · execution {plan.execution_ms:,.1f} ms · planning {plan.planning_ms or 0:,.1f} ms"
    head.append(figures)
    lines = [*head, "", *tree_lines(plan), ""]
    hottest = plan.hottest()
    lines.append(f"most {plan.measure}: #{hottest.id} {printable(hottest.label)} ({plan.share(hottest):.0%})")
    for f in explained.findings:
        where = f"#{f.node} " if f.node is not None else ""
        lines += ["", f"[{f.severity}] {where}{printable(f.title)}", f"    {printable(f.detail)}"]
        if f.fix:
            lines.append(f"    fix: {printable(f.fix)}")
    if not explained.findings:
        lines += ["", "no findings"]
    if explained.proposal:
        lines += ["", *proposal_lines(explained.proposal)]
    lines += [f"note: {printable(n)}" for n in explained.notes]
    return "\n".join(lines)


def tree_lines(plan: Plan) -> list[str]:
    """One line a node, indented, with its own share; the hottest path marked with '>'."""
    hot = set(plan.hottest_path())
    lines = []
    for node in plan.nodes:
        rows = f"rows {node.est_rows:,.0f}"
        if node.actual_rows is not None:
            rows += f" -> {node.actual_rows:,.0f} x{node.loops:,.0f}"
        own = f"{plan.own(node):,.1f} {plan.measure}"
        mark = ">" if node.id in hot else " "
        where = f"{mark} #{node.id:<3} {'  ' * node.depth}{printable(node.label)}"
        lines.append(f"{where}  ({own}, {plan.share(node):.0%}; {rows})")
    return lines


def proposal_lines(proposal: Proposal) -> list[str]:
    from dashboard.plans.compare import compare

    return [
        f"with the advisor's index: {printable(proposal.create_sql)}",
        f"    {printable(compare(proposal.before, proposal.after).summary)}",
    ]
