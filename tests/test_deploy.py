"""The systemd units in deploy/systemd: systemd's own checker accepts them (with the install path
pointed at this checkout, so their ExecStart exists), and they run what the README says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))


def _verify(folder: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: apt-get install systemd"
    return subprocess.run([tool, "verify", *map(str, folder.glob("*.service"))], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def _installed(tmp_path: Path, edit=lambda text: text) -> Path:
    """The units as installed with the checkout at /opt/observatory."""
    for unit in UNITS:
        (tmp_path / unit.name).write_text(edit(unit.read_text().replace("/opt/observatory", str(ROOT))))
    return tmp_path


def test_the_units_pass_systemds_checker(tmp_path: Path) -> None:
    assert [u.name for u in UNITS] == ["observatory-app.service", "observatory-collect.service"]
    done = _verify(_installed(tmp_path))
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_the_checker_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The check is not vacuous: a misspelt key and a missing program are reported."""
    broken = _installed(tmp_path, lambda t: t.replace("Restart=", "Restrat=").replace("/.venv/", "/nowhere/"))
    done = _verify(broken)
    assert done.returncode != 0 and "Restrat" in done.stderr and "not executable" in done.stderr


@pytest.mark.parametrize(
    ("unit", "command"),
    [
        ("observatory-collect.service", "observatory collect"),
        ("observatory-app.service", "observatory serve --host 127.0.0.1 --port 8501"),
    ],
)
def test_the_units_restart_on_failure_and_run_the_documented_command(unit: str, command: str) -> None:
    text = (ROOT / "deploy" / "systemd" / unit).read_text()
    assert f"ExecStart=/opt/observatory/.venv/bin/{command}\n" in text
    assert "Restart=on-failure\n" in text and "User=observatory\n" in text
    assert "EnvironmentFile=-/etc/observatory/secrets.env\n" in text  # secrets out of the config file
    assert f"deploy/systemd/{unit}" in (ROOT / "README.md").read_text()
