"""Investigate's EXPLAIN through the guarded door, on a real PostgreSQL: what it refuses, what it runs
and rolls back, how it stops a statement that runs too long, generic and custom plans for $n, and the
`observatory explain` command. The plan's findings are tested in test_plan_findings.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dashboard.core.guarded import Refused, Run
from dashboard.plans import document
from dashboard.plans.run import AnalyzePolicy, Explained, ExplainRequest, explain, sample_values
from dashboard.servers.throwaway import ThrowawayPostgres
from tests.support.hostile import CASES, LIMIT_S, Case
from tests.support.postgres import ADVISOR_ROLE, advisor_dsn, new_database

EVERYTHING = AnalyzePolicy(analyze=True, writes=True)  # the most a target can allow
TIMEOUT_S = 3.0
NOWHERE = "postgresql://nobody@127.0.0.1:1/x"  # no server: whatever is refused first never connects


@pytest.fixture(scope="module")
def shop(pg: ThrowawayPostgres) -> dict[str, str]:
    """A database with a table worth planning, its owner's DSN and the least-privilege role's."""
    name = new_database(pg, "explain")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (id serial PRIMARY KEY, kind int NOT NULL, note text);"
            "INSERT INTO items (kind, note) SELECT g % 50, 'n' || g FROM generate_series(1, 50000) g;"
            "CREATE INDEX items_kind ON items (kind); CREATE EXTENSION hypopg;"
        )
        conn.execute("SELECT pg_stat_force_next_flush()")  # the inserts counted before ANALYZE
        conn.execute("ANALYZE items")
    return {"owner": pg.dsn(dbname=name), "reader": advisor_dsn(pg, name), "datname": name}


def _as_owner(shop: dict, request: ExplainRequest) -> Explained:
    """As the table's owner (a superuser, allowed explicitly), with everything allowed."""
    return explain(shop["owner"], request, policy=EVERYTHING, allow_privileged=True)


def _investigate_sessions_end(dsn: str) -> bool:
    """No Investigate session outlives its call (the backend exits just after the client closes)."""
    deadline = time.monotonic() + 3
    with psycopg.connect(dsn, autocommit=True) as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'observatory-investigate'"
        while conn.execute(query).fetchone()[0]:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
    return True


def _expect(case: Case, error: str | None) -> None:
    """Refused and unsafe cases are stopped for the reason the corpus names; the rest may plan, run
    (rolled back) or fail on the server's own refusal, never more."""
    if case.outcome in ("refused", "unsafe"):
        assert error is not None and error.startswith("Not explained: "), (case.id, error)
        assert re.search(case.reason, error.removeprefix("Not explained: ")), (case.id, error)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_hostile_corpus_under_analyze_runs_nothing_it_must_not(
    case: Case, trapped: dict, unchanged: None
) -> None:
    """Every trap of the corpus, with ANALYZE and writes allowed, as the least-privilege role and as
    a superuser (allowed explicitly): nothing written, no program run, no session killed, no leak,
    within the time limit."""
    for dsn, privileged in ((trapped["dsn"], False), (trapped["superuser"], True)):
        explained = explain(
            dsn,
            ExplainRequest(case.sql, analyze=True, hypothetical=False),
            policy=EVERYTHING,
            allow_privileged=privileged,
            timeout_s=TIMEOUT_S,
        )
        _expect(case, explained.error)
        assert (explained.plan is None) == (explained.error is not None)
    assert _investigate_sessions_end(trapped["superuser"])


@pytest.mark.parametrize(
    "sql, reason",
    [
        ("SELECT pg_terminate_backend(pg_backend_pid())", r"pg_terminate_backend"),
        ("SELECT set_config('statement_timeout', '0', false), pg_sleep(30)", r"set_config"),
        ("SELECT pg_advisory_lock(1)", r"pg_advisory_lock"),
        ("SELECT pg_notify('x', note) FROM items", r"pg_notify"),
        ("SELECT nextval('items_id_seq')", r"nextval"),
    ],
)
def test_analyze_refuses_what_a_rollback_does_not_undo(shop: dict, sql: str, reason: str) -> None:
    explained = _as_owner(shop, ExplainRequest(sql, analyze=True))
    assert explained.plan is None and re.search(reason, explained.error or ""), explained.error
    assert "estimated plan (without ANALYZE) is safe" in explained.error
    estimated = explain(shop["owner"], ExplainRequest(sql, hypothetical=False), allow_privileged=True)
    assert estimated.error is None and estimated.plan is not None and not estimated.plan.analyzed


def test_analyze_of_a_delete_leaves_the_rows_in_place(shop: dict) -> None:
    delete = "DELETE FROM items WHERE kind = 7"
    request = ExplainRequest(delete, analyze=True)
    refused = explain(shop["owner"], request, policy=AnalyzePolicy(analyze=True), allow_privileged=True)
    assert refused.plan is None and "explain_analyze_writes: true" in (refused.error or "")
    done = _as_owner(shop, ExplainRequest(delete, analyze=True))
    assert done.error is None and done.plan is not None and done.plan.analyzed, done.error
    deleting = next(
        n for n in done.plan.nodes if n.relation == "public.items" and n.node_type != "ModifyTable"
    )
    assert deleting.rows_total == 1000  # it did find and delete them ...
    with psycopg.connect(shop["owner"]) as conn:  # ... and they are all still there
        assert conn.execute("SELECT count(*) FROM items WHERE kind = 7").fetchone()[0] == 1000


def test_analyze_is_off_unless_the_target_allows_it(shop: dict) -> None:
    explained = explain(shop["reader"], ExplainRequest("SELECT count(*) FROM items", analyze=True))
    assert explained.plan is None and "explain_analyze: true" in (explained.error or "")


def test_a_statement_past_the_timeout_is_cancelled_and_reported(shop: dict) -> None:
    slow = "SELECT count(*) FROM items a, items b WHERE a.note < b.note"
    started = time.monotonic()
    explained = explain(shop["reader"], ExplainRequest(slow, analyze=True, hypothetical=False),
                        policy=EVERYTHING, timeout_s=1.0)  # fmt: skip
    took = time.monotonic() - started
    assert explained.plan is None and explained.error.startswith("Cancelled: it ran longer than 1 s"), (
        explained
    )
    assert 1.0 <= took < 4.0, took
    assert _investigate_sessions_end(shop["owner"])


def test_refused_before_anything_connects(shop: dict) -> None:
    for sql, reason in (
        ("SELECT 1; DELETE FROM items", "2 statements"),
        ("CREATE INDEX x ON items (note)", "CREATE INDEX is not planned"),
        ("VACUUM items", "VACUUM is not planned"),
        ("SET statement_timeout = 0", "SET is not planned"),
        ("EXPLAIN ANALYZE DELETE FROM items", "EXPLAIN is not planned"),
    ):
        # An unreachable server: the refusal comes first, so no connection is even tried.
        explained = explain(NOWHERE, ExplainRequest(sql, analyze=True), policy=EVERYTHING)
        assert explained.error == f"Not explained: {explained.error.removeprefix('Not explained: ')}"
        assert reason in explained.error, explained.error


def test_placeholders_get_a_generic_plan_or_the_values_given(shop: dict) -> None:
    sql = "SELECT * FROM items WHERE kind = $1 AND note LIKE $2"
    generic = explain(shop["reader"], ExplainRequest(sql))
    assert generic.error is None and generic.generic, generic.error
    if generic.server_version >= 160000:  # the server plans it itself
        assert "GENERIC_PLAN" in generic.command
    else:  # PREPARE, then EXECUTE with NULLs under force_generic_plan
        assert "GENERIC_PLAN" not in generic.command
    filters = json.dumps([n.detail for n in generic.plan.nodes])
    assert "$1" in filters and "$2" in filters
    custom = explain(shop["reader"], ExplainRequest(sql, values=("7", "n1%")))
    assert custom.error is None and not custom.generic
    filters = json.dumps([n.detail for n in custom.plan.nodes])
    assert "7" in filters and "n1%" in filters and "$1" not in filters
    refused = explain(shop["reader"], ExplainRequest(sql, analyze=True), policy=EVERYTHING)
    assert "give values to run it with ANALYZE" in (refused.error or "")
    wrong = explain(shop["reader"], ExplainRequest(sql, values=("7",)))
    assert wrong.error == "Not explained: 1 values given for 2 placeholders ($1..$2)"
    # Hostile values are data: quoted, never SQL.
    quoted = explain(shop["reader"], ExplainRequest(sql, values=("7", "x'); DROP TABLE items; --")))
    assert quoted.error is None and "DROP TABLE" in json.dumps([n.detail for n in quoted.plan.nodes])
    bad = explain(shop["reader"], ExplainRequest(sql, values=("seven", "x")))
    assert bad.plan is None and "invalid input syntax for type integer" in (bad.error or "")


def test_sample_values_come_from_pg_stats(shop: dict) -> None:
    sql = "SELECT * FROM items i WHERE i.kind = $1 ORDER BY id LIMIT $2"
    values = sample_values(shop["reader"], sql)
    assert isinstance(values, tuple) and len(values) == 2, values
    assert values[0] is not None and 0 <= int(values[0]) < 50 and values[1] == "20"
    ran = explain(shop["reader"], ExplainRequest(sql, analyze=True, values=values), policy=EVERYTHING)
    assert ran.error is None and ran.plan.analyzed and ran.plan.root.actual_rows == 20
    assert sample_values(shop["reader"], "SELECT 1; SELECT 2") == "2 statements: give one statement at a time"


def test_a_write_the_role_may_not_make_is_planned_as_the_select_that_finds_its_rows(shop: dict) -> None:
    explained = explain(shop["reader"], ExplainRequest("UPDATE items SET note = 'x' WHERE kind = 3"))
    assert explained.error is None, explained.error
    assert explained.notes and "The role may not UPDATE here" in explained.notes[0]
    assert {n.node_type for n in explained.plan.nodes} & {"Bitmap Heap Scan", "Index Scan", "Seq Scan"}
    assert "ModifyTable" not in {n.node_type for n in explained.plan.nodes}


def test_the_statement_runs_with_the_databases_jit(shop: dict, pg: ThrowawayPostgres) -> None:
    """The session turns JIT off for its own catalog queries; the statement gets the database's."""
    with psycopg.connect(pg.dsn(dbname=shop["datname"]), autocommit=True) as conn:
        if not conn.execute("SELECT pg_jit_available()").fetchone()[0]:
            pytest.fail("this server has no JIT (postgresql-15 on Debian ships with LLVM)")
        conn.execute(f"ALTER ROLE {ADVISOR_ROLE} IN DATABASE {shop['datname']} SET jit_above_cost = 0")
    try:
        request = ExplainRequest("SELECT sum(kind) FROM items", analyze=True, hypothetical=False)
        explained = explain(shop["reader"], request, policy=EVERYTHING)
    finally:
        with psycopg.connect(pg.dsn(dbname=shop["datname"]), autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {ADVISOR_ROLE} IN DATABASE {shop['datname']} RESET jit_above_cost")
    assert explained.error is None and explained.plan.jit is not None, explained
    assert explained.plan.jit["Timing"]["Total"] > 0


def test_run_command_names_the_options() -> None:
    assert Run().command(generic=False) == "EXPLAIN (VERBOSE, BUFFERS, SETTINGS)"
    assert Run(analyze=True).command(generic=False) == "EXPLAIN (ANALYZE, VERBOSE, BUFFERS, SETTINGS)"
    assert Run().command(generic=True) == "EXPLAIN (VERBOSE, BUFFERS, SETTINGS, GENERIC_PLAN)"
    assert issubclass(Refused, ValueError)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dashboard", "explain", *args], capture_output=True,
                          text=True, timeout=LIMIT_S)  # fmt: skip


def test_the_cli_prints_the_plan_and_its_findings(shop: dict) -> None:
    done = _cli("--dsn", shop["reader"], "--query", "SELECT * FROM items WHERE note = 'n77'")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(re.search(r"^> #0\s+Seq Scan on public\.items", line) for line in lines), done.stdout
    assert "[high]" in done.stdout or "[medium]" in done.stdout  # the sequential scan's finding
    assert "with the advisor's index: CREATE INDEX" in done.stdout and "note" in done.stdout
    by_kind = "SELECT * FROM items WHERE kind = $1"
    as_json = _cli("--dsn", shop["reader"], "--query", by_kind, "--sample-values", "--json")
    assert as_json.returncode == 0, as_json.stderr
    loaded = document.loads(as_json.stdout)  # the same file the app downloads and loads back
    assert loaded.statement == "SELECT * FROM items WHERE kind = $1" and loaded.plan.nodes
    assert isinstance(json.loads(as_json.stdout)["findings"], list)


def test_the_cli_refuses_with_a_reason_and_no_traceback(shop: dict) -> None:
    for args, reason in (
        (["--query", "DROP TABLE items"], "DROP is not planned"),
        (["--query", "DELETE FROM items", "--analyze"], "explain_analyze_writes"),
        (["--query", "SELECT * FROM items WHERE kind = $1", "--analyze"], "give values"),
    ):
        done = _cli("--dsn", shop["reader"], *args)
        assert done.returncode == 2 and reason in done.stderr and "Traceback" not in done.stderr, done.stderr
    unreachable = _cli("--dsn", "postgresql://watcher:s3cret-pw@127.0.0.1:1/x", "--query", "SELECT 1")
    assert unreachable.returncode == 2 and "Cannot connect" in unreachable.stderr
    assert "s3cret-pw" not in unreachable.stderr + unreachable.stdout
    with psycopg.connect(shop["owner"]) as conn:
        assert conn.execute("SELECT to_regclass('items')").fetchone()[0] == "items"


# -- what a statement reaches without naming it, under ANALYZE ------------------------------------
PROGRAM_RAN = Path(f"/tmp/observatory-explain-{uuid.uuid4().hex[:8]}")
TRAPS = f"""
CREATE EXTENSION file_fdw; CREATE EXTENSION "uuid-ossp";
CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent SELECT generate_series(1, 10);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent ON DELETE CASCADE);
INSERT INTO child SELECT g, g FROM generate_series(1, 10) g;
CREATE SEQUENCE trap_seq;
CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql
  AS $$BEGIN PERFORM nextval('trap_seq'); RETURN OLD; END$$;
CREATE TRIGGER bump BEFORE DELETE ON child FOR EACH ROW EXECUTE FUNCTION bump();
CREATE VIEW quiet_kill AS SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
  WHERE application_name = 'victim';
CREATE VIEW quiet_reset AS SELECT pg_stat_reset()::text AS reset, setval('trap_seq', 99) AS moved;
CREATE TABLE guarded (id int); INSERT INTO guarded VALUES (1);
ALTER TABLE guarded ENABLE ROW LEVEL SECURITY;
CREATE POLICY lock_on_read ON guarded USING (pg_try_advisory_lock(42) IS NOT NULL);
CREATE TABLE noted (id int); CREATE RULE tell AS ON DELETE TO noted DO ALSO NOTIFY noted;
CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE uptime (line text) SERVER files OPTIONS (program 'touch {PROGRAM_RAN}; echo up');
CREATE TABLE accounts (id uuid PRIMARY KEY DEFAULT uuid_generate_v4(), kind text);
INSERT INTO accounts (kind) SELECT 'user' FROM generate_series(1, 100);
"""


@pytest.fixture(scope="module")
def traps(pg: ThrowawayPostgres) -> Iterator[dict]:
    """Views, a policy, a rule, a cascade and a foreign table that run things a rollback does not
    undo, made by a superuser; a victim session of the least-privilege role listening."""
    name = new_database(pg, "traps")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(TRAPS)
    victim = psycopg.connect(advisor_dsn(pg, name), application_name="victim", autocommit=True)
    victim.execute("LISTEN noted")
    yield {"reader": advisor_dsn(pg, name), "owner": pg.dsn(dbname=name), "victim": victim}
    victim.close()


def _trap_state(traps: dict) -> tuple:
    with psycopg.connect(traps["owner"]) as conn:
        return conn.execute(
            "SELECT (SELECT last_value FROM trap_seq), (SELECT count(*) FROM child),"
            " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'),"
            " (SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'parent')"
        ).fetchone()


@pytest.mark.parametrize(
    "who, sql, reason",
    [
        (
            "reader",
            "SELECT * FROM quiet_kill",
            r"pg_terminate_backend\(integer,bigint\) \(public\.quiet_kill\)",
        ),
        ("owner", "SELECT * FROM quiet_reset", r"setval\(regclass,bigint\) \(public\.quiet_reset\)"),
        ("reader", "SELECT * FROM guarded", r"pg_try_advisory_lock\(bigint\) \(public\.guarded\)"),
        ("owner", "DELETE FROM parent WHERE id = 3", r"public\.bump\(\) \(trigger bump on public\.child\)"),
        ("owner", "DELETE FROM noted", r"rule tell on public\.noted \(rewrites the write\)"),
        ("reader", "SELECT * FROM uptime", r"foreign table public\.uptime \(read elsewhere\)"),
    ],
)
def test_analyze_refuses_what_runs_unnamed(traps: dict, who: str, sql: str, reason: str) -> None:
    """Built-ins inside a view or a policy (no dependency records them), a trigger reached through
    a cascade, a rule, a foreign table's program: refused before anything runs, nothing changed."""
    before = _trap_state(traps)
    explained = explain(traps[who], ExplainRequest(sql, analyze=True, hypothetical=False), policy=EVERYTHING,
                        allow_privileged=who == "owner")  # fmt: skip
    assert explained.plan is None and re.search(reason, explained.error or ""), explained.error
    assert "not run: it reaches" in explained.error
    assert _trap_state(traps) == before
    assert traps["victim"].execute("SELECT 1").fetchone() == (1,)
    assert list(traps["victim"].notifies(timeout=0.01)) == [] and not PROGRAM_RAN.exists()
    estimated = explain(traps[who], ExplainRequest(sql, hypothetical=False), allow_privileged=who == "owner")
    assert estimated.error is None and not PROGRAM_RAN.exists(), estimated.error  # its plan is safe
    if "noted" in sql:  # EXPLAIN gives the rule's NOTIFY beside the plan
        assert estimated.notes == ["A rule makes it 2 statements: shown is the first one's plan."]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM accounts WHERE kind = 'system'",  # a constant named like a built-in
        "SELECT id FROM accounts WHERE kind = 'user' LIMIT 5",  # a volatile DEFAULT, not run by a read
        "SELECT count(*) FROM accounts TABLESAMPLE SYSTEM (50)",
        "SELECT * FROM accounts ORDER BY random() LIMIT 1",
        "SELECT * FROM parent WHERE id = 1 FOR UPDATE",  # locks rows (no trigger fires): rolled back
        "WITH gone AS (DELETE FROM accounts WHERE kind = 'user' RETURNING *) SELECT count(*) FROM gone",
    ],
)
def test_analyze_runs_what_a_rollback_undoes(traps: dict, sql: str) -> None:
    before = _trap_state(traps)
    explained = _as_owner(traps, ExplainRequest(sql, analyze=True, hypothetical=False))
    assert explained.error is None and explained.plan.analyzed, explained.error
    assert _trap_state(traps)[:3] == before[:3]  # sequence, rows and locks as they were
    with psycopg.connect(traps["owner"]) as conn:
        assert conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 100


def test_analyze_of_a_row_lock_needs_the_writes_setting(traps: dict) -> None:
    request = ExplainRequest("SELECT * FROM parent WHERE id = 1 FOR UPDATE", analyze=True)
    refused = explain(traps["reader"], request, policy=AnalyzePolicy(analyze=True))
    assert "it writes or locks rows (a writing WITH, or FOR UPDATE/SHARE)" in (refused.error or "")


def test_hostile_values_run_as_data_and_change_nothing(shop: dict) -> None:
    sql = "DELETE FROM items WHERE note = $1"
    values = ("x'); DROP TABLE items; --",)
    done = _as_owner(shop, ExplainRequest(sql, analyze=True, values=values))
    assert done.error is None and done.plan.analyzed, done.error
    with psycopg.connect(shop["owner"]) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 50_000


def test_a_zero_timeout_still_limits_the_statement(shop: dict) -> None:
    """statement_timeout = 0 means no limit to PostgreSQL: the door never asks for less than 0.5 s."""
    started = time.monotonic()
    request = ExplainRequest("SELECT pg_sleep(3)", analyze=True, hypothetical=False)
    explained = explain(shop["reader"], request, policy=EVERYTHING, timeout_s=0)
    assert (
        explained.error.startswith("Cancelled: it ran longer than 0.5 s") and time.monotonic() - started < 2
    )
