"""What a collector keeps of a target's last successful cycle (`Status.details`): one model per source.

Each source registers its model in `dashboard.core.sources` (`Source.details`): the writer stores
`to_stored()` in target_status.details, and the collector (after a restart of the daemon,
`Store.status_details`) and the pages (`reads.target_details`) parse it back with the model of the
row's kind (`from_stored`). The JSON is the shape the dicts had, key for key: a key the collector
did not set is left out, one that is missing takes its default, and an unknown one (a row written
by another version) is ignored. The Prometheus model is in `prometheus_details`.
"""

from __future__ import annotations

import json
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dashboard.core.health import ReplicationNow, ServerNow, SessionsNow, SettingsNow, TablesNow


class Details(BaseModel):
    """The base of every source's details: how they are stored and read back."""

    model_config = ConfigDict(extra="ignore")

    def to_stored(self) -> str:
        """The JSON: the keys the details were built or loaded with, in the model's order."""
        # As UTF-8 text: \u escapes would make a statement's non-ASCII text six times as long.
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude_unset=True), ensure_ascii=False)

    @classmethod
    def from_stored(cls, text: str | None) -> Self | None:
        """The details stored as `text`; None when there are none (no row, `{}`) or they cannot be
        read (not JSON, a value of the wrong type)."""
        try:
            data = json.loads(text) if text else None
            return cls.model_validate(data) if data and isinstance(data, dict) else None
        except (ValueError, ValidationError):  # json.JSONDecodeError is a ValueError
            return None


class PostgresDetails(Details):
    """The PostgreSQL collector's epoch markers, to tell a restart, a reset of pg_stat_statements
    and evictions from the workload. Built once per cycle.

    The last three are set only by a cycle that read pg_stat_statements (they are left out of the
    JSON otherwise); `pgss_snapshot` set means the stored statement counters are a baseline.
    """

    model_config = ConfigDict(frozen=True)

    postmaster_start: int | None = None  # Unix s of pg_postmaster_start_time(): another one is a restart
    # pg_stat_statements_info.stats_reset (14+) in Unix s, to the microsecond (a float); rows saved
    # by older versions have it to the second (an int), which the reset check allows for.
    pgss_reset: int | float | None = None
    dealloc: int | None = None  # entries pg_stat_statements evicted (14+): a rise is an eviction
    pgss_snapshot: int | None = None  # the cycle whose statement counters are stored
    # The health parts' last readings (collectors/postgres/health/), each kept until it is read again.
    sessions: SessionsNow | None = None
    replication: ReplicationNow | None = None
    server_stats: ServerNow | None = None
    settings: SettingsNow | None = None
    tables: TablesNow | None = None


class RedisDetails(Details):
    """The Redis collector's epoch markers and settings. Copied and updated field by field in a
    cycle (a field the cycle could not read keeps its last value), kept only if the cycle succeeds.
    """

    run_id: str | None = None  # INFO run_id: another one is a restart
    uptime: int = 0  # INFO uptime_in_seconds: a lower one is a restart
    role: str | None = None  # master | slave
    redis_version: str | None = None
    maxmemory_policy: str | None = None
    cluster_enabled: bool = False
    # The newest slow-log id read; left out after a restart (ids start again at 0) until one is read.
    slowlog_last_id: int | None = Field(default=None, exclude_if=lambda value: value is None)
    own_hits: int = 0  # keyspace hits and misses of the collector's own queue reads, subtracted
    own_misses: int = 0  # from the next reading of INFO
    queue_ts: int | None = None  # the last cycle's time: queue completions are counted since
