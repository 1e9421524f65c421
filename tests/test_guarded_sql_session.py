"""The advisor's guarded session on a real PostgreSQL: which roles it refuses, the settings and
limits it puts in force before any statement, the locks it takes, and a server that stops answering.
The trapped database (the `trapped` fixture) is in tests/support/hostile.py.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg
import pytest

from dashboard.advisor.advise import Advisor, StatementInput
from dashboard.advisor.database import AdviseError, advice_report
from dashboard.core.guarded import GuardedSession, Limits, Refused, SessionRefused, check
from dashboard.core.guarded import statement as statement_module
from dashboard.servers.throwaway import ThrowawayPostgres
from tests.support.hostile import COPY, INSERT, LIMIT_S, cte_chain
from tests.support.postgres import ADVISOR_ROLE


def test_a_superuser_is_refused_with_the_least_privilege_role_to_use(trapped: dict) -> None:
    with pytest.raises(AdviseError) as refused:
        advice_report(trapped["superuser"], queries=["select 1"], health=False)
    message = str(refused.value)
    assert "role postgres is a superuser" in message
    assert "GRANT pg_monitor, pg_read_all_data TO observatory_advisor" in message
    done = subprocess.run(
        [sys.executable, "-m", "dashboard", "advise", "--dsn", trapped["superuser"], "--query", "select 1"],
        capture_output=True, text=True, timeout=LIMIT_S,
    )  # fmt: skip
    assert done.returncode == 2 and "superuser" in done.stderr and "Traceback" not in done.stderr


POWERS = {
    "pg_execute_server_program": (
        "IN ROLE pg_execute_server_program",
        "a member of pg_execute_server_program",
    ),
    "pg_signal_backend": ("IN ROLE pg_signal_backend", "a member of pg_signal_backend"),
    "pg_write_server_files": ("IN ROLE pg_write_server_files", "a member of pg_write_server_files"),
    "pg_read_server_files": ("IN ROLE pg_read_server_files", "a member of pg_read_server_files"),
    "nested": ("IN ROLE holder_middle", "a member of pg_execute_server_program"),
    "superuser-member": ("IN ROLE postgres", r"a superuser \(or may become one\)"),
    "createrole": ("CREATEROLE", "allowed to CREATEROLE"),
}


@pytest.mark.parametrize("power", POWERS)
def test_roles_that_could_escape_are_refused(power: str, pg: ThrowawayPostgres, trapped: dict) -> None:
    role = f"holder_{power.replace('-', '_')}"
    grant, message = POWERS[power]
    with psycopg.connect(trapped["superuser"], autocommit=True) as conn:
        conn.execute("DO $$BEGIN CREATE ROLE holder_middle NOINHERIT IN ROLE pg_execute_server_program;"
                     " EXCEPTION WHEN duplicate_object THEN NULL; END$$")  # fmt: skip
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN NOINHERIT {grant}")
    with pytest.raises(SessionRefused, match=f"role {role} is {message}"):
        GuardedSession.connect(pg.dsn(user=role, dbname=trapped["datname"]))


def test_a_privileged_session_when_allowed_still_runs_nothing(trapped: dict, unchanged: None) -> None:
    """advise_privileged: true lifts the role check only: every other layer still holds."""
    queries = [f"select 1; {COPY}", "select public.slow(1)", f"commit; {INSERT}", INSERT]
    report = advice_report(trapped["superuser"], queries=queries, health=False, allow_privileged=True)
    reasons = [s.reason for s in report.skipped]
    assert reasons[0].startswith("refused: 2 statements") and reasons[2].startswith("refused: 2 statements")
    assert "calls public.slow(integer)" in reasons[1]
    assert not reasons[3].startswith("refused")


# The abandoned backend plans on for about 10 s, holding its locks: the next test to lock erp.orders
# (test_a_table_locked_or_changing_elsewhere_refuses_at_once[lock]) waits for it.
@pytest.mark.slow
def test_a_server_that_ignores_the_cancel_is_given_up(trapped: dict, monkeypatch) -> None:
    """Planning hundreds of chained CTEs never looks at a cancel request: past the bounds (lifted
    here), the session stops waiting and the rest of the report says the session was lost."""
    monkeypatch.setattr(statement_module, "MAX_FROM_ITEMS", 10**6)
    chain = cte_chain(500)
    limits = Limits(statement_ms=500, deadline_s=0.5, abandon_s=0.5)
    with GuardedSession.connect(trapped["dsn"], limits=limits) as session:
        advisor = Advisor(session)
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            session.explain(check(f"with {chain} select * from c499"))
        assert time.monotonic() - started < 5 and session.lost
        advice = advisor.advise([StatementInput("select * from erp.orders where id = $1")])
    assert advice.skipped[0].reason == "not analysed: the session was lost"


def test_settings_are_in_force_before_any_statement(trapped: dict) -> None:
    with GuardedSession.connect(trapped["dsn"], limits=Limits(statement_ms=1234, lock_ms=567)) as session:
        shown = session.conn.execute(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
            " current_setting('default_transaction_read_only'), current_setting('plan_cache_mode')"
        ).fetchone()
    assert shown == ("1234ms", "567ms", "on", "force_generic_plan")
    with GuardedSession.connect(trapped["dsn"]) as session:  # the role's settings in this database lose
        shown = session.conn.execute(
            "SELECT current_setting('standard_conforming_strings'), current_setting('client_encoding')"
        ).fetchone()
    assert shown == ("on", "UTF8")
    with GuardedSession.connect(trapped["dsn"]) as session:
        limits = session.conn.execute(
            "SELECT current_setting('join_collapse_limit'), current_setting('from_collapse_limit'),"
            " current_setting('geqo')"
        ).fetchone()
    assert limits == ("8", "8", "on")  # though the role's settings in this database raise them


def test_the_dsn_cannot_lift_the_limits_but_keeps_its_search_path(trapped: dict) -> None:
    dsn = f"{trapped['dsn']}?options=-c%20statement_timeout%3D0%20-c%20search_path%3Derp"
    with GuardedSession.connect(dsn, limits=Limits(statement_ms=4321)) as session:
        shown = session.conn.execute(
            "SELECT current_setting('statement_timeout'), current_setting('search_path')"
        ).fetchone()
        # The session's own SQL resolves in pg_catalog; statements are planned along the DSN's path.
        assert shown == ("4321ms", "pg_catalog, pg_temp") and session.search_path == "erp"
        tree, _ = session.explain(check("(select * from orders where id = $1)"))  # erp.orders
        assert tree[0]["Plan"]["Node Type"] == "Index Scan"


def test_the_statement_is_sent_alone_even_if_the_parser_were_fooled(trapped: dict) -> None:
    """The extended protocol is the second lock: the server refuses a second statement itself."""
    fooled = check("select 1")
    smuggled = type(fooled)(**{**fooled.__dict__, "text": f"select 1; {INSERT}"})
    with GuardedSession.connect(trapped["dsn"]) as session, pytest.raises(psycopg.errors.SyntaxError):
        session.explain(smuggled)
    with psycopg.connect(trapped["superuser"]) as conn:
        assert conn.execute("SELECT count(*) FROM public.canary").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ("LOCK TABLE erp.orders IN ACCESS EXCLUSIVE MODE", "by another session"),
        ("REINDEX INDEX erp.orders_pkey", "by another session"),  # the plan would wait
        (
            "CREATE INDEX orders_trap ON erp.orders (customer) WHERE public.slow(1) = 1",
            "by another session",  # its predicate, unseen until commit, would be folded
        ),
    ],
    ids=["lock", "reindex", "index-build"],
)
def test_a_table_locked_or_changing_elsewhere_refuses_at_once(
    trapped: dict, change: str, refusal: str
) -> None:
    """Relations are share-locked (NOWAIT) before the check, and a schema change under way on them is
    refused: no session can hold the plan back while it changes what the check saw."""
    with psycopg.connect(trapped["superuser"], application_name="setup") as changer:
        changer.execute(change)  # held, uncommitted, until the rollback
        with GuardedSession.connect(trapped["dsn"]) as session:
            started = time.monotonic()
            with pytest.raises(Refused, match=refusal):
                session.explain(check("select * from erp.orders where id = $1"))
            assert time.monotonic() - started < 2
        changer.rollback()


def test_the_lock_timeout_and_deadline_are_in_force(trapped: dict) -> None:
    """Planning never waits on a lock the check saw (those statements are refused); the timeouts
    remain for what is taken in the milliseconds after: both are set before any text is sent."""
    limits = Limits(statement_ms=2_000, lock_ms=300, deadline_s=1.0)
    with GuardedSession.connect(trapped["dsn"], limits=limits) as session:
        shown = session.conn.execute(
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
        )
        assert shown.fetchone() == ("300ms", "2s")


def test_a_table_reached_through_a_policy_is_locked_too(trapped: dict) -> None:
    with psycopg.connect(trapped["superuser"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.lock_target (id int)")
        conn.execute("CREATE TABLE IF NOT EXISTS public.lock_guard (id int)")
        conn.execute("ALTER TABLE public.lock_target ENABLE ROW LEVEL SECURITY")
        conn.execute("DROP POLICY IF EXISTS p ON public.lock_target")
        conn.execute("CREATE POLICY p ON public.lock_target USING (id IN (SELECT id FROM public.lock_guard))")
    with psycopg.connect(trapped["superuser"]) as locker:
        locker.execute("LOCK TABLE public.lock_guard IN ACCESS EXCLUSIVE MODE")
        statement = check("select * from public.lock_target where id = $1")
        with GuardedSession.connect(trapped["dsn"]) as s, pytest.raises(Refused, match="another session"):
            s.explain(statement)
        locker.rollback()


def test_the_advisor_role_of_the_readme_is_not_refused(trapped: dict) -> None:
    with GuardedSession.connect(trapped["dsn"]) as session:
        assert session.conn.info.user == ADVISOR_ROLE
