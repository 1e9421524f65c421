"""Secrets never leave the observatory: not with stray whitespace, not escaped, not in recorded SQL.

Real servers throughout: a Prometheus that the CLI collects from with bearer tokens read from the
environment, PostgreSQL and Redis with passwords from password_env, and PostgreSQL's
pg_stat_statements recording CREATE/ALTER ROLE ... PASSWORD statements.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import redis
from sqlalchemy import select

from collectors.prometheus.collector import PrometheusCollector
from dashboard.core import config as config_mod
from dashboard.core.redaction import (
    SecretError,
    SecretFilter,
    redact,
    secret_from_env,
)
from dashboard.servers.throwaway import ThrowawayPostgres, ThrowawayPrometheus, ThrowawayRedis, free_port
from dashboard.store import Store
from dashboard.store.reads import target_statuses
from dashboard.store.schema import statements
from tests.support.cli import observatory
from tests.support.secrets import leaks, store_bytes
from tests.support.stores import collect_once, make_config

TRAILING = "obsTok-trailing-7f3a\n"  # export TOKEN="$(cat file)" keeps no newline; "abc\n" does
INNER = "obsTok-inner-a91c\nobsTok-second-half"


def test_redact_removes_every_form_of_a_secret() -> None:
    secret = "abc-Secret\n"
    text = (
        f"raw {secret} | stripped abc-Secret | repr {secret!r} | header 'Bearer {repr(secret)[1:-1]}' "
        f"| url {quote(secret, safe='')} | json {json.dumps({'token': secret})}"
    )
    cleaned = redact(text, secret)
    assert leaks(cleaned, secret) == [] and "abc-Secret" not in cleaned
    assert cleaned.startswith("raw *** | stripped *** | repr '***' | header 'Bearer ***' | url *** | json")
    assert redact("o k\n", None, "", " \n") == "o k\n"


def test_url_passwords_are_redacted_up_to_the_last_at() -> None:
    assert redact("redis://:p@ss@host:6379/0 down") == "redis://:***@host:6379/0 down"
    assert redact("http://h:9090/a@b is fine") == "http://h:9090/a@b is fine"


def test_secret_from_env_strips_and_rejects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBS_T_TRAILING", "  tok-123\r\n")
    assert secret_from_env("OBS_T_TRAILING", "bearer_token_env") == "tok-123"
    for value in ("tok\n123", "tok 123", "tok\t123", "tok\x07123", "tok\u200b123", "\ufefftok"):
        monkeypatch.setenv("OBS_T_BAD", value)
        with pytest.raises(SecretError) as err:
            secret_from_env("OBS_T_BAD", "password_env")
        assert str(err.value).startswith("environment variable OBS_T_BAD (password_env) has ")
        assert "tok" not in str(err.value) + err.value.hint
    monkeypatch.setenv("OBS_T_BAD", " \n")
    with pytest.raises(SecretError, match=r"OBS_T_BAD .* is empty"):
        secret_from_env("OBS_T_BAD")
    monkeypatch.setenv("OBS_T_BAD", "tök")
    with pytest.raises(SecretError, match="outside printable ASCII"):
        secret_from_env("OBS_T_BAD", "bearer_token_env", ascii_only=True)
    monkeypatch.delenv("OBS_T_UNSET", raising=False)
    with pytest.raises(SecretError, match=r"^environment variable OBS_T_UNSET \(password_env\) is not set$"):
        secret_from_env("OBS_T_UNSET")


def test_log_records_lose_the_secrets() -> None:
    secret = "log-Secret-42\n"
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(SecretFilter([secret]))
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(handler)
    try:
        logger.warning("header %r refused", f"Bearer {secret}")
        try:
            raise ValueError(f"bad header {f'Bearer {secret}'!r}")
        except ValueError:
            logger.exception("cycle crashed")
    finally:
        logger.removeHandler(handler)
    assert len(records) == 2 and "Traceback" in records[1]
    assert leaks("\n".join(records), secret) == []


# -- Prometheus: bearer tokens through the CLI --------------------------------------------------------
@pytest.fixture(scope="module")
def prometheus() -> Iterator[ThrowawayPrometheus]:
    with ThrowawayPrometheus([f"127.0.0.1:{free_port()}"]) as prom:
        yield prom


def test_bearer_tokens_with_whitespace_never_leak(prometheus: ThrowawayPrometheus, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    config = tmp_path / "observatory.yaml"
    targets = [
        {"name": name, "url": prometheus.url, "bearer_token_env": variable, "backfill": "1m",
         "timeout": "5s", "series": {"one": {"expr": "vector(1)"}}}
        for name, variable in (("trailing", "OBS_T_TOKEN_TRAILING"), ("inner", "OBS_T_TOKEN_INNER"))
    ]  # fmt: skip
    config.write_text(json.dumps({"store": f"sqlite:///{db}", "targets": {"prometheus": targets}}))
    env = {k: v for k, v in os.environ.items() if k != "OBSERVATORY_CONFIG"}
    env |= {"OBS_T_TOKEN_TRAILING": TRAILING, "OBS_T_TOKEN_INNER": INNER}

    collected = observatory("collect", "--once", "--config", str(config), env=env)
    assert collected.returncode == 1, collected.stderr  # the inner one is down
    assert "prometheus/trailing: ok" in collected.stdout, collected.stderr
    assert "prometheus/inner: down" in collected.stderr
    assert "environment variable OBS_T_TOKEN_INNER (bearer_token_env) has whitespace" in collected.stderr
    status = observatory("status", "--json", "--config", str(config), env=env)
    assert status.returncode == 1, status.stderr  # a target is down: a monitor sees it
    states = {t["name"]: (t["state"], t["last_error"]) for t in json.loads(status.stdout)["targets"]}
    assert states["trailing"] == ("ok", None)
    assert states["inner"][0] == "down" and "OBS_T_TOKEN_INNER" in states["inner"][1]

    shown = collected.stdout + collected.stderr + status.stdout + status.stderr
    assert leaks(shown, TRAILING, INNER) == []
    assert db.exists() and leaks(store_bytes(db), TRAILING, INNER) == []


def test_the_token_is_sent_stripped(prometheus: ThrowawayPrometheus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBS_T_TOKEN_TRAILING", TRAILING)
    target = config_mod.PrometheusTarget(
        name="p", url=prometheus.url, bearer_token_env="OBS_T_TOKEN_TRAILING"
    )
    collector = PrometheusCollector(target, state_source=None)  # type: ignore[arg-type]
    try:
        assert collector._connect().headers == {"Authorization": f"Bearer {TRAILING.strip()}"}
    finally:
        collector.close()


# -- PostgreSQL and Redis: password_env ---------------------------------------------------------------
def test_postgres_password_env_is_stripped_and_checked(
    pg: ThrowawayPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "Pg-pw-5b7c"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:  # secretive: scram-sha-256 in pg_hba.conf
        conn.execute("DROP ROLE IF EXISTS secretive")
        conn.execute(f"CREATE ROLE secretive LOGIN PASSWORD '{password}' IN ROLE pg_monitor")
    monkeypatch.setenv("OBS_T_PG_TRAILING", password + "\n")
    monkeypatch.setenv("OBS_T_PG_INNER", f"{password}\n{password}")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    dsn = pg.dsn(user="secretive")
    targets = [
        {"name": "trailing", "dsn": dsn, "password_env": "OBS_T_PG_TRAILING"},
        {"name": "inner", "dsn": dsn, "password_env": "OBS_T_PG_INNER"},
    ]
    cycles = {c.target: c for c in collect_once(make_config(store.url, targets), store)}
    assert cycles["trailing"].status.state in ("ok", "degraded"), cycles["trailing"].status
    assert cycles["trailing"].status.error is None or "password" not in cycles["trailing"].status.error
    inner = cycles["inner"].status
    assert inner.state == "down"
    assert inner.error == (
        "environment variable OBS_T_PG_INNER (password_env) has whitespace or a control character "
        "inside its value"
    )
    assert "OBS_T_PG_INNER" in inner.hints[0]
    store.close()
    assert leaks(target_statuses(store.engine).to_json(), password) == []
    assert leaks(store_bytes(tmp_path / "store.db"), password) == []


def test_redis_password_env_is_stripped_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    password = "Redis-pw-9d2e"
    with ThrowawayRedis() as server:
        redis.Redis.from_url(server.url).config_set("requirepass", password)
        monkeypatch.setenv("OBS_T_REDIS_TRAILING", f"{password}\r\n")
        monkeypatch.setenv("OBS_T_REDIS_INNER", "Redis-pw\n9d2e")
        store = Store(f"sqlite:///{tmp_path / 'store.db'}")
        targets = [
            {"name": name, "url": server.url, "password_env": variable, "timeout": "2s"}
            for name, variable in (("trailing", "OBS_T_REDIS_TRAILING"), ("inner", "OBS_T_REDIS_INNER"))
        ]
        config = config_mod.from_dict({"store": store.url, "targets": {"redis": targets}})
        cycles = {c.target: c for c in collect_once(config, store)}
    assert cycles["trailing"].status.state == "ok", cycles["trailing"].status
    inner = cycles["inner"].status
    assert inner.state == "down" and inner.error.startswith("environment variable OBS_T_REDIS_INNER ")
    store.close()
    assert leaks(store_bytes(tmp_path / "store.db"), password, "Redis-pw\n9d2e") == []


def test_passwords_in_recorded_statements_never_reach_the_store(
    pg: ThrowawayPostgres, database: str, tmp_path: Path
) -> None:
    role = f"pw_role_{uuid.uuid4().hex[:8]}"
    server = f"srv_{role}"
    secrets = ["Pw1-standard", "Pw2-it", "s-quoted", "Pw3-esc", "aped-secret", "Pw4-dollar", "Pw5-tagged",
               "Pw6-lower", "Pw7-nested", "Pw8-user", "Pw9-comment", "Pw10-line", "Pw11-first", "Pw11-second",
               "Pw12-mapping", "Pw13-set", "Pw14-add"]  # fmt: skip
    ran = [
        f"CREATE ROLE {role} PASSWORD 'Pw1-standard'",
        f"ALTER ROLE {role} WITH ENCRYPTED PASSWORD 'Pw2-it''s-quoted'",
        f"ALTER USER {role} PASSWORD E'Pw3-esc\\'aped-secret' VALID UNTIL '2099-01-01'",
        f"ALTER ROLE {role} PASSWORD $$Pw4-dollar$$",
        f"ALTER ROLE {role}\n  ENCRYPTED\n\tPASSWORD $tag$Pw5-tagged$tag$",
        f"alter role {role} password 'Pw6-lower'",
        f"DO $$BEGIN EXECUTE 'ALTER ROLE {role} PASSWORD ''Pw7-nested'''; END$$",
        f"ALTER USER {role} WITH LOGIN ENCRYPTED PASSWORD 'Pw8-user' VALID UNTIL 'infinity'",
        f"ALTER ROLE {role} LOGIN PASSWORD /* x */ 'Pw9-comment'",
        f"ALTER ROLE {role} PASSWORD -- note\n 'Pw10-line'",
        f"ALTER ROLE {role} PASSWORD 'Pw11-first'\n  'Pw11-second' VALID UNTIL 'infinity'",
        f"""CREATE USER MAPPING FOR {role} SERVER {server} OPTIONS ("user" '{role}',"""
        """ "password" 'Pw12-mapping')""",
        f"""ALTER USER MAPPING FOR {role} SERVER {server} OPTIONS (SET "password" 'Pw13-set')""",
        f"""ALTER USER MAPPING FOR {role} SERVER {server} OPTIONS (DROP "password")""",
        f"ALTER USER MAPPING FOR {role} SERVER {server} OPTIONS (ADD password /* again */ 'Pw14-add')",
    ]
    dsn = pg.dsn(dbname=database)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgres_fdw")
        conn.execute(f"CREATE SERVER {server} FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'x')")
        for statement in ran:
            conn.execute(statement)
        recorded = [r[0] for r in conn.execute("SELECT query FROM pg_stat_statements").fetchall()]
    for secret in ("Pw1-standard", "Pw9-comment", "Pw10-line", "Pw11-second", "Pw12-mapping", "Pw14-add"):
        assert sum(secret in q for q in recorded) == 1, secret  # pg_stat_statements does keep them

    db = tmp_path / "store.db"
    store = Store(f"sqlite:///{db}")
    cycle = collect_once(make_config(store.url, [{"name": "t1", "dsn": dsn}]), store)[0]
    assert cycle.status.state == "ok", cycle.status
    with store.engine.connect() as conn:
        texts = [q for q in conn.execute(select(statements.c.query)).scalars() if q and role in q]
    store.close()

    assert len(texts) >= len(ran) + 1  # the DO block's EXECUTE is recorded on its own too
    assert all(secret not in text for secret in secrets for text in texts), texts
    for expected in (
        f"CREATE ROLE {role} PASSWORD '***'",
        f"ALTER ROLE {role} WITH ENCRYPTED PASSWORD '***'",
        f"ALTER USER {role} PASSWORD '***' VALID UNTIL '2099-01-01'",
        f"ALTER ROLE {role} PASSWORD '***'",
        f"ALTER ROLE {role}\n  ENCRYPTED\n\tPASSWORD '***'",
        f"alter role {role} password '***'",
        f"DO $$BEGIN EXECUTE 'ALTER ROLE {role} PASSWORD ''***'''; END$$",
        f"ALTER USER {role} WITH LOGIN ENCRYPTED PASSWORD '***' VALID UNTIL 'infinity'",
        f"ALTER ROLE {role} LOGIN PASSWORD /* x */ '***'",
        f"ALTER ROLE {role} PASSWORD -- note\n '***'",
        f"ALTER ROLE {role} PASSWORD '***' VALID UNTIL 'infinity'",
        f"""CREATE USER MAPPING FOR {role} SERVER {server} OPTIONS ("user" '{role}', "password" '***')""",
        f"""ALTER USER MAPPING FOR {role} SERVER {server} OPTIONS (SET "password" '***')""",
        f"ALTER USER MAPPING FOR {role} SERVER {server} OPTIONS (ADD password /* again */ '***')",
    ):
        assert expected in texts, (expected, texts)
    raw = store_bytes(db)
    assert role.encode() in raw and [s for s in secrets if s.encode() in raw] == []
