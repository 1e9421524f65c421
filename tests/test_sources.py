"""The source registry (dashboard.core.sources) is the one place a source is registered: the config's
`Targets` names the same kinds, every page it lists exists, every secret field of every target model
is kept out of the logs, and `observatory collect` names every source when none is configured."""

from __future__ import annotations

import argparse
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from dashboard.cli import collect
from dashboard.core import config as config_mod
from dashboard.core import sources
from dashboard.core.config import Secret, Targets, secret_fields
from dashboard.core.redaction import known_secrets

APP_FOLDER = Path(__file__).resolve().parents[1] / "dashboard"
# A field whose name says it names or holds a secret must be marked with config.Secret.
SECRET_NAME = re.compile(r"pass|token|secret|credential|dsn|url", re.I)
# A URL field takes the first that its model accepts: the password sits where every scheme keeps it.
SCHEMES = ("postgresql", "redis", "https")


def test_targets_and_the_registry_name_the_same_sources() -> None:
    assert list(Targets.model_fields) == [source.kind for source in sources.SOURCES]
    for source in sources.SOURCES:
        assert typing.get_args(Targets.model_fields[source.kind].annotation) == (source.config,)


def test_every_registered_page_exists() -> None:
    for page in sources.pages():
        assert (APP_FOLDER / page.script).resolve().is_file(), page.script


def test_names_are_unique_in_every_source() -> None:
    for source in sources.SOURCES:
        target = _target(source.config, {})
        with pytest.raises(config_mod.ConfigError, match=f"two {source.kind} targets are named 'x'"):
            config_mod.from_dict({"targets": {source.kind: [target, target]}})


@pytest.mark.parametrize("model", [config_mod.Config, *(s.config for s in sources.SOURCES)])
def test_fields_named_like_secrets_are_marked(model: type[BaseModel]) -> None:
    named = {name for name in model.model_fields if SECRET_NAME.search(name)}
    assert named - set(secret_fields(model)) == set(), "mark them with config.Secret"


def test_every_secret_field_of_every_source_is_kept_out_of_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A target of each source with a secret in each of its secret fields: known_secrets finds them all."""
    expected: list[str] = []
    targets: dict[str, list[dict]] = {}
    for source in sources.SOURCES:
        marked = secret_fields(source.config)
        assert marked, f"{source.kind}: no field marked with config.Secret"
        values: dict[str, str] = {}
        for field, how in marked.items():
            secret = f"S3cret-{source.kind}-{field}"
            expected.append(secret)
            if how is Secret.ENV:
                variable = f"OBSERVATORY_TEST_{source.kind}_{field}".upper()
                monkeypatch.setenv(variable, secret)
                values[field] = variable
            else:
                values[field] = secret
        targets[source.kind] = [_target(source.config, values)]
    store_secret = "S3cret-store"
    config = config_mod.from_dict(
        {"store": f"postgresql://observatory:{store_secret}@127.0.0.1/store", "targets": targets}
    )
    found = known_secrets(config)
    assert [s for s in [store_secret, *expected] if s not in found] == []


def test_no_targets_names_every_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_mod.from_dict({"store": f"sqlite:///{tmp_path / 'store.db'}"})
    assert collect.run(argparse.Namespace(once=True), config) == 2
    message = capsys.readouterr().err
    assert all(f"targets.{source.kind}" in message for source in sources.SOURCES), message


def _target(model: type[BaseModel], secrets: dict[str, str]) -> dict:
    """A valid target of `model` named "x": `secrets` are variable names for the Secret.ENV fields and
    passwords for the Secret.URL ones, which get a URL of the first scheme the model accepts."""
    urls = [name for name, how in secret_fields(model).items() if how is Secret.URL]
    data = {"name": "x", **{k: v for k, v in secrets.items() if k not in urls}}
    for scheme in SCHEMES:
        password = {name: secrets.get(name, "pw") for name in urls}
        candidate = data | {name: f"{scheme}://monitor:{password[name]}@127.0.0.1:1/x" for name in urls}
        try:
            model.model_validate(candidate)
        except ValidationError:
            continue
        return candidate
    raise AssertionError(f"{model.__name__}: no target could be built; extend _target for it")
