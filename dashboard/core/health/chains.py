"""Blocking chains kept as history: a root blocker and the sessions that waited behind it, from the
first sample that saw them waiting to the last, kept once it lasted `blocking_history_after` (5 s).

Filled in by collectors/postgres/chains.py from the wait sampler's samples (sql/waits.13.sql);
written to the store's blocking_chains table, one row per chain, updated while it lasts. Statements
are redacted (passwords) and cut to STATEMENT_CHARS.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

LISTED = 20  # waiting sessions named per chain; `waited` counts them all
STATEMENT_CHARS = 500


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ChainSession(_Frozen):
    """A session of a chain as the first sample that saw it in that role showed it."""

    pid: int  # 0: a prepared transaction (pg_blocking_pids names it so)
    datname: str | None = None
    usename: str | None = None
    application: str | None = None
    state: str | None = None  # the root's: "idle in transaction" is the classic culprit
    query: str = ""  # the current or last statement: for a root, not always the one that took the lock
    # Unix s: when a waiting session began its lock wait (14+; before, its statement's start); when
    # the root's transaction began
    since: float | None = None


class BlockingChain(_Frozen):
    """One chain: who blocked whom, from when to when."""

    root: ChainSession
    started: int  # Unix s, the server's clock: the statement start of its earliest waiting session
    last_seen: int  # the last sample that saw someone waiting behind the root
    waited: int  # distinct sessions that waited behind it, directly or through others
    most_at_once: int  # the most waiting in one sample
    waiting: tuple[ChainSession, ...] = ()  # the first LISTED of them, in the order they were seen

    @property
    def lasted_s(self) -> int:
        return self.last_seen - self.started
