"""What a Redis collection cycle shares between the server reads (``collectors.redis.collector``) and the
job-queue reads (``collectors.redis.queues``): the batch of commands sent in one pipeline and how
its reads count in the server's keyspace hits/misses, the problems a cycle found, the state kept
between cycles, and the helpers that turn replies into text and label values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from dashboard.core.details import RedisDetails


@dataclass
class Problems:
    refused: list[tuple[str, str]] = field(default_factory=list)  # (message, hint): degraded
    hints: list[str] = field(default_factory=list)  # advice that does not degrade the cycle


@dataclass
class State:
    counters: dict[tuple[str, str], float]  # (name, labels) -> last cumulative reading
    details: RedisDetails = field(default_factory=RedisDetails)  # of the last successful cycle


# -- one round trip ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Read:
    command: str  # for hints
    key: str | None
    lookup: str | None  # how it counts in keyspace hits/misses: size | value | key | None


class Batch:
    """Commands sent in one pipeline (one round trip); errors come back in place of results."""

    def __init__(self, client: redis.Redis) -> None:
        self._pipe = client.pipeline(transaction=False)
        self.reads: list[Read] = []
        self.results: list[Any] = []

    def add(self, lookup: str | None, command: str, *args: Any) -> int:
        self._pipe.execute_command(command, *args)
        key = str(args[0]) if lookup else None
        self.reads.append(Read(command, key, lookup))
        return len(self.reads) - 1

    def run(self) -> list[Any]:
        self.results = self._pipe.execute(raise_on_error=False) if self.reads else []
        return self.results

    def own_lookups(self, sizes: dict[str, int]) -> tuple[int, int]:
        """(hits, misses) these reads added to the server's keyspace counters."""
        hits = misses = 0
        for read, result in zip(self.reads, self.results, strict=True):
            hit = _was_hit(read, result, sizes)
            if hit is not None:
                hits += hit
                misses += not hit
        return hits, misses


def _was_hit(read: Read, result: Any, sizes: dict[str, int]) -> bool | None:
    if read.lookup is None:
        return None
    if isinstance(result, Exception):  # WRONGTYPE: the key was looked up; NOPERM etc.: it was not
        return True if str(result).startswith("WRONGTYPE") else None
    if read.lookup == "size":  # an empty list/set/hash does not exist: 0 is a miss
        return bool(result)
    if read.lookup == "value":
        return any(v is not None for v in result) if isinstance(result, list) else result is not None
    return sizes.get(read.key or "", 0) > 0  # "key": hit iff the key exists (sized in this cycle)


def reply_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
