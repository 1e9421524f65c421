"""The one small interface every collector implements (the Glances plugin way)."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from dashboard.store.records import Cycle, StatementKey


class StateSource(Protocol):
    """Where a collector finds the last state it saved (the store), after a restart of the daemon."""

    def statement_state(self, kind: str, name: str) -> dict[StatementKey, tuple[tuple[float, ...], bool]]: ...

    def own_statements(self, kind: str, name: str) -> set[StatementKey]: ...

    def series_state(self, kind: str, name: str) -> dict[tuple[str, str], float]: ...

    def status_details(self, kind: str, name: str) -> dict[str, Any]: ...


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
