"""`observatory serve` (the app) and `observatory up` (the collector daemon and the app).

With login from `access.oidc`, each start writes Streamlit's [auth] secrets to a new private file
(0600, in a 0700 folder of this user) and removes it when the app stops: the app runs as a child and
the signals that stop `serve` are passed on to it. Files of starts that died without cleaning up
(SIGKILL) are removed by the next start.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

from dashboard.cli.common import open_store
from dashboard.core import access
from dashboard.core import config as config_mod
from dashboard.core.redaction import SecretError, secret_from_env

APP = Path(__file__).parent.parent / "app.py"
MIN_COOKIE_SECRET = 32  # characters: a short one is found offline from one's own cookie, then forged


def serve(args: argparse.Namespace, config: config_mod.Config) -> int:
    with _prepared(args, config) as secrets:
        open_store(config)  # migrate before the first page reads
        return _run_app(streamlit_command(args.host, args.port, secrets), _env(config, args.host))


def _run_app(command: list[str], env: dict[str, str]) -> int:
    """Run the app as a child until it exits, passing on the signals that stop `serve` (SIGTERM,
    SIGINT, SIGHUP) as SIGTERM, so the caller's cleanup runs; its exit status, as a shell gives it."""
    child = subprocess.Popen(command, env=env)

    def stop(_signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.terminate()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        code = child.wait()
    finally:
        if child.poll() is None:  # an error in the wait itself: leave no app behind
            child.kill()
            child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def up(args: argparse.Namespace, config: config_mod.Config) -> int:
    with _prepared(args, config) as secrets:
        return _up(args, config, secrets)


def _up(args: argparse.Namespace, config: config_mod.Config, secrets: list[Path] | None) -> int:
    open_store(config)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the finally below: stop both children
    children: list[subprocess.Popen[bytes]] = []
    try:  # a SIGTERM between the two starts still stops the first
        env = _env(config, args.host)
        children.append(subprocess.Popen([sys.executable, "-m", "dashboard", "collect"], env=env))
        children.append(subprocess.Popen(streamlit_command(args.host, args.port, secrets), env=env))
        print(f"observatory: collecting, and serving on http://{args.host}:{args.port}", file=sys.stderr)
        while all(proc.poll() is None for proc in children):
            time.sleep(0.5)
    finally:
        for proc in reversed(children):  # the app first
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(children):
            proc.wait(timeout=15)
    collector, app = children
    return collector.returncode or app.returncode or 0


def streamlit_command(host: str, port: int, secrets_files: list[Path] | None = None) -> list[str]:
    """The app's command; `secrets_files` replace Streamlit's own list of secrets.toml files."""
    files = [arg for path in secrets_files or [] for arg in ("--secrets.files", str(path))]
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", *files,
    ]  # fmt: skip


@contextmanager
def _prepared(args: argparse.Namespace, config: config_mod.Config) -> Iterator[list[Path] | None]:
    """Check the login's settings and that the port is free, say what is exposed, then write the
    login's secrets: yields the secrets files to pass (None: leave Streamlit's own list alone), and
    removes the file it wrote on the way out."""
    own = own_secrets_files()
    with_auth = [path for path in own if "auth" in _toml(path)]
    text = None
    if config.access.oidc is not None and with_auth:
        print(
            f"observatory: login: the [auth] of {with_auth[-1]} is used; access.oidc is not", file=sys.stderr
        )
    elif config.access.oidc is not None:
        text = auth_secrets(config.access.oidc, args.host, args.port)
    if with_auth:
        check_own_auth(with_auth, args.host)
    signed_in = bool(with_auth) or config.access.login
    warning = config_mod.exposure_warning(args.host, args.port, signed_in, config.access.sql_when_exposed)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    check_port_free(args.host, args.port)  # before writing: a second start must not touch the first's
    if text is None:
        yield None
        return
    written = write_secrets(text)
    print(f"observatory: login: Streamlit's [auth] secrets written to {written} (mode 0600)", file=sys.stderr)
    try:
        yield [*own, written]  # the user's own secrets stay readable; [auth] is ours
    finally:
        remove_secrets(written)


def check_port_free(host: str, port: int) -> None:
    """ConfigError, one line, when the app could not listen on `host`:`port` (another app has it)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise config_mod.ConfigError(f"--host {host}: cannot be resolved ({err.strerror})") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the app's server does
            try:
                probe.bind(address)
            except OSError as err:
                why = "in use by another program" if err.errno == errno.EADDRINUSE else err.strerror
                raise config_mod.ConfigError(f"cannot listen on {host}:{port}: {why}") from None


def _env(config: config_mod.Config, host: str) -> dict[str, str]:
    env = dict(os.environ)
    if config.source != "embedded defaults":
        env[config_mod.ENV_FILE] = str(Path(config.source).resolve())
    env[access.EXPOSED_ENV] = "0" if config_mod.is_loopback(host) else "1"  # the app decides on it
    return env


# -- the login's secrets ------------------------------------------------------------------------------
def own_secrets_files() -> list[Path]:
    """The secrets.toml files Streamlit reads by default for this app, that exist: the user's, the
    working folder's, the app's folder's (later ones win)."""
    names = [Path.home() / ".streamlit", Path.cwd() / ".streamlit", APP.parent / ".streamlit"]
    return list(dict.fromkeys(p / "secrets.toml" for p in names if (p / "secrets.toml").is_file()))


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:  # the message names no value
        raise config_mod.ConfigError(f"{path}: cannot be read as TOML ({type(err).__name__})") from None


def redirect_uri(oidc: config_mod.OidcLogin, host: str, port: int) -> str:
    """Where the provider sends the browser back: as configured, else this host and port. Beyond
    loopback it must be https (the code, then the cookie, travel to it)."""
    uri = oidc.redirect_uri
    if uri is None and config_mod.is_unspecified(host):
        raise config_mod.ConfigError(
            "access.oidc.redirect_uri: required when serving on every interface: the address users reach "
            "the app at, ending in /oauth2callback (e.g. https://observatory.example.com/oauth2callback)"
        )
    if uri is None:
        name = f"[{host.strip('[]')}]" if ":" in host else host
        uri = f"http://{name}:{port}/oauth2callback"
    check_redirect(uri, host, "access.oidc.redirect_uri")
    return uri


def check_redirect(uri: str, host: str, setting: str) -> None:
    """ConfigError unless the login's redirect_uri is https, or plain http that stays on this machine
    (its host and the listening address both loopback)."""
    name = urlsplit(uri).hostname or ""
    if urlsplit(uri).scheme == "https" or (config_mod.is_loopback(name) and config_mod.is_loopback(host)):
        return
    raise config_mod.ConfigError(
        f"{setting}: login beyond loopback needs an https:// redirect_uri (the login code and the session "
        "cookie travel to it): serve on 127.0.0.1 behind a TLS reverse proxy and set redirect_uri to the "
        "public https://.../oauth2callback"
    )


def check_own_auth(files: list[Path], host: str) -> None:
    """The [auth] of the user's own secrets files (later files win): a long enough cookie_secret and a
    redirect_uri that is safe for `host`."""
    auth: dict = {}
    for path in files:
        section = _toml(path).get("auth")
        auth.update(section if isinstance(section, dict) else {})
    where = f"[auth] of {files[-1]}"
    cookie = auth.get("cookie_secret")
    if not isinstance(cookie, str) or len(cookie) < MIN_COOKIE_SECRET:
        raise config_mod.ConfigError(
            f"{where}: cookie_secret must be at least {MIN_COOKIE_SECRET} characters"
        )
    if isinstance(auth.get("redirect_uri"), str):
        check_redirect(auth["redirect_uri"], host, f"{where}: redirect_uri")


def auth_secrets(oidc: config_mod.OidcLogin, host: str, port: int) -> str:
    """Streamlit's [auth] section (TOML) for this provider, the secrets read from the environment."""
    try:
        client_secret = secret_from_env(
            oidc.client_secret_env, "access.oidc.client_secret_env", ascii_only=True
        )
        cookie_secret = secret_from_env(
            oidc.cookie_secret_env, "access.oidc.cookie_secret_env", ascii_only=True
        )
    except SecretError as err:
        raise config_mod.ConfigError(f"{err}: {err.hint}") from None
    if len(cookie_secret) < MIN_COOKIE_SECRET:  # names the variable, never the value
        raise config_mod.ConfigError(
            f"access.oidc.cookie_secret_env: ${oidc.cookie_secret_env} must hold at least "
            f"{MIN_COOKIE_SECRET} characters (e.g. `openssl rand -hex 32`)"
        )
    values = {
        "redirect_uri": redirect_uri(oidc, host, port),
        "cookie_secret": cookie_secret,
        "client_id": oidc.client_id,
        "client_secret": client_secret,
        "server_metadata_url": oidc.server_metadata_url,
    }
    lines = ["[auth]", *(f"{k} = {_toml_string(v)}" for k, v in values.items())]
    lines += ["", "[auth.client_kwargs]", f"scope = {_toml_string(oidc.scope)}", ""]
    return "\n".join(lines)


def _toml_string(value: str) -> str:
    # JSON's escapes are TOML's, but for DEL, which TOML wants escaped too
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def private_folder() -> Path:
    """$TMPDIR/observatory-UID, made 0700 for this user; when that name is taken by anything else
    (another user may create it first in a shared /tmp, and we could not remove it), a fresh folder
    of our own (tempfile.mkdtemp, 0700)."""
    folder = Path(tempfile.gettempdir()) / f"observatory-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError:
        info = None
    if info is None or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return Path(tempfile.mkdtemp(prefix=f"observatory-{os.getuid()}-"))
    return folder


def write_secrets(text: str) -> Path:
    """Write secrets (TOML) to a new file only this user can read (0600): a name of its own per start,
    so another start never rewrites the file a running app reads. Stale files go first."""
    folder = private_folder()
    remove_stale(folder)
    fd, name = tempfile.mkstemp(prefix=f"auth-{os.getpid()}-", suffix=".toml", dir=folder)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    return Path(name)


def write_auth_secrets(oidc: config_mod.OidcLogin, host: str, port: int) -> Path:
    """Write the [auth] secrets for this provider (see write_secrets)."""
    return write_secrets(auth_secrets(oidc, host, port))


def remove_secrets(path: Path) -> None:
    """Remove a secrets file this start wrote, and its folder when it was a fallback of its own."""
    path.unlink(missing_ok=True)
    if path.parent.name.startswith(f"observatory-{os.getuid()}-"):
        with suppress(OSError):  # not empty: leave it
            path.parent.rmdir()


def remove_stale(folder: Path) -> list[Path]:
    """Remove the secrets files in `folder` of starts that are gone: their `serve` (the pid in the name)
    is not running and no running process names the file (an app that outlived its `serve`)."""
    files = [p for p in folder.glob("auth-*.toml") if p.is_file() and not p.is_symlink()]
    if not files:
        return []
    in_use = _named_by_processes()
    removed = []
    for path in files:
        if _pid_alive(_pid_of(path)) or str(path).encode() in in_use:
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _pid_of(path: Path) -> int | None:
    parts = path.name.split("-")
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None


def _pid_alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _named_by_processes() -> bytes:
    """Every running process's command line, joined (Linux /proc; empty elsewhere)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append(entry.read_bytes().replace(b"\0", b" "))
        except OSError:
            continue
    return b"\n".join(found)
