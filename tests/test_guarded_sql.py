"""Hostile statements against a real PostgreSQL, through every door a person can use: the advisor's
API (what the daemon runs on recorded statements), `observatory advise --query` and the Indexes
page's paste box. Whatever the text, nothing is written, no program runs, no session is killed, no
file is read out, every case ends within 20 s and nothing ends in a traceback.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.advisor.advise import Advisor, StatementInput
from dashboard.advisor.database import AdviseError, Workload, advise_database
from dashboard.core.guarded import GuardedSession, Limits, Refused, SessionRefused, Unsafe, check
from dashboard.core.guarded import statement as statement_module
from dashboard.core.guarded.statement import MAX_BOOLEAN, MAX_DEPTH
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from tests.conftest import ADVISOR_ROLE, advisor_dsn, collect_once, make_config, new_database

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PROGRAM_FILE = f"/tmp/observatory-hostile-{uuid.uuid4().hex[:8]}"
LIMIT_S = 20.0
# Objects made by an unprivileged role, as anyone with CREATE on a schema can. The functions only
# sleep when called from a session other than the setup one, so creating them costs nothing.
MALLORY = """
CREATE ROLE mallory LOGIN;
GRANT CREATE, USAGE ON SCHEMA public TO mallory;
CREATE TABLE public.canary (id int);
CREATE SCHEMA erp;
CREATE TABLE erp.orders (id int PRIMARY KEY, customer int, total numeric);
INSERT INTO erp.orders SELECT g, g % 500, g FROM generate_series(1, 20000) g;
ANALYZE erp.orders;
SET ROLE mallory;
CREATE FUNCTION public.slow(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF current_setting('application_name') <> 'setup' THEN PERFORM pg_sleep(40); END IF;
  RETURN $1;
END $$;
CREATE FUNCTION public.kill_victim(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim';
  RETURN $1;
END $$;
CREATE FUNCTION public.leak(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM pg_notify('leak', pg_read_file('/etc/passwd'));
  RETURN $1;
END $$;
CREATE FUNCTION public.slow_eq(int, int) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF current_setting('application_name') <> 'setup' THEN PERFORM pg_sleep(40); END IF;
  RETURN $1 = $2;
END $$;
CREATE OPERATOR public.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = public.slow_eq);
CREATE TABLE public.m_items (id int, x int DEFAULT public.slow(1));
CREATE VIEW public.m_view AS SELECT id, public.slow(1) AS s FROM public.m_items;
-- Reached without a call in sight: attribute notation (row).evil, an inlined SQL wrapper, a range
-- type's subtype_diff (selectivity), the same through a domain.
CREATE FUNCTION public.evil(public.m_items) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF current_setting('application_name') <> 'setup' THEN PERFORM pg_sleep(40); END IF;
  RETURN 1;
END $$;
CREATE FUNCTION public.slow_eq_sum(int, int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF current_setting('application_name') <> 'setup' THEN PERFORM pg_sleep(40); END IF;
  RETURN $1 + $2;
END $$;
CREATE FUNCTION public.wrapper(int) RETURNS int LANGUAGE sql AS 'SELECT public.slow(1) + $1';
CREATE FUNCTION public.slow_diff(int4, int4) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF current_setting('application_name') <> 'setup' THEN PERFORM pg_sleep(40); END IF;
  RETURN $1 - $2;
END $$;
CREATE TYPE public.slowrange AS RANGE (subtype = int4, subtype_diff = public.slow_diff);
CREATE DOMAIN public.slowdomain AS public.slowrange;
CREATE TABLE public.m_ranges (r public.slowrange, d public.slowdomain);
CREATE AGGREGATE public.slow_sum(int) (SFUNC = public.slow_eq_sum, STYPE = int);
-- A domain CHECK on a composite's attribute; a policy whose subquery reads a trapped view.
CREATE FUNCTION public.ok(int) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF current_setting('application_name') <> 'setup' THEN PERFORM pg_sleep(40); END IF;
  RETURN true;
END $$;
CREATE DOMAIN public.checked AS int CHECK (public.ok(VALUE));
CREATE TYPE public.pair AS (x public.checked);
CREATE TABLE public.m_pairs (id int, c public.pair);
CREATE VIEW public.allowed AS SELECT public.slow(1) AS id;
CREATE TABLE public.m_guarded (id int, v text);
ALTER TABLE public.m_guarded ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON public.m_guarded USING (id IN (SELECT id FROM public.allowed));
-- Operators whose own function is built in, but whose negator or commutator is hers: the
-- estimators call those too. And an implicit cast on her type's array.
CREATE FUNCTION public.neg_eq(int, int) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF current_setting('application_name') <> 'setup' THEN PERFORM pg_sleep(40); END IF;
  RETURN $1 = $2;
END $$;
CREATE OPERATOR public.<<=>> (LEFTARG = int, RIGHTARG = int, FUNCTION = public.neg_eq);
CREATE OPERATOR public.&& (LEFTARG = int, RIGHTARG = int, FUNCTION = pg_catalog.int4ne,
  RESTRICT = neqsel, JOIN = neqjoinsel, NEGATOR = OPERATOR(public.<<=>>));
CREATE OPERATOR public.<@ (LEFTARG = int, RIGHTARG = int, FUNCTION = public.neg_eq);
CREATE OPERATOR public.@> (LEFTARG = int, RIGHTARG = int, FUNCTION = pg_catalog.int4gt,
  RESTRICT = scalargtsel, COMMUTATOR = OPERATOR(public.<@));
CREATE TYPE public.mt AS (a int);
CREATE FUNCTION public.mt_arr(public.mt[]) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF current_setting('application_name') <> 'setup' THEN PERFORM pg_sleep(40); END IF;
  RETURN '{}';
END $$;
CREATE CAST (public.mt[] AS jsonb) WITH FUNCTION public.mt_arr(public.mt[]) AS IMPLICIT;
CREATE TABLE public.m_plain (id int);
CREATE VIEW public.toggle AS SELECT id FROM public.m_plain;
-- A partition key expression of a grandparent: naming the middle level builds its constraint.
CREATE FUNCTION public.g() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF current_setting('application_name') <> 'setup' THEN PERFORM pg_sleep(40); END IF;
  RETURN 0;
END $$;
CREATE TABLE public.m_top (id int, x int) PARTITION BY RANGE ((x + public.g()));
CREATE TABLE public.m_mid PARTITION OF public.m_top FOR VALUES FROM (0) TO (1000000) PARTITION BY RANGE (x);
CREATE TABLE public.m_leaf PARTITION OF public.m_mid FOR VALUES FROM (0) TO (1000000);
-- An equality operator on a type of her own that no statement uses: it must stop none of them.
CREATE TYPE public.nothing AS (a int);
CREATE FUNCTION public.noeq(public.nothing, public.nothing) RETURNS bool LANGUAGE sql AS 'select true';
CREATE OPERATOR public.= (LEFTARG = public.nothing, RIGHTARG = public.nothing, FUNCTION = public.noeq);
-- Shadows of built-ins with a closer match, for the project's own catalog queries to trip over.
CREATE FUNCTION public.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('application_name') <> 'setup' THEN PERFORM pg_sleep(40); END IF;
  RETURN QUERY SELECT pg_catalog.unnest(a);
END $$;
CREATE FUNCTION public.starts_with(name, text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('application_name') <> 'setup' THEN PERFORM pg_sleep(40); END IF;
  RETURN pg_catalog.starts_with($1::text, $2);
END $$;
CREATE FUNCTION public.quote_ident(name) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('application_name') <> 'setup' THEN PERFORM pg_sleep(40); END IF;
  RETURN pg_catalog.quote_ident($1::text);
END $$;
-- A range type of her own also makes a (C) multirange cast: it must not stop every statement.
CREATE TYPE public.irange AS RANGE (subtype = int4);
RESET ROLE;
"""


def cte_chain(n: int) -> str:
    """c0 reads erp.orders, each next CTE reads the one before: planning time grows steeply with n."""
    return ", ".join(
        ["c0 as (select * from erp.orders)", *(f"c{i} as (select * from c{i - 1})" for i in range(1, n))]
    )


@dataclass(frozen=True)
class Case:
    id: str
    sql: str
    outcome: str  # refused: check() says no | unsafe: not planned | planned: reaches the planner
    reason: str  # a regex the reason must match ('' for planned: a suggestion, or any reason)


INSERT = "insert into public.canary values (1)"
COPY = f"copy (select 'x') to program 'touch {PROGRAM_FILE}'"
CASES = [
    Case("stacked-after-select", f"select * from erp.orders where id = 1; set default_transaction_read_only = off; commit; {INSERT}", "refused", r"^4 statements"),  # noqa: E501
    Case("stacked-first", f"{INSERT}; select 1", "refused", r"^2 statements"),
    Case("stacked-middle", f"select 1; {INSERT}; select 2", "refused", r"^3 statements"),
    Case("stacked-empty-between", f"select 1;; {INSERT}", "refused", r"^2 statements"),
    Case("stacked-in-comments", f"select 1 /* ; */; {INSERT} --", "refused", r"^2 statements"),
    Case("stacked-copy-program", f"select 1; {COPY}", "refused", r"^2 statements"),
    Case("copy-program", COPY, "refused", r"^COPY is not planned"),
    Case("commit-then-write", f"commit; {INSERT}", "refused", r"^2 statements"),
    Case("read-write-transaction", f"start transaction read write; {INSERT}", "refused", r"^2 statements"),
    Case("set-read-only-off", "set default_transaction_read_only = off", "refused", r"^SET is not planned"),
    Case("reset-all", "reset all", "refused", r"^SET is not planned"),
    Case("set-role", "set role postgres", "refused", r"^SET is not planned"),
    Case("set-session-authorization", "set session authorization postgres", "refused", r"is not planned"),
    Case("timeout-lifted", "select 1; set statement_timeout = 0; select pg_sleep(25)", "refused", r"^3 statements"),  # noqa: E501
    Case("select-into", "select * into public.newtable from public.canary", "refused", r"SELECT \.\.\. INTO"),
    Case("explain-analyze", f"explain analyze {INSERT}", "refused", r"^EXPLAIN is not planned"),
    Case("do-block", f"do $$ begin {INSERT}; end $$", "refused", r"^DO is not planned"),
    Case("deep-nesting", "select " + "(" * 150 + "1" + ")" * 150, "refused", rf"nested 150 levels deep: at most {MAX_DEPTH}"),  # noqa: E501
    Case("or-chain", "select * from erp.orders where " + " or ".join(f"id = {i}" for i in range(1000)), "refused", rf"999 AND/OR terms: at most {MAX_BOOLEAN}"),  # noqa: E501
    Case("and-chain", "select * from erp.orders where " + " and ".join(f"id <> {i}" for i in range(3000)), "refused", r"2,999 AND/OR terms"),  # noqa: E501
    Case("very-long", "select 1 as " + "x" * 150_000, "refused", r"150,012 characters long"),
    Case("nul-byte", f"select 1\x00; {INSERT}", "refused", r"NUL byte"),
    Case("not-utf8", "select '\udcff'", "refused", r"not valid UTF-8"),
    Case("immutable-sleeper", "select * from erp.orders where id = public.slow(1)", "unsafe", r"calls public\.slow\(integer\)"),  # noqa: E501
    Case("unqualified-sleeper", "select slow(1)", "unsafe", r"calls public\.slow\(integer\)"),
    Case("kill-victim", "select kill_victim(1)", "unsafe", r"calls public\.kill_victim\(integer\)"),
    Case("read-file", "select leak(1)", "unsafe", r"calls public\.leak\(integer\)"),
    Case("view-calls-sleeper", "select * from m_view", "unsafe", r"public\.slow\(integer\) \(via public\.m_(view|items)\)"),  # noqa: E501
    Case("default-calls-sleeper", "insert into m_items (id) values (1)", "unsafe", r"public\.slow\(integer\) \(via public\.m_items\)"),  # noqa: E501
    Case("operator-sleeper", "select * from erp.orders where id === 1", "unsafe", r"public\.slow_eq\(integer, integer\) \(via operator ===\)"),  # noqa: E501
    Case("attribute-notation", "select * from erp.orders where customer = ('(1,2)'::public.m_items).evil", "unsafe", r"calls public\.evil\(public\.m_items\)"),  # noqa: E501
    Case("alias-attribute", "select * from public.m_items x where x.evil > 0", "unsafe", r"public\.evil\(public\.m_items\)"),  # noqa: E501
    Case("inlined-sql-wrapper", "select * from erp.orders where id = public.wrapper(1)", "unsafe", r"calls public\.wrapper\(integer\)"),  # noqa: E501
    Case("operator-in-sublink", "select * from erp.orders o where o.customer === ANY (select id from erp.orders)", "unsafe", r"slow_eq\(integer, integer\) \(via operator ===\)"),  # noqa: E501
    Case("range-subtype-diff", "select * from m_ranges where r && '[1,5)'", "unsafe", r"public\.slow_diff\(integer, integer\)"),  # noqa: E501
    Case("domain-over-range", "select * from m_ranges where d && '[1,5)'::slowdomain", "unsafe", r"public\.slow_diff\(integer, integer\)"),  # noqa: E501
    Case("many-ctes", f"with {cte_chain(400)} select * from c399", "refused", r"over 200 tables, subqueries and CTEs"),  # noqa: E501
    Case("isnull-chain", "select * from erp.orders where customer = 5 and (total" + " isnull" * 9000 + ")", "refused", r"nest over 150 deep"),  # noqa: E501
    Case("scs-off-smuggle", "select '\\' as a, ' , public.slow(1) as b -- '\nfrom erp.orders where customer = 5", "planned", r""),  # noqa: E501
    Case("sjis-smuggle", "select E'\u00c1\\', public.slow(1) as b --' as c\nfrom erp.orders where customer = 5", "planned", r""),  # noqa: E501
    Case("own-aggregate", "select slow_sum(id) from erp.orders", "unsafe", r"public\.slow_eq_sum\(integer, integer\) \(via aggregate slow_sum\)"),  # noqa: E501
    Case("composite-attribute-domain", "update m_pairs set c = '(5)' where id = 3", "unsafe", r"public\.ok\(integer\)"),  # noqa: E501
    Case("composite-field", "select * from erp.orders where customer = (('(3)'::pair)).x", "unsafe", r"public\.ok\(integer\)"),  # noqa: E501
    Case("policy-subquery", "select * from m_guarded where v = 'y'", "unsafe", r"public\.slow\(integer\) \(via public\.allowed\)"),  # noqa: E501
    Case("runs-sql-by-name", "select * from erp.orders where total::text = table_to_xml('public.allowed', true, true, '')::text", "refused", r"table_to_xml runs SQL"),  # noqa: E501
    Case("operator-negator", "select * from erp.orders where id = 7 and customer && 5", "unsafe", r"public\.neg_eq\(integer, integer\) \(via operator &&\)"),  # noqa: E501
    Case("operator-commutator", "select * from erp.orders where id = 8 and 5 @> customer", "unsafe", r"public\.neg_eq\(integer, integer\) \(via operator @>\)"),  # noqa: E501
    Case("array-cast", "select * from erp.orders where id = 7 and jsonb_typeof('{}'::mt[]) = 'x'", "unsafe", r"public\.mt_arr\(public\.mt\[\]\)"),  # noqa: E501
    Case("many-joins", "select * from erp.orders x0 " + " ".join(f"join erp.orders x{i} on x{i}.id = x{i - 1}.customer" for i in range(1, 100)), "planned", r""),  # noqa: E501
    Case("sub-partition", "select * from m_mid where id = 5", "unsafe", r"public\.g\(\) \(via public\.m_top\)"),  # noqa: E501
    Case("type-code-by-oid", "select * from erp.orders where total::text = domain_in('5', 16384, -1)::text", "refused", r"domain_in runs a type's code chosen by OID"),  # noqa: E501
    Case("builtin-sleep", "select pg_sleep(40)", "planned", r""),
    Case("builtin-terminate", "select pg_terminate_backend(pid) from pg_stat_activity", "planned", r""),
    Case("insert", INSERT, "planned", r""),
    Case("update", "update public.canary set id = 2 where id = $1", "planned", r""),
    Case("delete", "delete from public.canary", "planned", r""),
    Case("merge", "merge into public.canary c using (select 1 as id) s on c.id = s.id when not matched then insert values (s.id)", "planned", r"\(merge\)"),  # noqa: E501
    Case("writing-cte", f"with x as ({INSERT} returning *) select * from x", "planned", r""),
    Case("long-in-list", "select * from erp.orders where id in (" + ", ".join(map(str, range(3000))) + ")", "planned", r""),  # noqa: E501
]  # fmt: skip
# What the CLI cannot carry: argv has no NUL and no argument over 128 kB; undecodable bytes arrive
# as they are (below).
CLI_CASES = [c for c in CASES if c.id not in ("nul-byte", "very-long")]


@pytest.fixture(scope="module")
def hostile(pg: ThrowawayPostgres) -> Iterator[dict]:
    """A database with an unprivileged role's traps, a canary and a victim session listening."""
    name = new_database(pg, "hostile")
    with psycopg.connect(pg.dsn(dbname=name), application_name="setup", autocommit=True) as conn:
        conn.execute(MALLORY)
        # A trusted extension she installs is hers: she can add her own function to it.
        conn.execute(f"GRANT CREATE ON DATABASE {name} TO mallory")
        conn.execute("SET ROLE mallory")
        conn.execute("CREATE SCHEMA mext; CREATE EXTENSION hstore SCHEMA mext")
        conn.execute("ALTER EXTENSION hstore ADD FUNCTION public.slow(int)")
        conn.execute("RESET ROLE")
        # What a database owner may set: the server would read a statement otherwise than pglast.
        conn.execute(f"ALTER ROLE {ADVISOR_ROLE} IN DATABASE {name} SET standard_conforming_strings = off")
        conn.execute(f"ALTER ROLE {ADVISOR_ROLE} IN DATABASE {name} SET client_encoding = 'SJIS'")
        for setting in ("join_collapse_limit = 1000", "from_collapse_limit = 1000", "geqo = off"):
            conn.execute(f"ALTER ROLE {ADVISOR_ROLE} IN DATABASE {name} SET {setting}")
    victim = psycopg.connect(pg.dsn(dbname=name), application_name="victim", autocommit=True)
    victim.execute("LISTEN leak")
    yield {"dsn": advisor_dsn(pg, name), "superuser": pg.dsn(dbname=name), "datname": name, "victim": victim}
    victim.close()


@pytest.fixture
def unchanged(hostile: dict) -> Iterator[None]:
    """After the case: no row written, no table made, no program run, the victim alive, no leak."""
    started = time.monotonic()
    yield
    assert time.monotonic() - started < LIMIT_S
    with psycopg.connect(hostile["superuser"], autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM public.canary").fetchone()[0] == 0
        assert conn.execute("SELECT to_regclass('public.newtable')").fetchone()[0] is None
        assert _sessions_end(conn), "an advisor session outlived its work"
    assert not Path(PROGRAM_FILE).exists()
    victim: psycopg.Connection = hostile["victim"]
    assert victim.execute("SELECT 1").fetchone() == (1,)  # not terminated
    assert list(victim.notifies(timeout=0.01)) == []  # nothing sent out


def _sessions_end(conn: psycopg.Connection) -> bool:
    """True once no advisor session is left (a backend exits just after its client closes)."""
    deadline = time.monotonic() + 3
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'observatory-advisor'"
    while conn.execute(query).fetchone()[0]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def reason_of(report: dict) -> str:
    """Why the one statement got no suggestion; '' when it got one (a planned, legitimate query)."""
    if report["suggestions"]:
        assert report["skipped"] == [], report
        return ""
    (skipped,) = report["skipped"]
    return skipped["reason"]


def expect(case: Case, reason: str) -> None:
    prefix = {"refused": "refused: ", "unsafe": "not planned: "}.get(case.outcome, "")
    assert reason.startswith(prefix), reason
    if case.outcome == "planned":
        assert not reason.startswith(("refused", "not planned")), reason
    assert re.search(case.reason, reason.removeprefix(prefix)), reason


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_advisor_api(case: Case, hostile: dict, unchanged: None) -> None:
    """What the daemon runs on each recorded statement."""
    report = advise_database(hostile["dsn"], queries=[case.sql], health=False)
    expect(case, reason_of(report))


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_the_cli(case: Case, hostile: dict, unchanged: None) -> None:
    query: str | bytes = case.sql
    if case.id == "not-utf8":
        query = b"select '\xff'"  # what a shell hands over; Python sees '\udcff'
    done = subprocess.run(
        [sys.executable, "-m", "dashboard", "advise", "--dsn", hostile["dsn"], "--json", "--query", query],
        capture_output=True, text=True, timeout=LIMIT_S, errors="replace",
    )  # fmt: skip
    assert "Traceback" not in done.stderr
    if case.outcome == "refused":
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.splitlines()
        prefix = "observatory advise: --query 1 not advised: "
        assert line.startswith(prefix) and re.search(case.reason, line.removeprefix(prefix)), line
        return
    assert done.returncode == 0, done.stderr
    expect(case, reason_of(json.loads(done.stdout)))


@pytest.fixture(scope="module")
def paste_config(hostile: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store that knows the target (the paste box offers the databases of collected targets)."""
    folder = tmp_path_factory.mktemp("paste")
    url = f"sqlite:///{folder / 'store.db'}"
    store = Store(url)
    collect_once(make_config(url, [{"name": "hostile", "dsn": hostile["dsn"]}]), store)
    store.close()
    config = folder / "observatory.yaml"
    config.write_text(
        f"store: {url}\ntargets:\n  postgres:\n    - name: hostile\n      dsn: {hostile['dsn']}\n"
    )
    return config


# A browser sends UTF-8 only (the text travels in protobuf): the paste box never sees bad bytes.
PASTE_CASES = [c for c in CASES if c.id != "not-utf8"]


@pytest.mark.parametrize("case", PASTE_CASES, ids=[c.id for c in PASTE_CASES])
def test_the_paste_box(
    case: Case, paste_config: Path, monkeypatch: pytest.MonkeyPatch, unchanged: None
) -> None:
    monkeypatch.setenv("OBSERVATORY_CONFIG", str(paste_config))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=LIMIT_S).run()
    at.switch_page("../pages/indexes.py").run()
    at.text_area[0].input(case.sql)
    (submit,) = [b for b in at.button if b.label == "Advise"]
    submit.click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = {"refused": at.error, "unsafe": at.info}.get(case.outcome)
    if shown is None:  # planned: no error; the planner's reason or a suggestion shows
        assert not at.error, [e.value for e in at.error]
        return
    texts = [_unescaped(e.value) for e in shown]
    prefix = "Not advised: " if case.outcome == "refused" else "No index suggested: not planned: "
    assert any(t.startswith(prefix) and re.search(case.reason, t.removeprefix(prefix)) for t in texts), texts


def _unescaped(markdown: str) -> str:
    return re.sub(r"\\(.)", r"\1", markdown)


# -- the session itself -----------------------------------------------------------------------------
def test_a_superuser_is_refused_with_the_least_privilege_role_to_use(hostile: dict) -> None:
    with pytest.raises(AdviseError) as refused:
        advise_database(hostile["superuser"], queries=["select 1"], health=False)
    message = str(refused.value)
    assert "role postgres is a superuser" in message
    assert "GRANT pg_monitor, pg_read_all_data TO observatory_advisor" in message
    done = subprocess.run(
        [sys.executable, "-m", "dashboard", "advise", "--dsn", hostile["superuser"], "--query", "select 1"],
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
def test_roles_that_could_escape_are_refused(power: str, pg: ThrowawayPostgres, hostile: dict) -> None:
    role = f"holder_{power.replace('-', '_')}"
    grant, message = POWERS[power]
    with psycopg.connect(hostile["superuser"], autocommit=True) as conn:
        conn.execute("DO $$BEGIN CREATE ROLE holder_middle NOINHERIT IN ROLE pg_execute_server_program;"
                     " EXCEPTION WHEN duplicate_object THEN NULL; END$$")  # fmt: skip
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN NOINHERIT {grant}")
    with pytest.raises(SessionRefused, match=f"role {role} is {message}"):
        GuardedSession.connect(pg.dsn(user=role, dbname=hostile["datname"]))


def test_a_privileged_session_when_allowed_still_runs_nothing(hostile: dict, unchanged: None) -> None:
    """advise_privileged: true lifts the role check only: every other layer still holds."""
    queries = [f"select 1; {COPY}", "select public.slow(1)", f"commit; {INSERT}", INSERT]
    report = advise_database(hostile["superuser"], queries=queries, health=False, allow_privileged=True)
    reasons = [s["reason"] for s in report["skipped"]]
    assert reasons[0].startswith("refused: 2 statements") and reasons[2].startswith("refused: 2 statements")
    assert "calls public.slow(integer)" in reasons[1]
    assert not reasons[3].startswith("refused")


def test_a_server_that_ignores_the_cancel_is_given_up(hostile: dict, monkeypatch) -> None:
    """Planning hundreds of chained CTEs never looks at a cancel request: past the bounds (lifted
    here), the session stops waiting and the rest of the report says the session was lost."""
    monkeypatch.setattr(statement_module, "MAX_FROM_ITEMS", 10**6)
    chain = cte_chain(500)
    limits = Limits(statement_ms=500, deadline_s=0.5, abandon_s=0.5)
    with GuardedSession.connect(hostile["dsn"], limits=limits) as session:
        advisor = Advisor(session)
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            session.explain(check(f"with {chain} select * from c499"))
        assert time.monotonic() - started < 5 and session.lost
        advice = advisor.advise([StatementInput("select * from erp.orders where id = $1")])
    assert advice.skipped[0]["reason"] == "not analysed: the session was lost"


def test_settings_are_in_force_before_any_statement(hostile: dict) -> None:
    with GuardedSession.connect(hostile["dsn"], limits=Limits(statement_ms=1234, lock_ms=567)) as session:
        shown = session.conn.execute(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
            " current_setting('default_transaction_read_only'), current_setting('plan_cache_mode')"
        ).fetchone()
    assert shown == ("1234ms", "567ms", "on", "force_generic_plan")
    with GuardedSession.connect(hostile["dsn"]) as session:  # the role's settings in this database lose
        shown = session.conn.execute(
            "SELECT current_setting('standard_conforming_strings'), current_setting('client_encoding')"
        ).fetchone()
    assert shown == ("on", "UTF8")
    with GuardedSession.connect(hostile["dsn"]) as session:
        limits = session.conn.execute(
            "SELECT current_setting('join_collapse_limit'), current_setting('from_collapse_limit'),"
            " current_setting('geqo')"
        ).fetchone()
    assert limits == ("8", "8", "on")  # though the role's settings in this database raise them


def test_the_dsn_cannot_lift_the_limits_but_keeps_its_search_path(hostile: dict) -> None:
    dsn = f"{hostile['dsn']}?options=-c%20statement_timeout%3D0%20-c%20search_path%3Derp"
    with GuardedSession.connect(dsn, limits=Limits(statement_ms=4321)) as session:
        shown = session.conn.execute(
            "SELECT current_setting('statement_timeout'), current_setting('search_path')"
        ).fetchone()
        # The session's own SQL resolves in pg_catalog; statements are planned along the DSN's path.
        assert shown == ("4321ms", "pg_catalog, pg_temp") and session.search_path == "erp"
        tree, _ = session.explain(check("(select * from orders where id = $1)"))  # erp.orders
        assert tree[0]["Plan"]["Node Type"] == "Index Scan"


def test_the_statement_is_sent_alone_even_if_the_parser_were_fooled(hostile: dict) -> None:
    """The extended protocol is the second lock: the server refuses a second statement itself."""
    fooled = check("select 1")
    smuggled = type(fooled)(**{**fooled.__dict__, "text": f"select 1; {INSERT}"})
    with GuardedSession.connect(hostile["dsn"]) as session, pytest.raises(psycopg.errors.SyntaxError):
        session.explain(smuggled)
    with psycopg.connect(hostile["superuser"]) as conn:
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
    hostile: dict, change: str, refusal: str
) -> None:
    """Relations are share-locked (NOWAIT) before the check, and a schema change under way on them is
    refused: no session can hold the plan back while it changes what the check saw."""
    with psycopg.connect(hostile["superuser"], application_name="setup") as changer:
        changer.execute(change)  # held, uncommitted, until the rollback
        with GuardedSession.connect(hostile["dsn"]) as session:
            started = time.monotonic()
            with pytest.raises(Refused, match=refusal):
                session.explain(check("select * from erp.orders where id = $1"))
            assert time.monotonic() - started < 2
        changer.rollback()


def test_the_lock_timeout_and_deadline_are_in_force(hostile: dict) -> None:
    """Planning never waits on a lock the check saw (those statements are refused); the timeouts
    remain for what is taken in the milliseconds after: both are set before any text is sent."""
    limits = Limits(statement_ms=2_000, lock_ms=300, deadline_s=1.0)
    with GuardedSession.connect(hostile["dsn"], limits=limits) as session:
        shown = session.conn.execute(
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
        )
        assert shown.fetchone() == ("300ms", "2s")


def test_a_table_reached_through_a_policy_is_locked_too(hostile: dict) -> None:
    with psycopg.connect(hostile["superuser"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.lock_target (id int)")
        conn.execute("CREATE TABLE IF NOT EXISTS public.lock_guard (id int)")
        conn.execute("ALTER TABLE public.lock_target ENABLE ROW LEVEL SECURITY")
        conn.execute("DROP POLICY IF EXISTS p ON public.lock_target")
        conn.execute("CREATE POLICY p ON public.lock_target USING (id IN (SELECT id FROM public.lock_guard))")
    with psycopg.connect(hostile["superuser"]) as locker:
        locker.execute("LOCK TABLE public.lock_guard IN ACCESS EXCLUSIVE MODE")
        statement = check("select * from public.lock_target where id = $1")
        with GuardedSession.connect(hostile["dsn"]) as s, pytest.raises(Refused, match="another session"):
            s.explain(statement)
        locker.rollback()


def test_a_statement_at_every_bound_is_analysed_quickly(hostile: dict) -> None:
    """The bounds keep sqlglot's worst case small: the largest statements allowed still finish fast."""
    widest = " or ".join(f"(id = {i} and customer = $1)" for i in range(MAX_BOOLEAN // 2))
    deepest = "(" * (MAX_DEPTH - 2) + "id = $1" + ")" * (MAX_DEPTH - 2)
    queries = [f"select * from erp.orders where {widest}", f"select * from erp.orders where {deepest}"]
    started = time.monotonic()
    report = advise_database(hostile["dsn"], queries=queries, health=False)
    assert time.monotonic() - started < 5
    assert not any(s["reason"].startswith("refused") for s in report["skipped"]), report["skipped"]


def test_a_recorded_statement_that_breaks_analysis_does_not_fail_the_report(hostile: dict) -> None:
    queries = ["select " + "(" * 150 + "1" + ")" * 150, "select * from erp.orders where customer = $1"]
    report = advise_database(hostile["dsn"], queries=queries, health=False)
    reasons = {s["statement"][:20]: s["reason"] for s in report["skipped"]}
    assert any(r.startswith("refused: nested 150 levels") for r in reasons.values())
    suggested = [s["columns"] for s in report["suggestions"]]
    assert suggested == [["customer"]], report


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


def test_the_advisor_role_of_the_readme_is_not_refused(hostile: dict) -> None:
    with GuardedSession.connect(hostile["dsn"]) as session:
        assert session.conn.info.user == ADVISOR_ROLE


def test_the_cli_prints_no_terminal_escapes(hostile: dict) -> None:
    query = "select 1 /* \x1b]0;owned\x07\x1b[2J */"  # skipped: the statement is printed
    done = subprocess.run(
        [sys.executable, "-m", "dashboard", "advise", "--dsn", hostile["dsn"], "--query", query],
        capture_output=True, text=True, timeout=LIMIT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\\x1b]0;owned\\x07" in done.stdout


def test_a_recorded_password_never_reaches_a_report(pg: ThrowawayPostgres, hostile: dict) -> None:
    with psycopg.connect(hostile["superuser"], autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS leaky")
        conn.execute("CREATE ROLE leaky PASSWORD 'hunter2-secret'")
    report = advise_database(hostile["dsn"], workload=Workload(min_calls=1, min_mean_ms=0.0), health=False)
    texts = json.dumps(report)
    assert "hunter2-secret" not in texts and "CREATE ROLE leaky PASSWORD '***'" in texts


def test_views_that_multiply_relations_stop_the_analysis(hostile: dict) -> None:
    """Views of views of views, eight references each: 512 relations behind one name."""
    with psycopg.connect(hostile["superuser"], autocommit=True) as conn:
        below = "erp.orders"
        for level in (1, 2, 3):
            joins = " ".join(f"cross join {below} x{i}" for i in range(1, 8))
            conn.execute(f"create or replace view public.fan{level} as select x0.* from {below} x0 {joins}")
            below = f"public.fan{level}"
    started = time.monotonic()
    report = advise_database(
        hostile["dsn"], queries=["select * from public.fan3 where id = $1"], health=False
    )
    assert time.monotonic() - started < LIMIT_S
    assert reason_of(report) == "not analysed: its views expand to over 200 relations: too many to analyse"


def test_own_sql_never_runs_a_users_shadow_of_a_builtin(hostile: dict, unchanged: None) -> None:
    """public.unnest(text[]), starts_with(name, text) and quote_ident(name) are closer matches than
    pg_catalog's for the project's catalog and health queries; each sleeps 40 s if it ever runs."""
    report = advise_database(hostile["dsn"], queries=["select * from erp.orders where customer = $1"])
    assert [s["columns"] for s in report["suggestions"]] == [["customer"]]
    assert "health" in report and "error" not in report


def test_sqlglots_whole_work_on_a_statement_is_bounded(hostile: dict) -> None:
    """Wide tables joined NATURAL (sqlglot's work grows with the square of the columns) and one
    long view named again and again: each stops quickly with the reason."""
    with psycopg.connect(hostile["superuser"], autocommit=True) as conn:
        columns = ", ".join(f"c{i} int" for i in range(1600))
        conn.execute(f"CREATE TABLE IF NOT EXISTS public.wide ({columns})")
        whens = " ".join(f"WHEN id = {i} THEN {i}" for i in range(1500))  # long, flat, one column
        conn.execute(
            f"CREATE OR REPLACE VIEW public.long_view AS SELECT CASE {whens} END AS total FROM canary"
        )
    naturals = " ".join(f"natural join public.wide a{i}" for i in range(1, 10))
    fan = ", ".join(f"public.long_view v{i}" for i in range(8))
    started = time.monotonic()
    report = advise_database(
        hostile["dsn"],
        queries=[
            f"select * from public.wide a0 {naturals} where a0.c0 = 1",
            f"select * from {fan} where v0.total = 1",
        ],
        health=False,
    )
    assert time.monotonic() - started < LIMIT_S
    reasons = [s["reason"] for s in report["skipped"]]
    assert reasons == [
        "not analysed: its relations bring over 2,000 columns: too many to analyse",
        "not analysed: its views' definitions add up to over 100,000 characters",
    ], reasons


def test_the_check_is_made_again_before_every_plan(hostile: dict) -> None:
    """A view that was clean when first checked is replaced before the statement is planned again."""
    statement = check("select * from public.toggle where id = 3")
    with GuardedSession.connect(hostile["dsn"]) as session:
        session.explain(statement)
        with psycopg.connect(hostile["superuser"], autocommit=True) as conn:
            conn.execute(
                "CREATE OR REPLACE VIEW public.toggle AS SELECT id FROM public.m_plain WHERE id = slow(1)"
            )
        try:
            started = time.monotonic()
            with pytest.raises(Unsafe, match=r"calls public\.slow\(integer\)"):
                session.explain(statement)
            assert time.monotonic() - started < 5
        finally:
            with psycopg.connect(hostile["superuser"], autocommit=True) as conn:
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
        advise_database(advisor_dsn(pg, name), workload=Workload(), health=False)
    from collectors.postgres.collector import explain_connection_error

    with psycopg.connect(advisor_dsn(pg, name)) as conn, pytest.raises(psycopg.Error) as failed:
        conn.execute("SELECT * FROM public.pg_stat_statements(false)")
    assert "ALTER EXTENSION pg_stat_statements SET SCHEMA" in explain_connection_error(failed.value)[1]


def test_a_schema_created_after_the_session_began_is_seen(hostile: dict) -> None:
    """ "$user" names no schema when the session starts; she creates it, with a view shadowing a table."""
    statement = check("select * from m_plain where id = 1")
    with GuardedSession.connect(hostile["dsn"]) as session:
        session.explain(statement)
        with psycopg.connect(hostile["superuser"], autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {ADVISOR_ROLE} AUTHORIZATION mallory")
            conn.execute("SET ROLE mallory")
            conn.execute(
                f"CREATE VIEW {ADVISOR_ROLE}.m_plain AS SELECT id FROM public.m_plain WHERE id = slow(1)"
            )
        try:
            with pytest.raises(Unsafe, match=rf"public\.slow\(integer\) \(via {ADVISOR_ROLE}\.m_plain\)"):
                session.explain(statement)
        finally:
            with psycopg.connect(hostile["superuser"], autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {ADVISOR_ROLE} CASCADE")


def test_a_superusers_helper_that_resolves_names_late_is_not_trusted(hostile: dict) -> None:
    """A superuser's plain SQL function is inlined, its body read along the caller's search_path,
    where her lower(varchar) is a closer match than pg_catalog's lower(text)."""
    with psycopg.connect(hostile["superuser"], autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION public.norm(varchar) RETURNS text LANGUAGE sql IMMUTABLE AS 'select lower($1)'"
        )
        conn.execute("CREATE FUNCTION public.norm_pinned(varchar) RETURNS text LANGUAGE sql IMMUTABLE"
                     " SET search_path = pg_catalog AS 'select lower($1)'")  # fmt: skip
    try:
        report = advise_database(
            hostile["dsn"],
            queries=[
                "select * from erp.orders where customer::text = norm('ABC'::varchar)",
                "select * from erp.orders where customer::text = norm_pinned('ABC'::varchar)",
            ],
            health=False,
        )
        reasons = {s["statement"]: s["reason"] for s in report["skipped"]}
        served = {text for s in report["suggestions"] for text in s["statements"]}
        (unpinned,) = [r for text, r in reasons.items() if "norm(" in text]
        assert "calls public.norm(character varying)" in unpinned, reasons
        pinned = [r for text, r in reasons.items() if "norm_pinned" in text]
        assert pinned == [] or not pinned[0].startswith(("not planned", "refused")), reasons
        assert pinned or any("norm_pinned" in text for text in served)  # a pinned path is trusted
    finally:
        with psycopg.connect(hostile["superuser"], autocommit=True) as conn:
            conn.execute("DROP FUNCTION public.norm(varchar), public.norm_pinned(varchar)")
