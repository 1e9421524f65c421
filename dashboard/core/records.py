"""Typed records that cross the store: one `Cycle` per target per collection goes in, a
`StatementInfo` per statement comes back (each source's status details are in details and
prometheus_details)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypeVar

from dashboard.core.details import Details
from dashboard.core.health.chains import BlockingChain
from dashboard.core.health.indexes import IndexesNow

State = Literal["ok", "degraded", "down"]
T = TypeVar("T")
# Leads every query the collectors run, so their own statements can be told apart in
# pg_stat_statements (which keeps the text as first sent) and left out of the workload.
OWN_MARKER = "/* observatory */ "
# What the observatory causes but cannot mark: HypoPG's search for free OIDs, run inside the
# advisor's (marked) hypopg_create_index() and recorded on its own under pg_stat_statements.track = all.
OWN_UNMARKED = ("SELECT max(oid) FROM pg_catalog.pg_class WHERE oid < $1",)


def is_own(text: str) -> bool:
    """Whether a recorded statement is one the observatory ran itself, never the workload."""
    return text.startswith(OWN_MARKER) or text in OWN_UNMARKED


class StatementKey(NamedTuple):
    """pg_stat_statements' identity of an entry."""

    queryid: int
    dbid: int
    userid: int
    toplevel: bool


class StatementEntry(NamedTuple):
    """One entry of a snapshot: cumulative counters (STATEMENT_COUNTERS order) and gauges.

    Named tuples, not frozen dataclasses: a cycle builds hundreds, and they cost a third as much.
    """

    key: StatementKey
    counters: tuple[float, ...]
    datname: str | None = None
    rolname: str | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    stddev_ms: float | None = None
    stats_since: int | None = None


class StatementDelta(NamedTuple):
    key: StatementKey
    deltas: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Point:
    """A reading of one series.

    Gauges carry `value`. Counters carry the cumulative `value` (kept as the baseline for the next
    reading, or None when only the delta is known) and `delta`, None until there is a baseline.
    """

    name: str
    value: float | None
    kind: Literal["counter", "gauge"] = "gauge"
    labels: str = ""
    delta: float | None = None  # counters only: None on the first reading (no baseline yet)
    ts: int | None = None  # when it was measured, if not at the cycle's time (back-fill)


@dataclass(frozen=True, slots=True)
class SlowlogEntry:
    """A command the server logged as slow (Redis SLOWLOG), arguments already truncated."""

    entry_id: int
    ts: int
    duration_us: int
    command: str
    client: str | None = None


@dataclass(slots=True)
class Status:
    state: State = "ok"
    error: str | None = None
    hints: list[str] = field(default_factory=list)
    server_version: str | None = None
    # What the collector keeps of its last successful cycle: its source's registered model
    # (PostgresDetails, RedisDetails, PrometheusDetails); None stores none.
    details: Details | None = None


class Deferred(Sequence[T]):
    """A list made on first use, whose length is known before.

    A collector hands the daemon's writer thread its statements as arrays; the records the store
    writes are made from them there, off the collector's cycle.
    """

    def __init__(self, size: int, make: Callable[[], list[T]]) -> None:
        self._size, self._make = size, make
        self._items: list[T] | None = None

    def _list(self) -> list[T]:
        if self._items is None:
            self._items = self._make()
        return self._items

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index):  # type: ignore[override]
        return self._list()[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self._list())

    def __eq__(self, other: object) -> bool:
        return list(self) == other if isinstance(other, list | Deferred) else NotImplemented


@dataclass(slots=True)
class Cycle:
    """Everything one collection of one target produced, written in one transaction."""

    kind: str
    target: str
    ts: int
    status: Status
    duration_ms: float = 0.0
    entries: Sequence[StatementEntry] = field(default_factory=list)  # moved or new: state to persist
    deltas: Sequence[StatementDelta] = field(default_factory=list)  # per-interval activity
    texts: dict[StatementKey, str] = field(default_factory=dict)  # query text of new entries
    vanished: list[StatementKey] = field(default_factory=list)  # evicted since last snapshot
    points: list[Point] = field(default_factory=list)
    slowlog: list[SlowlogEntry] = field(default_factory=list)  # entries new since the last cycle
    chains: list[BlockingChain] = field(default_factory=list)  # that ended or go on, long enough to keep
    indexes: IndexesNow | None = None  # the index catalog, when the cycle read it (store: index_catalog)
    lease: int | None = None  # the daemon's lease epoch when collected (store: leases); None: not fenced


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """Everything the store knows about one statement (reads.statement_info), its target's name
    and kind included. The figures are pg_stat_statements' own, as last reported (since stats_since)."""

    id: int
    target_id: int
    target: str
    kind: str
    queryid: int
    dbid: int
    userid: int
    toplevel: bool
    datname: str | None
    rolname: str | None
    query: str | None
    first_seen: int
    last_seen: int  # the last cycle its counters moved
    present: bool  # in the server's last snapshot (False: evicted from pg_stat_statements)
    min_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    stddev_ms: float | None = None
    stats_since: int | None = None
