"""Configuration: defaults, and every mistake named by its key with what to write instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.core import config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "observatory.yaml"
    path.write_text(text)
    return path


def test_no_file_gives_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.ENV_FILE, raising=False)
    cfg = config.load()
    assert cfg.store == "sqlite:///observatory.db"
    assert cfg.targets.postgres == []
    assert cfg.retention.raw == 2 * 86400 and cfg.retention.hourly == 90 * 86400
    assert cfg.source == "embedded defaults"


def test_full_file_parses_durations(tmp_path: Path) -> None:
    cfg = config.load(
        write(
            tmp_path,
            """
store: sqlite:///x.db
retention: {raw: 36h, hourly: 30d, daily: 2y}
targets:
  postgres:
    - name: erp-primary
      dsn: postgresql://monitor@db1/erp
      interval: 90s
      statement_timeout: 2500ms
""",
        )
    )
    target = cfg.targets.postgres[0]
    assert (target.interval, target.statement_timeout, target.connect_timeout) == (90, 2.5, 5)
    assert cfg.retention.raw == 36 * 3600 and cfg.retention.hourly == 30 * 86400
    assert cfg.retention.daily == 2 * 365 * 86400  # y: the README writes retention in years


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("targets:\n  postgres:\n    - {name: a, dsn: x, intervall: 60s}\n",
         "targets.postgres[0].intervall: unknown key"),
        ("targets:\n  postgres:\n    - {name: a, dsn: x, interval: soon}\n",
         "targets.postgres[0].interval: 'soon' is not a duration"),
        ("targets:\n  postgres:\n    - {name: a, dsn: x, interval: 0s}\n",
         "targets.postgres[0].interval: a duration must be greater than zero"),
        ("targets:\n  postgres:\n    - {name: a}\n", "targets.postgres[0].dsn: required but missing"),
        ("targets:\n  postgres:\n    - {name: a, dsn: x}\n    - {name: a, dsn: y}\n",
         "two postgres targets are named 'a'"),
        ("targets:\n  mysql: []\n", "targets.mysql: unknown key"),
        ("store: mongodb://x\n", "store: store must be sqlite:///path.db or postgresql+psycopg://"),
        ("retention: {raw: forever}\n", "retention.raw: 'forever' is not a duration"),
        ("retention: {daily: 99999999999999999999d}\n", "retention.daily: retention must be at most 100y"),
        ("retention: {hourly: 1.0e+300}\n", "retention.hourly: retention must be at most 100y"),
        ("targets: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)  # fmt: skip
def test_mistakes_are_named(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="no such configuration file"):
        config.load(tmp_path / "nope.yaml")


def test_environment_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "store: sqlite:///from-env.db\n")
    monkeypatch.setenv(config.ENV_FILE, str(path))
    assert config.load().store == "sqlite:///from-env.db"
