"""The hostile corpus for the guarded SQL door: a database whose unprivileged role, mallory, has set
traps (functions that sleep, kill a session or read a file, reached through views, operators,
casts, policies ...), the statements that try to reach them or to write, and the checks every case
ends with. The fixtures `trapped` and `unchanged` (tests/conftest.py) are built on these.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

from dashboard.core.advice import AdviceReport
from dashboard.core.guarded.statement import MAX_BOOLEAN, MAX_DEPTH
from dashboard.servers.throwaway import ThrowawayPostgres
from tests.support.postgres import ADVISOR_ROLE, advisor_dsn, new_database

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
# A browser sends UTF-8 only (the text travels in protobuf): the paste box never sees bad bytes.
PASTE_CASES = [c for c in CASES if c.id != "not-utf8"]


def hostile_database(pg: ThrowawayPostgres) -> dict:
    """A database with an unprivileged role's traps, a canary and a victim session listening:
    {dsn (the advisor role's), superuser (a superuser's DSN), datname, victim (its connection)}.
    Once per session: the role mallory is the cluster's."""
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
    return {"dsn": advisor_dsn(pg, name), "superuser": pg.dsn(dbname=name), "datname": name, "victim": victim}


def assert_unchanged(trapped: dict, started: float) -> None:
    """After a case begun at `started` (time.monotonic()): within the time limit, no row written,
    no table made, no program run, the victim alive, no leak."""
    assert time.monotonic() - started < LIMIT_S
    with psycopg.connect(trapped["superuser"], autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM public.canary").fetchone()[0] == 0
        assert conn.execute("SELECT to_regclass('public.newtable')").fetchone()[0] is None
        assert sessions_end(conn), "an advisor session outlived its work"
    assert not Path(PROGRAM_FILE).exists()
    victim: psycopg.Connection = trapped["victim"]
    assert victim.execute("SELECT 1").fetchone() == (1,)  # not terminated
    assert list(victim.notifies(timeout=0.01)) == []  # nothing sent out


def sessions_end(conn: psycopg.Connection) -> bool:
    """True once no advisor session is left (a backend exits just after its client closes)."""
    deadline = time.monotonic() + 3
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'observatory-advisor'"
    while conn.execute(query).fetchone()[0]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def reason_of(report: AdviceReport) -> str:
    """Why the one statement got no suggestion; '' when it got one (a planned, legitimate query)."""
    if report.suggestions:
        assert report.skipped == [], report
        return ""
    (skipped,) = report.skipped
    return skipped.reason


def expect(case: Case, reason: str) -> None:
    prefix = {"refused": "refused: ", "unsafe": "not planned: "}.get(case.outcome, "")
    assert reason.startswith(prefix), reason
    if case.outcome == "planned":
        assert not reason.startswith(("refused", "not planned")), reason
    assert re.search(case.reason, reason.removeprefix(prefix)), reason


def unescaped(markdown: str) -> str:
    return re.sub(r"\\(.)", r"\1", markdown)
