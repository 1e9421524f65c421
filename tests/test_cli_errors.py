"""Hostile input to the `observatory` command: one clear line and exit 2, never a traceback; --config
on either side of the command; a warning before serving the dashboard beyond this machine."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dashboard.core.config import exposure_warning, is_loopback
from dashboard.servers.throwaway import ThrowawayPostgres, free_port
from tests.support.cli import env_without_config, observatory

WARNING = "without login: anyone who can reach this address can see it"


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("observatory"), result.stderr
    return lines[0]


# -- configuration files ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\xff\xfes\x00t\x00o\x00r\x00e\x00", "UTF-16 text: save the file as UTF-8"),
        (b"store: sqlite:///x.db\n# caf\xe9\n", "line 2: not UTF-8 text (byte 0xe9)"),
        (b"retention: {raw: 2020-13-01}\n", "not valid YAML (month must be in 1..12)"),
        (b"[" * 5000, "not valid YAML"),
    ],
    ids=["utf-16", "latin-1", "bad-date", "deep"],
)
def test_unreadable_config_is_one_line(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "observatory.yaml"
    path.write_bytes(content)
    for args in (("--config", str(path), "status"), ("status", "--config", str(path))):
        line = one_line_error(observatory(*args))
        assert str(path) in line and says in line


def test_config_that_is_a_directory_or_a_dangling_link(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    assert "is a directory" in one_line_error(observatory("-c", str(folder), "status"))
    env = env_without_config() | {"OBSERVATORY_CONFIG": str(folder)}
    assert "is a directory" in one_line_error(observatory("status", env=env))
    link = tmp_path / "observatory.yaml"
    link.symlink_to(tmp_path / "gone.yaml")
    line = one_line_error(observatory("collect", "--once", "--config", str(link)))
    assert "a symbolic link to" in line and "gone.yaml" in line and "does not exist" in line
    # ./observatory.yaml, found without --config, is not silently skipped either
    assert "does not exist" in one_line_error(observatory("status", cwd=tmp_path))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--limit", "-1"), "argument --limit: must be at least 1, not -1"),
        (("--min-calls", "0"), "argument --min-calls: must be at least 1, not 0"),
        (("--min-mean-ms", "-5"), "argument --min-mean-ms: must be 0 or more, not -5"),
        (("--min-mean-ms", "nan"), "argument --min-mean-ms: must be 0 or more"),
        (("--limit", "ten"), "argument --limit: 'ten' is not a whole number"),
    ],
)
def test_bad_advisor_numbers_are_refused_by_argparse(args: tuple[str, ...], says: str) -> None:
    result = observatory("advise", "--dsn", "postgresql://nobody@127.0.0.1:1/x", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert says in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_bad_port_is_refused(port: str) -> None:
    result = observatory("serve", "--port", port)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "argument --port" in result.stderr


# -- --config before or after the command --------------------------------------------------------------
def test_config_is_accepted_before_and_after_the_command(tmp_path: Path) -> None:
    mine, other = tmp_path / "mine.yaml", tmp_path / "other.yaml"
    # A target never collected: exit 0 (none at all is exit 2, down is 1).
    target = "targets:\n  redis:\n    - {name: cache, url: 'redis://127.0.0.1:1'}\n"
    mine.write_text(f"store: sqlite:///{tmp_path / 'mine.db'}\n{target}")
    other.write_text(f"store: sqlite:///{tmp_path / 'other.db'}\n{target}")
    for args in (
        ("--config", str(mine), "status", "--json"),
        ("status", "--config", str(mine), "--json"),
        ("status", "--json", "-c", str(mine)),
        ("-c", str(other), "status", "-c", str(mine), "--json"),  # the one after the command wins
        ("-v", "status", "--json", "--config", str(mine)),  # -v before, --config after
    ):
        result = observatory(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert json.loads(result.stdout)["store"] == f"sqlite:///{tmp_path / 'mine.db'}", args


def test_collect_once_with_config_after_the_command(pg: ThrowawayPostgres, tmp_path: Path) -> None:
    config = tmp_path / "x.yaml"
    config.write_text(
        f"store: sqlite:///{tmp_path / 'store.db'}\ntargets:\n  postgres:\n"
        f"    - name: after\n      dsn: {pg.dsn()}\n"
    )
    result = observatory("collect", "--config", str(config), "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "postgres/after: ok" in result.stdout


# -- serving beyond loopback ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]", "::ffff:127.0.0.1"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host) and exposure_warning(host, 8501) is None


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "", "192.168.1.10", "10.0.0.1", "2001:db8::1", "example.com", "localhost.lan"]
)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)
    warning = exposure_warning(host, 8501)
    assert warning is not None and WARNING in warning and "advisor" in warning and ":8501" in warning


class Running:
    """A command whose stderr is read line by line while it runs; stopped (SIGTERM) at the end."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard", *args],
            env=env_without_config(),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not on stderr within {timeout:g}s: {self.seen}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        while not self.lines.empty():
            self.seen.append(self.lines.get())


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_serving_on_every_interface_warns(tmp_path: Path) -> None:
    (tmp_path / "observatory.yaml").write_text(f"store: sqlite:///{tmp_path / 'store.db'}\n")
    run = Running("serve", "--host", "0.0.0.0", "--port", str(free_port()), cwd=tmp_path)
    try:
        line = run.wait_for("warning")
    finally:
        run.stop()  # at once: the warning is printed before the app starts
    assert line.startswith("observatory: warning: the dashboard will listen on 0.0.0.0:")
    assert WARNING in line and "Traceback" not in "".join(run.seen)


def test_up_on_every_interface_warns(tmp_path: Path) -> None:
    (tmp_path / "observatory.yaml").write_text(f"store: sqlite:///{tmp_path / 'store.db'}\n")
    run = Running("up", "--host", "::", "--port", str(free_port()), cwd=tmp_path)
    try:
        line = run.wait_for("warning")
        run.wait_for("collecting, and serving on")
        run.proc.wait(timeout=60)  # no targets: the collector ends at once, and `up` stops the app
    finally:
        run.stop()
    assert line.startswith("observatory: warning: the dashboard will listen on :::")
    assert run.proc.returncode == 2 and "Traceback" not in "".join(run.seen)


def test_serving_on_loopback_does_not_warn(tmp_path: Path) -> None:
    (tmp_path / "observatory.yaml").write_text(f"store: sqlite:///{tmp_path / 'store.db'}\n")
    port = free_port()
    run = Running("serve", "--host", "127.0.0.1", "--port", str(port), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not listening(port):
            assert run.proc.poll() is None and time.monotonic() < deadline, run.seen
            time.sleep(0.2)
    finally:
        run.stop()
    assert not any("warning" in line for line in run.seen), run.seen


def test_demo_on_every_interface_warns_first(tmp_path: Path) -> None:
    with socket.socket() as busy:  # the demo checks its port first: a busy one ends it at once
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = observatory(
            "demo", "--host", "0.0.0.0", "--port", str(port), "--dir", str(tmp_path / "demo")
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("observatory: warning: the dashboard will listen on 0.0.0.0:")
    assert f"port {port} is in use" in result.stdout
