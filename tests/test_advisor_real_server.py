"""The advisor on a server set up as the README says: statements as pg_stat_statements records them,
a role with only the documented grants (or fewer), UPDATE and DELETE without write privileges."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from dashboard.advisor.database import Workload, advice_report, workload_statements
from dashboard.advisor.planner import PlanError, Planner
from dashboard.core.guarded import GuardedSession, Refused, check, reading_form
from dashboard.servers.throwaway import ThrowawayPostgres
from tests.support.postgres import advisor_dsn, new_database

TABLES = """
CREATE TABLE bookings (
  id bigint PRIMARY KEY, ref text NOT NULL, customer int NOT NULL, status text NOT NULL,
  booked_at timestamptz NOT NULL, day date NOT NULL, starts time NOT NULL, local_at timestamp NOT NULL,
  stay interval NOT NULL, tags text[] NOT NULL, total numeric NOT NULL
);
INSERT INTO bookings
SELECT g, 'B-' || g, g % 5000, (ARRAY['new', 'paid', 'done'])[1 + g % 3],
       now() - interval '400 days' * (g / 60000.0), current_date - (g % 400),
       time '00:00' + g * interval '1 s', timestamp '2026-01-01' + g * interval '1 min',
       (g % 30) * interval '1 day', ARRAY['t' || g % 50], g % 997
  FROM generate_series(1, 60000) g;
ANALYZE bookings;
"""

# As an application writes them: literals in the text, which pg_stat_statements turns into $n.
WORKLOAD = [
    "SELECT * FROM bookings WHERE booked_at > now() - interval '7 days'",
    "SELECT count(*) FROM bookings WHERE day = date '2026-11-01'",
    "SELECT * FROM bookings WHERE booked_at >= timestamptz '2026-11-01 00:00+00' AND customer = 17",
    "SELECT * FROM bookings WHERE local_at < timestamp '2026-01-02' ORDER BY local_at LIMIT 20",
    "SELECT * FROM bookings WHERE starts = time '10:00'",
    "SELECT * FROM bookings WHERE stay > interval '20 days' AND customer = 3",
    "SELECT * FROM bookings WHERE (local_at AT TIME ZONE 'UTC') > timestamptz '2026-01-05' AND customer = 9",
    "SELECT * FROM bookings WHERE customer IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)",
    "SELECT * FROM bookings WHERE customer IN (42)",
    "SELECT * FROM bookings WHERE status = 'new' ORDER BY booked_at DESC LIMIT 10",
    "SELECT date_trunc('day', booked_at), count(*) FROM bookings WHERE customer = 5 GROUP BY 1",
    "SELECT * FROM bookings WHERE tags && '{t1,t2}'::text[] AND customer = 8",
    "SELECT * FROM bookings WHERE ref = ANY('{B-1,B-2}')",
    "UPDATE bookings SET total = total + 1 WHERE ref = 'B-77'",
    "DELETE FROM bookings WHERE booked_at < now() - interval '10 years' AND customer = 4",
]


@pytest.fixture(scope="module")
def recorded(pg: ThrowawayPostgres) -> str:
    """A database whose pg_stat_statements holds WORKLOAD as the server recorded it, with HypoPG."""
    name = new_database(pg, "typed")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(TABLES)
        conn.execute("CREATE EXTENSION hypopg")
        conn.execute("SELECT pg_stat_statements_reset()")
        for statement in WORKLOAD:
            for _ in range(3):
                conn.execute(statement)
    return name


@pytest.fixture
def monitor_only(pg: ThrowawayPostgres, recorded: str) -> Iterator[str]:
    """The collector's role as the README makes it: pg_monitor and nothing else."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS monitor_only")
        conn.execute("CREATE ROLE monitor_only LOGIN IN ROLE pg_monitor")
    yield pg.dsn(user="monitor_only", dbname=recorded)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("DROP ROLE monitor_only")


def recorded_texts(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [s.text for s in workload_statements(conn, Workload(min_calls=1, min_mean_ms=0.0))]


def test_every_typed_literal_is_recorded_with_a_placeholder_and_then_planned(
    pg: ThrowawayPostgres, recorded: str
) -> None:
    texts = [t for t in recorded_texts(advisor_dsn(pg, recorded)) if "bookings" in t]
    assert len(texts) == len(WORKLOAD), texts
    joined = "\n".join(texts)
    for form in ("interval $", "date $", "timestamptz $", "timestamp $", "time $"):
        assert form in joined, f"pg_stat_statements no longer records {form!r}: {texts}"
    with GuardedSession.connect(advisor_dsn(pg, recorded)) as session:
        for text in texts:
            tree, _ = session.explain(reading_form(check(text)))  # raises on a syntax or privilege error
            assert tree[0]["Plan"]["Total Cost"] > 0, text


def test_the_documented_grants_make_every_statement_plannable(pg: ThrowawayPostgres, recorded: str) -> None:
    report = advice_report(advisor_dsn(pg, recorded), workload=Workload(min_calls=1, min_mean_ms=0.0))
    assert report.needs is None and report.hypopg is True and report.hint is None
    for skipped in [s for s in report.skipped if "bookings" in s.statement]:
        for failure in ("syntax error", "permission denied", "cannot plan", "not analysed", "refused"):
            assert failure not in skipped.reason, (skipped.statement, skipped.reason)
    by_columns = {(s.table, tuple(s.columns)) for s in report.suggestions}
    assert ("public.bookings", ("customer",)) in {(t, c[:1]) for t, c in by_columns}, by_columns
    assert any(s.proven for s in report.suggestions)
    texts = {t for s in report.suggestions for t in s.statements} | {s.statement for s in report.skipped}
    assert any("interval $" in t for t in texts), "the recorded text is what the report shows"


# Statements the rewrite once broke, each planned through the guarded session by the read-only role.
AWKWARD = [
    "UPDATE bookings SET tags[$1] = $2 WHERE ref = $3",  # as pg_stat_statements records tags[1] = 'x'
    "UPDATE bookings SET day = $1 WHERE ref = $2 AND day IS DISTINCT FROM $1",  # $1 typed by the column
    "UPDATE booking_view SET total = $1 WHERE ref = $2",  # a view has no ctid
    "DELETE FROM booking_view WHERE ref = $1",
    "INSERT INTO bookings (id, ref) SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM bookings WHERE id = $1)",
    "INSERT INTO bookings (id) SELECT id FROM bookings WHERE ref = $1 UNION ALL SELECT $2",
]


def test_awkward_writes_plan_as_reads(pg: ThrowawayPostgres) -> None:
    name = new_database(pg, "awkward")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(TABLES)
        conn.execute("CREATE VIEW booking_view AS SELECT * FROM bookings")
    with GuardedSession.connect(advisor_dsn(pg, name)) as session:
        for text in AWKWARD:
            tree, _ = session.explain(reading_form(check(text)))
            assert tree[0]["Plan"]["Total Cost"] > 0, text


def test_a_statement_that_still_writes_is_not_blamed_on_a_read_grant(
    pg: ThrowawayPostgres, recorded: str
) -> None:
    merge = "MERGE INTO bookings b USING bookings s ON b.id = s.id AND s.ref = $1 WHEN MATCHED THEN DELETE"
    with GuardedSession.connect(advisor_dsn(pg, recorded)) as session, pytest.raises(PlanError) as refused:
        Planner(session).plan(check(merge))
    reason = str(refused.value)
    assert "permission denied for table bookings" in reason
    assert "needs a privilege to write, which observatory_advisor is rightly not given" in reason
    assert "GRANT" not in reason


def test_update_and_delete_are_advised_without_any_write_privilege(
    pg: ThrowawayPostgres, recorded: str
) -> None:
    dsn = advisor_dsn(pg, recorded)
    with psycopg.connect(dsn) as conn:
        rights = conn.execute(
            "SELECT has_table_privilege('bookings', 'UPDATE'), has_table_privilege('bookings', 'DELETE')"
        ).fetchone()
    assert rights == (False, False)
    update = "UPDATE bookings SET total = $1 WHERE ref = $2"
    delete = "DELETE FROM bookings b WHERE b.booked_at < now() - interval $1 AND b.customer = $2"
    report = advice_report(dsn, queries=[update, delete], health=False)
    served = {text: (s.table, s.columns, s.proven) for s in report.suggestions for text in s.statements}
    assert served[update] == ("public.bookings", ["ref"], True), report.skipped
    assert served[delete][1][0] == "customer" and served[delete][2], report.skipped


def test_insert_select_and_foreign_key_checks_are_read_without_write_privileges(
    pg: ThrowawayPostgres, recorded: str
) -> None:
    copy = "INSERT INTO bookings SELECT * FROM bookings WHERE ref = $1 ON CONFLICT DO NOTHING"
    # What PostgreSQL itself runs for a foreign key, as pg_stat_statements.track = all records it.
    fk_check = (
        'SELECT $2 FROM ONLY "public"."bookings" x WHERE "id" OPERATOR(pg_catalog.=) $1 FOR KEY SHARE OF x'
    )
    report = advice_report(advisor_dsn(pg, recorded), queries=[copy, fk_check], health=False)
    served = {text: (s.columns, s.proven) for s in report.suggestions for text in s.statements}
    assert served == {copy: (["ref"], True)}, report.skipped
    (skipped,) = report.skipped
    assert skipped.statement == fk_check and skipped.reason.startswith("already cheap"), skipped


def test_a_pg_monitor_only_role_is_told_the_exact_grant(pg: ThrowawayPostgres, monitor_only: str) -> None:
    report = advice_report(monitor_only, workload=Workload(min_calls=1, min_mean_ms=0.0))
    assert report.suggestions == []
    assert report.needs and len(report.needs) == 1, report.needs
    need = report.needs[0]
    assert "monitor_only cannot read 1 relation in schema public (bookings)" in need
    assert "GRANT pg_read_all_data TO monitor_only;" in need
    assert "GRANT SELECT ON ALL TABLES IN SCHEMA public TO monitor_only;" in need
    assert (
        "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES TO monitor_only;"
        in need
    )
    reasons = [s.reason for s in report.skipped if "bookings" in s.statement]
    assert reasons and all("permission denied for table bookings" in r for r in reasons), reasons
    assert all("GRANT pg_read_all_data TO monitor_only" in r for r in reasons)
    owner_dsn = pg.dsn(dbname=monitor_only.rsplit("/", 1)[1])
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO monitor_only")
    try:
        again = advice_report(monitor_only, workload=Workload(min_calls=1, min_mean_ms=0.0))
        assert again.needs is None and again.suggestions, again.skipped
    finally:
        with psycopg.connect(owner_dsn, autocommit=True) as conn:
            conn.execute("REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM monitor_only")


def test_a_role_that_may_not_call_hypopg_is_told_the_grant(pg: ThrowawayPostgres) -> None:
    name = new_database(pg, "nohypo")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(TABLES)
        conn.execute("CREATE SCHEMA hypo")
        conn.execute("CREATE EXTENSION hypopg SCHEMA hypo")
        conn.execute("REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA hypo FROM PUBLIC")
    report = advice_report(advisor_dsn(pg, name), queries=["SELECT * FROM bookings WHERE ref = $1"])
    assert report.hypopg is False and report.hint is None  # installed: nothing to CREATE
    assert report.needs == [
        "observatory_advisor may not call HypoPG, so suggestions cannot be proven: GRANT EXECUTE ON "
        "FUNCTION hypo.hypopg_create_index(text), hypo.hypopg_reset() TO observatory_advisor;"
    ]
    assert [s.proven for s in report.suggestions] == [False]


def test_without_hypopg_the_hint_names_the_database(pg: ThrowawayPostgres) -> None:
    name = new_database(pg, "bare")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(TABLES)
    report = advice_report(advisor_dsn(pg, name), queries=["SELECT * FROM bookings WHERE ref = $1"])
    assert report.hint and f"CREATE EXTENSION hypopg; in database {name}" in report.hint


# -- the rewrites, without a server --------------------------------------------------------------
@pytest.mark.parametrize(
    ("recorded", "planned"),
    [
        ("SELECT 1 FROM t WHERE a > now() - interval $1", "SELECT 1 FROM t WHERE a > now() - $1::interval"),
        ("SELECT date $1, time $2, timestamptz $3", "SELECT $1::date, $2::time, $3::timestamptz"),
        ("SELECT timestamp with time zone $1", "SELECT $1::timestamp with time zone"),
        ("SELECT timestamp(3) $1 AT TIME ZONE $2", "SELECT $1::timestamp(3) AT TIME ZONE $2"),
        ("SELECT interval $1 hour", "SELECT $1::interval hour"),
        ('SELECT "My Type" $1, pg_catalog.int4 $2', 'SELECT $1::"My Type", $2::pg_catalog.int4'),
        ("SELECT date -- a comment\n $1, 'x;\ny'", "SELECT $1::date, 'x;\ny'"),  # never moved before code
        ("SELECT date /* c */ $1 + 1", "SELECT $1::date + 1"),
        (
            "SELECT $1::int, CAST($2 AS int), date '2026-01-01'",
            "SELECT $1::int, CAST($2 AS int), date '2026-01-01'",
        ),
        ("SELECT 'interval $1', \"date\" FROM t", "SELECT 'interval $1', \"date\" FROM t"),
    ],
)
def test_typed_placeholders_are_planned_as_casts(recorded: str, planned: str) -> None:
    assert check(recorded).text == planned


@pytest.mark.parametrize(
    ("statement", "reading"),
    [
        ("UPDATE t SET a = $1 WHERE b = $2", "SELECT t, t.a IS NOT DISTINCT FROM $1 FROM t WHERE b = $2"),
        (
            "UPDATE t x SET a = DEFAULT, c = x.c + 1 FROM u WHERE u.id = x.u AND u.k = $1 RETURNING x.a",
            "SELECT x, x.c IS NOT DISTINCT FROM x.c + 1 FROM t AS x, u WHERE u.id = x.u AND u.k = $1",
        ),
        (
            "UPDATE t SET (a, b) = ($1, $2) WHERE c = $3",
            "SELECT t, t.a IS NOT DISTINCT FROM $1, t.b IS NOT DISTINCT FROM $2 FROM t WHERE c = $3",
        ),
        (
            "UPDATE t SET (a, b) = (SELECT 1, $1) WHERE c = $2",
            "SELECT t, EXISTS (SELECT 1, $1) FROM t WHERE c = $2",
        ),
        ("DELETE FROM ONLY s.t USING u WHERE t.k = u.k", "SELECT t FROM ONLY s.t, u WHERE t.k = u.k"),
        (
            "WITH q AS (SELECT k FROM u) DELETE FROM t WHERE k IN (SELECT k FROM q)",
            "WITH q AS (SELECT k FROM u) SELECT t FROM t WHERE k IN (SELECT k FROM q)",
        ),
        (
            "INSERT INTO t (a) SELECT u.a FROM u WHERE u.k = $1 ON CONFLICT DO NOTHING RETURNING a",
            "SELECT u.a FROM u WHERE u.k = $1",
        ),
        (
            "WITH q AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM q",
            "WITH q AS (SELECT 1 AS a) SELECT a FROM q",
        ),
        ("INSERT INTO t VALUES ($1, $2)", "INSERT INTO t VALUES ($1, $2)"),  # no rows to find: as written
        ("SELECT a FROM t x WHERE k = $1 FOR KEY SHARE OF x", "SELECT a FROM t AS x WHERE k = $1"),
        (
            "SELECT 1 FROM t WHERE k IN (SELECT k FROM u FOR UPDATE)",
            "SELECT 1 FROM t WHERE k IN (SELECT k FROM u)",
        ),
        (
            "MERGE INTO t USING u ON t.k = u.k WHEN MATCHED THEN DELETE",
            "MERGE INTO t USING u ON t.k = u.k WHEN MATCHED THEN DELETE",
        ),
        (
            "UPDATE t SET tags[$1] = $2 WHERE id = $3",
            "SELECT t, (t.tags)[$1] IS NOT DISTINCT FROM $2 FROM t WHERE id = $3",
        ),
        (
            "INSERT INTO t (id, ref) SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM t WHERE id = $1)",
            "SELECT NULL, $2 WHERE NOT EXISTS (SELECT 1 FROM t WHERE id = $1)",
        ),
        ("SELECT 1", "SELECT 1"),
    ],
)
def test_update_and_delete_are_read_as_the_select_that_finds_their_rows(statement: str, reading: str) -> None:
    assert reading_form(check(statement)).text == reading


def test_where_current_of_is_refused_with_the_reason() -> None:
    with pytest.raises(Refused, match="WHERE CURRENT OF"):
        reading_form(check("DELETE FROM t WHERE CURRENT OF c"))


def test_the_rewritten_statement_keeps_what_the_guard_checked() -> None:
    recorded = check("SELECT o.id FROM s.orders o WHERE o.at > now() - interval $1 AND o.day = date $2")
    written = check("SELECT o.id FROM s.orders o WHERE o.at > now() - $1::interval AND o.day = $2::date")
    assert recorded == written
    assert recorded.relations == frozenset({"s.orders"}) and {"interval", "date", "now"} <= recorded.names


@pytest.mark.parametrize(
    ("text", "one"),
    [
        ("SELECT 'éé';", "SELECT 'éé'"),
        ("  SELECT 'ab', '日本' FROM t ;  -- after", "SELECT 'ab', '日本' FROM t"),
        (
            "SELECT 'ü', date $1, '日本' AS \"ö\", interval $2;",
            "SELECT 'ü', $1::date, '日本' AS \"ö\", $2::interval",
        ),
    ],
)
def test_text_beyond_ascii_is_kept_whole(text: str, one: str) -> None:
    """pglast counts characters, not bytes: a statement with accents is neither cut nor garbled."""
    assert check(text).text == one


@pytest.mark.parametrize(
    ("recorded", "planned"),
    [
        # `char 'x'` is bpchar of any length, `'x'::char` is char(1): named so the length stays open.
        (
            "SELECT char $1, character $2, bit $3",
            "SELECT $1::pg_catalog.bpchar, $2::pg_catalog.bpchar, $3::pg_catalog.bit",
        ),
        ("SELECT char(3) $1, varchar $2", "SELECT $1::char(3), $2::varchar"),
    ],
)
def test_types_with_a_default_length_keep_the_literals_meaning(recorded: str, planned: str) -> None:
    assert check(recorded).text == planned


def test_nested_typed_placeholders_are_refused_not_garbled() -> None:
    with pytest.raises(Refused, match="could not be rewritten as casts"):
        check("SELECT foo(date $2) $1")


def test_many_typed_placeholders_are_rewritten_in_linear_time() -> None:
    text = "SELECT " + ", ".join(f"int ${n}" for n in range(1, 6001))  # 18,000 tokens, under the bound
    started = time.perf_counter()
    assert check(text).text.endswith("$6000::int")
    assert time.perf_counter() - started < 3.0


def test_placeholders_sqlglot_could_not_tokenize_are_read() -> None:
    """As the demo's analytics INSERT was recorded: a placeholder subscript after another one."""
    from dashboard.advisor.shapes import parse

    tree = parse("SELECT ($1::text[])[$4 + floor(random() * $5)::int], x[$2] FROM t WHERE a IN ($6,$7)")
    assert tree.sql("postgres").count("$") == 6
