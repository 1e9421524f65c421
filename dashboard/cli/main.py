"""`observatory` (also `python -m dashboard`): run the collectors, the app, or ask for status."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from dashboard.core import config as config_mod
from dashboard.core.redaction import RedactingStream, SecretFilter, known_secrets, password_of, redact

APP = Path(__file__).parent.parent / "app.py"
log = logging.getLogger("observatory")


def _parser() -> argparse.ArgumentParser:
    def whole(low: int) -> Callable[[str], int]:
        def parse(text: str) -> int:
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
            if value < low:
                raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
            return value

        return parse

    def non_negative(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
        return value

    def port(text: str) -> int:
        value = whole(1)(text)
        if value > 65535:
            raise argparse.ArgumentTypeError(f"a port is 1 to 65535, not {value}")
        return value

    config_help = "configuration file (default: $OBSERVATORY_CONFIG or ./observatory.yaml)"
    p = argparse.ArgumentParser(prog="observatory", description=__doc__)
    p.add_argument("-c", "--config", help=config_help)
    p.add_argument("-v", "--verbose", action="store_true", help="log every cycle")
    # The same two options after the command (observatory collect --config x.yaml); SUPPRESS: when
    # not given there, the value given before the command stands.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default=argparse.SUPPRESS, help=config_help)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log every cycle"
    )
    sub = p.add_subparsers(dest="command", required=True)
    collect = sub.add_parser("collect", parents=[common], help="run the collector daemon")
    collect.add_argument("--once", action="store_true", help="one cycle of every target, then exit")
    for name, help_text in (
        ("serve", "run the dashboard"),
        ("up", "run the collector daemon and the dashboard"),
    ):
        s = sub.add_parser(name, parents=[common], help=help_text)
        s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        s.add_argument("--port", type=port, default=8501)
    status = sub.add_parser(
        "status", parents=[common], help="per target: state, last success, last error, samples"
    )
    status.add_argument("--json", action="store_true")
    advise = sub.add_parser(
        "advise", parents=[common], help="suggest indexes for one database and check its index health"
    )
    advise.add_argument("--dsn", required=True, help="the database to advise on (read-only session)")
    advise.add_argument("--query", action="append", help="advise on this statement instead (repeatable)")
    advise.add_argument("--json", action="store_true")
    advise.add_argument(
        "--allow-privileged",
        action="store_true",
        help="advise even as a superuser or a role that may run programs, touch server files or end "
        "sessions (refused by default: planning statements others wrote runs with that power)",
    )
    advise.add_argument(
        "--min-calls", type=whole(1), default=10, help="workload: statements called at least this often"
    )
    advise.add_argument(
        "--min-mean-ms", type=non_negative, default=1.0, help="workload: mean time at least this"
    )
    advise.add_argument("--limit", type=whole(1), default=100, help="workload: top statements by total time")
    demo = sub.add_parser(
        "demo", parents=[common], help="throwaway servers with a real workload, collectors and the app"
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=port, default=8501)
    demo.add_argument("--dir", default="demo-data", help="where the demo keeps its store and config")
    demo.add_argument(
        "--minutes", type=non_negative, default=0, help="stop after this long (default: Ctrl-C)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command in ("collect", "up", "demo") else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Logs and errors go without the secrets the configuration names, whatever path they took
    # (the collectors take them out first; this is for what they did not foresee, tracebacks too).
    # Not stdout: it carries data (status --json), which a short password could mangle.
    secrets: list[str] = []
    secret_filter = SecretFilter(secrets)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(secret_filter)
    stderr = sys.stderr
    sys.stderr = RedactingStream(stderr, secrets)  # type: ignore[assignment]
    try:
        if args.command == "demo":
            from dashboard.demo.run import run_demo

            return run_demo(args)
        if args.command == "advise":
            secrets += [s for s in (password_of(args.dsn),) if s]
            return cmd_advise(args)
        config = config_mod.load(args.config)
        secrets += known_secrets(config)
        return COMMANDS[args.command](args, config)
    except config_mod.ConfigError as err:
        print(f"observatory: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug: its traceback, printed while the secrets are still taken out
        traceback.print_exc()
        return 1
    finally:
        sys.stderr = stderr
        for handler in handlers:
            handler.removeFilter(secret_filter)


def cmd_collect(args: argparse.Namespace, config: config_mod.Config) -> int:
    from collectors.scheduler import Scheduler

    store = _open_store(config)
    scheduler = Scheduler(config, store)
    if not scheduler.collectors:
        print(
            f"observatory: no targets configured in {config.source}: add targets.postgres or targets.redis",
            file=sys.stderr,
        )
        return 2
    if not args.once:
        signal.signal(signal.SIGTERM, lambda *_: scheduler.stop())
        scheduler.run_forever()
        return 0
    failed = 0
    for cycle in scheduler.run_once():
        st = cycle.status
        line = f"{cycle.kind}/{cycle.target}: {st.state} ({cycle.duration_ms:.0f} ms"
        line += f", {len(cycle.deltas)} statements moved)" if st.state != "down" else ")"
        print(
            line if st.state == "ok" else f"{line}: {st.error}",
            file=sys.stdout if st.state == "ok" else sys.stderr,
        )
        for hint in st.hints:
            print(f"  hint: {hint}", file=sys.stderr)
        failed += st.state != "ok"
    for (kind, name), why in scheduler.held_elsewhere.items():
        print(f"{kind}/{name}: not collected: {why}", file=sys.stderr)
    return 1 if failed or scheduler.held_elsewhere else 0


def cmd_status(args: argparse.Namespace, config: config_mod.Config) -> int:
    from dashboard.store.reads import target_statuses

    frame = target_statuses(_open_store(config).engine)
    configured = {("postgres", t.name) for t in config.targets.postgres}
    rows = []
    for r in frame.to_dict("records"):
        rows.append(
            {
                "kind": r["kind"],
                "name": r["name"],
                "configured": (r["kind"], r["name"]) in configured,
                "state": r["state"] or "never collected",
                "last_attempt": _iso(r["last_attempt"]),
                "last_success": _iso(r["last_success"]),
                "last_error": r["last_error"],
                "hints": r["hints"],
                "failures": int(r["failures"] or 0),
                "server_version": r["server_version"],
                "samples": int(r["samples"]),
            }
        )
    seen = {(r["kind"], r["name"]) for r in rows}
    rows += [
        {"kind": k, "name": n, "configured": True, "state": "never collected", "last_attempt": None,
         "last_success": None, "last_error": None, "hints": [], "failures": 0, "server_version": None,
         "samples": 0}
        for k, n in sorted(configured - seen)
    ]  # fmt: skip
    if args.json:
        print(json.dumps({"store": redact(config.store), "targets": rows}, indent=2))
        return 0
    print(f"store: {redact(config.store)}")
    for r in rows:
        print(f"{r['kind']}/{r['name']}: {r['state']}, last success {r['last_success'] or 'never'}, "
              f"{r['samples']} samples")  # fmt: skip
        if r["last_error"]:
            print(f"  error: {r['last_error']}")
        for hint in r["hints"]:
            print(f"  hint: {hint}")
    return 0


def cmd_advise(args: argparse.Namespace) -> int:
    from dashboard.advisor.database import AdviseError, Workload, advise_database
    from dashboard.core.guarded import Refused, check

    for n, query in enumerate(args.query or [], start=1):
        try:
            check(query)  # before connecting: a refused statement never reaches the server
        except Refused as err:
            print(f"observatory advise: --query {n} not advised: {err}", file=sys.stderr)
            return 2
    workload = Workload(min_calls=args.min_calls, min_mean_ms=args.min_mean_ms, limit=args.limit)
    try:
        report = advise_database(
            args.dsn,
            queries=args.query,
            workload=workload,
            allow_privileged=args.allow_privileged,
        )
    except AdviseError as err:
        print(f"observatory advise: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"database {_printable(report['database'])}: {len(report['suggestions'])} suggested indexes")
    for s in report["suggestions"]:
        print(f"\n  {_printable(s['create_sql'])}\n    {_printable(s['reason'])}")
    for skipped in report["skipped"]:
        print(f"\n  skipped: {_printable(skipped['statement'])[:100]}\n    {_printable(skipped['reason'])}")
    if report.get("hint"):
        print(f"\nhint: {report['hint']}")
    for kind, findings in report.get("health", {}).items():
        if isinstance(findings, list) and findings:
            print(f"\n{kind.replace('_', ' ')}: {len(findings)}")
    return 0


def _printable(text: str) -> str:
    """Text from a server on one terminal line: control characters (escape sequences that could
    move the cursor, retitle the window or hide what follows) shown as \\x.. escapes."""
    flat = " ".join(text.split())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)


def cmd_serve(args: argparse.Namespace, config: config_mod.Config) -> int:
    warning = config_mod.exposure_warning(args.host, args.port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    _open_store(config)  # migrate before the first page reads
    command = streamlit_command(args.host, args.port)
    os.execve(command[0], command, _env(config))  # become the app: signals reach it directly


def cmd_up(args: argparse.Namespace, config: config_mod.Config) -> int:
    warning = config_mod.exposure_warning(args.host, args.port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    _open_store(config)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the finally below: stop both children
    children: list[subprocess.Popen[bytes]] = []
    try:  # a SIGTERM between the two starts still stops the first
        children.append(subprocess.Popen([sys.executable, "-m", "dashboard", "collect"], env=_env(config)))
        children.append(subprocess.Popen(streamlit_command(args.host, args.port), env=_env(config)))
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


def streamlit_command(host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip


def _env(config: config_mod.Config) -> dict[str, str]:
    env = dict(os.environ)
    if config.source != "embedded defaults":
        env[config_mod.ENV_FILE] = str(Path(config.source).resolve())
    return env


def _open_store(config: config_mod.Config):
    from dashboard.store import Store

    try:
        return Store(config.store)
    except Exception as err:
        raise config_mod.ConfigError(
            f"store {redact(config.store)}: cannot open: {redact(str(err))}"
        ) from None


def _iso(ts: float | None) -> str | None:
    if ts is None or ts != ts:  # None or NaN from an outer join
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


COMMANDS = {"collect": cmd_collect, "status": cmd_status, "serve": cmd_serve, "up": cmd_up}
