"""The statement check and the analysis' bounds on a real PostgreSQL: what `check` names, the
bounds that keep the analysis short, the check made again before every plan, names that resolve to
her objects late, and reports that carry no secret. The trapped database (the `trapped` fixture) is in
tests/support/hostile.py.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from dashboard.advisor.database import AdviseError, Workload, advice_report
from dashboard.core.guarded import GuardedSession, Refused, Unsafe, check
from dashboard.core.guarded.statement import MAX_BOOLEAN, MAX_DEPTH
from dashboard.servers.throwaway import ThrowawayPostgres
from tests.support.hostile import LIMIT_S, reason_of
from tests.support.postgres import ADVISOR_ROLE, advisor_dsn, new_database


def test_check_names_what_the_planner_could_run() -> None:
    found = check(
        'SELECT lower(a), "S".f(1), (r).g, x.h FROM "Sales"."Order" o JOIN t USING (id) '
        "WHERE a ~* $2::x.mood AND b === ANY (SELECT 1)"
    )
    assert found.kind == "select" and found.params == 2
    assert {"lower", "S", "f", "g", "h", "~*", "===", "mood"} <= found.names  # every syntax's names
    assert found.relations == {'"Sales"."Order"', "t"}
    with pytest.raises(Refused, match="empty"):
        check("  ;  ")
    with pytest.raises(Refused, match="must be text"):
        check(b"select 1")
    assert check("  /* c */ select 1 ;  ").text == "select 1"


def test_a_statement_at_every_bound_is_analysed_quickly(trapped: dict) -> None:
    """The bounds keep sqlglot's worst case small: the largest statements allowed still finish fast."""
    widest = " or ".join(f"(id = {i} and customer = $1)" for i in range(MAX_BOOLEAN // 2))
    deepest = "(" * (MAX_DEPTH - 2) + "id = $1" + ")" * (MAX_DEPTH - 2)
    queries = [f"select * from erp.orders where {widest}", f"select * from erp.orders where {deepest}"]
    started = time.monotonic()
    report = advice_report(trapped["dsn"], queries=queries, health=False)
    assert time.monotonic() - started < 5
    assert not any(s.reason.startswith("refused") for s in report.skipped), report.skipped


def test_a_recorded_statement_that_breaks_analysis_does_not_fail_the_report(trapped: dict) -> None:
    queries = ["select " + "(" * 150 + "1" + ")" * 150, "select * from erp.orders where customer = $1"]
    report = advice_report(trapped["dsn"], queries=queries, health=False)
    reasons = {s.statement[:20]: s.reason for s in report.skipped}
    assert any(r.startswith("refused: nested 150 levels") for r in reasons.values())
    suggested = [s.columns for s in report.suggestions]
    assert suggested == [["customer"]], report


def test_a_recorded_password_never_reaches_a_report(pg: ThrowawayPostgres, trapped: dict) -> None:
    with psycopg.connect(trapped["superuser"], autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS leaky")
        conn.execute("CREATE ROLE leaky PASSWORD 'hunter2-secret'")
    report = advice_report(trapped["dsn"], workload=Workload(min_calls=1, min_mean_ms=0.0), health=False)
    texts = report.to_stored()
    assert "hunter2-secret" not in texts
    assert "leaky" not in texts  # CREATE ROLE has no plan: not even listed as skipped
    assert any(s.statement.startswith("INSERT INTO erp.orders") for s in report.skipped)  # the rest is


def test_views_that_multiply_relations_stop_the_analysis(trapped: dict) -> None:
    """Views of views of views, eight references each: 512 relations behind one name."""
    with psycopg.connect(trapped["superuser"], autocommit=True) as conn:
        below = "erp.orders"
        for level in (1, 2, 3):
            joins = " ".join(f"cross join {below} x{i}" for i in range(1, 8))
            conn.execute(f"create or replace view public.fan{level} as select x0.* from {below} x0 {joins}")
            below = f"public.fan{level}"
    started = time.monotonic()
    report = advice_report(trapped["dsn"], queries=["select * from public.fan3 where id = $1"], health=False)
    assert time.monotonic() - started < LIMIT_S
    assert reason_of(report) == "not analysed: its views expand to over 200 relations: too many to analyse"


def test_own_sql_never_runs_a_users_shadow_of_a_builtin(trapped: dict, unchanged: None) -> None:
    """public.unnest(text[]), starts_with(name, text) and quote_ident(name) are closer matches than
    pg_catalog's for the project's catalog and health queries; each sleeps 40 s if it ever runs."""
    report = advice_report(trapped["dsn"], queries=["select * from erp.orders where customer = $1"])
    assert [s.columns for s in report.suggestions] == [["customer"]]
    assert report.health is not None and report.error is None


def test_sqlglots_whole_work_on_a_statement_is_bounded(trapped: dict) -> None:
    """Wide tables joined NATURAL (sqlglot's work grows with the square of the columns) and one
    long view named again and again: each stops quickly with the reason."""
    with psycopg.connect(trapped["superuser"], autocommit=True) as conn:
        columns = ", ".join(f"c{i} int" for i in range(1600))
        conn.execute(f"CREATE TABLE IF NOT EXISTS public.wide ({columns})")
        whens = " ".join(f"WHEN id = {i} THEN {i}" for i in range(1500))  # long, flat, one column
        conn.execute(
            f"CREATE OR REPLACE VIEW public.long_view AS SELECT CASE {whens} END AS total FROM canary"
        )
    naturals = " ".join(f"natural join public.wide a{i}" for i in range(1, 10))
    fan = ", ".join(f"public.long_view v{i}" for i in range(8))
    started = time.monotonic()
    report = advice_report(
        trapped["dsn"],
        queries=[
            f"select * from public.wide a0 {naturals} where a0.c0 = 1",
            f"select * from {fan} where v0.total = 1",
        ],
        health=False,
    )
    assert time.monotonic() - started < LIMIT_S
    reasons = [s.reason for s in report.skipped]
    assert reasons == [
        "not analysed: its relations bring over 2,000 columns: too many to analyse",
        "not analysed: its views' definitions add up to over 100,000 characters",
    ], reasons


def test_the_check_is_made_again_before_every_plan(trapped: dict) -> None:
    """A view that was clean when first checked is replaced before the statement is planned again."""
    statement = check("select * from public.toggle where id = 3")
    with GuardedSession.connect(trapped["dsn"]) as session:
        session.explain(statement)
        with psycopg.connect(trapped["superuser"], autocommit=True) as conn:
            conn.execute(
                "CREATE OR REPLACE VIEW public.toggle AS SELECT id FROM public.m_plain WHERE id = slow(1)"
            )
        try:
            started = time.monotonic()
            with pytest.raises(Unsafe, match=r"calls public\.slow\(integer\)"):
                session.explain(statement)
            assert time.monotonic() - started < 5
        finally:
            with psycopg.connect(trapped["superuser"], autocommit=True) as conn:
                conn.execute("CREATE OR REPLACE VIEW public.toggle AS SELECT id FROM public.m_plain")


def test_an_overload_beside_pg_stat_statements_is_explained(pg: ThrowawayPostgres) -> None:
    """Anyone who may create in the extension's schema can make its calls ambiguous: the collector
    and the advisor say so, and how to fix it, instead of failing obscurely."""
    name = new_database(pg, "overload")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION public.pg_stat_statements(boolean, int DEFAULT 0) RETURNS SETOF int"
            " LANGUAGE sql AS 'SELECT 1'"
        )
    with pytest.raises(AdviseError, match="give the extension a schema of its own"):
        advice_report(advisor_dsn(pg, name), workload=Workload(), health=False)
    from collectors.postgres.errors import explain_connection_error

    with psycopg.connect(advisor_dsn(pg, name)) as conn, pytest.raises(psycopg.Error) as failed:
        conn.execute("SELECT * FROM public.pg_stat_statements(false)")
    assert "ALTER EXTENSION pg_stat_statements SET SCHEMA" in explain_connection_error(failed.value)[1]


def test_a_schema_created_after_the_session_began_is_seen(trapped: dict) -> None:
    """ "$user" names no schema when the session starts; she creates it, with a view shadowing a table."""
    statement = check("select * from m_plain where id = 1")
    with GuardedSession.connect(trapped["dsn"]) as session:
        session.explain(statement)
        with psycopg.connect(trapped["superuser"], autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {ADVISOR_ROLE} AUTHORIZATION mallory")
            conn.execute("SET ROLE mallory")
            conn.execute(
                f"CREATE VIEW {ADVISOR_ROLE}.m_plain AS SELECT id FROM public.m_plain WHERE id = slow(1)"
            )
        try:
            with pytest.raises(Unsafe, match=rf"public\.slow\(integer\) \(via {ADVISOR_ROLE}\.m_plain\)"):
                session.explain(statement)
        finally:
            with psycopg.connect(trapped["superuser"], autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {ADVISOR_ROLE} CASCADE")


def test_a_superusers_helper_that_resolves_names_late_is_not_trusted(trapped: dict) -> None:
    """A superuser's plain SQL function is inlined, its body read along the caller's search_path,
    where her lower(varchar) is a closer match than pg_catalog's lower(text)."""
    with psycopg.connect(trapped["superuser"], autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION public.norm(varchar) RETURNS text LANGUAGE sql IMMUTABLE AS 'select lower($1)'"
        )
        conn.execute("CREATE FUNCTION public.norm_pinned(varchar) RETURNS text LANGUAGE sql IMMUTABLE"
                     " SET search_path = pg_catalog AS 'select lower($1)'")  # fmt: skip
    try:
        report = advice_report(
            trapped["dsn"],
            queries=[
                "select * from erp.orders where customer::text = norm('ABC'::varchar)",
                "select * from erp.orders where customer::text = norm_pinned('ABC'::varchar)",
            ],
            health=False,
        )
        reasons = {s.statement: s.reason for s in report.skipped}
        served = {text for s in report.suggestions for text in s.statements}
        (unpinned,) = [r for text, r in reasons.items() if "norm(" in text]
        assert "calls public.norm(character varying)" in unpinned, reasons
        pinned = [r for text, r in reasons.items() if "norm_pinned" in text]
        assert pinned == [] or not pinned[0].startswith(("not planned", "refused")), reasons
        assert pinned or any("norm_pinned" in text for text in served)  # a pinned path is trusted
    finally:
        with psycopg.connect(trapped["superuser"], autocommit=True) as conn:
            conn.execute("DROP FUNCTION public.norm(varchar), public.norm_pinned(varchar)")
