"""PASSWORD literals out of recorded SQL text (dashboard.core.statement_redaction), whatever the
quoting, comments, continuations and nesting; linear time, never an exception."""

from __future__ import annotations

import time

import pytest

from dashboard.core.redaction import redact
from dashboard.core.statement_redaction import redact_statement


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("CREATE ROLE a PASSWORD 'pw'", "CREATE ROLE a PASSWORD '***'"),
        ("create role a login password 'p''w' valid until 'infinity'",
         "create role a login password '***' valid until 'infinity'"),
        ("ALTER ROLE a WITH ENCRYPTED PASSWORD E'p\\'w\\\\' LOGIN",
         "ALTER ROLE a WITH ENCRYPTED PASSWORD '***' LOGIN"),
        ("ALTER USER a PASSWORD $$p'w$$ VALID UNTIL '2030-01-01'",
         "ALTER USER a PASSWORD '***' VALID UNTIL '2030-01-01'"),
        ("ALTER ROLE a PASSWORD $tag$p$$w$tag$", "ALTER ROLE a PASSWORD '***'"),
        ("ALTER ROLE a\n  ENCRYPTED\n\tPassword\n  'pw'", "ALTER ROLE a\n  ENCRYPTED\n\tPassword\n  '***'"),
        ("ALTER ROLE a PASSWORD U&'p\\0077'", "ALTER ROLE a PASSWORD '***'"),
        ("ALTER ROLE a PASSWORD 'unterminated", "ALTER ROLE a PASSWORD '***'"),
        ("ALTER ROLE a PASSWORD NULL", "ALTER ROLE a PASSWORD NULL"),
        ("DO $$BEGIN EXECUTE 'ALTER ROLE a PASSWORD ''p''''w'' LOGIN'; END$$",
         "DO $$BEGIN EXECUTE 'ALTER ROLE a PASSWORD ''***'' LOGIN'; END$$"),
        ("CREATE USER MAPPING FOR a SERVER s OPTIONS (user 'a', password 'pw')",
         "CREATE USER MAPPING FOR a SERVER s OPTIONS (user 'a', password '***')"),
        ("CREATE SUBSCRIPTION s CONNECTION 'host=h password=pw' PUBLICATION p",
         "CREATE SUBSCRIPTION s CONNECTION 'host=h password=***' PUBLICATION p"),
        ("SELECT dblink_connect('postgresql://a:pw@h/db')", "SELECT dblink_connect('postgresql://a:***@h/db')"),
        ("CREATE SUBSCRIPTION s CONNECTION E'host=h password=p\\'w' PUBLICATION p",
         "CREATE SUBSCRIPTION s CONNECTION E'host=h password=***' PUBLICATION p"),
        ("SELECT 1 /* PGPASSWORD=pw psql */", "SELECT 1 /* PGPASSWORD=*** psql */"),
        ("/* observatory */ SELECT 1 FROM t WHERE password = $1", None),
        ("SELECT id FROM users WHERE password = crypt($1, password)", None),
        ("SELECT 'password' AS a, 'x' AS b -- don't", None),
        ("SET password_encryption = 'scram-sha-256'", None),
    ],
)  # fmt: skip
def test_redact_statement(statement: str, expected: str | None) -> None:
    assert redact_statement(statement) == (statement if expected is None else expected)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("CREATE ROLE bob LOGIN PASSWORD /* x */ 'hunter2-comment'",
         "CREATE ROLE bob LOGIN PASSWORD /* x */ '***'"),
        ("ALTER ROLE bob PASSWORD -- note\n 'hunter2'", "ALTER ROLE bob PASSWORD -- note\n '***'"),
        ("ALTER ROLE bob PASSWORD -- note\r'hunter2' LOGIN", "ALTER ROLE bob PASSWORD -- note\r'***' LOGIN"),
        ("ALTER ROLE bob PASSWORD/*a /* nested */ b*/--c\n\t/**/ E'hun\\'ter2' LOGIN",
         "ALTER ROLE bob PASSWORD/*a /* nested */ b*/--c\n\t/**/ '***' LOGIN"),
        ("ALTER ROLE bob PASSWORD /* x */ $$hunter2$$", "ALTER ROLE bob PASSWORD /* x */ '***'"),
        ("ALTER ROLE bob PASSWORD /* PGPASSWORD=hunter1 */ 'hunter2'",
         "ALTER ROLE bob PASSWORD /* PGPASSWORD=*** */ '***'"),
        ("ALTER ROLE bob PASSWORD /* don't */ 'hunter2' VALID UNTIL 'infinity'",
         "ALTER ROLE bob PASSWORD /* don't */ '***' VALID UNTIL 'infinity'"),
        ("ALTER ROLE bob PASSWORD /* unterminated 'hunter2'", None),
        ("ALTER ROLE bob PASSWORD /* x */ NULL", None),
        ("DO $$BEGIN EXECUTE 'ALTER ROLE bob PASSWORD /* x */ -- y\n ''hunter2'''; END$$",
         "DO $$BEGIN EXECUTE 'ALTER ROLE bob PASSWORD /* x */ -- y\n ''***'''; END$$"),
    ],
)  # fmt: skip
def test_comments_between_password_and_its_literal(statement: str, expected: str | None) -> None:
    assert redact_statement(statement) == (statement if expected is None else expected)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("""CREATE USER MAPPING FOR bob SERVER s OPTIONS ("user" 'bob', "password" 'hunter2-mapping')""",
         """CREATE USER MAPPING FOR bob SERVER s OPTIONS ("user" 'bob', "password" '***')"""),
        ("ALTER USER MAPPING FOR bob SERVER s OPTIONS (SET password 'x2')",
         "ALTER USER MAPPING FOR bob SERVER s OPTIONS (SET password '***')"),
        ("""ALTER USER MAPPING FOR bob SERVER s OPTIONS (ADD "password" 'x2')""",
         """ALTER USER MAPPING FOR bob SERVER s OPTIONS (ADD "password" '***')"""),
        ("""ALTER USER MAPPING FOR bob SERVER s OPTIONS (SET "PassWord" 'x2', DROP "user")""",
         """ALTER USER MAPPING FOR bob SERVER s OPTIONS (SET "PassWord" '***', DROP "user")"""),
        ("""ALTER USER MAPPING FOR bob SERVER s OPTIONS (ADD "password" /* c */ E'x\\'2')""",
         """ALTER USER MAPPING FOR bob SERVER s OPTIONS (ADD "password" /* c */ '***')"""),
        ("ALTER SERVER s OPTIONS (password 'x2')", "ALTER SERVER s OPTIONS (password '***')"),
        ("""ALTER SERVER s OPTIONS (SET "password" 'x2')""",
         """ALTER SERVER s OPTIONS (SET "password" '***')"""),
        ("""CREATE USER MAPPING FOR bob SERVER s OPTIONS (U&"p\\0061ssword" 'x2')""",
         """CREATE USER MAPPING FOR bob SERVER s OPTIONS (U&"p\\0061ssword" '***')"""),
        ("""CREATE USER MAPPING FOR bob SERVER s OPTIONS (u&"\\+000070assword" 'x2')""",
         """CREATE USER MAPPING FOR bob SERVER s OPTIONS (u&"\\+000070assword" '***')"""),
        ("""CREATE USER MAPPING FOR bob SERVER s OPTIONS (U&"p!0061ssword" UESCAPE '!' 'x2')""",
         """CREATE USER MAPPING FOR bob SERVER s OPTIONS (U&"p!0061ssword" UESCAPE '!' '***')"""),
        ("""DO $$BEGIN EXECUTE 'CREATE USER MAPPING FOR bob SERVER s OPTIONS ("password" ''x2'')'; END$$""",
         """DO $$BEGIN EXECUTE 'CREATE USER MAPPING FOR bob SERVER s OPTIONS ("password" ''***'')'; END$$"""),
        ("""CREATE USER MAPPING FOR bob SERVER s OPTIONS ("user" 'bob', "password_required" 'f')""", None),
        ("""SELECT "password", 'x2' FROM t WHERE "Password" = $1""", None),
        ("""SELECT "pass word" 'x2', "passwords" 'x3', U&"p\\0061ss" 'x4'""", None),
    ],
)  # fmt: skip
def test_password_option_names(statement: str, expected: str | None) -> None:
    assert redact_statement(statement) == (statement if expected is None else expected)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("ALTER ROLE bob PASSWORD 'hun'\n'ter2'", "ALTER ROLE bob PASSWORD '***'"),
        ("ALTER ROLE bob PASSWORD 'hun' \r\n\t 'ter' \n 'two' LOGIN", "ALTER ROLE bob PASSWORD '***' LOGIN"),
        ("ALTER ROLE bob PASSWORD 'hun' -- more:\n -- and more\n'ter2'", "ALTER ROLE bob PASSWORD '***'"),
        ("ALTER ROLE bob PASSWORD 'hun'\n'''ter2'\n'' VALID UNTIL 'infinity'",
         "ALTER ROLE bob PASSWORD '***' VALID UNTIL 'infinity'"),
        ("ALTER ROLE bob PASSWORD E'hun\\''\n'ter\\'2' LOGIN", "ALTER ROLE bob PASSWORD '***' LOGIN"),
        ("ALTER ROLE bob PASSWORD U&'hun'\n'ter2'", "ALTER ROLE bob PASSWORD '***'"),
        ("ALTER ROLE bob PASSWORD /* c */ 'hun'\n'ter2'", "ALTER ROLE bob PASSWORD /* c */ '***'"),
        ("""CREATE USER MAPPING FOR bob SERVER s OPTIONS ("password" 'hun'\n 'ter2', "user" 'bob')""",
         """CREATE USER MAPPING FOR bob SERVER s OPTIONS ("password" '***', "user" 'bob')"""),
        ("DO $$BEGIN EXECUTE 'ALTER ROLE bob PASSWORD ''hun''\n''ter2'' LOGIN'; END$$",
         "DO $$BEGIN EXECUTE 'ALTER ROLE bob PASSWORD ''***'' LOGIN'; END$$"),
        ("ALTER ROLE bob PASSWORD 'hunter2'\nVALID UNTIL '2030-01-01'",
         "ALTER ROLE bob PASSWORD '***'\nVALID UNTIL '2030-01-01'"),
        ("ALTER ROLE bob PASSWORD 'hunter2';\nSELECT 'x'", "ALTER ROLE bob PASSWORD '***';\nSELECT 'x'"),
        ("SELECT E'it\\''\n'host=h password=p\\'w' AS a, 'x' AS b",  # the second part is an E string too
         "SELECT E'it\\''\n'host=h password=***' AS a, 'x' AS b"),
    ],
)  # fmt: skip
def test_continued_literals_are_masked_whole(statement: str, expected: str) -> None:
    assert redact_statement(statement) == expected


@pytest.mark.parametrize(
    "text",
    [
        "", "'", "''", "$", "$$", "$a$", "E'", "E'\\", "\"", "/*", "/* /* */", "--", "password",
        "PASSWORD '", "PASSWORD E'\\", "PASSWORD $a$", "PASSWORD U&", "x\x00y PASSWORD '\udcff'",
        "'" * 33 + "password" + "'" * 17, "$a$ $b$ $c$ password 'x' $c$ $b$ $a$" * 3,
        "PASSWORD /*", "PASSWORD --", "PASSWORD /* */", "PASSWORD 'x'\n", "PASSWORD 'x'\n--",
        "PASSWORD 'x'\n'", "PASSWORD E'x'\n'\\", "PASSWORD 'x'\n'x'\n'", '"password"', '"password',
        "\"password\" '", '"password" /*',
        'U&"', 'U&"p\\0061ssword"', 'U&"p\\0061ssword" UESCAPE', "U&\"p\\0061ssword\" UESCAPE '",
        "U&\"p\\0061ssword\" UESCAPE '!", "U&\"\\+FFFFFF\\D800\\\" 'y'", "U&\"p\\0061ssword\" 'x'",
    ],
)  # fmt: skip
def test_redact_statement_never_raises(text: str) -> None:
    out = redact_statement(text)
    assert isinstance(out, str) and "'x'" not in out


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,
        "a://b:" * 170_000,
        "abcdefghij" * 3 + "ab://b:" + "x" * 1_000_000,
        "password " * 110_000,
        "password '" * 100_000,
        "password ''" * 90_000,
        "password E'\\\\" * 80_000,
        "password $a$" * 80_000,
        "'password' " * 90_000,
        "DO $$ EXECUTE 'password ''x''' $$; " * 28_000,
        "password /*" * 90_000,
        "password=''" * 90_000,
        "'" + "password=''x " * 80_000,
        "E'" + "password=\\'" * 80_000,
        "password --" * 90_000,
        'password "' * 100_000,
        "password " + "'" * 1_000_000,
        "$a$" * 330_000,
        # comments between PASSWORD and its literal, option names, continued literals
        "password /* */ " * 70_000,
        "password -- x\n" * 75_000,
        "/* password " * 90_000,
        "password " + "/*" * 500_000,
        "password " + "/* */" * 200_000 + "'x'",
        '"password" ' * 90_000,
        '"password" /*' * 75_000,
        '"password" --' * 75_000,
        "\"password\" 'x'\n" * 70_000,
        'U&"p\\0061ssword" UESCAPE ' * 40_000,
        'U&"' + "p" * 1_000_000,
        'U&"' + "\\0061" * 200_000 + "\" 'x'",
        "password " + "'a'\n" * 250_000,
        "'a'\n" * 250_000 + "password",
        "E'a'\n" * 200_000 + "password",
        "password 'a' --\n" * 60_000,
        "password 'a'" + "\n" * 1_000_000,
        "password 'a' " + "--\n" * 330_000,
        "password 'a' " + "-" * 1_000_000,
        "password 'a'\n" + "--" * 500_000,
        "DO $$ EXECUTE 'password /* */ ''a''\n''b''' $$; " * 20_000,
    ],
    ids=lambda t: repr(t[:14]),
)
def test_redact_statement_is_fast_on_a_megabyte(text: str) -> None:
    started = time.perf_counter()
    redact_statement(text)
    redact(text)
    assert time.perf_counter() - started < 1.0
