"""The peer suite: PgHero's and Dexter's published advisor cases, run against our advisor.

Cases and schema: tests/peers/ (see its README). A case passes when our first suggestion is the
expected index (or one of `also_acceptable`), or when nothing is suggested and nothing is expected.
Where we deliberately answer differently, DISAGREE says why; every other case must pass.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from dashboard.advisor.advise import Advisor, StatementInput
from dashboard.core.guarded import GuardedSession
from dashboard.servers.throwaway import ThrowawayPostgres
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
    "pghero-is-null-equal": "(zip_code) alone costs within 10 % of (zip_code, login_attempts): we prefer the "
    "smaller index",
}


@pytest.fixture(scope="module")
def peers_dsn(pg: ThrowawayPostgres) -> str:
    name = new_database(pg, "peers")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute((PEERS / "schema.sql").read_text())
    return advisor_dsn(pg, name)


def first_suggestion(dsn: str, statement: str) -> tuple[str, list[str]] | None:
    with GuardedSession.connect(dsn) as session:
        advice = Advisor(session).advise([StatementInput(statement)])
    if not advice.suggestions:
        return None
    first = advice.suggestions[0].candidate
    return first.table, [c.removesuffix(" DESC") for c in first.columns]


def matches(case: dict, got: tuple[str, list[str]] | None) -> bool:
    for expected in [case.get("expected"), *case.get("also_acceptable", [])]:
        if expected is None and got is None:
            return True
        if expected and got and (expected["table"], expected["columns"]) == got:
            return True
    return False


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_peer_case(peers_dsn: str, case: dict) -> None:
    got = first_suggestion(peers_dsn, case["statement"])
    if case["id"] in DISAGREE:
        assert not matches(case, got), f"{case['id']} now agrees with the peer: drop it from DISAGREE"
    else:
        assert matches(case, got), (
            f"{case['id']}: got {got}, expected {case.get('expected')} ({case.get('notes')})"
        )


def test_peer_suite_size() -> None:
    pghero = [c for c in CASES if c["id"].startswith("pghero-")]
    dexter = [c for c in CASES if c["id"].startswith("dexter-")]
    assert len(pghero) == 41 and len(dexter) == 34
    assert len(CASES) - len(DISAGREE) == 73  # the pass count reported in the closing note
