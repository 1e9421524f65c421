"""What the analyses read: one store under one configuration. Nothing here writes.

`Reads` is what the analyses ask of a store, with plain values in (ids, a window, a level), so a
cache in front of it (dashboard.ui.cached.CachedReads) can key its entries by the store's URL and
those values; `StoreReads` answers it with the store's queries (dashboard.store.reads). `Reader` adds
what the configuration says: which targets are configured, how often each is collected (the covered
width of a bucket) and how long each level is kept (the level a window is read at).

A store nobody has written yet (a new SQLite file, a PostgreSQL database without the schema) reads
as an empty store: the pages say "No data yet" and the CLI lists the configured targets. The schema
is created by the writer (`observatory collect`, `serve`, `up`), never by a reader.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import pandas as pd
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool

from dashboard.analysis.targets import Target, merge_statuses
from dashboard.core import sources
from dashboard.core.advice import StoredAdvice
from dashboard.core.alerts import Alert
from dashboard.core.config import Config
from dashboard.core.details import Details
from dashboard.core.health.chains import BlockingChain
from dashboard.core.records import StatementInfo
from dashboard.store import alerting, plan_history, reads
from dashboard.store.engine import make_engine, missing_sqlite_file
from dashboard.store.migrations import current_version, refuse_newer
from dashboard.store.plan_history import StoredPlan
from dashboard.store.reads import StatementFilter, Window
from dashboard.store.schema import metadata

ALERT_TABLES_SINCE = 2  # the store's schema version that added them
PLAN_HISTORY_SINCE = 3  # ... that added statement_plans
BLOCKING_CHAINS_SINCE = 4  # ... that added blocking_chains
INDEX_HISTORY_SINCE = 5  # ... that added index_catalog and index_suggestions
LEASES_SINCE = 7  # ... that added leases


class Reads(Protocol):
    """The store's reads the analyses make (StoreReads documents each)."""

    def statuses(self) -> pd.DataFrame: ...
    def series(
        self,
        ids: Sequence[int],
        names: Sequence[str],
        window: Window,
        level: str,
        intervals: tuple[tuple[int, float], ...] = (),
    ) -> pd.DataFrame: ...
    def statement_totals(
        self, ids: Sequence[int], window: Window, level: str, where: StatementFilter
    ) -> pd.DataFrame: ...
    def statement_series(self, ids: Sequence[int], window: Window, level: str) -> pd.DataFrame: ...
    def statement(self, statement_id: int) -> StatementInfo | None: ...
    def filters(self, ids: Sequence[int]) -> tuple[list[str], list[str]]: ...
    def advice(self, ids: Sequence[int]) -> list[StoredAdvice]: ...
    def statement_ids(self, target_id: int, datname: str | None, texts: Sequence[str]) -> dict[str, int]: ...
    def slowlog(self, ids: Sequence[int], window: Window, limit: int) -> pd.DataFrame: ...
    def details(self, target_id: int) -> Details | None: ...
    def alerts(self) -> list[Alert]: ...
    def alert_history(self, window: Window, fingerprint: str | None = None) -> pd.DataFrame: ...
    def alert_journal(self, key: str) -> str | None: ...
    def plan_history(self, target_id: int, datname: str, text: str) -> list[StoredPlan]: ...
    def blocking_chains(self, target_id: int, window: Window, limit: int) -> list[BlockingChain]: ...
    def statement_window_totals(self, ids: Sequence[int], window: Window, level: str) -> pd.DataFrame: ...
    def index_catalog(self, ids: Sequence[int]) -> pd.DataFrame: ...
    def index_suggestions(self, ids: Sequence[int]) -> pd.DataFrame: ...
    def plans_since(self, target_id: int, datname: str, since: int) -> pd.DataFrame: ...
    def alert_states(self, before: int) -> pd.DataFrame: ...


class StoreReads(Reads):
    """The store's reads on a read-only engine; an empty store's answers until it has a schema."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ready = False
        self._version = 0

    @classmethod
    def open(cls, url: str) -> StoreReads:
        """The store at `url`, connected once: a store that cannot be read raises the driver's error,
        one newer than this observatory SchemaError."""
        store = cls(make_engine(url, readonly=True))
        try:
            store.ready  # noqa: B018 -- connects: an unreachable server or a file that is not a store
        except Exception:
            store.close()
            raise
        return store

    def close(self) -> None:
        self._engine.dispose()

    @property
    def ready(self) -> bool:
        """Whether the store has its schema (checked until it has: a collector may create it later).
        A SQLite file that does not exist yet is not opened: connecting would create it."""
        if not self._ready and not missing_sqlite_file(self._engine.url):
            with self._engine.connect() as conn:
                found = current_version(conn)
            refuse_newer(found)
            self._ready = found is not None
            self._version = found or 0
        return self._ready

    @property
    def engine(self) -> Engine:
        return self._engine if self.ready else _empty_store()

    @property
    def _alert_engine(self) -> Engine:
        """The store once it has the alert tables (version 2: a daemon of this version ran)."""
        return self._since(ALERT_TABLES_SINCE)

    def _since(self, version: int) -> Engine:
        """The store once its schema is at `version` (a daemon that new migrated it), else the empty
        store. Looked up again while it is older: the daemon may migrate it while the app runs."""
        if self.ready and self._version < version:
            with self._engine.connect() as conn:
                self._version = current_version(conn) or 0
        return self._engine if self.ready and self._version >= version else _empty_store()

    def alerts(self) -> list[Alert]:
        """Every alert pending or firing as of the daemon's last evaluation."""
        return alerting.active(self._alert_engine)

    def alert_history(self, window: Window, fingerprint: str | None = None) -> pd.DataFrame:
        return alerting.history(self._alert_engine, window.start, window.end, fingerprint)

    def alert_journal(self, key: str) -> str | None:
        with self._alert_engine.connect() as conn:
            return alerting.journal(conn, key)

    def plan_history(self, target_id: int, datname: str, text: str) -> list[StoredPlan]:
        """plan_history.plan_history: the statement's plan shapes, newest first (none before version 3)."""
        return plan_history.plan_history(self._since(PLAN_HISTORY_SINCE), target_id, datname, text)

    def blocking_chains(self, target_id: int, window: Window, limit: int) -> list[BlockingChain]:
        """reads.blocking_chains: the chains kept in the window, latest first (none before version 4)."""
        return reads.blocking_chains(self._since(BLOCKING_CHAINS_SINCE), target_id, window, limit)

    def statuses(self) -> pd.DataFrame:
        """reads.target_statuses: one row per target the store holds, with `collected_by`, the
        daemon holding its lease (None before a daemon took it)."""
        frame = reads.target_statuses(self.engine)
        frame["collected_by"] = frame["target_id"].map(reads.lease_holders(self._since(LEASES_SINCE)))
        return frame

    def series(
        self,
        ids: Sequence[int],
        names: Sequence[str],
        window: Window,
        level: str,
        intervals: tuple[tuple[int, float], ...] = (),
    ) -> pd.DataFrame:
        """reads.series_frame; `intervals` are (target id, seconds) pairs for the covered widths."""
        return reads.series_frame(self.engine, ids, names, window, level, dict(intervals))

    def statement_totals(
        self, ids: Sequence[int], window: Window, level: str, where: StatementFilter
    ) -> pd.DataFrame:
        """reads.statement_totals of the statements `where` picks."""
        return reads.statement_totals(self.engine, ids, window, level, **where._asdict())

    def statement_series(self, ids: Sequence[int], window: Window, level: str) -> pd.DataFrame:
        return reads.statement_series(self.engine, ids, window, level)

    def statement(self, statement_id: int) -> StatementInfo | None:
        return reads.statement_info(self.engine, statement_id)

    def filters(self, ids: Sequence[int]) -> tuple[list[str], list[str]]:
        return reads.statement_filters(self.engine, ids)

    def advice(self, ids: Sequence[int]) -> list[StoredAdvice]:
        return reads.latest_advice(self.engine, ids)

    def statement_ids(self, target_id: int, datname: str | None, texts: Sequence[str]) -> dict[str, int]:
        return reads.statement_ids_by_text(self.engine, target_id, texts, datname=datname)

    def slowlog(self, ids: Sequence[int], window: Window, limit: int) -> pd.DataFrame:
        return reads.slowlog_entries(self.engine, ids, window, limit)

    def details(self, target_id: int) -> Details | None:
        return reads.target_details(self.engine, target_id)

    def statement_window_totals(self, ids: Sequence[int], window: Window, level: str) -> pd.DataFrame:
        """reads.statement_window_totals: every statement that ran in the window, with its spread."""
        return reads.statement_window_totals(self.engine, ids, window, level)

    def index_catalog(self, ids: Sequence[int]) -> pd.DataFrame:
        """reads.index_catalog_rows: every index the catalog reads saw (none before version 5)."""
        return reads.index_catalog_rows(self._since(INDEX_HISTORY_SINCE), ids)

    def index_suggestions(self, ids: Sequence[int]) -> pd.DataFrame:
        """reads.index_suggestion_rows: every index the advisor suggested (none before version 5)."""
        return reads.index_suggestion_rows(self._since(INDEX_HISTORY_SINCE), ids)

    def plans_since(self, target_id: int, datname: str, since: int) -> pd.DataFrame:
        """reads.plans_since: a database's plan rows current at or after `since` (none before version 3)."""
        return reads.plans_since(self._since(PLAN_HISTORY_SINCE), target_id, datname, since)

    def alert_states(self, before: int) -> pd.DataFrame:
        """alerting.last_events: each alert's last change of state before `before` (its state then)."""
        return alerting.last_events(self._alert_engine, before)


@functools.cache
def _empty_store() -> Engine:
    """An in-memory store with the schema and no rows. Reading it answers every query as a new
    store does, column for column, without a second code path per read to keep in step (and
    without writing the schema into a store that is only being read)."""
    # One shared connection: every connection to "sqlite://" would be a database of its own.
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    metadata.create_all(engine)
    return engine


class Reader:
    """A store's reads with the configuration's view of them; `now` is the clock levels follow."""

    def __init__(self, store: Reads, config: Config, now: Callable[[], float] = time.time) -> None:
        self.store = store
        self.config = config
        self.now = now

    @classmethod
    def open(cls, config: Config) -> Reader:
        """A reader of the configuration's store (the CLI, reports, benchmarks: no cache)."""
        return cls(StoreReads.open(config.store), config)

    def level(self, window: Window, buckets: int) -> str:
        """The level to read `window` at, for at most `buckets` points per series."""
        return reads.choose_level(window, int(self.now()), self.config.retention, buckets)

    def configured(self, kind: str) -> list:
        """The configuration's targets of a kind ("postgres", "redis", "prometheus")."""
        return sources.configured(self.config, kind) if kind in sources.BY_KIND else []

    def interval(self, target: Target) -> float:
        """How often the target is collected: its configured interval, else the default."""
        found = [t.interval for t in self.configured(target.kind) if t.name == target.name]
        return found[0] if found else float(reads.RAW_SECONDS)

    def series(
        self, targets: Iterable[Target], names: Sequence[str], window: Window, level: str | None = None
    ) -> pd.DataFrame:
        """Points of the named series (reads.series_frame) with a `target` (name) column, at `level`
        or at chart resolution; a bucket's `width` is the time its cycles covered."""
        targets = list(targets)
        level = level or self.level(window, reads.CHART_BUCKETS)
        ids = tuple(sorted(t.id for t in targets))
        # Raw widths do not depend on the intervals: leaving them out shares those reads across configs.
        intervals = () if level == "raw" else tuple(sorted((t.id, self.interval(t)) for t in targets))
        frame = self.store.series(ids, tuple(sorted(names)), window, level, intervals)
        frame["target"] = frame["target_id"].map({t.id: t.name for t in targets})
        return frame

    def plan_history(self, target_id: int, datname: str, text: str) -> list[StoredPlan]:
        """The plan shapes the advisor kept of a statement (its text, in one database of a target),
        newest first; none from a store older than the plan history."""
        return self.store.plan_history(int(target_id), datname, text)

    def blocking_chains(self, target_id: int, window: Window, limit: int = 200) -> list[BlockingChain]:
        """The blocking chains kept for a target that overlap the window, the latest first."""
        return self.store.blocking_chains(int(target_id), window, limit)

    # -- targets ------------------------------------------------------------------------------------
    def statuses(self, kind: str | None = None) -> pd.DataFrame:
        """Every target of `kind` (None: every kind), collected or only configured (merge_statuses)."""
        return merge_statuses(self.store.statuses(), self.config, kind, self.now())

    def targets(self, kind: str | None = None) -> list[Target]:
        """The targets the store holds data for, of one kind or all (the sidebar's choices)."""
        frame = self._stored(kind)
        return [Target(int(r.target_id), str(r.name), str(r.kind)) for r in frame.itertuples()]

    def has_data(self, kind: str | None = None) -> bool:
        """Whether anything was collected (from targets of `kind`, or of any kind)."""
        frame = self._stored(kind)
        return bool(len(frame)) and int(frame["samples"].sum()) > 0

    def _stored(self, kind: str | None) -> pd.DataFrame:
        frame = self.store.statuses()
        return frame if kind is None else frame[frame["kind"] == kind]
