"""Redis collector: INFO ALL, SLOWLOG, LATENCY LATEST, CLUSTER INFO and job-queue depths.

One client per target (client name ``observatory``, socket and connect timeouts = the target's
timeout, no retries beyond one reconnect: the scheduler backs off). A cycle is one pipelined round
trip (INFO ALL, SLOWLOG GET 128, LATENCY LATEST and the queue reads), plus one more for the job
hashes the queue reads pointed at, plus CLUSTER INFO on cluster nodes and CONFIG GET maxclients on
servers whose INFO lacks it. Every command is O(1) or bounded (O(log N) + a LIMIT): never KEYS,
SCAN, SMEMBERS, HGETALL or an unbounded LRANGE. Counters are diffed against the last reading
(``counter_delta``); a restart (run_id changed or uptime went down, both kept in the status details,
``dashboard.core.details.RedisDetails``, so a daemon restart still sees it) makes the first reading
after it count from zero, never negative.

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
  The keys read for BullMQ, RQ and Celery and their limits: see ``collectors.redis.queues``.

Own lookups: LLEN, ZCARD, HGET and the like count in keyspace_hits/misses. The collector tallies the
hits and misses its own queue reads caused (from their results: an empty list, set or hash does not
exist in Redis, so a size of 0 is a miss) and subtracts them from the next cycle's deltas, so the
stored hit rate is the application's. INFO, SLOWLOG, LATENCY, CONFIG and CLUSTER do not touch the
keyspace.

Alongside: ``connection.py`` (the client, connection errors, refused commands), ``info.py`` (INFO
into points), ``slowlog.py`` (slow-log entries), ``queues.py`` and ``batch.py`` (the pipeline).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import redis

from collectors.base import StateSource, TargetCollector
from collectors.redis.batch import Batch, Problems, State, reply_text
from collectors.redis.connection import WHAT, explain_connection_error, make_client, refusal
from collectors.redis.info import OWN_HITS, OWN_MISSES, cluster_points, info_counters, info_gauges
from collectors.redis.queues import QueueReads
from collectors.redis.slowlog import SLOWLOG_FETCH, slowlog_entry
from dashboard.core import metrics
from dashboard.core.config import RedisTarget
from dashboard.core.details import RedisDetails
from dashboard.core.records import Cycle, Point, SlowlogEntry, Status
from dashboard.core.redaction import env_values, password_of, redact


class RedisCollector(TargetCollector):
    kind: ClassVar[str] = "redis"
    failures = (redis.RedisError, OSError, ValueError)

    def __init__(self, target: RedisTarget, state_source: StateSource) -> None:
        super().__init__(target, state_source)
        self._client: redis.Redis | None = None
        self._state: State | None = None
        url_password = password_of(target.url)
        self._secrets = [s for s in (url_password, unquote(url_password or "")) if s]
        self._secrets += env_values(target.password_env)  # the raw value, whatever it holds
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
            if env_password and env_password not in self._secrets:
                self._secrets.append(env_password)
        return self._client

    def _load_state(self) -> State:
        if self._state is None:
            self._state = State(
                counters=self._source.series_state(self.kind, self.name),
                details=self._stored_details(RedisDetails),
            )
        return self._state

    # -- the cycle --------------------------------------------------------------------------
    def _explain(self, err: BaseException) -> tuple[str, str]:
        return explain_connection_error(err, self.target.timeout, clean=self._redact)  # type: ignore[arg-type]

    def _redact(self, text: str) -> str:
        return redact(text, *self._secrets)

    def _collect(self, client: redis.Redis, cycle: Cycle) -> None:
        state = self._load_state()
        details = state.details.model_copy()  # moved on field by field; kept if the cycle succeeds
        problems = Problems()
        batch = Batch(client)
        # INFO first: the queue reads below must not be in this cycle's keyspace counters.
        info_at = batch.add(None, "INFO", "ALL")
        slowlog_at = batch.add(None, "SLOWLOG", "GET", SLOWLOG_FETCH)
        latency_at = batch.add(None, "LATENCY", "LATEST")
        queues = QueueReads(batch, self.target.queues, details.queue_ts, cycle.ts)
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
            hits, misses = hits + details.own_hits, misses + details.own_misses
        details.own_hits, details.own_misses, details.queue_ts = hits, misses, cycle.ts
        self._finish_status(cycle.status, problems, details)
        state.details = details

    def _finish_status(self, status: Status, problems: Problems, details: RedisDetails) -> None:
        if problems.refused:
            status.state, status.error = "degraded", redact(problems.refused[0][0], *self._secrets)
        status.hints += list(dict.fromkeys([*(hint for _, hint in problems.refused), *problems.hints]))
        if details.redis_version:
            status.server_version = f"Redis {details.redis_version}"
        status.details = details

    def _refused(self, command: str, err: Exception) -> tuple[str, str]:
        return refusal(command, err, WHAT.get(command, "metrics"), self._user)

    # -- INFO -------------------------------------------------------------------------------
    def _server(
        self,
        client: redis.Redis,
        info: dict[str, Any],
        state: State,
        details: RedisDetails,
        cycle: Cycle,
        problems: Problems,
    ) -> bool:
        """INFO's points; returns whether the server restarted since the previous reading."""
        run_id, uptime = str(info.get("run_id", "")), int(info.get("uptime_in_seconds", 0))
        restarted = details.run_id not in (None, run_id) or uptime < details.uptime
        known = details.run_id is not None  # series new since then started from zero
        if restarted and details.queue_ts is not None and uptime > cycle.ts - details.queue_ts:
            # Another server, up since before the last reading (a replica promoted behind the same
            # address, the target repointed): its counters hold activity of no interval of ours, so
            # this reading is a baseline, as a first one, not one huge delta.
            state.counters, known = {}, False
        own = {} if restarted else {OWN_HITS: float(details.own_hits), OWN_MISSES: float(details.own_misses)}
        if "maxclients" not in info:  # Redis < 7 has it only in CONFIG
            info = {**info, **self._config_maxclients(client, problems)}
        cycle.points += info_gauges(info) + info_counters(info, state, restarted, known, own)
        if info.get("cluster_enabled"):
            cycle.points += self._cluster(client, problems)
        details.run_id, details.uptime, details.role = run_id, uptime, info.get("role")
        details.redis_version = str(info.get("redis_version", ""))
        details.maxmemory_policy = info.get("maxmemory_policy")
        details.cluster_enabled = bool(info.get("cluster_enabled"))
        if restarted:
            details.slowlog_last_id = None  # slow-log ids start again at 0
        return restarted

    def _config_maxclients(self, client: redis.Redis, problems: Problems) -> dict[str, Any]:
        try:
            reply = client.execute_command("CONFIG", "GET", "maxclients")
        except redis.ResponseError as err:
            problems.refused.append(self._refused("CONFIG", err))
            return {}
        values = dict(zip(reply[::2], reply[1::2], strict=True)) if isinstance(reply, list) else reply
        found = values.get(b"maxclients", values.get("maxclients"))
        return {"maxclients": int(found)} if found is not None else {}

    def _cluster(self, client: redis.Redis, problems: Problems) -> list[Point]:
        try:
            raw = client.execute_command("CLUSTER", "INFO")
        except redis.ResponseError as err:
            problems.refused.append(self._refused("CLUSTER", err))
            return []
        return cluster_points(raw)

    # -- SLOWLOG and LATENCY ----------------------------------------------------------------
    def _slowlog(
        self, reply: Any, details: RedisDetails, restarted: bool, problems: Problems
    ) -> list[SlowlogEntry]:
        """Entries newer than the last seen id (all of them after a restart: ids start again)."""
        if isinstance(reply, Exception):
            problems.refused.append(self._refused("SLOWLOG", reply))
            return []
        last = None if restarted else details.slowlog_last_id
        entries = [slowlog_entry(raw) for raw in reply]
        new = [
            replace(e, command=self._redact(e.command), client=e.client and self._redact(e.client))
            for e in entries
            if last is None or e.entry_id > last
        ]
        if entries:
            details.slowlog_last_id = max(e.entry_id for e in entries)
        if last is not None and len(reply) == SLOWLOG_FETCH and min(e.entry_id for e in entries) > last + 1:
            problems.hints.append(
                f"more than {SLOWLOG_FETCH} slow commands in one interval: some slow-log entries were "
                "overwritten before they were read (shorten the interval or raise slowlog-log-slower-than)"
            )
        return new

    def _latency(self, reply: Any, problems: Problems) -> list[Point]:
        if isinstance(reply, Exception):
            problems.refused.append(self._refused("LATENCY", reply))
            return []
        points = []
        for event, _ts, latest, worst, *_ in reply:
            labels = metrics.encode({"event": reply_text(event)})
            points.append(Point("redis.latency.latest_ms", float(latest), "gauge", labels))
            points.append(Point("redis.latency.max_ms", float(worst), "gauge", labels))
        return points
