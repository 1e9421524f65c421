"""Hand-made collector cycles for the store's tests: statements that ran a known number of times."""

from __future__ import annotations

from dashboard.core.records import Cycle, Point, StatementDelta, StatementEntry, StatementKey, Status
from dashboard.store import schema

DAY = 86400
T0 = 1_790_000_000 - 1_790_000_000 % DAY  # midnight UTC: bucket arithmetic is easy to check


def key(n: int) -> StatementKey:
    return StatementKey(queryid=n * 1_000_003 - 2**62, dbid=5, userid=10, toplevel=True)


def cycle(ts: int, moved: dict[int, float], *, cumulative: float = 0.0, state: str = "ok") -> Cycle:
    """A cycle in which statement n ran `moved[n]` times at 2 ms each."""
    counters = [0.0] * len(schema.STATEMENT_COUNTERS)
    entries, deltas = [], []
    for n, calls in moved.items():
        d = list(counters)
        d[0], d[1], d[4], d[5] = calls, calls * 2.0, calls * 9, calls
        entries.append(StatementEntry(key(n), tuple(d), datname="erp", rolname="app", mean_ms=2.0))
        deltas.append(StatementDelta(key(n), tuple(d)))
    total = sum(moved.values())
    return Cycle(
        kind="postgres",
        target="erp",
        ts=ts,
        status=Status(state=state),  # type: ignore[arg-type]
        entries=entries,
        deltas=deltas,
        texts={key(n): f"SELECT {n} FROM t WHERE id = $1" for n in moved},
        points=[
            Point("pg.statements.calls", None, "counter", delta=total),
            Point("pg.db.xact_commit", cumulative, "counter", "datname=erp", delta=total),
            Point("pg.connections", 3.0 + ts % 7, "gauge", "state=active"),
        ],
    )
