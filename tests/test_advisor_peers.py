"""The peer suite: PgHero's and Dexter's published advisor cases, run against our advisor.

Cases and schema: tests/peers/ (see its README). Two checks:

* against our restatement: a case passes when our first suggestion is the expected index (or one of
  `also_acceptable`), or when nothing is suggested and nothing is expected. Where we deliberately
  answer differently, DISAGREE says why; every other case must pass;
* against the peer's own answer, exactly (tests/peers/compare.py): how many cases give the same
  index, a different one, or none where the other gives one. Each case that is not the same says
  why in its `peer_difference`, the report is printed, and the counts are asserted.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from dashboard.core.guarded import GuardedSession
from dashboard.servers.throwaway import ThrowawayPostgres
from tests.peers import compare
from tests.support.postgres import advisor_dsn, new_database

PEERS = Path(__file__).with_name("peers")
CASES = [
    case
    for name in ("pghero_cases.yaml", "dexter_cases.yaml")
    for case in yaml.safe_load((PEERS / name).read_text())
]
DISAGREE = {
    "pghero-multiple-range": "two ranges on unknown values ($1, $2): the generic plan expects a third of the "
    "rows from each, and no index pays off; PgHero's index helps only for the narrow values its test uses",
    "pghero-is-null-equal": "(zip_code) alone costs less than (zip_code, login_attempts): 12.53 against "
    "13.36; we prefer the smaller index",
}
# The exact comparison with each peer's own answer (compare.py): a change in the advisor moves these.
COMPARED = {
    "PgHero": {"same": 26, "different": 4, "none": 11},
    "Dexter": {"same": 31, "different": 2, "none": 1},
}


@pytest.fixture(scope="module")
def peers_dsn(pg: ThrowawayPostgres) -> str:
    name = new_database(pg, "peers")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute((PEERS / "schema.sql").read_text())
    return advisor_dsn(pg, name)


def first_suggestion(dsn: str, statement: str) -> compare.Answer | None:
    with GuardedSession.connect(dsn) as session:
        return compare.our_answer(session, statement)[0]


def matches(case: dict, got: compare.Answer | None) -> bool:
    """The expected index or one also acceptable: same table, keys, order, directions, method."""
    return any(
        compare.index_answer(expected) == got
        for expected in [case.get("expected"), *case.get("also_acceptable", [])]
    )


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_peer_case(peers_dsn: str, case: dict) -> None:
    got = first_suggestion(peers_dsn, case["statement"])
    if case["id"] in DISAGREE:
        assert not matches(case, got), f"{case['id']} now agrees with the peer: drop it from DISAGREE"
    else:
        assert matches(case, got), (
            f"{case['id']}: got {got}, expected {case.get('expected')} ({case.get('notes')})"
        )


def test_peers_compared_exactly(peers_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = compare.compare(peers_dsn)
    with capsys.disabled():  # the report belongs in the test output, -q or not
        print("\n" + compare.report(rows))
    unexplained = [r.case["id"] for r in rows if r.verdict != "same" and not r.reason]
    assert unexplained == [], "say why in each case's peer_difference"
    stale = [r.case["id"] for r in rows if r.verdict == "same" and r.reason]
    assert stale == [], "these now agree with the peer: drop their peer_difference"
    assert compare.counts(rows) == COMPARED


def test_peer_suite_size() -> None:
    pghero = [c for c in CASES if c["id"].startswith("pghero-")]
    dexter = [c for c in CASES if c["id"].startswith("dexter-")]
    assert len(pghero) == 41 and len(dexter) == 34
    assert len(CASES) - len(DISAGREE) == 73  # the pass count reported in the closing note
