"""`observatory advise --query-file PATH --fail-on-suggestion`: the advisor as a CI gate, run as a user
would (a subprocess) against a real PostgreSQL with HypoPG and the shop schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from dashboard.cli.query_file import QueryFileError, read_statements
from dashboard.servers.throwaway import ThrowawayPostgres
from tests.support.cli import env_without_config
from tests.support.postgres import shop_dsn

MIGRATION = """\
-- 0042: notes on orders, and the screen that looks orders up by their reference
BEGIN;
SET LOCAL lock_timeout = '5s';
CREATE TABLE order_notes (id bigserial PRIMARY KEY, order_id bigint NOT NULL, body text);
CREATE INDEX ON order_notes (order_id);
SELECT * FROM orders WHERE ref = 'R-4242';
COMMIT;
"""
# Statements the shop's indexes already serve: the primary key, and events (kind, created_at).
SERVED = """\
SELECT * FROM orders WHERE id = 42;
SELECT * FROM events WHERE kind = 'k7' AND created_at > '2025-01-02';
"""
# Semicolons in a string, an E'' string, a quoted identifier, comments and a dollar-quoted body.
TRICKY = """\
/* first; a block comment */ SELECT * FROM orders WHERE status = 'new; paid' AND ref = E'R-1\\';2';
CREATE FUNCTION order_ref(o orders) RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
  RETURN o.ref || ';';  -- a semicolon; two
END
$body$;
SELECT count(*) AS "a;b" FROM customers WHERE email = 'x;y@example.org' -- no semicolon at the end
"""
TRICKY_STATEMENTS = [
    "SELECT * FROM orders WHERE status = 'new; paid' AND ref = E'R-1\\';2'",
    "CREATE FUNCTION order_ref(o orders) RETURNS text LANGUAGE plpgsql AS $body$\nBEGIN\n"
    "  RETURN o.ref || ';';  -- a semicolon; two\nEND\n$body$",
    "SELECT count(*) AS \"a;b\" FROM customers WHERE email = 'x;y@example.org'",
]
REF_INDEX = "CREATE INDEX CONCURRENTLY ON public.orders (ref);"


@pytest.fixture(scope="module")
def shop(pg: ThrowawayPostgres) -> str:
    """The DSN (the least-privilege advisor role) of a database with the shop schema and HypoPG."""
    return shop_dsn(pg, "shop_ci")


def advise(dsn: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dashboard", "advise", "--dsn", dsn, *args],
        input=stdin,
        env=env_without_config(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def sql_file(tmp_path: Path, text: str, name: str = "migration.sql") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def advised(report: dict) -> dict[str, str]:
    """Every statement of the report, with its suggestion's CREATE INDEX or its reason for none."""
    found = {s: f"suggested: {x['create_sql']}" for x in report["suggestions"] for s in x["statements"]}
    return found | {x["statement"]: f"skipped: {x['reason']}" for x in report["skipped"]}


# -- splitting, without a server -----------------------------------------------------------------------
def test_a_file_is_split_by_postgresql_s_parser(tmp_path: Path) -> None:
    assert read_statements(sql_file(tmp_path, TRICKY)) == TRICKY_STATEMENTS
    assert read_statements(sql_file(tmp_path, " ; SELECT 1;; -- only a comment after\n")) == ["SELECT 1"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("SELECT 1;\n\nSELEC * FROM orders;\n", "line 3, column 1"),
        ("SELECT 'é', 1;\nSELECT 'é' FROM orders WHERE;", "line 2, column 29"),  # characters, not bytes
        ("SELECT 1;\nSELECT $$ never closed;\n", "line 2, column 8"),
    ],
)
def test_a_parse_error_names_the_file_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    path = sql_file(tmp_path, text)
    with pytest.raises(QueryFileError) as raised:
        read_statements(path)
    assert str(raised.value).startswith(f"--query-file {path}: {where}: ")


# -- the command -------------------------------------------------------------------------------------
def test_a_migration_needing_an_index_fails_only_with_the_flag(shop: str, tmp_path: Path) -> None:
    path = sql_file(tmp_path, MIGRATION)
    failed = advise(shop, "--query-file", path, "--fail-on-suggestion", "--json")
    assert failed.returncode == 1, failed.stderr
    report = json.loads(failed.stdout)
    reasons = advised(report)
    assert reasons.pop("SELECT * FROM orders WHERE ref = 'R-4242'") == f"suggested: {REF_INDEX}"
    assert list(reasons) == [  # every other statement, in the file's order, skipped: not a failure
        "BEGIN",
        "SET LOCAL lock_timeout = '5s'",
        "CREATE TABLE order_notes (id bigserial PRIMARY KEY, order_id bigint NOT NULL, body text)",
        "CREATE INDEX ON order_notes (order_id)",
        "COMMIT",
    ]
    for reason in reasons.values():  # the guard's reason: "refused: SET is not planned here: only ..."
        assert reason.startswith("skipped: refused: ") and " is not planned here: only SELECT" in reason
    passed = advise(shop, "--query-file", path)  # the same advice, printed for people: exit 0
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.startswith("database shop_ci_") and "1 suggested indexes" in passed.stdout
    assert REF_INDEX in passed.stdout and "skipped: CREATE TABLE order_notes" in passed.stdout
    with psycopg.connect(shop) as conn:  # nothing in the file was run
        assert conn.execute("SELECT to_regclass('order_notes')").fetchone() == (None,)


def test_a_file_whose_statements_are_all_served_passes(shop: str, tmp_path: Path) -> None:
    result = advise(shop, "--query-file", sql_file(tmp_path, SERVED), "--fail-on-suggestion", "--json")
    assert result.returncode == 0, result.stderr
    reasons = advised(json.loads(result.stdout))
    assert set(reasons) == {"SELECT * FROM orders WHERE id = 42", SERVED.splitlines()[1].rstrip(";")}
    assert all(r.startswith("skipped: ") for r in reasons.values()), reasons
    assert "orders_pkey" in reasons["SELECT * FROM orders WHERE id = 42"]


def test_strings_comments_and_dollar_quotes_do_not_split_a_statement(shop: str, tmp_path: Path) -> None:
    result = advise(shop, "--query-file", sql_file(tmp_path, TRICKY), "--json")
    assert result.returncode == 0, result.stderr  # no --fail-on-suggestion: advice is not a failure
    reasons = advised(json.loads(result.stdout))
    assert sorted(reasons) == sorted(TRICKY_STATEMENTS)
    # Planned whole, with its literals (a piece of it would not plan): an index on orders was proven.
    assert reasons[TRICKY_STATEMENTS[0]].startswith("suggested: CREATE INDEX CONCURRENTLY ON public.orders ")
    assert reasons[TRICKY_STATEMENTS[1]].startswith("skipped: refused: CREATE FUNCTION is not planned")
    assert reasons[TRICKY_STATEMENTS[2]].startswith(
        "suggested: CREATE INDEX CONCURRENTLY ON public.customers"
    )


def test_an_unparseable_file_is_exit_2_with_its_path_and_position(shop: str, tmp_path: Path) -> None:
    good = sql_file(tmp_path, SERVED, "good.sql")
    bad = sql_file(tmp_path, "SELECT 1;\nCREATE TABLE t (a int;\n", "bad.sql")
    result = advise(shop, "--query-file", good, "--query-file", bad, "--fail-on-suggestion")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f'observatory advise: --query-file {bad}: line 2, column 22: syntax error at or near ";"\n'
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read it: No such file or directory\n"),
        (b"-- nothing\n;", "no SQL statement in it\n"),
        (b"SELECT '\xff';", "not UTF-8 text: invalid start byte at byte 8\n"),
    ],
)
def test_an_unreadable_or_empty_file_is_exit_2(
    shop: str, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "file.sql"
    if content is not None:
        path.write_bytes(content)
    result = advise(shop, "--query-file", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"observatory advise: --query-file {path}: {message}"


def test_standard_input(shop: str) -> None:
    result = advise(shop, "--query-file", "-", "--fail-on-suggestion", stdin=MIGRATION)
    assert result.returncode == 1, result.stderr
    assert REF_INDEX in result.stdout and "skipped: COMMIT" in result.stdout
    bad = advise(shop, "--query-file", "-", stdin="SELECT 'unterminated;\n")
    assert bad.returncode == 2
    assert bad.stderr.startswith("observatory advise: --query-file standard input: line 1, column 8: ")


def test_query_and_query_file_together_and_the_flag_on_a_query(shop: str, tmp_path: Path) -> None:
    result = advise(
        shop,
        "--query",
        "SELECT * FROM orders WHERE customer_id = 7",
        "--query-file",
        sql_file(tmp_path, SERVED),
        "--fail-on-suggestion",
        "--json",
    )
    assert result.returncode == 1, result.stderr
    reasons = advised(json.loads(result.stdout))
    assert len(reasons) == 3
    assert reasons["SELECT * FROM orders WHERE customer_id = 7"] == (
        "suggested: CREATE INDEX CONCURRENTLY ON public.orders (customer_id);"
    )


def test_a_gate_that_could_not_check_a_statement_fails_with_exit_2(shop: str, tmp_path: Path) -> None:
    """A migration whose table is not in the database yet, or a role that may not read a table: the
    gate says what it could not check, never a silent pass."""
    unchecked = "SELECT * FROM order_notes WHERE order_id = 7;\nSELECT * FROM orders WHERE id = 42;\n"
    result = advise(shop, "--query-file", sql_file(tmp_path, unchecked), "--fail-on-suggestion")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith(
        "observatory advise: 1 statement could not be checked (first: not analysed:"
    )
    assert "order_notes does not exist" in result.stderr
    assert advise(shop, "--query-file", sql_file(tmp_path, unchecked)).returncode == 0  # advice only
