"""`observatory serve` (the app) and `observatory up` (the collector daemon and the app)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dashboard.cli.common import open_store
from dashboard.core import config as config_mod

APP = Path(__file__).parent.parent / "app.py"


def serve(args: argparse.Namespace, config: config_mod.Config) -> int:
    warning = config_mod.exposure_warning(args.host, args.port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    open_store(config)  # migrate before the first page reads
    command = streamlit_command(args.host, args.port)
    os.execve(command[0], command, _env(config))  # become the app: signals reach it directly


def up(args: argparse.Namespace, config: config_mod.Config) -> int:
    warning = config_mod.exposure_warning(args.host, args.port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    open_store(config)
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
