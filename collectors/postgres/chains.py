"""Blocking chains followed from sample to sample (collectors/postgres/waits.py), kept as history
once they last `blocking_history_after` (5 s): PgHero shows who blocks whom only as of now, and
keeping every short wait would bury the ones that matter.

A chain is a root blocker (a session that blocks others and waits for no one) seen by consecutive
samples; it ends at the first sample where nobody waits behind it. It started when the earliest
session waiting behind it, as first seen, started its statement: the wait began at or after that,
so a chain is never counted shorter than it was, and at most that statement's run before its wait
longer. A chain that lasts T is kept for sure when T >= threshold + the sampling interval (one
sample must see it old enough); shorter ones are kept when a sample happens to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from collectors.postgres.health.sessions import chain_roots
from collectors.postgres.waits import Sample
from dashboard.core.health.chains import LISTED, STATEMENT_CHARS, BlockingChain, ChainSession
from dashboard.core.statement_redaction import redact_statement

RootKey = tuple[int, float | None]  # pid, backend start: a pid reused by a new session is another root


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
                starts = [w["query_start"] for w in waiting if w["query_start"] is not None]
                chain = self._open[key] = _Open(
                    _session(root, found, "xact_start"), int(min(starts, default=ts)), ts
                )
            chain.last_seen = ts
            chain.most_at_once = max(chain.most_at_once, len(waiting))
            for w in waiting:
                chain.waiting.setdefault((w["pid"], w["query_start"]), _session(w["pid"], w, "query_start"))
        ended = [self._open.pop(key) for key in list(self._open) if key not in seen]
        return [c.chain() for c in ended if self._lasted(c)]

    def ongoing(self) -> list[BlockingChain]:
        """The open chains that already lasted long enough (written each cycle while they last)."""
        return [c.chain() for c in self._open.values() if self._lasted(c)]

    def _lasted(self, chain: _Open) -> bool:
        return chain.last_seen - chain.started >= self.after_s


def _session(pid: int, row: dict[str, Any], since: str) -> ChainSession:
    return ChainSession(
        pid=pid,
        **{k: row.get(k) for k in ("datname", "usename", "application", "state")},
        query=redact_statement(row.get("query") or "")[:STATEMENT_CHARS],
        since=row.get(since),
    )
