"""Streamlit's caches in front of the analyses: the configuration, the store, and the store's reads.

Pages call the analyses (dashboard.analysis.*) with `reader()`: a Reader whose store reads go
through st.cache_data, keyed by the store's URL and plain values (ids, window bounds, a level), so
entries are shared by every session of the app and a different store (another OBSERVATORY_CONFIG)
never reads another's.

`view` caches what a page builds from those reads (its figures and Chart records) the same way, keyed
also by the configuration file's version, so the figures follow the configuration as it is now
(intervals, retention, configured targets). Where a page's pandas work shows (the Redis page's took
0.15-0.35 s a run, issue 11), it is done once for every session that opens the page in a window.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from dashboard.analysis import pasted
from dashboard.analysis.reader import Reader, Reads, StoreReads
from dashboard.core import config as config_mod
from dashboard.core.advice import AdviceReport, StoredAdvice
from dashboard.core.alerts import Alert
from dashboard.core.details import Details
from dashboard.core.health.chains import BlockingChain
from dashboard.core.records import StatementInfo
from dashboard.store.plan_history import StoredPlan
from dashboard.store.reads import StatementFilter, Window
from dashboard.ui import access

TTL = 30  # seconds: about one collection interval
SETTLED_TTL = 3600  # seconds: figures of a past period (settled_view)
ALERTS_TTL = 10  # seconds: alerts change at every evaluation (30 s by default); a page shows them soon
ENTRIES = 64


T = TypeVar("T")


def config() -> config_mod.Config:
    """$OBSERVATORY_CONFIG, else ./observatory.yaml, else the defaults (raises ConfigError)."""
    return _config(*_config_version())


def _config_version() -> tuple[str | None, int | None]:
    """The configuration file and its mtime: an edited file is another version."""
    explicit = os.environ.get(config_mod.ENV_FILE) or None
    try:
        mtime = os.stat(explicit or config_mod.DEFAULT_FILE).st_mtime_ns
    except OSError:
        mtime = None
    return explicit, mtime


@st.cache_resource(ttl=TTL, max_entries=8, show_spinner=False)
def _config(explicit: str | None, mtime: int | None) -> config_mod.Config:
    # Keyed by the file's mtime: an edited file is read again. Config is frozen, so sharing is safe.
    return config_mod.load(explicit)


def store_url() -> str:
    return config().store


def open_store() -> None:
    """Open the configuration's store once; raises ConfigError or the driver's error."""
    _store(store_url())


def reader() -> Reader:
    """The analyses' reader of the configuration's store, its reads cached."""
    return Reader(CachedReads(store_url()), config())


# -- the store ----------------------------------------------------------------------------------
def _close(store: StoreReads) -> None:
    store.close()


@st.cache_resource(ttl=86400, max_entries=4, on_release=_close, show_spinner=False)
def _store(url: str) -> StoreReads:
    return StoreReads.open(url)


class CachedReads(Reads):
    """The store's reads through st.cache_data; the one StoreReads per store (`_store`) runs them.

    It holds only the store's URL: the store, its engine and closing it are `_store`'s.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    def statuses(self) -> pd.DataFrame:
        return _statuses(self.url)

    def series(
        self,
        ids: Sequence[int],
        names: Sequence[str],
        window: Window,
        level: str,
        intervals: tuple[tuple[int, float], ...] = (),
    ) -> pd.DataFrame:
        return _series(self.url, tuple(ids), tuple(names), window.start, window.end, level, tuple(intervals))

    def statement_totals(
        self, ids: Sequence[int], window: Window, level: str, where: StatementFilter
    ) -> pd.DataFrame:
        return _totals(self.url, tuple(ids), window.start, window.end, level, where)

    def statement_series(self, ids: Sequence[int], window: Window, level: str) -> pd.DataFrame:
        return _statement_series(self.url, tuple(ids), window.start, window.end, level)

    def statement(self, statement_id: int) -> StatementInfo | None:
        return _statement(self.url, int(statement_id))

    def filters(self, ids: Sequence[int]) -> tuple[list[str], list[str]]:
        return _filters(self.url, tuple(ids))

    def advice(self, ids: Sequence[int]) -> list[StoredAdvice]:
        return _advice(self.url, tuple(ids))

    def statement_ids(self, target_id: int, datname: str | None, texts: Sequence[str]) -> dict[str, int]:
        return _statement_ids(self.url, int(target_id), datname, tuple(texts))

    def slowlog(self, ids: Sequence[int], window: Window, limit: int) -> pd.DataFrame:
        return _slowlog(self.url, tuple(ids), window.start, window.end, limit)

    def details(self, target_id: int) -> Details | None:
        return _details(self.url, int(target_id))

    def alerts(self) -> list[Alert]:
        return _alerts(self.url)

    def alert_history(self, window: Window, fingerprint: str | None = None) -> pd.DataFrame:
        return _alert_history(self.url, window.start, window.end, fingerprint)

    def alert_journal(self, key: str) -> str | None:
        return _alert_journal(self.url, key)

    def plan_history(self, target_id: int, datname: str, text: str) -> list[StoredPlan]:
        return _plan_history(self.url, target_id, datname, text)

    def blocking_chains(self, target_id: int, window: Window, limit: int) -> list[BlockingChain]:
        return _blocking_chains(self.url, int(target_id), window.start, window.end, limit)

    def statement_window_totals(self, ids: Sequence[int], window: Window, level: str) -> pd.DataFrame:
        return _statement_window_totals(self.url, tuple(ids), window.start, window.end, level)

    def index_catalog(self, ids: Sequence[int]) -> pd.DataFrame:
        return _index_catalog(self.url, tuple(ids))

    def index_suggestions(self, ids: Sequence[int]) -> pd.DataFrame:
        return _index_suggestions(self.url, tuple(ids))

    def plans_since(self, target_id: int, datname: str, since: int) -> pd.DataFrame:
        return _plans_since(self.url, int(target_id), datname, int(since))

    def alert_states(self, before: int) -> pd.DataFrame:
        return _alert_states(self.url, int(before))


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _statuses(url: str) -> pd.DataFrame:
    return _store(url).statuses()


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _series(url: str, ids: tuple, names: tuple, start: int, end: int, level: str, intervals: tuple):
    return _store(url).series(ids, names, Window(start, end), level, intervals)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _totals(url: str, ids: tuple, start: int, end: int, level: str, where: StatementFilter) -> pd.DataFrame:
    return _store(url).statement_totals(ids, Window(start, end), level, where)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _statement_series(url: str, ids: tuple, start: int, end: int, level: str) -> pd.DataFrame:
    return _store(url).statement_series(ids, Window(start, end), level)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _statement(url: str, statement_id: int) -> StatementInfo | None:
    return _store(url).statement(statement_id)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _filters(url: str, ids: tuple) -> tuple[list[str], list[str]]:
    return _store(url).filters(ids)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _advice(url: str, ids: tuple) -> list[StoredAdvice]:
    return _store(url).advice(ids)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _statement_ids(url: str, target_id: int, datname: str | None, texts: tuple) -> dict[str, int]:
    return _store(url).statement_ids(target_id, datname, texts)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _slowlog(url: str, ids: tuple, start: int, end: int, limit: int) -> pd.DataFrame:
    return _store(url).slowlog(ids, Window(start, end), limit)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _details(url: str, target_id: int) -> Details | None:
    return _store(url).details(target_id)


@st.cache_data(ttl=ALERTS_TTL, max_entries=ENTRIES, show_spinner=False)
def _alerts(url: str) -> list[Alert]:
    return _store(url).alerts()


@st.cache_data(ttl=ALERTS_TTL, max_entries=ENTRIES, show_spinner=False)
def _alert_history(url: str, start: int, end: int, fingerprint: str | None) -> pd.DataFrame:
    return _store(url).alert_history(Window(start, end), fingerprint)


@st.cache_data(ttl=ALERTS_TTL, max_entries=ENTRIES, show_spinner=False)
def _alert_journal(url: str, key: str) -> str | None:
    return _store(url).alert_journal(key)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _plan_history(url: str, target_id: int, datname: str, text: str) -> list[StoredPlan]:
    return _store(url).plan_history(target_id, datname, text)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _blocking_chains(url: str, target_id: int, start: int, end: int, limit: int) -> list[BlockingChain]:
    return _store(url).blocking_chains(target_id, Window(start, end), limit)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _statement_window_totals(url: str, ids: tuple, start: int, end: int, level: str) -> pd.DataFrame:
    return _store(url).statement_window_totals(ids, Window(start, end), level)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _index_catalog(url: str, ids: tuple) -> pd.DataFrame:
    return _store(url).index_catalog(ids)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _index_suggestions(url: str, ids: tuple) -> pd.DataFrame:
    return _store(url).index_suggestions(ids)


@st.cache_data(ttl=TTL, max_entries=ENTRIES, show_spinner=False)
def _plans_since(url: str, target_id: int, datname: str, since: int) -> pd.DataFrame:
    return _store(url).plans_since(target_id, datname, since)


@st.cache_data(ttl=ALERTS_TTL, max_entries=ENTRIES, show_spinner=False)
def _alert_states(url: str, before: int) -> pd.DataFrame:
    return _store(url).alert_states(before)


# -- what a page builds from the reads ----------------------------------------------------------
def view(build: Callable[..., T]) -> Callable[..., T]:
    """`build(reader(), *args)` made once for every session per store, configuration version and
    arguments (plain values, Target, Window), kept TTL seconds like the reads under it. What `build`
    returns is pickled: records of importable modules (DataFrames, Chart, NamedTuples of
    dashboard.analysis), never a class defined in a page script."""
    name = f"{build.__code__.co_filename}:{build.__qualname__}"  # two pages may name a builder alike

    def call(*args: Any) -> T:
        return _view(name, store_url(), _config_version(), build, *args)

    return call


@st.cache_data(ttl=TTL, max_entries=ENTRIES * 4, show_spinner=False)
def _view(name: str, url: str, version: tuple, _build: Callable[..., Any], *args: Any) -> Any:
    # `_build` is not hashed: `name` stands for it.
    return _build(reader(), *args)


def settled_view(build: Callable[..., T]) -> Callable[..., T]:
    """`view` for figures of a time that is over (a past week's review): they change only as
    retention thins the store, so they are kept SETTLED_TTL instead of TTL, and a returning user
    does not wait for them again every 30 s."""
    name = f"{build.__code__.co_filename}:{build.__qualname__}"

    def call(*args: Any) -> T:
        return _settled_view(name, store_url(), _config_version(), build, *args)

    return call


@st.cache_data(ttl=SETTLED_TTL, max_entries=ENTRIES, show_spinner=False)
def _settled_view(name: str, url: str, version: tuple, _build: Callable[..., Any], *args: Any) -> Any:
    return _build(reader(), *args)


# -- advising on a pasted statement -------------------------------------------------------------
def advise_pasted(target: str, datname: str, statement: str) -> AdviceReport:
    """pasted.advise_pasted: the statement is checked first, then advised on (cached 5 minutes)."""
    access.require_sql(config())  # the page's guard hides the box; this holds if a page forgets
    return pasted.advise_pasted(config(), target, datname, statement, advise=_advise)


@st.cache_data(ttl=300, max_entries=32, show_spinner="Asking the planner ...")
def _advise(_config: config_mod.Config, target: str, datname: str, statement: str) -> AdviceReport:
    # Keyed by the target's name, the database and the statement (`_config` is not hashed).
    return pasted.advise_checked(_config, target, datname, statement)


# -- explaining a statement (Investigate) ---------------------------------------------------------
EXPLAIN_TTL = 60  # seconds: a plan is a moment's; the same request within a minute is answered again


def explain(target: str, datname: str, text: str, analyze: bool, values: tuple[str, ...] | None):
    """investigate.explain of these inputs in `datname` of the configured target `target` (an
    Explained). An estimated plan is answered from the cache for a minute, so a second session
    does not make the server plan it again; EXPLAIN ANALYZE runs on every click, since its times
    are what was asked for (the page keeps the result across reruns)."""
    access.require_sql(config())
    if analyze:
        from dashboard.analysis import investigate

        return investigate.explain(config(), target, datname, investigate.request(text, analyze, values))
    return _explain(config(), _config_version(), target, datname, text, analyze, values)


@st.cache_data(ttl=EXPLAIN_TTL, max_entries=32, show_spinner="Asking the server for the plan ...")
def _explain(_config: config_mod.Config, version: tuple, target: str, datname: str, text: str, analyze: bool,
             values: tuple[str, ...] | None):  # fmt: skip
    # Keyed by the configuration's version, the target's name, the database and the request
    # (`_config` is not hashed). Imported here: only the Investigate page pays for dashboard.plans.
    from dashboard.analysis import investigate

    return investigate.explain(_config, target, datname, investigate.request(text, analyze, values))


def sample_values(target: str, datname: str, text: str) -> tuple[str | None, ...]:
    """investigate.sample_values (raises ValueError with the reason), cached 5 minutes."""
    access.require_sql(config())
    return _sample_values(config(), _config_version(), target, datname, text)


@st.cache_data(ttl=300, max_entries=32, show_spinner="Reading the columns' statistics ...")
def _sample_values(_config: config_mod.Config, version: tuple, target: str, datname: str, text: str):
    from dashboard.analysis import investigate

    return investigate.sample_values(_config, target, datname, text)
