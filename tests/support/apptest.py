"""The app through Streamlit's AppTest: the real entrypoint and page scripts, in-process.

The store is chosen the way `observatory serve` chooses it, through $OBSERVATORY_CONFIG.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from dashboard.core import sources
from dashboard.core.access import EXPOSED_ENV

# AppTest.from_file resolves a relative path against the calling file's folder: give it no choice.
APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def page_file(name: str) -> str:
    """A page script (pages/<name>.py) as `switch_page` takes it: as the registry names it, relative
    to the entrypoint's folder."""
    return sources.page(name).script


class _ServerAddress:
    """Streamlit's server.address option as an attribute, so monkeypatch sets it and puts it back."""

    @property
    def value(self) -> str | None:
        return st_config.get_option("server.address")

    @value.setter
    def value(self, address: str | None) -> None:
        st_config.set_option("server.address", address)


SERVER_ADDRESS = _ServerAddress()


def new_app(
    monkeypatch: pytest.MonkeyPatch, config_file: str | Path, *, timeout: float = 30, exposed: bool = False
) -> AppTest:
    """The app on the store the config names, not yet run, with fresh caches (keys are per store,
    but the engine of a deleted temp store must not outlive its test)."""
    monkeypatch.setenv("OBSERVATORY_CONFIG", str(config_file))
    # Where the app listens, as `observatory serve --host` tells Streamlit: 127.0.0.1, or (exposed)
    # every interface; $OBSERVATORY_EXPOSED can only add exposure, so it is left out.
    monkeypatch.setattr(SERVER_ADDRESS, "value", "0.0.0.0" if exposed else "127.0.0.1")
    monkeypatch.delenv(EXPOSED_ENV, raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    return AppTest.from_file(APP, default_timeout=timeout)


def open_app(monkeypatch: pytest.MonkeyPatch, config_file: str | Path, **params: str | list[str]) -> AppTest:
    """The entry page, run once, with these URL query parameters."""
    at = new_app(monkeypatch, config_file)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def open_page(
    monkeypatch: pytest.MonkeyPatch,
    config_file: str | Path,
    page: str,
    *,
    timeout: float = 30,
    exposed: bool = False,
    **params: str,
) -> AppTest:
    """The app run once, then `page` (a pages/ script name, e.g. "indexes") with these URL query
    parameters."""
    at = new_app(monkeypatch, config_file, timeout=timeout, exposed=exposed).run()
    at.switch_page(page_file(page))
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


SPEC = re.compile(r"<script type='application/json' id='spec'>(.*?)</script>", re.S)


def charts(at: AppTest) -> list[dict]:
    """The charts the run drew (dashboard/ui/plots.py), every frame's in page order: each a dict of
    charts.Chart's fields as charts.js receives them."""
    found = []
    for frame in at.get("iframe"):
        match = SPEC.search(frame.proto.srcdoc)
        if match:  # not a SQL block
            found += json.loads(match.group(1))["charts"]
    return found


SQL = re.compile(r"<pre id='sql'>(.*?)</pre>", re.S)


def sql_blocks(at: AppTest) -> list[str]:
    """The statements the run showed (dashboard/ui/sql_block.py), as written."""
    found = [SQL.search(frame.proto.srcdoc) for frame in at.get("iframe")]
    return [html.unescape(m.group(1)) for m in found if m]


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def texts(elements) -> str:
    """The values of a run's elements of one kind (at.info, at.markdown ...), one a line."""
    return "\n".join(str(e.value) for e in elements)


def empty_store_config(folder: Path, rest: str = "") -> Path:
    """An observatory.yaml in `folder` naming an existing but empty SQLite file, as a fresh
    `touch store.db` leaves it, then `rest` (more YAML: targets ...)."""
    store = folder / "empty.db"
    store.touch()
    config_file = folder / "observatory.yaml"
    config_file.write_text(f"store: sqlite:///{store}\n{rest}")
    return config_file
