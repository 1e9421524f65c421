"""Passwords written in DSNs and URLs reach none of the observatory's outputs, right or wrong.

One configuration holds a password in every place a user may write one: a PostgreSQL DSN (the right
password, and a wrong one that makes the server say why it refused), a Redis URL (right, wrong), a
Prometheus URL's user part (a server that answers, and one that is not there). Real servers; every
command a user runs over that configuration, the daemon's log at debug level, the weekly report in
HTML and Markdown, every page of the app and the store's bytes are searched for each password in
every escaped form (tests/support/secrets.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from streamlit.testing.v1 import AppTest

from dashboard.core import sources
from dashboard.servers.throwaway import ThrowawayPostgres, ThrowawayPrometheus, ThrowawayRedis, free_port
from tests.support.apptest import new_app, no_exception
from tests.support.cli import env_without_config, observatory
from tests.support.secrets import leaks, store_bytes

PG_RIGHT, PG_WRONG = "Sweep-pg-right-3e1f", "Sweep-pg-wrong-77a0"
REDIS_RIGHT, REDIS_WRONG = "Sweep-redis-right-c4d2", "Sweep-redis-wrong-0b9e"
PROM_ANSWERS, PROM_AWAY = "Sweep-prom-answers-5a6b", "Sweep-prom-away-d81c"
SECRETS = (PG_RIGHT, PG_WRONG, REDIS_RIGHT, REDIS_WRONG, PROM_ANSWERS, PROM_AWAY)


@pytest.fixture(scope="module")
def world(pg: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A configuration with a password in every DSN and URL, collected twice by `collect --once`."""
    folder = tmp_path_factory.mktemp("sweep")
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:  # secretive: scram-sha-256 in pg_hba.conf
        conn.execute("DROP ROLE IF EXISTS secretive")
        conn.execute(f"CREATE ROLE secretive LOGIN PASSWORD '{PG_RIGHT}' IN ROLE pg_monitor")
    with (
        ThrowawayRedis() as cache,
        ThrowawayPrometheus([f"127.0.0.1:{free_port()}"]) as prom,
    ):
        redis.Redis.from_url(cache.url).config_set("requirepass", REDIS_RIGHT)
        host, port = cache.url.removeprefix("redis://").split("/")[0].split(":")
        answers = prom.url.replace("http://", f"http://watcher:{PROM_ANSWERS}@")
        targets = {
            "postgres": [
                {"name": "pg_right", "dsn": pg.dsn(user="secretive", password=PG_RIGHT)},
                {"name": "pg_wrong", "dsn": pg.dsn(user="secretive", password=PG_WRONG)},
            ],
            "redis": [
                {"name": "redis_right", "url": f"redis://:{REDIS_RIGHT}@{host}:{port}/0", "timeout": "2s"},
                {"name": "redis_wrong", "url": f"redis://:{REDIS_WRONG}@{host}:{port}/0", "timeout": "2s"},
            ],
            "prometheus": [
                {"name": "prom_answers", "url": answers, "backfill": "1m",
                 "timeout": "5s", "series": {"one": {"expr": "vector(1)"}}},
                {"name": "prom_away", "url": f"http://watcher:{PROM_AWAY}@127.0.0.1:{free_port()}",
                 "backfill": "1m", "timeout": "2s", "series": {"one": {"expr": "vector(1)"}}},
            ],
        }  # fmt: skip
        db = folder / "store.db"
        config = folder / "observatory.yaml"
        config.write_text(json.dumps({"store": f"sqlite:///{db}", "targets": targets}))
        runs = [observatory("collect", "--once", config=config) for _ in range(2)]
        yield {"folder": folder, "config": config, "db": db, "runs": runs}


def everything_shown(at: AppTest) -> str:
    """Every element of the run as its protobuf message: text, tables (their Arrow bytes), charts,
    links and widgets' labels and options."""
    found, nodes = [], [at._tree]
    while nodes:
        node = nodes.pop()
        nodes.extend(getattr(node, "children", {}).values())
        if getattr(node, "proto", None) is not None:
            found.append(str(node.proto))
    return "\n".join(found)


def test_the_configuration_really_reaches_the_servers(world: dict) -> None:
    """The outputs searched below are those of targets that worked, and of targets refused for the
    reason the wrong password gives: otherwise the search proves little."""
    run = world["runs"][-1]
    assert "postgres/pg_right: ok" in run.stdout or "postgres/pg_right: degraded" in run.stdout, run.stderr
    assert "redis/redis_right: ok" in run.stdout, run.stderr
    assert "prometheus/prom_answers: ok" in run.stdout, run.stderr
    assert "postgres/pg_wrong: down" in run.stderr and "password authentication failed" in run.stderr
    assert "redis/redis_wrong: down" in run.stderr
    assert "prometheus/prom_away: down" in run.stderr


def test_no_command_prints_a_password(world: dict) -> None:
    config = world["config"]
    outputs = [*world["runs"]]
    outputs.append(observatory("status", config=config))
    outputs.append(observatory("status", "--json", config=config))
    outputs.append(observatory("alerts", config=config))
    outputs.append(observatory("health", "--target", "pg_right", config=config))
    outputs.append(observatory("health", "--target", "pg_wrong", config=config))
    for out in ("review.html", "review.md"):
        made = observatory("report", "--out", str(world["folder"] / out), config=config)
        assert made.returncode == 0, made.stderr
        outputs.append(made)
    assert json.loads(outputs[3].stdout)["targets"], outputs[3].stderr  # status --json has the targets
    for done in outputs:
        assert leaks(done.stdout + done.stderr, *SECRETS) == [], done.args
    for out in ("review.html", "review.md"):
        assert leaks((world["folder"] / out).read_text(), *SECRETS) == [], out


def test_the_daemon_log_at_debug_level_holds_no_password(world: dict) -> None:
    env = env_without_config() | {"OBSERVATORY_CONFIG": str(world["config"])}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "dashboard", "-v", "collect"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(12)  # every target's first cycle, the wrong ones' failures and their retries
    finally:
        daemon.send_signal(signal.SIGTERM)
        log, _ = daemon.communicate(timeout=60)
    assert "pg_wrong" in log and "redis_wrong" in log, log[-2000:]  # the failures were logged
    assert leaks(log, *SECRETS) == []


def test_the_store_holds_no_password(world: dict) -> None:
    assert world["db"].exists()
    assert leaks(world["config"].read_text(), *SECRETS) != []  # the search finds what is there
    assert leaks(store_bytes(world["db"]), *SECRETS) == []


def test_no_page_shows_a_password(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    at = new_app(monkeypatch, world["config"]).run()
    shown = [everything_shown(at)]
    for page in sources.pages():
        at.switch_page(page.script).run()
        no_exception(at)
        shown.append(everything_shown(at))
    assert len(shown) == len(sources.pages()) + 1
    # The refusals are on the pages, where a password could have come along with them.
    assert "password authentication failed" in "".join(shown)
    assert leaks("\n".join(shown), *SECRETS) == []


STORE_RIGHT, STORE_WRONG = "Sweep-store-right-19fa", "Sweep-store-wrong-e2c7"


def test_a_postgresql_store_url_keeps_its_password(
    pg: ThrowawayPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's own URL: right, the daemon and the commands work; wrong, they say why, without it."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS sweep_store")
        conn.execute("DROP ROLE IF EXISTS secretive_store")
        conn.execute(f"CREATE ROLE secretive_store LOGIN PASSWORD '{STORE_RIGHT}'")
        conn.execute("CREATE DATABASE sweep_store OWNER secretive_store")
    outputs = []
    for password in (STORE_RIGHT, STORE_WRONG):
        config = tmp_path / f"{password}.yaml"
        store = pg.dsn(user="secretive_store", dbname="sweep_store", password=password)
        target = {"name": "self", "dsn": pg.dsn(user="secretive", password=PG_RIGHT)}
        config.write_text(json.dumps({"store": store, "targets": {"postgres": [target]}}))
        outputs += [observatory("collect", "--once", config=config), observatory("status", config=config)]
        at = new_app(monkeypatch, config).run()
        outputs.append(subprocess.CompletedProcess([], 0, everything_shown(at), ""))
    right_collect, right_status, right_page, wrong_collect, wrong_status, wrong_page = outputs
    assert right_collect.returncode == 0 and "postgres/self: ok" in right_collect.stdout, right_collect.stderr
    assert "self" in right_status.stdout and '"self"' in right_page.stdout
    for refused in (wrong_collect, wrong_status):
        assert refused.returncode != 0 and "password authentication failed" in refused.stderr, refused.stderr
    assert "The store cannot be opened" in wrong_page.stdout
    for done in outputs:
        assert leaks(done.stdout + done.stderr, STORE_RIGHT, STORE_WRONG, PG_RIGHT) == []
