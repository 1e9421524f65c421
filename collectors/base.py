"""The one small interface every collector implements (the Glances plugin way)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from dashboard.core.details import Details
from dashboard.core.records import Cycle, StatementKey, Status

D = TypeVar("D", bound=Details)


class StateSource(Protocol):
    """Where a collector finds the last state it saved (the store), after a restart of the daemon."""

    def statement_state(self, kind: str, name: str) -> dict[StatementKey, tuple[tuple[float, ...], bool]]: ...

    def own_statements(self, kind: str, name: str) -> set[StatementKey]: ...

    def untexted_statements(self, kind: str, name: str) -> set[StatementKey]: ...

    def series_state(self, kind: str, name: str) -> dict[tuple[str, str], float]: ...

    def status_details(self, kind: str, name: str) -> Details:
        """The last successful cycle's details, as the source's registered model (its defaults if none)."""
        ...


class Collector(Protocol):
    kind: ClassVar[str]
    name: str
    interval: float

    def collect(self, now: int) -> Cycle:
        """One cycle. Never raises for a problem of the target: that becomes a 'down' status."""
        ...

    def forget_state(self) -> None:
        """Drop in-memory state so the next cycle reloads it (after its cycle failed to save)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Sampling(Protocol):
    """A collector that also samples between its cycles (PostgreSQL's wait events), on a
    connection of its own that only the sampling thread uses."""

    kind: ClassVar[str]
    name: str
    sample_every: float

    def sample_waits(self) -> bool: ...

    def close_sampler(self) -> None: ...


class TargetCollector(ABC):
    """The cycle every collector shares: time it, collect, and turn a target's failure into 'down'.

    A subclass names the errors that mean "this target cannot be used now" (`failures`), says what
    they mean and what to do (`_explain`), and keeps its secrets out of the text (`_redact`).
    """

    kind: ClassVar[str]
    failures: ClassVar[tuple[type[BaseException], ...]]

    def __init__(self, target: Any, state_source: StateSource) -> None:
        self.target = target
        self.name: str = target.name
        self.interval: float = target.interval
        self._source = state_source

    def _stored_details(self, model: type[D]) -> D:
        """The details the target's last successful cycle saved (the defaults before the first one).
        `model` is the one the source registers (dashboard.core.sources): the store parses with it."""
        found = self._source.status_details(self.kind, self.name)
        if not isinstance(found, model):
            raise TypeError(
                f"{self.kind} details are registered as {type(found).__name__}, not {model.__name__}"
            )
        return found

    def collect(self, now: int) -> Cycle:
        """One cycle. Never raises for a problem of the target: that becomes a 'down' status."""
        started = time.perf_counter()
        cycle = Cycle(kind=self.kind, target=self.name, ts=now, status=Status())
        try:
            self._collect(self._connect(), cycle)
        except self.failures as err:
            self.close()  # a fresh connection next cycle
            message, hint = self._explain(err)
            status = Status(state="down", error=self._redact(message), hints=[self._redact(hint)])
            cycle = Cycle(kind=self.kind, target=self.name, ts=now, status=status)
        cycle.duration_ms = (time.perf_counter() - started) * 1000
        return cycle

    @abstractmethod
    def _connect(self) -> Any:
        """The open connection to the target (made, or kept from the last cycle)."""

    @abstractmethod
    def _collect(self, connection: Any, cycle: Cycle) -> None:
        """Read the target and put what it found in `cycle`."""

    @abstractmethod
    def _explain(self, err: BaseException) -> tuple[str, str]:
        """The failure in a line, and what to do about it."""

    @abstractmethod
    def _redact(self, text: str) -> str:
        """`text` with the target's secrets taken out."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection; the next cycle opens another."""
