"""Hostile statements against a real PostgreSQL, through every door a person can use: the advisor's
API (what the daemon runs on recorded statements), `observatory advise --query` and the Indexes
page's paste box. Whatever the text, nothing is written, no program runs, no session is killed, no
file is read out, every case ends within 20 s and nothing ends in a traceback.

The corpus and the trapped database are in tests/support/hostile.py; the session itself is tested
in test_guarded_sql_session.py, the statement check and the analysis' bounds in
test_guarded_sql_statement.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard.advisor.database import advice_report
from dashboard.core.advice import AdviceReport
from dashboard.store import Store
from tests.support.apptest import no_exception, open_page
from tests.support.hostile import CASES, CLI_CASES, LIMIT_S, PASTE_CASES, Case, expect, reason_of, unescaped
from tests.support.stores import collect_once, make_config


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_advisor_api(case: Case, trapped: dict, unchanged: None) -> None:
    """What the daemon runs on each recorded statement."""
    report = advice_report(trapped["dsn"], queries=[case.sql], health=False)
    expect(case, reason_of(report))


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_the_cli(case: Case, trapped: dict, unchanged: None) -> None:
    query: str | bytes = case.sql
    if case.id == "not-utf8":
        query = b"select '\xff'"  # what a shell hands over; Python sees '\udcff'
    done = subprocess.run(
        [sys.executable, "-m", "dashboard", "advise", "--dsn", trapped["dsn"], "--json", "--query", query],
        capture_output=True, text=True, timeout=LIMIT_S, errors="replace",
    )  # fmt: skip
    assert "Traceback" not in done.stderr
    if case.outcome == "refused":
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.splitlines()
        prefix = "observatory advise: --query 1 not advised: "
        assert line.startswith(prefix) and re.search(case.reason, line.removeprefix(prefix)), line
        return
    assert done.returncode == 0, done.stderr
    expect(case, reason_of(AdviceReport.from_stored(done.stdout)))


def test_the_cli_prints_no_terminal_escapes(trapped: dict) -> None:
    query = "select 1 /* \x1b]0;owned\x07\x1b[2J */"  # skipped: the statement is printed
    done = subprocess.run(
        [sys.executable, "-m", "dashboard", "advise", "--dsn", trapped["dsn"], "--query", query],
        capture_output=True, text=True, timeout=LIMIT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\\x1b]0;owned\\x07" in done.stdout


@pytest.fixture(scope="module")
def paste_config(trapped: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store that knows the target (the paste box offers the databases of collected targets)."""
    folder = tmp_path_factory.mktemp("paste")
    url = f"sqlite:///{folder / 'store.db'}"
    store = Store(url)
    collect_once(make_config(url, [{"name": "hostile", "dsn": trapped["dsn"]}]), store)
    store.close()
    config = folder / "observatory.yaml"
    config.write_text(
        f"store: {url}\ntargets:\n  postgres:\n    - name: hostile\n      dsn: {trapped['dsn']}\n"
    )
    return config


@pytest.mark.parametrize("case", PASTE_CASES, ids=[c.id for c in PASTE_CASES])
def test_the_paste_box(
    case: Case, paste_config: Path, monkeypatch: pytest.MonkeyPatch, unchanged: None
) -> None:
    at = open_page(monkeypatch, paste_config, "indexes", timeout=LIMIT_S)
    at.session_state["paste_open"] = True  # the paste box's form is drawn once its expander is opened
    at.run()
    at.text_area[0].input(case.sql)
    (submit,) = [b for b in at.button if b.label == "Advise"]
    submit.click().run()
    no_exception(at)
    shown = {"refused": at.error, "unsafe": at.info}.get(case.outcome)
    if shown is None:  # planned: no error; the planner's reason or a suggestion shows
        assert not at.error, [e.value for e in at.error]
        return
    texts = [unescaped(e.value) for e in shown]
    prefix = "Not advised: " if case.outcome == "refused" else "No index suggested: not planned: "
    assert any(t.startswith(prefix) and re.search(case.reason, t.removeprefix(prefix)) for t in texts), texts
