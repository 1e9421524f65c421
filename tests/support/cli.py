"""Running `observatory` as a user would: a subprocess, its output captured as text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def observatory(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dashboard", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
