"""Blocking chains followed from sample to sample (collectors/postgres/waits.py), kept as history
once they last `blocking_history_after` (5 s): PgHero shows who blocks whom only as of now, and
keeping every short wait would bury the ones that matter.

A chain is a root blocker (a session that blocks others and waits for no one) seen by consecutive
samples; it ends at the first sample where nobody waits behind it. It started when the earliest
wait behind it, as first seen, began: pg_locks.waitstart on 14+; before 14 the waiting statement's
start, which may count that statement's run before its wait too. A session already waiting at the
last sample, behind another root, began waiting on this one at the earliest at the last sample
(the root changed hands when the first root ended): so a chain never inherits the wait of the one
before it. A chain that lasts T is kept for sure when T >= threshold + the sampling interval (one
sample must see it old enough); shorter ones are kept when a sample happens to.

Prepared transactions have no session: pg_blocking_pids() names each of them 0, so every chain
behind them is one chain, rooted at "a prepared transaction" (pg_prepared_xacts says which).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from collectors.postgres.health.sessions import chain_roots
from collectors.postgres.waits import Sample
from dashboard.core.health.chains import LISTED, STATEMENT_CHARS, BlockingChain, ChainSession
from dashboard.core.statement_redaction import redact_statement

RootKey = tuple[int, float | None]  # pid, backend start: a pid reused by a new session is another root
WaiterKey = tuple[int, float | None]  # pid, statement start


@dataclass
class _Open:
    root: ChainSession
    started: int
    last_seen: int
    waiting: dict[tuple[int, float | None], ChainSession] = field(default_factory=dict)
    most_at_once: int = 0

    def chain(self) -> BlockingChain:
        return BlockingChain(
            root=self.root,
            started=self.started,
            last_seen=self.last_seen,
            waited=len(self.waiting),
            most_at_once=self.most_at_once,
            waiting=tuple(list(self.waiting.values())[:LISTED]),
        )


class ChainTracker:
    """The chains open now, moved on by each sample in the order they were taken."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self._open: dict[RootKey, _Open] = {}
        self._waited: dict[WaiterKey, float] = {}  # who waited at the last sample, and its time

    def observe(self, sample: Sample) -> list[BlockingChain]:
        """Move on to `sample`; returns the chains it ended that lasted long enough."""
        ts, rows = int(sample.ts), {r["pid"]: r for r in sample.locks}
        above = {pid: tuple(r["blocked_by"]) for pid, r in rows.items() if r["blocked_by"]}
        behind: dict[int, list[dict[str, Any]]] = {}
        for pid in above:
            for root in chain_roots(pid, above):
                behind.setdefault(root, []).append(rows[pid])
        seen: set[RootKey] = set()
        for root, waiting in behind.items():
            found = rows.get(root, {})
            key = (root, found.get("backend_start"))
            seen.add(key)
            chain = self._open.get(key)
            if chain is None:
                starts = [t for t in map(self._wait_start, waiting) if t is not None]
                chain = self._open[key] = _Open(
                    _session(root, found, "xact_start"), int(min(starts, default=ts)), ts
                )
            chain.last_seen = ts
            chain.most_at_once = max(chain.most_at_once, len(waiting))
            for w in waiting:
                since = "wait_start" if w.get("wait_start") else "query_start"
                chain.waiting.setdefault((w["pid"], w["query_start"]), _session(w["pid"], w, since))
        ended = [self._open.pop(key) for key in list(self._open) if key not in seen]
        self._waited = {_waiter(r): sample.ts for r in rows.values() if r["blocked_by"]}
        return [c.chain() for c in ended if self._lasted(c)]

    def _wait_start(self, row: dict[str, Any]) -> float | None:
        """When a session began waiting on a new chain's root: its lock wait's start (14+), else its
        statement's; never before the last sample if it was waiting then (behind another root)."""
        start = row.get("wait_start") or row["query_start"]
        before = self._waited.get(_waiter(row))
        return before if before is not None and (start is None or start < before) else start

    def ongoing(self) -> list[BlockingChain]:
        """The open chains that already lasted long enough (written each cycle while they last)."""
        return [c.chain() for c in self._open.values() if self._lasted(c)]

    def _lasted(self, chain: _Open) -> bool:
        return chain.last_seen - chain.started >= self.after_s


def _waiter(row: dict[str, Any]) -> WaiterKey:
    return row["pid"], row["query_start"]


def _session(pid: int, row: dict[str, Any], since: str) -> ChainSession:
    return ChainSession(
        pid=pid,
        **{k: row.get(k) for k in ("datname", "usename", "application", "state")},
        query=redact_statement(row.get("query") or "")[:STATEMENT_CHARS],
        since=row.get(since),
    )
