"""`observatory` (also `python -m dashboard`): run the collectors, the app, or ask for status."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dashboard import config as config_mod
from dashboard.redaction import redact

APP = Path(__file__).with_name("app.py")
log = logging.getLogger("observatory")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="observatory", description=__doc__)
    p.add_argument(
        "-c", "--config", help="configuration file (default: $OBSERVATORY_CONFIG or ./observatory.yaml)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every cycle")
    sub = p.add_subparsers(dest="command", required=True)
    collect = sub.add_parser("collect", help="run the collector daemon")
    collect.add_argument("--once", action="store_true", help="one cycle of every target, then exit")
    for name, help_text in (
        ("serve", "run the dashboard"),
        ("up", "run the collector daemon and the dashboard"),
    ):
        s = sub.add_parser(name, help=help_text)
        s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        s.add_argument("--port", type=int, default=8501)
    status = sub.add_parser("status", help="per target: state, last success, last error, samples")
    status.add_argument("--json", action="store_true")
    advise = sub.add_parser("advise", help="suggest indexes for one database and check its index health")
    advise.add_argument("--dsn", required=True, help="the database to advise on (read-only session)")
    advise.add_argument("--query", action="append", help="advise on this statement instead (repeatable)")
    advise.add_argument("--json", action="store_true")
    advise.add_argument(
        "--min-calls", type=int, default=10, help="workload: statements called at least this often"
    )
    advise.add_argument("--min-mean-ms", type=float, default=1.0, help="workload: mean time at least this")
    advise.add_argument("--limit", type=int, default=100, help="workload: top statements by total time")
    demo = sub.add_parser("demo", help="throwaway servers with a real workload, collectors and the app")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8501)
    demo.add_argument("--dir", default="demo-data", help="where the demo keeps its store and config")
    demo.add_argument("--minutes", type=float, default=0, help="stop after this long (default: Ctrl-C)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command in ("collect", "up", "demo") else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "demo":
            from dashboard.demo import run_demo

            return run_demo(args)
        if args.command == "advise":
            return cmd_advise(args)
        config = config_mod.load(args.config)
        return COMMANDS[args.command](args, config)
    except config_mod.ConfigError as err:
        print(f"observatory: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


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
    return 1 if failed else 0


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

    workload = Workload(min_calls=args.min_calls, min_mean_ms=args.min_mean_ms, limit=args.limit)
    try:
        report = advise_database(args.dsn, queries=args.query, workload=workload)
    except AdviseError as err:
        print(f"observatory advise: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"database {report['database']}: {len(report['suggestions'])} suggested indexes")
    for s in report["suggestions"]:
        print(f"\n  {s['create_sql']}\n    {s['reason']}")
    for skipped in report["skipped"]:
        print(f"\n  skipped: {skipped['statement'][:100]}\n    {skipped['reason']}")
    if report.get("hint"):
        print(f"\nhint: {report['hint']}")
    for kind, findings in report.get("health", {}).items():
        if isinstance(findings, list) and findings:
            print(f"\n{kind.replace('_', ' ')}: {len(findings)}")
    return 0


def cmd_serve(args: argparse.Namespace, config: config_mod.Config) -> int:
    _open_store(config)  # migrate before the first page reads
    command = streamlit_command(args.host, args.port)
    os.execve(command[0], command, _env(config))  # become the app: signals reach it directly


def cmd_up(args: argparse.Namespace, config: config_mod.Config) -> int:
    _open_store(config)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the finally below: stop both children
    collector = subprocess.Popen([sys.executable, "-m", "dashboard", "collect"], env=_env(config))
    app = subprocess.Popen(streamlit_command(args.host, args.port), env=_env(config))
    print(f"observatory: collecting, and serving on http://{args.host}:{args.port}", file=sys.stderr)
    try:
        while collector.poll() is None and app.poll() is None:
            time.sleep(0.5)
    finally:
        for proc in (app, collector):
            if proc.poll() is None:
                proc.terminate()
        for proc in (app, collector):
            proc.wait(timeout=15)
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
