"""Running `observatory` as a user would: a subprocess, its output captured as text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def env_without_config() -> dict[str, str]:
    """This environment less OBSERVATORY_CONFIG, so that a command reads only the configuration the
    test gives it (or none)."""
    return {k: v for k, v in os.environ.items() if k != "OBSERVATORY_CONFIG"}


def observatory(
    *args: str, config: Path | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """`python -m dashboard *args` in `env` (by default env_without_config()), with OBSERVATORY_CONFIG
    naming `config` if given."""
    env = env_without_config() if env is None else dict(env)
    if config is not None:
        env["OBSERVATORY_CONFIG"] = str(config)
    return subprocess.run(
        [sys.executable, "-m", "dashboard", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
