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
  The keys read for BullMQ, RQ and Celery and their limits: see collectors/redis_queues.py.

Own lookups: LLEN, ZCARD, HGET and the like count in keyspace_hits/misses. The collector tallies the
hits and misses its own queue reads caused (from their results: an empty list, set or hash does not
exist in Redis, so a size of 0 is a miss) and subtracts them from the next cycle's deltas, so the
stored hit rate is the application's. INFO, SLOWLOG, LATENCY, CONFIG and CLUSTER do not touch the
keyspace.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from collectors.base import StateSource, TargetCollector
from collectors.deltas import counter_delta
from collectors.redis.batch import Batch, Problems, State, reply_text
from collectors.redis.queues import QueueReads
from dashboard.core import metrics
from dashboard.core.config import RedisTarget
from dashboard.core.records import Cycle, Point, SlowlogEntry, Status
from dashboard.core.redaction import SecretError, env_values, password_of, redact, secret_from_env

CLIENT_NAME = "observatory"
SLOWLOG_FETCH = 128
ARG_CHARS = 64  # per slow-log argument
MAX_ARGS = 10  # slow-log arguments shown
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
WHAT = {  # what a refused command costs, for hints
    "INFO": "server metrics",
    "SLOWLOG": "the slow log",
    "LATENCY": "latency events",
    "CONFIG": "maxclients",
    "CLUSTER": "the cluster state",
}
_MORE_ARGS = re.compile(r"^\.\.\. \((\d+) more arguments\)$")  # Redis's own cut at 32 arguments


# -- the collector ----------------------------------------------------------------------------------
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
                details=self._source.status_details(self.kind, self.name),
            )
        return self._state

    # -- the cycle --------------------------------------------------------------------------
    def _explain(self, err: BaseException) -> tuple[str, str]:
        return explain_connection_error(err, self.target.timeout, clean=self._redact)  # type: ignore[arg-type]

    def _redact(self, text: str) -> str:
        return redact(text, *self._secrets)

    def _collect(self, client: redis.Redis, cycle: Cycle) -> None:
        state = self._load_state()
        details = dict(state.details)
        problems = Problems()
        batch = Batch(client)
        # INFO first: the queue reads below must not be in this cycle's keyspace counters.
        info_at = batch.add(None, "INFO", "ALL")
        slowlog_at = batch.add(None, "SLOWLOG", "GET", SLOWLOG_FETCH)
        latency_at = batch.add(None, "LATENCY", "LATEST")
        queues = QueueReads(batch, self.target.queues, details.get("queue_ts"), cycle.ts)
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

    def _finish_status(self, status: Status, problems: Problems, details: dict) -> None:
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
        state: State,
        details: dict[str, Any],
        cycle: Cycle,
        problems: Problems,
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
        self, info: dict[str, Any], state: State, restarted: bool, known: bool, own: dict[str, float]
    ) -> list[Point]:
        points = [
            self._counter(state, name, "", info[key], restarted, known, own.get(name, 0.0))
            for key, name in INFO_COUNTERS.items()
            if key in info
        ]
        for cmd, stats in _sections(info, "cmdstat_"):
            for counter in CMD_COUNTERS:
                if counter in stats:
                    name, labels = f"redis.cmd.{counter}", metrics.encode({"cmd": cmd})
                    points.append(self._counter(state, name, labels, stats[counter], restarted, known))
        return points

    @staticmethod
    def _counter(
        state: State, name: str, labels: str, value: Any, reset: bool, known: bool, own: float = 0.0
    ) -> Point:
        key = (name, labels)
        current = float(value)
        previous = state.counters.get(key, 0.0 if known else None)
        delta = counter_delta(previous, current, reset=reset)
        if delta is not None and own and not reset and previous is not None and current >= previous:
            delta = max(0.0, delta - own)  # the collector's own lookups are not the workload
        state.counters[key] = current
        return Point(name, current, "counter", labels, delta)

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
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        points = [Point("redis.cluster.state_ok", float(fields.get("cluster_state", "").strip() == "ok"))]
        points += [Point(n, float(fields[k])) for k, n in CLUSTER_GAUGES.items() if k in fields]
        return points

    # -- SLOWLOG and LATENCY ----------------------------------------------------------------
    def _slowlog(
        self, reply: Any, details: dict[str, Any], restarted: bool, problems: Problems
    ) -> list[SlowlogEntry]:
        """Entries newer than the last seen id (all of them after a restart: ids start again)."""
        if isinstance(reply, Exception):
            problems.refused.append(self._refused("SLOWLOG", reply))
            return []
        last = None if restarted else details.get("slowlog_last_id")
        entries = [slowlog_entry(raw) for raw in reply]
        new = [
            replace(e, command=self._redact(e.command), client=e.client and self._redact(e.client))
            for e in entries
            if last is None or e.entry_id > last
        ]
        if entries:
            details["slowlog_last_id"] = max(e.entry_id for e in entries)
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
            labels = metrics.encode({"replica": f"{replica.get('ip')}:{replica.get('port')}"})
            points.append(
                Point("redis.replication.lag_bytes", float(offset - replica["offset"]), "gauge", labels)
            )
    return points


def _keyspace(info: dict[str, Any]) -> list[Point]:
    points = []
    for db, stats in _sections(info, "db"):
        if db.isdigit() and isinstance(stats, dict):
            keys = [k for k in ("keys", "expires") if k in stats]
            points += [
                Point(f"redis.db.{k}", float(stats[k]), "gauge", metrics.encode({"db": db})) for k in keys
            ]
    return points


def _latency_stats(info: dict[str, Any]) -> list[Point]:
    points = []
    for cmd, quantiles in _sections(info, "latency_percentiles_usec_"):
        if isinstance(quantiles, dict):
            points += [
                Point(
                    "redis.cmd.latency_us",
                    float(quantiles[q]),
                    "gauge",
                    metrics.encode({"cmd": cmd, "quantile": q}),
                )
                for q in CMD_QUANTILES
                if q in quantiles
            ]
    return points


def _sections(info: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    """INFO fields named prefix + suffix (cmdstat_get, db0, slave0) as (suffix, value)."""
    return [(k.removeprefix(prefix), v) for k, v in info.items() if k.startswith(prefix)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def slowlog_entry(raw: list[Any]) -> SlowlogEntry:
    """One SLOWLOG GET entry: [id, unix time, microseconds, args, client addr, client name]."""
    entry_id, ts, duration_us, args = raw[:4]
    addr, name = (reply_text(raw[4]) if len(raw) > 4 else ""), (reply_text(raw[5]) if len(raw) > 5 else "")
    client = f"{addr} ({name})" if addr and name else addr or None
    return SlowlogEntry(int(entry_id), int(ts), int(duration_us), command_text(args), client and client[:200])


def command_text(args: list[Any]) -> str:
    """The command as typed, each argument cut to ARG_CHARS, at most MAX_ARGS arguments."""
    texts = [reply_text(a) for a in args]
    total = len(texts)
    more = _MORE_ARGS.match(texts[-1]) if texts else None
    if more:  # Redis already cut the list: its last "argument" says how many it dropped
        texts, total = texts[:-1], len(texts) - 1 + int(more.group(1))
    shown = " ".join(_quote(t[:ARG_CHARS] + ("..." if len(t) > ARG_CHARS else "")) for t in texts[:MAX_ARGS])
    hidden = total - min(len(texts), MAX_ARGS)
    return f"{shown} ... (+{hidden} more arguments)" if hidden > 0 else shown


def _quote(arg: str) -> str:
    return f'"{arg}"' if not arg or any(c.isspace() for c in arg) else arg


# -- connection and errors --------------------------------------------------------------------------
def make_client(target: RedisTarget) -> tuple[redis.Redis, str | None]:
    """The target's client and the password taken from password_env (None: from the URL, if any)."""
    url, password = target.url, None
    if target.password_env:
        password = secret_from_env(target.password_env, "password_env")  # stripped; SecretError
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


def explain_connection_error(
    err: Exception, timeout: float, clean: Callable[[str], str] = redact
) -> tuple[str, str]:
    """The driver's message (first line) and what to do about it. `clean` takes the secrets out
    of the error's text before it is cut to its first line."""
    if isinstance(err, SecretError):
        return str(err), err.hint
    text = clean(str(err)).strip()
    message = text.splitlines()[0] if text else type(err).__name__
    lowered = text.lower()
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
