"""Our advisor against PgHero's and Dexter's own answers, compared exactly, case by case.

For each case of pghero_cases.yaml and dexter_cases.yaml the peer's answer is `peer_expected` when
the case has one, else `expected` (README.md). Our answer is the first suggestion of the advisor on
the statement alone. The two are:

* same: the same table, the same key columns in the same order, the same access method and
  operator classes (or both suggest nothing). A B-tree is scanned both ways, so directions are
  compared with the first key ascending: (a DESC, b) is the same index as (a, b DESC);
* different: both suggest an index, not the same one;
* none: one suggests an index, the other nothing.

Every case that is not "same" carries `peer_difference` in its YAML: why our answer is defensible.
tests/test_advisor_peers.py runs this and asserts the counts; people run it with

    .venv/bin/python tests/peers/compare.py     # starts a throwaway PostgreSQL, ~1 minute
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from dashboard.advisor.advise import Advisor, StatementInput  # noqa: E402
from dashboard.core.guarded import GuardedSession  # noqa: E402

PEERS = {"PgHero": "pghero_cases.yaml", "Dexter": "dexter_cases.yaml"}
VERDICTS = ("same", "different", "none")
MAIN_TESTS = {"PgHero": "pghero test/best_index_test.rb", "Dexter": "dexter test/statement_test.rb"}


@dataclass(frozen=True)
class Answer:
    table: str
    columns: tuple[str, ...]  # "email", "created_at DESC", "email gin_trgm_ops"
    method: str = "btree"

    def __str__(self) -> str:
        using = f" USING {self.method}" if self.method != "btree" else ""
        return f"{self.table}{using} ({', '.join(self.columns)})"


@dataclass(frozen=True)
class Row:
    peer: str
    case: dict[str, Any]
    theirs: Answer | None
    ours: Answer | None
    said: str  # our reason: the first suggestion's, or why nothing was suggested

    @property
    def verdict(self) -> str:
        if self.theirs == self.ours:
            return "same"
        return "none" if self.theirs is None or self.ours is None else "different"

    @property
    def reason(self) -> str | None:
        return self.case.get("peer_difference")


def load_cases() -> dict[str, list[dict[str, Any]]]:
    return {peer: yaml.safe_load((HERE / name).read_text()) for peer, name in PEERS.items()}


def peer_answer(case: dict[str, Any]) -> Answer | None:
    """What the peer itself answers; an index it reports as covered by an existing one is none."""
    return index_answer(case["peer_expected"] if "peer_expected" in case else case.get("expected"))


def index_answer(index: dict[str, Any] | None) -> Answer | None:
    """An index as the YAML states it (README.md: table, columns, directions, using, opclasses)."""
    if not index or index.get("covered_by_existing"):
        return None
    directions = [d == "desc" for d in index.get("directions") or [False] * len(index["columns"])]
    opclasses = index.get("opclasses") or [None] * len(index["columns"])
    columns = [
        " ".join(part for part in (column, opclass, "DESC" if desc else None) if part)
        for column, opclass, desc in zip(index["columns"], opclasses, directions, strict=True)
    ]
    return Answer(index["table"], _ascending_first(columns), index.get("using", "btree"))


def our_answer(session: GuardedSession, statement: str) -> tuple[Answer | None, str]:
    advice = Advisor(session).advise([StatementInput(statement)])
    if not advice.suggestions:
        return None, "; ".join(s.reason for s in advice.skipped)
    first = advice.suggestions[0]
    answer = Answer(first.candidate.table, _ascending_first(first.candidate.columns), first.candidate.method)
    return answer, first.reason()


def _ascending_first(columns: list[str]) -> tuple[str, ...]:
    """The mirror of a B-tree whose first key descends: the same index, read backwards."""
    if not columns or not columns[0].endswith(" DESC"):
        return tuple(columns)
    return tuple(c.removesuffix(" DESC") if c.endswith(" DESC") else f"{c} DESC" for c in columns)


def compare(dsn: str, allow_privileged: bool = False) -> list[Row]:
    rows = []
    for peer, cases in load_cases().items():
        for case in cases:
            with GuardedSession.connect(dsn, allow_privileged=allow_privileged) as session:
                ours, said = our_answer(session, case["statement"])
            rows.append(Row(peer, case, peer_answer(case), ours, said))
    return rows


def counts(rows: list[Row]) -> dict[str, dict[str, int]]:
    """{'PgHero': {'same': n, 'different': n, 'none': n}, ...}"""
    found: dict[str, Counter[str]] = {peer: Counter() for peer in PEERS}
    for row in rows:
        found[row.peer][row.verdict] += 1
    return {peer: {v: found[peer][v] for v in VERDICTS} for peer in PEERS}


def report(rows: list[Row]) -> str:
    lines = ["Peer cases compared exactly (peer's own answer against our first suggestion):"]
    for row in rows:
        if row.verdict == "same":
            continue
        lines.append(
            f"  {row.case['id']}: {row.verdict}: peer {row.theirs or 'nothing'}, ours {row.ours or 'nothing'}"
        )
        lines.append(f"      why: {row.reason or 'NO REASON GIVEN'}")
        lines.append(f"      the advisor said: {row.said}")
    for peer, by_verdict in counts(rows).items():
        total = sum(by_verdict.values())
        figures = ", ".join(f"{n} {v}" for v, n in by_verdict.items())
        main = [r for r in rows if r.peer == peer and r.case["source"].startswith(MAIN_TESTS[peer])]
        same = sum(r.verdict == "same" for r in main)
        lines.append(
            f"  {peer}: {by_verdict['same']} of {total} the same ({figures}); "
            f"{MAIN_TESTS[peer].split(' ')[-1]} alone: {same} of {len(main)}"
        )
    return "\n".join(lines)


def main() -> int:
    import psycopg

    from dashboard.servers.throwaway import ThrowawayPostgres

    with ThrowawayPostgres() as pg:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute((HERE / "schema.sql").read_text())
        rows = compare(pg.dsn(), allow_privileged=True)
    print(report(rows))
    unexplained = [r for r in rows if r.verdict != "same" and not r.reason]
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
