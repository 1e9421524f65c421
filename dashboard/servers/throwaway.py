"""Throwaway PostgreSQL, Redis, Prometheus and Alertmanager servers for the tests and the demo.

Each server lives in its own temp dir on its own free port, so nothing depends on
(or disturbs) system services that Debian's packages may have started. No pytest
import: the demo uses these classes too.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from types import TracebackType
from typing import Self

import psycopg
import redis
from psycopg.conninfo import make_conninfo
from redis.backoff import NoBackoff
from redis.retry import Retry


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (tiny race, fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return "(no log)"


def require_binary(binary: str, package: str) -> str:
    # /usr/bin fallback: PATH may be minimal under CI runners or runuser.
    for found in (shutil.which(binary), f"/usr/bin/{binary}"):
        if found and os.access(found, os.X_OK):
            return found
    raise RuntimeError(f"{binary} not found: install the Debian package {package} (scripts/install.sh)")


class _Managed:
    """Context-manager plumbing shared by the three servers."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ThrowawayPostgres(_Managed):
    def __init__(
        self,
        *,
        port: int | None = None,
        settings: dict[str, str] | None = None,
        password_roles: tuple[str, ...] = (),
        base_dir: str | None = None,
    ) -> None:
        self.bindir = self._find_bindir()
        self.port = port or free_port()
        self.password_roles = password_roles
        self.base_dir = base_dir
        self._tmp = ""
        self.data_dir = ""
        self._settings = settings or {}
        self._running = False

    @staticmethod
    def _find_bindir() -> str:
        env = os.environ.get("OBSERVATORY_PG_BINDIR")
        if env:
            return env
        # Highest major first; numeric sort so 9.6 < 10 < 15.
        dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(f"{d}/initdb")]
        dirs.sort(key=lambda d: float(d.split("/")[-2]))
        if not dirs:
            raise RuntimeError(
                "PostgreSQL server binaries not found: install the Debian packages postgresql-15 "
                "postgresql-contrib (or set OBSERVATORY_PG_BINDIR)"
            )
        return dirs[-1]

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        # initdb/postgres refuse to run as root, so drop to the Debian `postgres` user.
        cmd = [f"{self.bindir}/{args[0]}", *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        # cwd=temp dir: postgres cannot read root's cwd and would warn about it.
        return subprocess.run(cmd, cwd=self._tmp, capture_output=True, text=True, timeout=120)

    @property
    def _log(self) -> str:
        return os.path.join(self._tmp, "server.log")

    @property
    def version_num(self) -> int:
        # "postgres (PostgreSQL) 15.20 (Debian ...)" -> 150020, like server_version_num.
        out = subprocess.run([f"{self.bindir}/postgres", "-V"], capture_output=True, text=True, check=True)
        major, minor = [*out.stdout.split()[2].split("."), "0"][:2]
        return int(major) * 10000 + int("".join(c for c in minor if c.isdigit()) or 0)

    def _make_dirs(self, prefix: str) -> str:
        """The cluster's folder (its data and socket folders inside), owned by postgres when run as
        root; returns the socket folder. From here on stop() has something to clean up."""
        self._tmp = tempfile.mkdtemp(prefix=prefix, dir=self.base_dir or "/tmp")
        self.data_dir = os.path.join(self._tmp, "data")
        sock_dir = os.path.join(self._tmp, "sock")
        os.mkdir(sock_dir)
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            for path in (self._tmp, sock_dir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        self._running = True
        return sock_dir

    def start(self) -> Self:
        sock_dir = self._make_dirs("obs-pg-")
        try:
            # trust everywhere except the password_roles lines written to pg_hba.conf below.
            flags = ("--auth=trust", "--username=postgres", "-E", "UTF8", "--no-locale")
            init = self._run("initdb", "-D", self.data_dir, *flags)
            if init.returncode:
                raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
            self._write_config(sock_dir)
            started = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", self.data_dir, "-l", self._log)
            if started.returncode:
                raise RuntimeError(
                    f"PostgreSQL failed to start on port {self.port}:\n{started.stderr}\n"
                    f"--- server log tail ---\n{_tail(self._log)}"
                )
        except BaseException:
            self.stop()
            raise
        return self

    def _write_config(self, sock_dir: str) -> None:
        settings = {
            "shared_preload_libraries": "pg_stat_statements",
            "pg_stat_statements.track": "all",
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": sock_dir,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
            "logging_collector": "off",
            **self._settings,
        }
        # A config file instead of `pg_ctl -o`: single-quoted values with '' escaping
        # survive any value, while -o goes through a shell inside pg_ctl.
        conf = "".join(f"{k} = '{v.replace(chr(39), chr(39) * 2)}'\n" for k, v in settings.items())
        nets = ("127.0.0.1/32", "::1/128")
        hba = [f"host all {role} {net} scram-sha-256\n" for role in self.password_roles for net in nets]
        hba += ["local all all trust\n", "host all all 127.0.0.1/32 trust\n", "host all all ::1/128 trust\n"]
        hba += ["local replication all trust\n", "host replication all 127.0.0.1/32 trust\n"]
        # First matching line wins, so the password lines must precede the trust lines.
        for name, text in (("postgresql.auto.conf", conf), ("pg_hba.conf", "".join(hba))):
            path = os.path.join(self.data_dir, name)
            with open(path, "w") as fh:
                fh.write(text)
            if self._as_root:
                pw = pwd.getpwnam("postgres")
                os.chown(path, pw.pw_uid, pw.pw_gid)

    def restart(self) -> None:
        done = self._run(
            "pg_ctl", "restart", "-w", "-t", "60", "-m", "fast", "-D", self.data_dir, "-l", self._log
        )
        if done.returncode:
            raise RuntimeError(
                f"PostgreSQL restart failed:\n{done.stderr}\n--- server log tail ---\n{_tail(self._log)}"
            )

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", self.data_dir)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def dsn(self, user: str = "postgres", dbname: str = "postgres", password: str | None = None) -> str:
        auth = urllib.parse.quote(user, safe="")
        if password is not None:
            auth += ":" + urllib.parse.quote(password, safe="")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"


class ProcessServer(_Managed):
    """A server run as a plain child process in its own temp dir."""

    prefix = "obs-"

    def __init__(self, port: int | None) -> None:
        self.port = port or free_port()
        self._tmp = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    @property
    def _log(self) -> str:
        return os.path.join(self._tmp, "server.log")

    def start(self) -> Self:
        if not self._tmp:
            self._tmp = tempfile.mkdtemp(prefix=self.prefix)
        try:
            self._spawn()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, timeout: float = 30.0) -> None:
        cmd = self._command()
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(cmd, cwd=self._tmp, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if self._ready():
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"{cmd[0]} did not become ready on port {self.port}:\n--- log tail ---\n{_tail(self._log)}"
        )

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def restart(self) -> None:
        # Same port and same dir, so clients can reconnect to the "same" server.
        self._kill()
        self._spawn()

    def stop(self) -> None:
        self._kill()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = ""


class ThrowawayRedis(ProcessServer):
    prefix = "obs-redis-"

    def __init__(self, port: int | None = None) -> None:
        self.binary = require_binary("redis-server", "redis-server")
        super().__init__(port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        # No persistence, no daemonizing: the Popen handle *is* the server.
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._tmp,
            "--daemonize",
            "no",
        ]

    def _ready(self) -> bool:
        try:
            # No retries: a refused PING must return at once so the start-up poll stays quick.
            no_retry = Retry(NoBackoff(), 0)
            with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, retry=no_retry) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False


class HttpServer(ProcessServer):
    """A throwaway server with an HTTP API on loopback."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class ThrowawayPrometheus(HttpServer):
    prefix = "obs-prom-"

    def __init__(
        self,
        scrape_targets: list[str],
        scrape_interval: str = "1s",
        port: int | None = None,
        rules: str | None = None,
    ) -> None:
        self.binary = require_binary("prometheus", "prometheus")
        self.scrape_targets = scrape_targets
        self.scrape_interval = scrape_interval
        self.rules = rules  # a rule file's YAML (groups: ...), evaluated every scrape_interval
        super().__init__(port)

    def _command(self) -> list[str]:
        config = {
            # scrape_timeout defaults to 10s and must not exceed the interval.
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
            },
            "scrape_configs": [{"job_name": "demo", "static_configs": [{"targets": self.scrape_targets}]}],
        }
        if self.rules is not None:
            rules_path = os.path.join(self._tmp, "rules.yml")
            with open(rules_path, "w") as fh:
                fh.write(self.rules)
            config["rule_files"] = [rules_path]
        path = os.path.join(self._tmp, "prometheus.yml")
        with open(path, "w") as fh:
            json.dump(config, fh)  # JSON is valid YAML
        return [
            self.binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={self._tmp}/data",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
        ]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False


def http_ok(url: str) -> bool:
    """Whether the URL answers 200 right now (readiness polls)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


class ThrowawayNodeExporter(ProcessServer):
    """Debian's prometheus-node-exporter on loopback, with the CPU and memory collectors only."""

    prefix = "obs-node-"
    BINARY = "/usr/bin/prometheus-node-exporter"
    # What the preset's CPU and memory series need, and nothing that reads the disks or the network.
    COLLECTORS = ("cpu", "meminfo", "loadavg")

    def __init__(self, port: int | None = None) -> None:
        self.binary = require_binary("prometheus-node-exporter", "prometheus-node-exporter")
        super().__init__(port)

    @classmethod
    def available(cls) -> bool:
        return os.access(cls.BINARY, os.X_OK) or shutil.which("prometheus-node-exporter") is not None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        collectors = [f"--collector.{name}" for name in self.COLLECTORS]
        listen = f"--web.listen-address={self.address}"
        return [self.binary, listen, "--collector.disable-defaults", *collectors]

    def _ready(self) -> bool:
        return http_ok(f"http://{self.address}/metrics")


class ThrowawayAlertmanager(HttpServer):
    """Debian's prometheus-alertmanager on loopback, clustering off, one route to a webhook.

    `group_wait` and `group_interval` are short by default so a test sees the webhook within a
    second or two; `webhook_url` receives Alertmanager's own notifications (send_resolved on).
    """

    prefix = "obs-am-"

    def __init__(
        self, webhook_url: str, port: int | None = None, group_wait: str = "0s", group_interval: str = "1s"
    ) -> None:
        self.binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
        self.webhook_url = webhook_url
        self.group_wait = group_wait
        self.group_interval = group_interval
        super().__init__(port)

    def _command(self) -> list[str]:
        config = {
            "route": {
                "receiver": "test",
                "group_by": ["alertname"],
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": "1h",
            },
            "receivers": [
                {"name": "test", "webhook_configs": [{"url": self.webhook_url, "send_resolved": True}]}
            ],
        }
        path = os.path.join(self._tmp, "alertmanager.yml")
        with open(path, "w") as fh:
            json.dump(config, fh)  # JSON is valid YAML
        return [
            self.binary,
            f"--config.file={path}",
            f"--storage.path={self._tmp}/data",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # empty: no gossip port, no peers
        ]

    def _ready(self) -> bool:
        return http_ok(f"{self.url}/-/ready")


class ThrowawayReplica(ThrowawayPostgres):
    """A streaming replica of a running ThrowawayPostgres: `pg_basebackup -R` of the primary into a
    temp dir of its own, started on its own port, stopped and removed after like the primary.

    The primary needs nothing more than it has: wal_level replica and max_wal_senders 10 are
    PostgreSQL's defaults, and its pg_hba.conf trusts local replication connections. The replica
    connects as `application_name` (what the primary's pg_stat_replication calls it), through the
    physical slot `slot` when one is named (created by pg_basebackup). `start` returns once the
    primary sees it streaming.
    """

    def __init__(
        self,
        primary: ThrowawayPostgres,
        *,
        application_name: str = "replica",
        slot: str | None = None,
        port: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        super().__init__(port=port, settings=settings, base_dir=primary.base_dir)
        self.primary = primary
        self.bindir = primary.bindir  # the same major version: a base backup needs it
        self.application_name = application_name
        self.slot = slot

    def start(self) -> Self:
        sock_dir = self._make_dirs("obs-replica-")
        try:
            self._base_backup()
            self._write_standby_config(sock_dir)
            started = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", self.data_dir, "-l", self._log)
            if started.returncode:
                raise RuntimeError(
                    f"the replica failed to start on port {self.port}:\n{started.stderr}\n"
                    f"--- server log tail ---\n{_tail(self._log)}"
                )
            self.wait_streaming()
        except BaseException:
            self.stop()
            raise
        return self

    def _base_backup(self) -> None:
        # -R writes primary_conninfo (with this application_name) and standby.signal; -X stream
        # copies the WAL written meanwhile; -c fast: no wait for the next checkpoint.
        conninfo = make_conninfo(
            host="127.0.0.1", port=self.primary.port, user="postgres", application_name=self.application_name
        )
        slot = ("-C", "-S", self.slot) if self.slot else ()
        done = self._run(
            "pg_basebackup",
            "-D",
            self.data_dir,
            "-d",
            conninfo,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-N",
            *slot,
        )
        if done.returncode:
            raise RuntimeError(f"pg_basebackup failed:\n{done.stdout}\n{done.stderr}")

    def _write_standby_config(self, sock_dir: str) -> None:
        """The primary's settings came with the backup; these override them (the last line wins)."""
        settings = {"port": str(self.port), "unix_socket_directories": sock_dir, "hot_standby": "on",
                    **self._settings}  # fmt: skip
        conf = "".join(f"{k} = '{v.replace(chr(39), chr(39) * 2)}'\n" for k, v in settings.items())
        with open(os.path.join(self.data_dir, "postgresql.auto.conf"), "a") as fh:
            fh.write(conf)

    def wait_streaming(self, timeout: float = 30.0) -> None:
        """Until the primary's pg_stat_replication shows this replica streaming."""
        deadline = time.monotonic() + timeout
        query = "SELECT 1 FROM pg_stat_replication WHERE application_name = %s AND state = 'streaming'"
        with psycopg.connect(self.primary.dsn(), autocommit=True) as conn:
            while conn.execute(query, (self.application_name,)).fetchone() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the replica is not streaming:\n{_tail(self._log)}")
                time.sleep(0.05)
