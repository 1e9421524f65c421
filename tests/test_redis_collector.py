"""The Redis collector against real redis-servers: hit rate, slow log, restarts, job queues, failures."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from bench import redis_cycle
from collectors.redis.connection import HINT_PASSWORD
from dashboard.servers.throwaway import ThrowawayRedis, free_port
from dashboard.store import Store
from dashboard.store.reads import Window, slowlog_entries
from dashboard.store.schema import target_status
from tests.support.redis_target import at, client, fill_queues, series, target
from tests.support.stores import collect_once, make_config, status_row

BUSY_LOOP = "local i = 0 while i < 5000000 do i = i + 1 end return i"  # ~25 ms of Lua: > 10 ms


class RedisWith(ThrowawayRedis):
    """A throwaway Redis started with extra server options (cluster mode, renamed commands)."""

    def __init__(self, *options: str) -> None:
        self.options = list(options)
        super().__init__()

    def _command(self) -> list[str]:
        return [*super()._command(), *self.options]


# -- cache health ---------------------------------------------------------------------------------------
def test_hit_rate_is_exact_and_the_collector_does_not_count_itself(
    redis_server: ThrowawayRedis, store: Store
) -> None:
    r = client(redis_server.url)
    r.mset({f"user:{i}": f"profile-{i}" for i in range(100)})
    fill_queues(r, now=int(time.time()))  # queue reads make lookups of their own
    queues = {"bullmq": ["email"], "rq": ["default"], "celery": ["celery"]}
    config = make_config(store.url, [target(redis_server.url, queues=queues)], kind="redis")
    t0 = int(time.time()) - 60
    assert collect_once(config, store, t0)[0].status.state == "ok"
    for i in range(90):
        assert r.get(f"user:{i}") is not None
    for i in range(10):
        assert r.get(f"absent:{i}") is None
    assert collect_once(config, store, t0 + 15)[0].status.state == "ok"

    hits, misses = at(store, "redis.keyspace.hits", t0 + 15), at(store, "redis.keyspace.misses", t0 + 15)
    assert (hits, misses) == (90, 10)
    assert hits / (hits + misses) == pytest.approx(0.90)
    assert at(store, "redis.ops", t0 + 15) >= 100
    assert at(store, "redis.cmd.calls", t0 + 15, "cmd=get") == 100
    assert at(store, "redis.cmd.usec", t0 + 15, "cmd=get") > 0

    # A quiet interval: the server's counters move (the collector's LLEN, ZCARD, HGET ... are
    # lookups), the stored deltas do not.
    raw_before = r.info("stats")
    assert collect_once(config, store, t0 + 30)[0].status.state == "ok"
    raw_after = r.info("stats")
    assert raw_after["keyspace_misses"] + raw_after["keyspace_hits"] > (
        raw_before["keyspace_misses"] + raw_before["keyspace_hits"]
    )
    assert at(store, "redis.keyspace.hits", t0 + 30) == 0
    assert at(store, "redis.keyspace.misses", t0 + 30) == 0
    assert at(store, "redis.cmd.calls", t0 + 30, "cmd=llen") > 0  # the queue reads did run


def test_info_gauges_and_details(redis_server: ThrowawayRedis, store: Store) -> None:
    r = client(redis_server.url)
    r.config_set("maxmemory", str(64 * 2**20))
    r.config_set("maxmemory-policy", "allkeys-lru")
    r.mset({f"k:{i}": "x" * 100 for i in range(500)})
    for i in range(20):
        r.set(f"ttl:{i}", "v", ex=3600)
    now = int(time.time())
    cycle = collect_once(make_config(store.url, [target(redis_server.url)], kind="redis"), store, now)[0]
    assert cycle.status.state == "ok" and cycle.status.server_version.startswith("Redis 7")
    assert at(store, "redis.db.keys", now, "db=0") == 520
    assert at(store, "redis.db.expires", now, "db=0") == 20
    assert at(store, "redis.memory.max_bytes", now) == 64 * 2**20
    used = at(store, "redis.memory.used_bytes", now)
    assert at(store, "redis.memory.used_pct", now) == pytest.approx(100 * used / (64 * 2**20))
    assert at(store, "redis.clients.connected", now) >= 2
    assert at(store, "redis.clients.max", now) > 0
    assert at(store, "redis.persistence.rdb_last_bgsave_ok", now) == 1
    assert at(store, "redis.replication.connected_replicas", now) == 0
    assert not series(store, "redis.cmd.latency_us", "cmd=set,quantile=p99").empty  # latencystats
    details = store.status_details("redis", "cache-1")
    assert details.maxmemory_policy == "allkeys-lru" and details.role == "master"
    assert details.run_id and details.uptime >= 0


def test_slow_command_lands_in_the_slow_log_once(redis_server: ThrowawayRedis, store: Store) -> None:
    r = client(redis_server.url)
    r.config_set("latency-monitor-threshold", "5")
    config = make_config(store.url, [target(redis_server.url)], kind="redis")
    now = int(time.time())
    collect_once(config, store, now - 30)
    r.eval(BUSY_LOOP, 0)
    first = collect_once(config, store, now - 15)[0]
    assert [e.command for e in first.slowlog] == [f"EVAL {json.dumps(BUSY_LOOP)} 0"]
    second = collect_once(config, store, now)[0]
    assert second.slowlog == []  # already stored: not read again
    entries = slowlog_entries(
        store.engine, [store.target_id("redis", "cache-1")], Window(now - 3600, now + 3600)
    )
    evals = entries[entries["command"].str.startswith("EVAL")]
    assert len(evals) == 1
    assert evals["duration_us"].iloc[0] >= 10_000
    assert "127.0.0.1:" in evals["client"].iloc[0]
    assert at(store, "redis.latency.max_ms", now, "event=command") >= 10  # LATENCY LATEST


def test_slow_log_arguments_are_truncated(redis_server: ThrowawayRedis, store: Store) -> None:
    r = client(redis_server.url)
    config = make_config(store.url, [target(redis_server.url)], kind="redis")
    collect_once(config, store, int(time.time()) - 10)
    r.config_set("slowlog-log-slower-than", "0")  # log everything from here on
    r.rpush("list", *[f"{n:02d}" + "y" * 200 for n in range(12)])
    r.execute_command("DEL", *[f"key{n}" for n in range(40)])  # Redis itself keeps 32 arguments
    r.config_set("slowlog-log-slower-than", "10000")
    commands = [e.command for e in collect_once(config, store, int(time.time()))[0].slowlog]
    rpush = next(c for c in commands if c.startswith("RPUSH"))
    args = rpush.split(" ... (+")[0].split(" ")
    assert args[:2] == ["RPUSH", "list"] and len(args) == 10  # command, key and 8 values
    assert all(len(a) <= 64 + 3 for a in args)  # each cut to 64 characters + "..."
    assert rpush.endswith("... (+4 more arguments)")  # 14 arguments in all, 10 shown
    delete = next(c for c in commands if c.startswith("DEL "))
    assert delete.endswith("... (+31 more arguments)")  # 41 in all, counted through Redis's own cut


def test_restart_gives_no_negative_delta_and_no_spike(redis_server: ThrowawayRedis, store: Store) -> None:
    r = client(redis_server.url)
    r.mset({f"k{i}": i for i in range(50)})
    config = make_config(store.url, [target(redis_server.url)], kind="redis")
    now = int(time.time()) - 60
    collect_once(config, store, now)
    for i in range(50):
        r.get(f"k{i}")
    r.eval(BUSY_LOOP, 0)
    collect_once(config, store, now + 15)
    assert at(store, "redis.keyspace.hits", now + 15) == 50
    redis_server.restart()  # no persistence: counters, keys and slow log start again from zero
    r = client(redis_server.url)
    r.mset({f"k{i}": i for i in range(7)})
    for i in range(7):
        r.get(f"k{i}")
    r.eval(BUSY_LOOP, 0)
    cycle = collect_once(config, store, now + 30)[0]
    assert cycle.status.state == "ok"
    assert at(store, "redis.keyspace.hits", now + 30) == 7  # counted from the restart on
    assert at(store, "redis.cmd.calls", now + 30, "cmd=get") == 7
    assert 0 <= at(store, "redis.ops", now + 30) < 100  # no spike, no negative
    assert [e.entry_id for e in cycle.slowlog if e.command.startswith("EVAL")] == [0]  # ids restarted
    counters = series(store, "redis.ops")
    assert (counters["sum"] >= 0).all()
    for name in (
        "redis.cmd.calls",
        "redis.keyspace.misses",
        "redis.net.input_bytes",
        "redis.cpu.user_seconds",
    ):
        assert (series(store, name)["sum"] >= 0).all(), name


# -- failures -------------------------------------------------------------------------------------------
def test_unreachable_node_is_down_and_the_others_are_collected(
    redis_server: ThrowawayRedis, store: Store
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    config = make_config(store.url, [target(dead, "gone"), target(redis_server.url, "alive")], kind="redis")
    cycles = collect_once(config, store)
    assert [c.status.state for c in cycles] == ["down", "ok"]
    gone = status_row(store, "redis", "gone")
    assert gone["state"] == "down" and "refused" in gone["last_error"].lower()
    assert gone["hints"] == ["is Redis running and listening on that host and port (or socket)?"]
    assert status_row(store, "redis", "alive")["state"] == "ok"
    assert not series(store, "redis.memory.used_bytes", target_name="alive").empty


def test_password_problems_are_explained_and_never_stored(
    redis_server: ThrowawayRedis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    client(redis_server.url).config_set("requirepass", "s3cret-pw")
    with_password = redis_server.url.replace("redis://", "redis://:s3cret-pw@")
    wrong = redis_server.url.replace("redis://", "redis://:wrong-pw@")
    monkeypatch.setenv("OBS_TEST_REDIS_PW", "s3cret-pw")
    targets = [
        target(redis_server.url, "no-password"),
        target(wrong, "wrong-password"),
        target(with_password, "in-url"),
        target(wrong, "from-env", password_env="OBS_TEST_REDIS_PW"),  # the variable wins
        target(redis_server.url, "env-unset", password_env="OBS_TEST_REDIS_NOT_SET"),
    ]
    config = make_config(store.url, targets, kind="redis")
    states = {c.target: c.status for c in collect_once(config, store)}
    assert states["no-password"].state == "down" and states["no-password"].hints == [HINT_PASSWORD]
    assert "authentication required" in states["no-password"].error.lower()
    assert states["wrong-password"].state == "down" and states["wrong-password"].hints == [HINT_PASSWORD]
    assert states["in-url"].state == "ok" and states["from-env"].state == "ok"
    assert states["env-unset"].state == "down" and "OBS_TEST_REDIS_NOT_SET" in states["env-unset"].error
    with store.engine.connect() as conn:
        stored = json.dumps([list(map(str, row)) for row in conn.execute(select(target_status))])
    assert "s3cret-pw" not in stored and "wrong-pw" not in stored


def test_refused_commands_degrade_and_the_rest_is_stored(redis_server: ThrowawayRedis, store: Store) -> None:
    r = client(redis_server.url)
    r.execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "+@all", "-slowlog", "-config")
    r.set("bull:oops:wait", "not a list")
    with RedisWith("--rename-command", "LATENCY", "") as renamed:
        limited = redis_server.url.replace("redis://", "redis://limited:pw@")
        config = make_config(
            store.url,
            [target(limited, queues={"bullmq": ["oops"]}), target(renamed.url, "renamed")],
            kind="redis",
        )
        now = int(time.time())
        by_name = {c.target: c.status for c in collect_once(config, store, now)}
    acl = by_name["cache-1"]
    assert acl.state == "degraded" and "SLOWLOG" in acl.error
    assert any("may not run SLOWLOG" in h and "ACL SETUSER limited +slowlog" in h for h in acl.hints)
    assert any("bull:oops:wait" in h for h in acl.hints)  # a queue key of the wrong type
    assert at(store, "redis.memory.used_bytes", now) > 0  # INFO still stored
    assert at(store, "redis.queue.depth", now, "lib=bullmq,queue=oops,state=active") == 0
    assert status_row(store, "redis", "cache-1")["state"] == "degraded"
    renamed_status = by_name["renamed"]
    assert renamed_status.state == "degraded"
    assert renamed_status.hints == [
        "LATENCY is renamed or disabled on this server (rename-command): latency events not collected"
    ]
    assert not series(store, "redis.memory.used_bytes", target_name="renamed").empty


# -- topology ---------------------------------------------------------------------------------------------
def test_replication_lag_and_link(redis_server: ThrowawayRedis, store: Store) -> None:
    with ThrowawayRedis() as replica:
        primary = client(redis_server.url)
        primary.config_set("repl-diskless-sync-delay", "0")  # sync at once, not after 5 s
        client(replica.url).replicaof("127.0.0.1", redis_server.port)
        deadline = time.monotonic() + 10
        while primary.info("replication").get("slave0", {}).get("state") != "online":
            assert time.monotonic() < deadline, "the replica did not come online"
            time.sleep(0.05)
        primary.set("moved", "on")
        now = int(time.time())
        config = make_config(
            store.url, [target(redis_server.url, "primary"), target(replica.url, "replica")], kind="redis"
        )
        assert [c.status.state for c in collect_once(config, store, now)] == ["ok", "ok"]
        assert at(store, "redis.replication.connected_replicas", now, target_name="primary") == 1
        lag = at(store, "redis.replication.lag_bytes", now, f"replica=127.0.0.1:{replica.port}", "primary")
        assert lag >= 0
        assert at(store, "redis.replication.link_up", now, target_name="replica") == 1
        assert store.status_details("redis", "replica").role == "slave"


def test_cluster_node_state(store: Store) -> None:
    # The bus port defaults to port + 10000, past 65535 for high free ports: give it its own.
    options = (
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-port",
        str(free_port()),
    )
    with RedisWith(*options) as node:
        r = client(node.url)
        r.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while "cluster_state:ok" not in r.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "the cluster did not reach state ok"
            time.sleep(0.05)
        now = int(time.time())
        assert (
            collect_once(make_config(store.url, [target(node.url)], kind="redis"), store, now)[0].status.state
            == "ok"
        )
    assert at(store, "redis.cluster.state_ok", now) == 1
    assert at(store, "redis.cluster.slots_assigned", now) == 16384
    assert at(store, "redis.cluster.known_nodes", now) == 1


# -- the benchmark, tiny ----------------------------------------------------------------------------------
def test_benchmark_runs_and_proves_no_on_command() -> None:
    result = redis_cycle.run(keys=10_000, queues=3, jobs=300, cycles=3)
    assert result["server"]["keys"] >= 10_000 and len(result["server"]["queues"]) == 3
    assert result["cycles"] == 3 and result["points_per_cycle"] > 50
    for key in ("baseline_info_all", "cycle", "collect_only"):
        figure = result[key]
        assert 0 < figure["min_ms"] <= figure["median_ms"] <= figure["p95_ms"] <= figure["max_ms"]
    assert result["forbidden_calls"] == {} and result["no_on_commands"] is True
    ran = result["commands_per_cycle"]
    assert ran["info"] == 1 and ran["llen"] > 0 and ran["zcount"] > 0 and ran["hmget"] > 0
    assert not set(ran) & set(redis_cycle.FORBIDDEN)
    assert result["passed"] == (result["cycle"]["p95_ms"] <= redis_cycle.BUDGET_P95_MS)
    assert "INFO ALL round trip" in redis_cycle.format_report(result)


# The README's least-privilege ACL user, word for word (README: "What the monitored server needs").
README_ACL = (
    "ACL SETUSER observatory on >PASSWORD resetkeys %R~* resetchannels -@all +info +ping +hello +auth "
    "+client|setname +slowlog|get +latency|latest +config|get +cluster|info "
    "+llen +zcard +zcount +zrangebyscore +hlen +hget +hmget +lindex"
)


def test_the_readmes_least_privilege_acl_user_collects_everything(
    redis_server: ThrowawayRedis, store: Store
) -> None:
    """With only the commands the README grants, read-only on keys: a full cycle, queues of the
    three libraries included, with no command refused and nothing written."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert README_ACL in readme
    r = client(redis_server.url)
    r.execute_command(*README_ACL.replace("PASSWORD", "acl-pw").split())
    r.lpush("bull:mail:wait", "1")
    r.lpush("rq:queue:default", "job-1")
    r.lpush("celery", "{}")
    url = redis_server.url.replace("redis://", "redis://observatory:acl-pw@")
    queues = {"bullmq": ["mail"], "rq": ["default"], "celery": ["celery"]}
    config = make_config(store.url, [target(url, queues=queues)], kind="redis")
    now = int(time.time())
    (cycle,) = collect_once(config, store, now)
    assert (cycle.status.state, cycle.status.error, cycle.status.hints) == ("ok", None, [])
    assert at(store, "redis.queue.depth", now, "lib=bullmq,queue=mail,state=wait") == 1
    limited = client(url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        limited.set("anything", "1")  # it may read, never write
