"""The names of the series the store holds, and the one codec of their labels.

A point's labels are one string, "k=v,k2=v2": collectors write it with `encode`, every reader parses
it with `decode`. Keys and values go through `label_value`, which percent-encodes exactly `%`, `,`
and `=` (a database called "a,b" is written "datname=a%2Cb", one called "a_b" stays "datname=a_b"),
so no name splits into labels of its own and no two names meet; a name without those characters is
written as it is (unless it is longer than LABEL_CHARS, or ends like a cut one). One longer than
LABEL_CHARS once encoded is cut and marked with a hash of the whole: "<head>~<12 hex>"; labels longer
than LABELS_CHARS in all (the store's column) are cut after their last whole pair and end with
"~=<12 hex>", a hash of the whole string.

The names below are those a collector writes and an analysis, page or benchmark reads; a name one
side alone uses stays beside it.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping

LABEL_CHARS = 200  # per key or value, encoded
LABELS_CHARS = 400  # the whole string: what the store's labels column holds
HASH_CHARS = 12  # hex digits of the hash that ends a cut label: "~" + these
_ESCAPES = {"%": "%25", ",": "%2C", "=": "%3D"}
_TO_ESCAPE = re.compile("[%,=]")
_ESCAPED = re.compile("%(25|2[Cc]|3[Dd])")
_CUT_TAIL = re.compile(rf"~[0-9a-f]{{{HASH_CHARS}}}\Z")

# PostgreSQL (collectors/postgres): totals over every statement, then per database {datname=...}.
PG_STATEMENTS = "pg.statements."  # + a pg_stat_statements counter (calls, exec_ms, rows, ...)
PG_STATEMENTS_CALLS = PG_STATEMENTS + "calls"  # written once per successful cycle
PG_STATEMENTS_EXEC_MS = PG_STATEMENTS + "exec_ms"
PG_STATEMENTS_ROWS = PG_STATEMENTS + "rows"
PG_DB = "pg.db."  # + a pg_stat_database counter (xact_commit, blks_hit, ...), or size_bytes
PG_DB_BLKS_HIT = PG_DB + "blks_hit"
PG_DB_BLKS_READ = PG_DB + "blks_read"
PG_DB_SIZE_BYTES = PG_DB + "size_bytes"
PG_CONNECTIONS = "pg.connections"  # {state=...}

# Redis (collectors/redis): INFO, commandstats and latencystats {cmd=...}, job queues.
REDIS_OPS = "redis.ops"
REDIS_KEYSPACE_HITS = "redis.keyspace.hits"
REDIS_KEYSPACE_MISSES = "redis.keyspace.misses"
REDIS_KEYS_EVICTED = "redis.keys.evicted"
REDIS_KEYS_EXPIRED = "redis.keys.expired"
REDIS_MEMORY_USED_BYTES = "redis.memory.used_bytes"
REDIS_MEMORY_RSS_BYTES = "redis.memory.rss_bytes"
REDIS_MEMORY_MAX_BYTES = "redis.memory.max_bytes"
REDIS_MEMORY_FRAGMENTATION_RATIO = "redis.memory.fragmentation_ratio"
REDIS_CLIENTS_CONNECTED = "redis.clients.connected"
REDIS_CLIENTS_BLOCKED = "redis.clients.blocked"
REDIS_CLIENTS_REJECTED = "redis.clients.rejected"
REDIS_REPLICATION_CONNECTED_REPLICAS = "redis.replication.connected_replicas"
REDIS_REPLICATION_LAG_BYTES = "redis.replication.lag_bytes"  # {replica=ip:port}
REDIS_REPLICATION_LINK_UP = "redis.replication.link_up"
REDIS_CMD = "redis.cmd."  # + a commandstats counter (calls, usec, failed_calls, rejected_calls)
REDIS_CMD_CALLS = REDIS_CMD + "calls"
REDIS_CMD_USEC = REDIS_CMD + "usec"
REDIS_CMD_FAILED_CALLS = REDIS_CMD + "failed_calls"
REDIS_CMD_REJECTED_CALLS = REDIS_CMD + "rejected_calls"
REDIS_CMD_LATENCY_US = REDIS_CMD + "latency_us"  # {cmd=...,quantile=p50|p99}
REDIS_QUEUE = "redis.queue."  # {lib=...,queue=...}
REDIS_QUEUE_DEPTH = REDIS_QUEUE + "depth"  # {...,state=...}
REDIS_QUEUE_COMPLETED = REDIS_QUEUE + "completed"
REDIS_QUEUE_FAILED = REDIS_QUEUE + "failed"
REDIS_QUEUE_OLDEST_AGE_S = REDIS_QUEUE + "oldest_age_s"
REDIS_QUEUE_WAIT_MS = REDIS_QUEUE + "wait_ms"  # {...,quantile=p50|p95}
REDIS_QUEUE_RUN_MS = REDIS_QUEUE + "run_ms"  # {...,quantile=p50|p95}
REDIS_QUEUE_PAUSED = REDIS_QUEUE + "paused"

# Prometheus: one series per configured expression, plus what Prometheus says about itself.
PROM_SERIES = "prom.series"
PROM_ALERTS = "prom.alerts"
PROM_TARGETS = "prom.targets"


def label_value(value: object) -> str:
    """A label key or value in the "k=v,k2=v2" form: `%`, `,` and `=` percent-encoded; when that is
    longer than LABEL_CHARS (or merely looks cut), cut and ended with "~" and a hash of the whole."""
    text = str(value)
    out = _TO_ESCAPE.sub(lambda m: _ESCAPES[m.group()], text)
    if len(out) > LABEL_CHARS or (len(out) > LABEL_CHARS - 3 and _CUT_TAIL.search(out)):
        head = out[: LABEL_CHARS - HASH_CHARS - 1]
        if "%" in head[-2:]:  # never cut an escape in two
            head = head[: head.rindex("%")]
        out = f"{head}~{_digest(text)}"
    return out


def _digest(text: str) -> str:
    # surrogatepass: two different strings never hash as one (backslashreplace could make them meet)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]


def _unescape(text: str) -> str:
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def encode(labels: Mapping[str, object]) -> str:
    """{"lib": "bullmq", "queue": "email"} -> "lib=bullmq,queue=email", in the mapping's order; never
    longer than LABELS_CHARS (cut after the last whole pair that fits, then "~=" and a hash)."""
    out = ",".join(f"{label_value(k)}={label_value(v)}" for k, v in labels.items())
    if len(out) <= LABELS_CHARS:
        return out
    tail = f"~={_digest(out)}"
    head = out[: LABELS_CHARS - len(tail) - 1]
    head = head[: head.rindex(",") + 1] if "," in head else ""
    return head + tail


def decode(text: str | None) -> dict[str, str]:
    """ "lib=bullmq,queue=a%2Cb" -> {"lib": "bullmq", "queue": "a,b"}; a cut value keeps its "~" hash."""
    return dict(_pairs(text or ""))


@functools.lru_cache(maxsize=16384)
def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    # A page decodes the same few label sets once per point (tens of thousands on the Redis page).
    pairs = (part.split("=", 1) for part in text.split(",") if "=" in part)
    return tuple((_unescape(k), _unescape(v)) for k, v in pairs)


# PostgreSQL replication (collectors/postgres/health/replication.py): per replica {replica=...}
# (its application_name), per slot {slot=...}, and a replica's own replay delay.
PG_REPLICATION = "pg.replication."
PG_REPLICATION_REPLICAS = PG_REPLICATION + "replicas"  # replicas this server streams to
PG_REPLICATION_LAG_S = PG_REPLICATION + "lag_s"  # {replica}: replay lag, 0 once caught up
PG_REPLICATION_LAG_BYTES = PG_REPLICATION + "lag_bytes"  # {replica}: WAL not yet replayed there
PG_REPLICATION_SLOT_RETAINED_BYTES = PG_REPLICATION + "slot_retained_bytes"  # {slot}
PG_REPLICATION_SLOTS_INACTIVE = PG_REPLICATION + "slots_inactive"
PG_REPLICATION_REPLAY_DELAY_S = PG_REPLICATION + "replay_delay_s"  # on a replica

# PostgreSQL sessions health part (collectors/postgres/health/sessions.py): client sessions now.
PG_CONNECTIONS_MAX = "pg.connections.max"  # max_connections, read with pg.connections{state}
PG_CONNECTIONS_BY_CLIENT = "pg.connections.by_client"  # {datname,usename,application}: top 20 + (other)
PG_SESSIONS = "pg.sessions."  # + one of the below, {datname=...}
PG_SESSIONS_BLOCKED = PG_SESSIONS + "blocked"  # waiting for a lock another session holds
PG_SESSIONS_LONG_RUNNING = PG_SESSIONS + "long_running"  # active longer than the threshold (60 s)
PG_SESSIONS_IDLE_IN_TRANSACTION = PG_SESSIONS + "idle_in_transaction"
PG_SESSIONS_IDLE_IN_TRANSACTION_OLDEST_S = PG_SESSIONS + "idle_in_transaction_oldest_s"  # transaction age

# PostgreSQL wait events (collectors/postgres/waits.py), sampled every health.waits between cycles.
PG_WAITS_SESSIONS = "pg.waits.sessions"  # {datname,type,event}: active sessions in it, averaged
PG_WAITS_SAMPLES = "pg.waits.samples"  # how many samples the cycle's averages are of

# PostgreSQL server statistics (collectors/postgres/health/server_stats.py): counters of the
# checkpointer, background writer and WAL, and transaction ID age per database {datname=...}.
PG_CHECKPOINTS_TIMED = "pg.checkpoints.timed"
PG_CHECKPOINTS_REQUESTED = "pg.checkpoints.requested"  # max_wal_size reached, CHECKPOINT, backups
PG_CHECKPOINTS_WRITE_MS = "pg.checkpoints.write_ms"
PG_CHECKPOINTS_SYNC_MS = "pg.checkpoints.sync_ms"
PG_CHECKPOINTS_BUFFERS = "pg.checkpoints.buffers"  # buffers written by checkpoints
PG_BGWRITER_BUFFERS_CLEAN = "pg.bgwriter.buffers_clean"  # buffers written by the background writer
PG_BGWRITER_MAXWRITTEN_CLEAN = "pg.bgwriter.maxwritten_clean"  # its rounds stopped at bgwriter_lru_maxpages
PG_BGWRITER_BUFFERS_BACKEND = "pg.bgwriter.buffers_backend"  # buffers backends wrote themselves (13-16)
PG_WAL_BYTES = "pg.wal.bytes"
PG_XID_AGE = "pg.xid.age"  # age(datfrozenxid)
PG_XID_HEADROOM = "pg.xid.headroom"  # 2^31 - 1 - age: transactions left before wraparound
