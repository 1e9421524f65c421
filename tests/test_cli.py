"""The `observatory` command, run as a user runs it: a real process, a real server, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from dashboard.servers.throwaway import ThrowawayPostgres, free_port
from tests.support.cli import observatory
from tests.support.postgres import run_workload


def write_config(tmp_path: Path, targets: str) -> Path:
    path = tmp_path / "observatory.yaml"
    path.write_text(f"store: sqlite:///{tmp_path / 'store.db'}\ntargets:\n  postgres:\n{targets}")
    return path


def test_collect_once_twice_then_status(pg: ThrowawayPostgres, database: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, f"    - name: erp-primary\n      dsn: {pg.dsn(dbname=database)}\n")
    first = observatory("collect", "--once", config=config)
    assert first.returncode == 0, first.stderr
    assert "postgres/erp-primary: ok" in first.stdout
    run_workload(pg.dsn(dbname=database))
    second = observatory("collect", "--once", config=config)
    assert second.returncode == 0 and "statements moved" in second.stdout
    status = observatory("status", "--json", config=config)
    assert status.returncode == 0
    (target,) = json.loads(status.stdout)["targets"]
    assert target["kind"] == "postgres" and target["name"] == "erp-primary"
    assert target["state"] == "ok" and target["last_error"] is None
    assert target["last_success"].endswith("Z") and target["samples"] > 50
    text = observatory("status", config=config)
    assert "postgres/erp-primary: ok" in text.stdout


def test_failed_target_exits_non_zero_with_a_message(pg: ThrowawayPostgres, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"    - name: gone\n      dsn: postgresql://monitor:Pa55-secret@127.0.0.1:{free_port()}/erp\n"
        f"    - name: fine\n      dsn: {pg.dsn()}\n",
    )
    result = observatory("collect", "--once", config=config)
    assert result.returncode == 1
    assert "postgres/gone: down" in result.stderr and "is PostgreSQL running" in result.stderr
    assert "postgres/fine: ok" in result.stdout
    status = observatory("status", "--json", config=config)
    assert "Pa55-secret" not in result.stdout + result.stderr + status.stdout
    states = {t["name"]: t["state"] for t in json.loads(status.stdout)["targets"]}
    assert states == {"gone": "down", "fine": "ok"}


def test_missing_extension_fails_once_with_the_fix(pg: ThrowawayPostgres, tmp_path: Path) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS cli_no_ext")
        conn.execute("CREATE DATABASE cli_no_ext")
    config = write_config(tmp_path, f"    - name: x\n      dsn: {pg.dsn(dbname='cli_no_ext')}\n")
    result = observatory("collect", "--once", config=config)
    assert result.returncode == 1
    assert "CREATE EXTENSION pg_stat_statements; in database cli_no_ext" in result.stderr


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, "    - name: x\n      dsn: postgresql:///x\n      interval: often\n")
    result = observatory("collect", "--once", config=config)
    assert result.returncode == 2
    assert "targets.postgres[0].interval: 'often' is not a duration" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_targets_is_explained(tmp_path: Path) -> None:
    result = observatory("collect", "--once", cwd=tmp_path)
    assert result.returncode == 2 and "no targets configured in embedded defaults" in result.stderr


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("observatory")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "collect" in result.stdout and "serve" in result.stdout


def test_collector_daemon_survives_a_down_target(tmp_path: Path) -> None:
    """`observatory collect` keeps collecting the live target while the other stays down."""
    with ThrowawayPostgres() as server:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        config = write_config(
            tmp_path,
            f"    - name: live\n      dsn: {server.dsn()}\n      interval: 1s\n"
            f"    - name: dead\n      dsn: postgresql://x@127.0.0.1:{free_port()}/x\n      interval: 1s\n",
        )
        env = dict(os.environ, OBSERVATORY_CONFIG=str(config))
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "collect"], env=env, stderr=subprocess.PIPE
        )
        try:
            import time

            deadline = time.monotonic() + 30
            states: dict[str, dict] = {}
            while time.monotonic() < deadline:
                time.sleep(1)
                out = observatory("status", "--json", config=config).stdout
                states = {t["name"]: t for t in json.loads(out)["targets"]}
                if (
                    states.get("live", {}).get("samples", 0) > 0
                    and states.get("dead", {}).get("failures", 0) >= 2
                ):
                    break
            assert states["live"]["state"] == "ok" and states["live"]["samples"] > 0
            assert states["dead"]["state"] == "down" and states["dead"]["failures"] >= 2
            assert daemon.poll() is None  # still running
        finally:
            daemon.terminate()
            daemon.wait(timeout=20)
        assert daemon.returncode == 0  # SIGTERM is a clean stop


def test_up_runs_collector_and_app_and_stops_both(
    pg: ThrowawayPostgres, database: str, tmp_path: Path
) -> None:
    import time
    import urllib.request

    config = write_config(
        tmp_path, f"    - name: erp\n      dsn: {pg.dsn(dbname=database)}\n      interval: 1s\n"
    )
    port = free_port()
    env = dict(os.environ, OBSERVATORY_CONFIG=str(config))
    up = subprocess.Popen([sys.executable, "-m", "dashboard", "up", "--port", str(port)], env=env)
    try:
        deadline, healthy, samples = time.monotonic() + 60, False, 0
        while time.monotonic() < deadline and not (healthy and samples):
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    healthy = r.status == 200
            except OSError:
                pass
            samples = json.loads(observatory("status", "--json", config=config).stdout)["targets"][0][
                "samples"
            ]
        assert healthy and samples > 0
    finally:
        up.terminate()
        up.wait(timeout=30)
    with pytest.raises(OSError):  # the app went down with it
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
