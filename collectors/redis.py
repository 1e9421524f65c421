"""Redis collector: INFO ALL, SLOWLOG, LATENCY LATEST, CLUSTER INFO and job-queue depths.

One client per target (client name ``observatory``, socket and connect timeouts = the target's
timeout, no retries beyond one reconnect: the scheduler backs off). A cycle is one pipelined round
trip (INFO ALL, SLOWLOG GET 128, LATENCY LATEST and the queue reads), plus one more for the job
hashes the queue reads pointed at, plus CLUSTER INFO on cluster nodes and CONFIG GET maxclients on
servers whose INFO lacks it. Every command is O(1) or bounded (O(log N) + a LIMIT): never KEYS,
SCAN, SMEMBERS, HGETALL or an unbounded LRANGE. Counters are diffed against the last reading
(``counter_delta``); a restart (run_id changed or uptime went down, both kept in Status.details so
a daemon restart still sees it) makes the first reading after it count from zero, never negative.

Series (c = counter, stored as per-interval deltas; g = gauge). Labels are "k=v,..." in the order
shown.

- memory (g): redis.memory.used_bytes, .rss_bytes, .peak_bytes, .fragmentation_ratio, .max_bytes,
  .used_pct (of maxmemory, only when maxmemory > 0); maxmemory_policy is a status detail.
- clients: redis.clients.connected (g), .blocked (g), .max (g: INFO, else CONFIG GET maxclients),
  .received (c: total_connections_received), .rejected (c: rejected_connections).
- throughput (c): redis.ops (total_commands_processed), redis.keyspace.hits, redis.keyspace.misses
  (hit rate = Δhits / (Δhits + Δmisses); the collector's own queue reads are subtracted, see
  below), redis.keys.evicted, redis.keys.expired, redis.net.input_bytes, redis.net.output_bytes,
  redis.cpu.sys_seconds, redis.cpu.user_seconds.
- persistence (g): redis.persistence.rdb_last_save_time (Unix s), .rdb_changes_since_save,
  .rdb_last_bgsave_ok (1/0), .aof_enabled (1/0), .aof_last_write_ok (1/0).
- replication (g): redis.replication.connected_replicas, .offset (master_repl_offset),
  .lag_bytes {replica=ip:port} (master offset - replica offset, on a primary), .link_up (1/0, on a
  replica); the role is a status detail.
- keyspace (g): redis.db.keys {db=0}, redis.db.expires {db=0}.
- commands: redis.cmd.calls, .usec, .rejected_calls, .failed_calls (c) {cmd=get};
  redis.cmd.latency_us (g) {cmd=get,quantile=p50|p99} (INFO latencystats, Redis 7+: percentiles
  since the server started or CONFIG RESETSTAT, not per interval).
- latency monitor (g): redis.latency.latest_ms, redis.latency.max_ms {event=command} (empty
  unless the server's latency-monitor-threshold > 0).
- cluster (g, cluster nodes only): redis.cluster.state_ok (1/0), .slots_assigned, .slots_ok,
  .slots_pfail, .slots_fail, .known_nodes, .size.
- queues {lib=bullmq|rq|celery,queue=<name>}: redis.queue.depth (g) {...,state=<state>},
  redis.queue.completed and redis.queue.failed (c, per interval), redis.queue.oldest_age_s (g, 0
  when nothing waits), redis.queue.wait_ms and redis.queue.run_ms (g) {...,quantile=p50|p95},
  redis.queue.paused (g, BullMQ), redis.queue.unacked (g) {lib=celery} (kombu's `unacked` hash).

Queue layouts read:

- BullMQ ``{prefix}:{queue}:``: lists wait, active, paused (LLEN); sorted sets delayed,
  prioritized, waiting-children, completed, failed (ZCARD); hash meta (HGET paused). Completed and
  failed are scored by finish time (ms), so the jobs finished in (previous cycle, this cycle] are a
  ZCOUNT. The oldest waiting job is at the tail of wait (LPUSH in, RPOPLPUSH out): LINDEX -1, then
  HGET its hash's timestamp. Wait time (processedOn - timestamp) and run time (finishedOn -
  processedOn) come from the hashes of at most 100 of the newly completed jobs (ZRANGEBYSCORE ...
  LIMIT 0 100, then HMGET). Jobs removed at once (removeOnComplete) are not seen.
- RQ: list ``rq:queue:{name}`` (state queued; RPUSH in, LPOP out, so the oldest is at index 0 and
  its ``rq:job:{id}`` hash has enqueued_at) and registries ``rq:wip|finished|failed|deferred|
  scheduled:{name}`` (states started, finished, failed, deferred, scheduled). RQ scores its
  registries by expiry time, not finish time, so completed/failed per interval is the growth of
  ZCARD(finished|failed), never negative: a lower bound when entries expire in the same interval.
- Celery (kombu's Redis transport): list ``{queue}`` plus priority lists ``{queue}\\x06\\x16{n}``
  for n in 1..9 (state queued, summed), hash ``unacked`` (HLEN). kombu messages carry no enqueue
  time, so there is no oldest-job age for Celery.

Own lookups: LLEN, ZCARD, HGET and the like count in keyspace_hits/misses. The collector tallies the
hits and misses its own queue reads caused (from their results: an empty list, set or hash does not
exist in Redis, so a size of 0 is a miss) and subtracts them from the next cycle's deltas, so the
stored hit rate is the application's. INFO, SLOWLOG, LATENCY, CONFIG and CLUSTER do not touch the
keyspace.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from collectors.base import StateSource
from collectors.deltas import counter_delta
from dashboard.config import RedisQueues, RedisTarget
from dashboard.redaction import password_of, redact
from dashboard.store.records import Cycle, Point, SlowlogEntry, Status

CLIENT_NAME = "observatory"
SLOWLOG_FETCH = 128
ARG_CHARS = 64  # per slow-log argument
MAX_ARGS = 10  # slow-log arguments shown
JOB_SAMPLE = 100  # newly completed BullMQ jobs read per queue and cycle, for wait/run times
CELERY_SEP = "\x06\x16"  # kombu's default priority separator
CELERY_PRIORITIES = range(1, 10)
HINT_PASSWORD = "set the password in the URL or password_env"
AUTH_WORDS = (
    "noauth",
    "wrongpass",
    "authentication required",
    "invalid password",
    "invalid username-password",
)

INFO_GAUGES = {
    "used_memory": "redis.memory.used_bytes",
    "used_memory_rss": "redis.memory.rss_bytes",
    "used_memory_peak": "redis.memory.peak_bytes",
    "mem_fragmentation_ratio": "redis.memory.fragmentation_ratio",
    "maxmemory": "redis.memory.max_bytes",
    "connected_clients": "redis.clients.connected",
    "blocked_clients": "redis.clients.blocked",
    "maxclients": "redis.clients.max",
    "rdb_last_save_time": "redis.persistence.rdb_last_save_time",
    "rdb_changes_since_last_save": "redis.persistence.rdb_changes_since_save",
    "aof_enabled": "redis.persistence.aof_enabled",
    "connected_slaves": "redis.replication.connected_replicas",
    "master_repl_offset": "redis.replication.offset",
}
INFO_COUNTERS = {
    "total_commands_processed": "redis.ops",
    "total_connections_received": "redis.clients.received",
    "rejected_connections": "redis.clients.rejected",
    "keyspace_hits": "redis.keyspace.hits",
    "keyspace_misses": "redis.keyspace.misses",
    "evicted_keys": "redis.keys.evicted",
    "expired_keys": "redis.keys.expired",
    "total_net_input_bytes": "redis.net.input_bytes",
    "total_net_output_bytes": "redis.net.output_bytes",
    "used_cpu_sys": "redis.cpu.sys_seconds",
    "used_cpu_user": "redis.cpu.user_seconds",
}
INFO_FLAGS = {  # status strings as 1/0
    "rdb_last_bgsave_status": ("redis.persistence.rdb_last_bgsave_ok", "ok"),
    "aof_last_write_status": ("redis.persistence.aof_last_write_ok", "ok"),
    "master_link_status": ("redis.replication.link_up", "up"),
}
OWN_LOOKUPS = {"redis.keyspace.hits": "own_hits", "redis.keyspace.misses": "own_misses"}
CMD_COUNTERS = ("calls", "usec", "rejected_calls", "failed_calls")
CMD_QUANTILES = ("p50", "p99")
CLUSTER_GAUGES = {
    "cluster_slots_assigned": "redis.cluster.slots_assigned",
    "cluster_slots_ok": "redis.cluster.slots_ok",
    "cluster_slots_pfail": "redis.cluster.slots_pfail",
    "cluster_slots_fail": "redis.cluster.slots_fail",
    "cluster_known_nodes": "redis.cluster.known_nodes",
    "cluster_size": "redis.cluster.size",
}
BULLMQ_LISTS = ("wait", "active", "paused")
BULLMQ_ZSETS = ("delayed", "prioritized", "waiting-children", "completed", "failed")
RQ_REGISTRIES = {  # job state -> registry key
    "started": "wip",
    "finished": "finished",
    "failed": "failed",
    "deferred": "deferred",
    "scheduled": "scheduled",
}
QUANTILES = (("p50", 0.50), ("p95", 0.95))
WHAT = {  # what a refused command costs, for hints
    "INFO": "server metrics",
    "SLOWLOG": "the slow log",
    "LATENCY": "latency events",
    "CONFIG": "maxclients",
    "CLUSTER": "the cluster state",
}
_MORE_ARGS = re.compile(r"^\.\.\. \((\d+) more arguments\)$")  # Redis's own cut at 32 arguments


@dataclass
class _Problems:
    refused: list[tuple[str, str]] = field(default_factory=list)  # (message, hint): degraded
    hints: list[str] = field(default_factory=list)  # advice that does not degrade the cycle


@dataclass
class _State:
    counters: dict[tuple[str, str], float]  # (name, labels) -> last cumulative reading
    details: dict[str, Any] = field(default_factory=dict)


# -- one round trip ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Read:
    command: str  # for hints
    key: str | None
    lookup: str | None  # how it counts in keyspace hits/misses: size | value | key | None


class _Batch:
    """Commands sent in one pipeline (one round trip); errors come back in place of results."""

    def __init__(self, client: redis.Redis) -> None:
        self._pipe = client.pipeline(transaction=False)
        self.reads: list[_Read] = []
        self.results: list[Any] = []

    def add(self, lookup: str | None, command: str, *args: Any) -> int:
        self._pipe.execute_command(command, *args)
        key = str(args[0]) if lookup else None
        self.reads.append(_Read(command, key, lookup))
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


def _was_hit(read: _Read, result: Any, sizes: dict[str, int]) -> bool | None:
    if read.lookup is None:
        return None
    if isinstance(result, Exception):  # WRONGTYPE: the key was looked up; NOPERM etc.: it was not
        return True if str(result).startswith("WRONGTYPE") else None
    if read.lookup == "size":  # an empty list/set/hash does not exist: 0 is a miss
        return bool(result)
    if read.lookup == "value":
        return any(v is not None for v in result) if isinstance(result, list) else result is not None
    return sizes.get(read.key or "", 0) > 0  # "key": hit iff the key exists (sized in this cycle)


# -- the collector ----------------------------------------------------------------------------------
class RedisCollector:
    kind: ClassVar[str] = "redis"

    def __init__(self, target: RedisTarget, state_source: StateSource) -> None:
        self.target = target
        self.name = target.name
        self.interval = target.interval
        self._source = state_source
        self._client: redis.Redis | None = None
        self._state: _State | None = None
        url_password = password_of(target.url)
        self._secrets = [s for s in (url_password, unquote(url_password or "")) if s]
        self._user = urlsplit(target.url).username or "default"

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def forget_state(self) -> None:
        self._state = None

    def _connect(self) -> redis.Redis:
        if self._client is None:
            self._client, env_password = make_client(self.target)
            if env_password:
                self._secrets.append(env_password)
        return self._client

    def _load_state(self) -> _State:
        if self._state is None:
            self._state = _State(
                counters=self._source.series_state(self.kind, self.name),
                details=self._source.status_details(self.kind, self.name),
            )
        return self._state

    # -- the cycle --------------------------------------------------------------------------
    def collect(self, now: int) -> Cycle:
        started = time.perf_counter()
        cycle = Cycle(kind=self.kind, target=self.name, ts=now, status=Status())
        try:
            self._collect(self._connect(), cycle)
        except (redis.RedisError, OSError, ValueError) as err:
            self.close()  # a fresh client (and connection) next cycle
            message, hint = explain_connection_error(err, self.target.timeout)
            status = Status(state="down", error=redact(message, *self._secrets), hints=[hint])
            cycle = Cycle(kind=self.kind, target=self.name, ts=now, status=status)
        cycle.duration_ms = (time.perf_counter() - started) * 1000
        return cycle

    def _collect(self, client: redis.Redis, cycle: Cycle) -> None:
        state = self._load_state()
        details = dict(state.details)
        problems = _Problems()
        batch = _Batch(client)
        # INFO first: the queue reads below must not be in this cycle's keyspace counters.
        info_at = batch.add(None, "INFO", "ALL")
        slowlog_at = batch.add(None, "SLOWLOG", "GET", SLOWLOG_FETCH)
        latency_at = batch.add(None, "LATENCY", "LATEST")
        queues = _QueueReads(batch, self.target.queues, details.get("queue_ts"), cycle.ts)
        results = batch.run()
        info = results[info_at]
        restarted = False
        if isinstance(info, redis.ConnectionError):  # NOAUTH and the like: the target is down
            raise info
        if isinstance(info, Exception):
            problems.refused.append(self._refused("INFO", info))
        else:
            restarted = self._server(client, info, state, details, cycle, problems)
        cycle.slowlog = self._slowlog(results[slowlog_at], details, restarted, problems)
        cycle.points += self._latency(results[latency_at], problems)
        cycle.points += queues.finish(client, state, cycle.ts, problems)
        hits, misses = queues.own_lookups()
        if isinstance(info, Exception):  # no reading to subtract them from yet: keep adding up
            hits, misses = hits + details.get("own_hits", 0), misses + details.get("own_misses", 0)
        details.update(own_hits=hits, own_misses=misses, queue_ts=cycle.ts)
        self._finish_status(cycle.status, problems, details)
        state.details = details

    def _finish_status(self, status: Status, problems: _Problems, details: dict) -> None:
        if problems.refused:
            status.state, status.error = "degraded", redact(problems.refused[0][0], *self._secrets)
        status.hints += list(dict.fromkeys([*(hint for _, hint in problems.refused), *problems.hints]))
        if details.get("redis_version"):
            status.server_version = f"Redis {details['redis_version']}"
        status.details = details

    def _refused(self, command: str, err: Exception) -> tuple[str, str]:
        return refusal(command, err, WHAT.get(command, "metrics"), self._user)

    # -- INFO -------------------------------------------------------------------------------
    def _server(
        self,
        client: redis.Redis,
        info: dict[str, Any],
        state: _State,
        details: dict[str, Any],
        cycle: Cycle,
        problems: _Problems,
    ) -> bool:
        """INFO's points; returns whether the server restarted since the previous reading."""
        run_id, uptime = str(info.get("run_id", "")), int(info.get("uptime_in_seconds", 0))
        restarted = details.get("run_id") not in (None, run_id) or uptime < details.get("uptime", 0)
        known = details.get("run_id") is not None  # series new since then started from zero
        own = {} if restarted else {n: float(details.get(k, 0)) for n, k in OWN_LOOKUPS.items()}
        if "maxclients" not in info:  # Redis < 7 has it only in CONFIG
            info = {**info, **self._config_maxclients(client, problems)}
        cycle.points += _info_gauges(info) + self._info_counters(info, state, restarted, known, own)
        if info.get("cluster_enabled"):
            cycle.points += self._cluster(client, problems)
        details.update(
            run_id=run_id,
            uptime=uptime,
            role=info.get("role"),
            redis_version=str(info.get("redis_version", "")),
            maxmemory_policy=info.get("maxmemory_policy"),
            cluster_enabled=bool(info.get("cluster_enabled")),
        )
        if restarted:
            details.pop("slowlog_last_id", None)  # slow-log ids start again at 0
        return restarted

    def _info_counters(
        self, info: dict[str, Any], state: _State, restarted: bool, known: bool, own: dict[str, float]
    ) -> list[Point]:
        points = [
            self._counter(state, name, "", info[key], restarted, known, own.get(name, 0.0))
            for key, name in INFO_COUNTERS.items()
            if key in info
        ]
        for cmd, stats in _sections(info, "cmdstat_"):
            for counter in CMD_COUNTERS:
                if counter in stats:
                    name, labels = f"redis.cmd.{counter}", f"cmd={_label(cmd)}"
                    points.append(self._counter(state, name, labels, stats[counter], restarted, known))
        return points

    @staticmethod
    def _counter(
        state: _State, name: str, labels: str, value: Any, reset: bool, known: bool, own: float = 0.0
    ) -> Point:
        key = (name, labels)
        current = float(value)
        previous = state.counters.get(key, 0.0 if known else None)
        delta = counter_delta(previous, current, reset=reset)
        if delta is not None and own and not reset and previous is not None and current >= previous:
            delta = max(0.0, delta - own)  # the collector's own lookups are not the workload
        state.counters[key] = current
        return Point(name, current, "counter", labels, delta)

    def _config_maxclients(self, client: redis.Redis, problems: _Problems) -> dict[str, Any]:
        try:
            reply = client.execute_command("CONFIG", "GET", "maxclients")
        except redis.ResponseError as err:
            problems.refused.append(self._refused("CONFIG", err))
            return {}
        values = dict(zip(reply[::2], reply[1::2], strict=True)) if isinstance(reply, list) else reply
        found = values.get(b"maxclients", values.get("maxclients"))
        return {"maxclients": int(found)} if found is not None else {}

    def _cluster(self, client: redis.Redis, problems: _Problems) -> list[Point]:
        try:
            raw = client.execute_command("CLUSTER", "INFO")
        except redis.ResponseError as err:
            problems.refused.append(self._refused("CLUSTER", err))
            return []
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        points = [Point("redis.cluster.state_ok", float(fields.get("cluster_state", "").strip() == "ok"))]
        points += [Point(n, float(fields[k])) for k, n in CLUSTER_GAUGES.items() if k in fields]
        return points

    # -- SLOWLOG and LATENCY ----------------------------------------------------------------
    def _slowlog(
        self, reply: Any, details: dict[str, Any], restarted: bool, problems: _Problems
    ) -> list[SlowlogEntry]:
        """Entries newer than the last seen id (all of them after a restart: ids start again)."""
        if isinstance(reply, Exception):
            problems.refused.append(self._refused("SLOWLOG", reply))
            return []
        last = None if restarted else details.get("slowlog_last_id")
        entries = [slowlog_entry(raw) for raw in reply]
        new = [e for e in entries if last is None or e.entry_id > last]
        if entries:
            details["slowlog_last_id"] = max(e.entry_id for e in entries)
        if last is not None and len(reply) == SLOWLOG_FETCH and min(e.entry_id for e in entries) > last + 1:
            problems.hints.append(
                f"more than {SLOWLOG_FETCH} slow commands in one interval: some slow-log entries were "
                "overwritten before they were read (shorten the interval or raise slowlog-log-slower-than)"
            )
        return new

    def _latency(self, reply: Any, problems: _Problems) -> list[Point]:
        if isinstance(reply, Exception):
            problems.refused.append(self._refused("LATENCY", reply))
            return []
        points = []
        for event, _ts, latest, worst, *_ in reply:
            labels = f"event={_label(_text(event))}"
            points.append(Point("redis.latency.latest_ms", float(latest), "gauge", labels))
            points.append(Point("redis.latency.max_ms", float(worst), "gauge", labels))
        return points


# -- INFO helpers -----------------------------------------------------------------------------------
def _info_gauges(info: dict[str, Any]) -> list[Point]:
    points = [Point(name, float(info[key])) for key, name in INFO_GAUGES.items() if _is_number(info.get(key))]
    used, maxmemory = info.get("used_memory"), info.get("maxmemory")
    if _is_number(used) and _is_number(maxmemory) and maxmemory > 0:
        points.append(Point("redis.memory.used_pct", 100.0 * used / maxmemory))
    points += [
        Point(name, float(str(info[key]) == good)) for key, (name, good) in INFO_FLAGS.items() if key in info
    ]
    return points + _replica_lags(info) + _keyspace(info) + _latency_stats(info)


def _replica_lags(info: dict[str, Any]) -> list[Point]:
    """On a primary: bytes each replica is behind (slave0:ip=..,port=..,offset=..)."""
    offset, points = info.get("master_repl_offset"), []
    for n, replica in _sections(info, "slave"):
        if (
            n.isdigit()
            and isinstance(replica, dict)
            and _is_number(offset)
            and _is_number(replica.get("offset"))
        ):
            labels = f"replica={replica.get('ip')}:{replica.get('port')}"
            points.append(
                Point("redis.replication.lag_bytes", float(offset - replica["offset"]), "gauge", labels)
            )
    return points


def _keyspace(info: dict[str, Any]) -> list[Point]:
    points = []
    for db, stats in _sections(info, "db"):
        if db.isdigit() and isinstance(stats, dict):
            keys = [k for k in ("keys", "expires") if k in stats]
            points += [Point(f"redis.db.{k}", float(stats[k]), "gauge", f"db={db}") for k in keys]
    return points


def _latency_stats(info: dict[str, Any]) -> list[Point]:
    points = []
    for cmd, quantiles in _sections(info, "latency_percentiles_usec_"):
        if isinstance(quantiles, dict):
            points += [
                Point("redis.cmd.latency_us", float(quantiles[q]), "gauge", f"cmd={_label(cmd)},quantile={q}")
                for q in CMD_QUANTILES
                if q in quantiles
            ]
    return points


def _sections(info: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    """INFO fields named prefix + suffix (cmdstat_get, db0, slave0) as (suffix, value)."""
    return [(k.removeprefix(prefix), v) for k, v in info.items() if k.startswith(prefix)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _label(value: str) -> str:
    """A label value that cannot break the "k=v,k2=v2" form."""
    return value.replace(",", "_").replace("=", "_")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def slowlog_entry(raw: list[Any]) -> SlowlogEntry:
    """One SLOWLOG GET entry: [id, unix time, microseconds, args, client addr, client name]."""
    entry_id, ts, duration_us, args = raw[:4]
    addr, name = (_text(raw[4]) if len(raw) > 4 else ""), (_text(raw[5]) if len(raw) > 5 else "")
    client = f"{addr} ({name})" if addr and name else addr or None
    return SlowlogEntry(int(entry_id), int(ts), int(duration_us), command_text(args), client and client[:200])


def command_text(args: list[Any]) -> str:
    """The command as typed, each argument cut to ARG_CHARS, at most MAX_ARGS arguments."""
    texts = [_text(a) for a in args]
    total = len(texts)
    more = _MORE_ARGS.match(texts[-1]) if texts else None
    if more:  # Redis already cut the list: its last "argument" says how many it dropped
        texts, total = texts[:-1], len(texts) - 1 + int(more.group(1))
    shown = " ".join(_quote(t[:ARG_CHARS] + ("..." if len(t) > ARG_CHARS else "")) for t in texts[:MAX_ARGS])
    hidden = total - min(len(texts), MAX_ARGS)
    return f"{shown} ... (+{hidden} more arguments)" if hidden > 0 else shown


def _quote(arg: str) -> str:
    return f'"{arg}"' if not arg or any(c.isspace() for c in arg) else arg


# -- job queues -------------------------------------------------------------------------------------
@dataclass
class _Queue:
    lib: str
    name: str
    depth: dict[str, list[int]] = field(default_factory=dict)  # state -> reads summed
    reads: dict[str, int] = field(default_factory=dict)  # what -> read

    @property
    def labels(self) -> str:
        return f"lib={self.lib},queue={_label(self.name)}"


@dataclass
class _JobReads:
    """A queue's reads in the second round trip."""

    oldest: list[int] = field(default_factory=list)  # enqueue time of the oldest waiting jobs
    finished: list[int] = field(default_factory=list)  # timestamps of newly completed jobs


class _QueueReads:
    """Every queue read of a cycle: bounded commands in the cycle's pipeline, then one more round
    trip for the job hashes those reads pointed at."""

    def __init__(self, batch: _Batch, config: RedisQueues, since: int | None, now: int) -> None:
        self.batch = batch
        self.jobs: _Batch | None = None
        self.window = (since * 1000, now * 1000) if since is not None else None  # BullMQ's ms scores
        self.prefix = config.bullmq_prefix
        self.queues = [self._bullmq(q) for q in config.bullmq]
        self.queues += [self._rq(q) for q in config.rq]
        self.queues += [self._celery(q) for q in config.celery]
        self.unacked = batch.add("size", "HLEN", "unacked") if config.celery else None

    def _bullmq(self, name: str) -> _Queue:
        q, base, add = _Queue("bullmq", name), f"{self.prefix}:{name}", self.batch.add
        for state in BULLMQ_LISTS:
            q.depth[state] = [add("size", "LLEN", f"{base}:{state}")]
        for state in BULLMQ_ZSETS:
            q.depth[state] = [add("size", "ZCARD", f"{base}:{state}")]
        add("size", "HLEN", f"{base}:meta")  # tells whether the HGET below was a hit
        q.reads["paused"] = add("key", "HGET", f"{base}:meta", "paused")
        q.reads["oldest"] = add("value", "LINDEX", f"{base}:wait", -1)
        q.reads["oldest_paused"] = add("value", "LINDEX", f"{base}:paused", -1)
        if self.window:
            low, high = f"({self.window[0]}", str(self.window[1])
            for what in ("completed", "failed"):
                q.reads[what] = add("key", "ZCOUNT", f"{base}:{what}", low, high)
            q.reads["finished_ids"] = add(
                "key", "ZRANGEBYSCORE", f"{base}:completed", low, high, "LIMIT", 0, JOB_SAMPLE
            )
        return q

    def _rq(self, name: str) -> _Queue:
        q = _Queue("rq", name)
        q.depth["queued"] = [self.batch.add("size", "LLEN", f"rq:queue:{name}")]
        for state, registry in RQ_REGISTRIES.items():
            q.depth[state] = [self.batch.add("size", "ZCARD", f"rq:{registry}:{name}")]
        q.reads["oldest"] = self.batch.add("value", "LINDEX", f"rq:queue:{name}", 0)
        return q

    def _celery(self, name: str) -> _Queue:
        q = _Queue("celery", name)
        keys = [name, *(f"{name}{CELERY_SEP}{n}" for n in CELERY_PRIORITIES)]
        q.depth["queued"] = [self.batch.add("size", "LLEN", key) for key in keys]
        return q

    # -- after the round trip ---------------------------------------------------------------
    def finish(self, client: redis.Redis, state: _State, now: int, problems: _Problems) -> list[Point]:
        results = self.batch.results
        for read, result in zip(self.batch.reads, results, strict=True):
            if read.key is not None and isinstance(result, Exception):
                problems.refused.append(queue_refusal(read, result))
        points: list[Point] = []
        for q, jobs in zip(self.queues, self._job_reads(client), strict=True):
            points += self._depths(q)
            points += self._throughput(q, state)
            points += self._ages(q, jobs, now)
        if self.unacked is not None and not isinstance(results[self.unacked], Exception):
            points.append(Point("redis.queue.unacked", float(results[self.unacked]), "gauge", "lib=celery"))
        return points

    def _result(self, index: int | None) -> Any:
        value = None if index is None else self.batch.results[index]
        return None if isinstance(value, Exception) else value

    def _depths(self, q: _Queue) -> list[Point]:
        points = []
        for state, reads in q.depth.items():
            values = [self._result(i) for i in reads]
            if all(v is not None for v in values):
                points.append(
                    Point("redis.queue.depth", float(sum(values)), "gauge", f"{q.labels},state={state}")
                )
        if q.lib == "bullmq" and "paused" in q.reads:
            paused = self._result(q.reads["paused"])
            points.append(
                Point("redis.queue.paused", float(_text(paused or b"0") in ("1", "true")), "gauge", q.labels)
            )
        return points

    def _throughput(self, q: _Queue, state: _State) -> list[Point]:
        points = []
        if q.lib == "bullmq":  # finished in (previous cycle, this cycle]: exact
            for what in ("completed", "failed"):
                count = self._result(q.reads.get(what))
                if count is not None:
                    points.append(Point(f"redis.queue.{what}", None, "counter", q.labels, float(count)))
        elif q.lib == "rq":  # registries scored by expiry: their growth, never negative
            for what, registry in (("completed", "finished"), ("failed", "failed")):
                size = self._result(q.depth[registry][0])
                if size is not None:
                    key = (f"redis.queue.{what}", q.labels)
                    previous = state.counters.get(key)
                    delta = None if previous is None else max(0.0, size - previous)
                    state.counters[key] = float(size)
                    points.append(Point(key[0], float(size), "counter", q.labels, delta))
        return points

    # -- job hashes: the second round trip --------------------------------------------------
    def _job_reads(self, client: redis.Redis) -> list[_JobReads]:
        """HGET/HMGET of the jobs the first reads found, all in one pipeline; per queue."""
        jobs = _Batch(client)
        found = []
        for q in self.queues:
            base = f"{self.prefix}:{q.name}:" if q.lib == "bullmq" else "rq:job:"
            enqueued = "timestamp" if q.lib == "bullmq" else "enqueued_at"
            reads = _JobReads()
            for what in ("oldest", "oldest_paused"):
                job_id = self._result(q.reads.get(what))
                if job_id is not None:
                    reads.oldest.append(jobs.add("value", "HGET", base + _text(job_id), enqueued))
            for job_id in self._result(q.reads.get("finished_ids")) or []:
                fields = ("timestamp", "processedOn", "finishedOn")
                reads.finished.append(jobs.add("value", "HMGET", base + _text(job_id), *fields))
            found.append(reads)
        jobs.run()
        self.jobs = jobs
        return found

    def _ages(self, q: _Queue, reads: _JobReads, now: int) -> list[Point]:
        if q.lib == "celery" or self.jobs is None:
            return []  # kombu messages carry no enqueue time
        results = self.jobs.results
        enqueued = [t for t in (_job_time(results[i]) for i in reads.oldest) if t is not None]
        age = max(0.0, now - min(enqueued)) if enqueued else 0.0
        points = [Point("redis.queue.oldest_age_s", age, "gauge", q.labels)]
        waits, runs = [], []
        for i in reads.finished:
            if isinstance(results[i], Exception):
                continue
            created, processed, finished = (_float(v) for v in results[i])
            if created is not None and processed is not None:
                waits.append(processed - created)
            if processed is not None and finished is not None:
                runs.append(finished - processed)
        for name, values in (("redis.queue.wait_ms", waits), ("redis.queue.run_ms", runs)):
            if values:
                points += [
                    Point(name, quantile(values, share), "gauge", f"{q.labels},quantile={label}")
                    for label, share in QUANTILES
                ]
        return points

    def own_lookups(self) -> tuple[int, int]:
        sizes = {
            r.key: int(v)
            for r, v in zip(self.batch.reads, self.batch.results, strict=True)
            if r.lookup == "size" and r.key is not None and isinstance(v, int)
        }
        hits, misses = self.batch.own_lookups(sizes)
        if self.jobs is not None:
            more = self.jobs.own_lookups(sizes)
            hits, misses = hits + more[0], misses + more[1]
        return hits, misses


def _float(value: Any) -> float | None:
    try:
        return float(_text(value)) if value is not None else None
    except ValueError:
        return None


def _job_time(value: Any) -> float | None:
    """Unix seconds of a job's enqueue time: BullMQ's ms timestamp or RQ's ISO enqueued_at."""
    if value is None:
        return None
    number = _float(value)
    if number is not None:
        return number / 1000
    try:
        parsed = datetime.fromisoformat(_text(value).removesuffix("Z"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def quantile(values: list[float], share: float) -> float:
    """Nearest-rank quantile (p95 of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(share * len(ordered)) - 1)])


# -- connection and errors --------------------------------------------------------------------------
def make_client(target: RedisTarget) -> tuple[redis.Redis, str | None]:
    """The target's client and the password taken from password_env (None: from the URL, if any)."""
    url, password = target.url, None
    if target.password_env:
        password = os.environ.get(target.password_env)
        if password is None:
            raise ValueError(f"environment variable {target.password_env} (password_env) is not set")
        url = _without_password(url)  # redis-py lets the URL's password win over the argument
    client = redis.Redis.from_url(
        url,
        socket_timeout=target.timeout,
        socket_connect_timeout=target.timeout,
        client_name=CLIENT_NAME,
        # One immediate reconnect (a pooled connection the server closed, e.g. after a restart);
        # timeouts are not retried: the scheduler's backoff paces a slow or dead server.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        **({"password": password} if password is not None else {}),
    )
    return client, password


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def refusal(command: str, err: Exception, what: str, user: str) -> tuple[str, str]:
    """(message, hint) for a command the server refused; the rest of the cycle goes on."""
    message = f"{command}: {str(err).strip() or type(err).__name__}"
    if isinstance(err, redis.exceptions.NoPermissionError):
        return message, (
            f"the Redis user {user} may not run {command}: ACL SETUSER {user} +{command.lower()} "
            f"lets the collector read {what}"
        )
    if "unknown command" in str(err).lower():
        return (
            message,
            f"{command} is renamed or disabled on this server (rename-command): {what} not collected",
        )
    return message, f"{command} failed: {what} not collected (see the Redis server log)"


def queue_refusal(read: _Read, err: Exception) -> tuple[str, str]:
    message = f"{read.command} {read.key}: {err}"
    if str(err).startswith("WRONGTYPE"):
        return message, (
            f"{read.key} is not the type the queue library uses: check the queue names and bullmq_prefix"
        )
    if isinstance(err, redis.exceptions.NoPermissionError):
        return message, "the Redis user may not read the queue keys: grant read access to them (ACL ~pattern)"
    return message, f"{read.command} failed on the queue keys: queue metrics incomplete"


def explain_connection_error(err: Exception, timeout: float) -> tuple[str, str]:
    """The driver's message (first line) and what to do about it."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    lowered = str(err).lower()
    if "without any password configured" in lowered or "no password is set" in lowered:
        return message, "this server has no password: remove it from the URL and password_env"
    if isinstance(err, redis.AuthenticationError) or any(s in lowered for s in AUTH_WORDS):
        return message, HINT_PASSWORD
    if "environment variable" in lowered:
        return message, "export the variable before starting the collector"
    if isinstance(err, redis.TimeoutError) or "timed out" in lowered or "timeout" in lowered:
        return message, f"Redis did not answer within {timeout:g}s: check host, port, firewall and timeout"
    if "connection refused" in lowered or "no such file or directory" in lowered:
        return message, "is Redis running and listening on that host and port (or socket)?"
    if "name or service not known" in lowered or "name resolution" in lowered or "nodename" in lowered:
        return message, "the host name in the URL does not resolve"
    if "ssl" in lowered or "certificate" in lowered:
        return message, (
            "TLS failed: check that the server speaks TLS (rediss://) and its certificate "
            "(add ?ssl_cert_reqs=none to the URL for a self-signed one)"
        )
    if "max number of clients" in lowered:
        return message, "the server refuses new clients (maxclients reached)"
    if "loading" in lowered:
        return message, "Redis is loading its dataset into memory: it answers once loaded"
    if isinstance(err, ValueError):
        return message, "the url is not valid: write it as redis://[user:password@]host:6379/0"
    return message, "see the Redis server log for details"
