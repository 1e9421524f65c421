"""`observatory` (also `python -m dashboard`): run the collectors, the app, or ask for status.

One module per command under dashboard/cli/; this one parses the command line, takes the
configuration's secrets out of every log line and error, and dispatches.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import traceback
from collections.abc import Callable, Sequence

from dashboard.cli import advise, alerts, collect, explain, health, report, serve, status
from dashboard.core import config as config_mod
from dashboard.core.redaction import RedactingStream, SecretFilter, known_secrets, password_of

log = logging.getLogger("observatory")
COMMANDS = {
    "collect": collect.run,
    "status": status.run,
    "alerts": alerts.run,
    "health": health.run,
    "report": report.run,
    "serve": serve.serve,
    "up": serve.up,
}


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
    alerts_cmd = sub.add_parser(
        "alerts",
        parents=[common],
        help="alerts firing and pending now; `alerts check FILE` checks rule files",
    )
    alerts_cmd.add_argument("action", nargs="?", choices=["check"], help="check rule files")
    alerts_cmd.add_argument("files", nargs="*", metavar="FILE", help="rule files to check")
    alerts_cmd.add_argument("--json", action="store_true")
    health_cmd = sub.add_parser(
        "health", parents=[common], help="a PostgreSQL target's health findings with their fixes"
    )
    health_cmd.add_argument("--target", required=True, help="the PostgreSQL target's name")
    health_cmd.add_argument("--json", action="store_true")
    report.define(sub, common)
    advise = sub.add_parser(
        "advise", parents=[common], help="suggest indexes for one database and check its index health"
    )
    advise.add_argument("--dsn", required=True, help="the database to advise on (read-only session)")
    advise.add_argument("--query", action="append", help="advise on this statement instead (repeatable)")
    advise.add_argument(
        "--query-file",
        action="append",
        metavar="PATH",
        help="advise on this file's statements, split by PostgreSQL's parser; - reads stdin (repeatable)",
    )
    advise.add_argument(
        "--fail-on-suggestion", action="store_true", help="exit 1 when an index is suggested (for CI)"
    )
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
    explain_cmd = sub.add_parser(
        "explain", parents=[common], help="a statement's plan, the node that costs the time, and findings"
    )
    explain_cmd.add_argument("--dsn", required=True, help="the database to explain in (read-only session)")
    given = explain_cmd.add_mutually_exclusive_group(required=True)
    given.add_argument("--query", help="the statement")
    given.add_argument("--query-file", metavar="PATH", help="a file holding one statement; - reads stdin")
    explain_cmd.add_argument(
        "--analyze", action="store_true", help="run it (EXPLAIN ANALYZE, in a transaction rolled back)"
    )
    explain_cmd.add_argument(
        "--writes", action="store_true", help="with --analyze: allow a statement that writes (rolled back)"
    )
    explain_cmd.add_argument(
        "--value", action="append", metavar="V", help="a value for $1, $2 ... in order (repeatable; NULL)"
    )
    explain_cmd.add_argument(
        "--sample-values", action="store_true", help="fill $1, $2 ... from pg_stats' most common values"
    )
    explain_cmd.add_argument(
        "--timeout", type=non_negative, default=10.0, help="seconds before the server cancels it (default 10)"
    )
    explain_cmd.add_argument("--no-index", action="store_true", help="skip the advisor's before/after index")
    explain_cmd.add_argument(
        "--json", action="store_true", help="the plan file (loads back in the app) and the findings"
    )
    explain_cmd.add_argument(
        "--allow-privileged",
        action="store_true",
        help="explain even as a superuser or a role that may run programs, touch files or end sessions",
    )
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

            return run_demo(args, serve.streamlit_command(args.host, args.port))
        if args.command == "alerts" and args.action == "check":  # needs no configuration
            return alerts.check(args.files)
        if args.command in ("advise", "explain"):  # a DSN, no configuration
            secrets += [s for s in (password_of(args.dsn),) if s]
            return advise.run(args) if args.command == "advise" else explain.run(args)
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
