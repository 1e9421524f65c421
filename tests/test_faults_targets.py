"""Targets under real faults: a connect that hangs, a PostgreSQL crash, a catalog query past its
statement timeout, pg_stat_statements dropped and re-created, Redis FLUSHALL, a Redis replica
promoted and a target repointed to another server. Every target's DSN or URL carries a password,
which must reach neither the output nor the store; every gap stays a gap, never a spike."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import redis
from sqlalchemy import func, select

from dashboard.servers.throwaway import ThrowawayPostgres, ThrowawayRedis
from dashboard.store import Store
from dashboard.store.reads import (
    Window,
    series_frame,
    statement_series,
    statement_totals,
    target_statuses,
)
from dashboard.store.schema import STMT, statements
from tests.support.cli import observatory
from tests.support.faults import SilentListener, child_env, crash_postgres, integrity, wait_for
from tests.support.postgres import new_database
from tests.support.redis_target import at, series
from tests.support.secrets import leaks, store_bytes
from tests.support.stores import collect_once, make_config, status_row

PASSWORD = "Fault-pw-93xq"
LOOKUP = "SELECT * FROM orders WHERE id = $1"
EVERYTHING = Window(0, 4_000_000_000)


def assert_no_leak(store_path: Path, *outputs: str) -> None:
    assert not leaks(store_bytes(store_path), PASSWORD), "the password is in the store's bytes"
    for text in outputs:
        assert not leaks(text, PASSWORD), f"the password is in: {text[:300]}"


def password_role(server: ThrowawayPostgres, role: str = "secretive") -> None:
    """A role that logs in with PASSWORD (scram-sha-256 in pg_hba.conf) and reads all statistics."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor")


def lookups(dsn: str, count: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        # No autovacuum: once it analyzed the one-page table, the planner read it whole for each
        # lookup, and the seq scans counted then were the lookups' (23 for 3 in one CI run).
        conn.execute(
            "CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, total numeric)"
            " WITH (autovacuum_enabled = false)"
        )
        conn.execute("INSERT INTO orders SELECT g, g FROM generate_series(1, 100) g ON CONFLICT DO NOTHING")
        for i in range(count):
            conn.execute("SELECT * FROM orders WHERE id = %s", (i % 100 + 1,))


def lookup_calls(store: Store) -> dict[int, float]:
    """The stored calls of LOOKUP at each cycle's time."""
    frame = statement_totals(store.engine, [1, 2, 3], EVERYTHING, "raw", limit=10_000)
    ids = frame.loc[frame["query"] == LOOKUP, "statement_id"].tolist()
    points = statement_series(store.engine, ids, EVERYTHING, "raw") if ids else None
    if points is None or points.empty:
        return {}
    return {int(ts): float(v) for ts, v in points.groupby("ts")["calls"].sum().items()}


# -- a connect that hangs ------------------------------------------------------------------------
def test_a_hanging_connect_is_down_within_its_timeout_and_says_so(tmp_path: Path) -> None:
    """A port that accepts and never answers: PostgreSQL and Redis targets are down after their
    connect timeouts, not hung, saying so; the password is in none of the outputs nor the store."""
    path = tmp_path / "store.db"
    with SilentListener() as silent:
        config = tmp_path / "observatory.yaml"
        config.write_text(
            f"store: sqlite:///{path}\ntargets:\n"
            f"  postgres:\n    - name: pg\n      dsn: postgresql://app:{PASSWORD}@127.0.0.1:{silent.port}/erp\n"
            "      connect_timeout: 2s\n"
            f"  redis:\n    - name: cache\n      url: redis://:{PASSWORD}@127.0.0.1:{silent.port}/0\n"
            "      timeout: 2s\n"
        )
        started = time.monotonic()
        once = observatory("collect", "--once", "--config", str(config))
        took = time.monotonic() - started
        assert len(silent.accepted) >= 2  # both connected, then waited for an answer
    assert once.returncode == 1 and "Traceback" not in once.stderr, once.stderr
    assert took < 15, f"collect --once took {took:.1f} s"
    lines = once.stderr.splitlines()
    assert any(x.startswith("postgres/pg: down") and "timeout" in x.lower() for x in lines), once.stderr
    assert any(x.startswith("redis/cache: down") and "timeout" in x.lower() for x in lines), once.stderr
    status = observatory("status", "--config", str(config))
    assert status.returncode == 1 and "down" in status.stdout, status.stdout + status.stderr
    assert_no_leak(path, once.stdout, once.stderr, status.stdout, status.stderr)


# -- the daemon SIGKILLed while it collects --------------------------------------------------------
def stored_lookups(store: Store, datname: str) -> dict[int, float]:
    """The stored calls of the lookup the test runs, at each cycle's time."""
    raw = STMT["raw"]
    query = (
        select(raw.c.ts, func.sum(raw.c.calls))
        .select_from(raw.join(statements, statements.c.id == raw.c.statement_id))
        .where(statements.c.datname == datname, statements.c.query == LOOKUP)
        .group_by(raw.c.ts)
    )
    with store.engine.connect() as conn:
        return {int(ts): float(calls) for ts, calls in conn.execute(query).all()}


def daemon(config: Path, log: Path) -> subprocess.Popen:
    with open(log, "a") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "dashboard", "-c", str(config), "collect"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=child_env(),
        )


def test_the_daemon_killed_while_collecting_counts_every_call_once(
    pg: ThrowawayPostgres, tmp_path: Path
) -> None:
    """`observatory collect` (every second) is SIGKILLed twice while a workload runs, and started
    again each time: the store passes SQLite's integrity check, every call of the workload
    is stored exactly once (none lost, none counted twice), and the seconds the daemon was dead
    hold no point: the first cycle after covers them (its width), a rate, not a spike."""
    name = new_database(pg, "killed")
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS secretive")
        conn.execute(f"CREATE ROLE secretive LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor")
    admin = pg.dsn(dbname=name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        conn.execute("INSERT INTO orders SELECT generate_series(1, 100)")
    path = tmp_path / "store.db"
    config = tmp_path / "observatory.yaml"
    config.write_text(
        f"store: sqlite:///{path}\ntargets:\n  postgres:\n    - name: t1\n"
        f"      dsn: {pg.dsn(user='secretive', dbname=name, password=PASSWORD)}\n"
        "      interval: 1s\n      advise: false\n"
    )
    log = tmp_path / "daemon.log"
    store = Store(f"sqlite:///{path}")
    ran, dead = 0, []
    with psycopg.connect(admin, autocommit=True) as conn:
        proc = daemon(config, log)
        try:
            wait_for(
                "the baseline cycle",
                lambda: bool(target_statuses(store.engine)["last_success"].notna().any()),
            )
            for _ in range(2):
                for i in range(40):
                    conn.execute("SELECT * FROM orders WHERE id = %s", (i + 1,))
                    ran += 1
                    time.sleep(0.02)
                os.kill(proc.pid, signal.SIGKILL)  # at any point of its cycle: reading, writing, waiting
                proc.wait(timeout=10)
                killed = time.time()
                for i in range(10):  # while nobody collects
                    conn.execute("SELECT * FROM orders WHERE id = %s", (i + 1,))
                    ran += 1
                time.sleep(1.5)
                back = time.time()
                dead.append((killed, back))
                proc = daemon(config, log)
                wait_for(
                    "a cycle after the restart",
                    # a cycle's ts is whole seconds: one started 0.9 s after `back` can be stamped
                    # before it, and with no calls since, no later cycle stores the lookup again
                    lambda: max(stored_lookups(store, name), default=0) >= int(dead[-1][1]),
                    timeout=60,
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert integrity(path) == "ok"
    calls = stored_lookups(store, name)
    assert sum(calls.values()) == ran, (calls, ran)
    tid = store.target_id("postgres", "t1")
    commits = series_frame(store.engine, [tid], ["pg.db.xact_commit"], Window(0, 4_000_000_000), "raw")
    commits = commits.sort_values("ts")
    for killed, restarted in dead:
        assert not commits["ts"].between(int(killed) + 1, int(restarted) - 1).any()  # a gap
        after = commits[commits["ts"] >= int(restarted)].iloc[0]
        assert after["width"] >= restarted - killed - 1  # the first point after spans the gap
    assert not leaks(store_bytes(path), PASSWORD) and PASSWORD not in log.read_text()
    store.close()


# -- PostgreSQL ----------------------------------------------------------------------------------
def test_a_crash_of_postgresql_is_a_gap_then_counts_from_zero(tmp_path: Path, caplog) -> None:
    """The server SIGKILLed (pg_stat_statements' counters are not saved) while collected: the cycle
    then is down and stores no point; after the restart the counters start from zero and the next
    cycle stores only what ran since, its width spanning the gap (a rate, not a spike)."""
    caplog.set_level(logging.DEBUG)
    with ThrowawayPostgres(password_roles=("secretive",)) as server:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        password_role(server)
        dsn = server.dsn(user="secretive", password=PASSWORD)
        store = Store(f"sqlite:///{tmp_path / 'store.db'}")
        config = make_config(store.url, [{"name": "t1", "dsn": dsn, "interval": "60s"}])
        t0 = int(time.time()) - 600
        lookups(server.dsn(), 10)
        collect_once(config, store, t0)  # baseline
        lookups(server.dsn(), 30)
        assert collect_once(config, store, t0 + 60)[0].status.state == "ok"
        lookups(server.dsn(), 5)  # lost with the crash: pg_stat_statements is not saved
        crash_postgres(server.data_dir, str(Path(server.data_dir).parent / "sock"))
        down = collect_once(config, store, t0 + 120)[0]
        assert down.status.state == "down"
        started = server._run("pg_ctl", "start", "-w", "-t", "30", "-D", server.data_dir, "-l", server._log)
        assert started.returncode == 0, started.stderr + Path(server._log).read_text()[-2000:]
        lookups(server.dsn(), 7)
        assert collect_once(config, store, t0 + 180)[0].status.state == "ok"
        assert lookup_calls(store) == {t0 + 60: 30.0, t0 + 180: 7.0}  # nothing at t0 + 120: a gap
        commits = series_frame(
            store.engine, [store.target_id("postgres", "t1")], ["pg.db.xact_commit"], EVERYTHING, "raw"
        )
        assert t0 + 120 not in set(commits["ts"])
        last = commits[commits["ts"] == t0 + 180]
        assert (last["width"] == 120).all() and (last["sum"] >= 0).all()
        assert_no_leak(tmp_path / "store.db", caplog.text, status_row(store, "postgres", "t1").to_json())
        store.close()


def test_a_catalog_read_past_its_statement_timeout(pg: ThrowawayPostgres, tmp_path: Path, caplog) -> None:
    """A table locked by another session makes the tables part's size read wait past the target's
    statement timeout: the server cancels it, the cycle keeps its statements and says in a hint which
    part failed; the next cycle reads the tables again, their counters counted once."""
    caplog.set_level(logging.DEBUG)
    name = new_database(pg, "faults")
    password_role(pg)
    admin = pg.dsn(dbname=name)
    lookups(admin, 1)
    dsn = pg.dsn(user="secretive", dbname=name, password=PASSWORD)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    config = make_config(store.url, [{"name": "t1", "dsn": dsn, "statement_timeout": "0.5s"}])
    t0 = int(time.time()) - 3600
    collect_once(config, store, t0)
    lookups(admin, 20)
    with psycopg.connect(admin) as locker:
        locker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        cycle = collect_once(config, store, t0 + 300)[0]
        took = time.monotonic() - started
        locker.rollback()
    assert took < 5
    assert cycle.status.state == "ok", cycle.status
    assert "health part tables could not be read: canceling statement due to statement timeout" in (
        cycle.status.hints
    )
    assert lookup_calls(store) == {t0 + 300: 20.0}  # the statements were stored all the same
    with psycopg.connect(admin, autocommit=True) as conn:
        for _ in range(3):
            conn.execute("SELECT count(*) FROM orders")
    assert collect_once(config, store, t0 + 600)[0].status.state == "ok"
    scans = series_frame(
        store.engine, [store.target_id("postgres", "t1")], ["pg.table.seq_scan"], EVERYTHING, "raw"
    )
    assert t0 + 300 not in set(scans["ts"])  # the failed read left a gap, not a zero
    assert scans.loc[scans["ts"] == t0 + 600, "sum"].sum() == 3  # counted once, over both intervals
    assert_no_leak(tmp_path / "store.db", caplog.text, status_row(store, "postgres", "t1").to_json())
    store.close()


def test_pg_stat_statements_dropped_and_re_created(pg: ThrowawayPostgres, tmp_path: Path, caplog) -> None:
    """DROP EXTENSION while collected: the target is degraded with the fix as a hint, its other
    metrics still stored; CREATE EXTENSION again: every call is counted once (the counters stayed in
    shared memory), never twice, never negative."""
    caplog.set_level(logging.DEBUG)
    name = new_database(pg, "faults")
    password_role(pg)
    admin = pg.dsn(dbname=name)
    dsn = pg.dsn(user="secretive", dbname=name, password=PASSWORD)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    config = make_config(store.url, [{"name": "t1", "dsn": dsn}])
    t0 = int(time.time()) - 3600
    lookups(admin, 1)
    collect_once(config, store, t0)
    lookups(admin, 10)
    assert collect_once(config, store, t0 + 60)[0].status.state == "ok"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP EXTENSION pg_stat_statements")
    lookups(admin, 4)
    dropped = collect_once(config, store, t0 + 120)[0]
    assert dropped.status.state == "degraded" and "CREATE EXTENSION" in " ".join(dropped.status.hints)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
    lookups(admin, 6)
    assert collect_once(config, store, t0 + 180)[0].status.state == "ok"
    assert lookup_calls(store) == {t0 + 60: 10.0, t0 + 180: 10.0}
    assert_no_leak(tmp_path / "store.db", caplog.text, status_row(store, "postgres", "t1").to_json())
    store.close()


# -- Redis ---------------------------------------------------------------------------------------
def with_password(server: ThrowawayRedis) -> str:
    redis.Redis(host="127.0.0.1", port=server.port).config_set("requirepass", PASSWORD)
    return f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"


def busy_uptime(url: str) -> int:
    return int(redis.Redis.from_url(url).info("server")["uptime_in_seconds"])


def redis_config(store: Store, url: str) -> object:
    target = {"name": "cache-1", "url": url, "interval": "15s", "timeout": "2s"}
    target["queues"] = {"rq": ["default"]}
    return make_config(store.url, [target], kind="redis")


def test_flushall_empties_the_keyspace_without_a_negative_or_a_spike(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with ThrowawayRedis() as server:
        url = with_password(server)
        r = redis.Redis.from_url(url)
        r.mset({f"k{i}": i for i in range(100)})
        r.rpush("rq:queue:default", *range(5))
        store = Store(f"sqlite:///{tmp_path / 'store.db'}")
        config = redis_config(store, url)
        t0 = int(time.time()) - 600
        collect_once(config, store, t0)
        for i in range(40):
            r.get(f"k{i}")
        collect_once(config, store, t0 + 15)
        r.flushall()
        for i in range(6):
            r.get(f"k{i}")  # misses now
        assert collect_once(config, store, t0 + 30)[0].status.state == "ok"
        assert at(store, "redis.keyspace.hits", t0 + 15) == 40
        assert (
            at(store, "redis.keyspace.hits", t0 + 30) == 0
            and at(store, "redis.keyspace.misses", t0 + 30) == 6
        )
        keys = series(store, "redis.db.keys", "db=0")
        assert keys.loc[keys["ts"] == t0 + 15, "sum"].tolist() == [100 + 1]
        assert t0 + 30 not in set(keys["ts"]) or keys.loc[keys["ts"] == t0 + 30, "sum"].tolist() == [0]
        depth = series(store, "redis.queue.depth")
        assert depth.loc[depth["ts"] == t0 + 30, "sum"].max() == 0
        ops = series(store, "redis.ops")
        assert (ops["sum"] >= 0).all() and ops.loc[ops["ts"] == t0 + 30, "sum"].iloc[0] < 100
        assert_no_leak(tmp_path / "store.db", caplog.text, status_row(store, "redis", "cache-1").to_json())
        store.close()


def test_a_promoted_replica_and_a_repointed_target_give_no_spike(tmp_path: Path, caplog) -> None:
    """The target reads a replica; the primary dies and the replica is promoted (REPLICAOF NO ONE):
    the role changes, the counters go on. Then the target is repointed to another server that has
    been up all along: its counters hold what it did before, which happened in no interval of
    ours; the first reading of it is a baseline, not one huge delta."""
    caplog.set_level(logging.DEBUG)
    with ThrowawayRedis() as primary, ThrowawayRedis() as replica, ThrowawayRedis() as other:
        busy = redis.Redis(host="127.0.0.1", port=other.port)
        busy.set("x", 1)
        for _ in range(500):
            busy.get("x")  # the other server's past: 500 hits before it is ours
        rr = redis.Redis(host="127.0.0.1", port=replica.port)
        rr.replicaof("127.0.0.1", primary.port)
        store = Store(f"sqlite:///{tmp_path / 'store.db'}")
        url = with_password(replica)
        config = redis_config(store, url)
        rr = redis.Redis.from_url(url)
        t0 = int(time.time()) - 600
        collect_once(config, store, t0)
        primary.stop()
        rr.replicaof("NO", "ONE")
        rr.set("y", 1)
        for _ in range(9):
            rr.get("y")
        promoted = collect_once(config, store, t0 + 15)[0]
        assert promoted.status.state == "ok" and promoted.status.details.role == "master"
        assert at(store, "redis.keyspace.hits", t0 + 15) == 9
        other_url = with_password(other)
        for _ in range(3):
            redis.Redis.from_url(other_url).get("x")
        # Read 2 s after the last reading, the other server having been up longer than that.
        wait_for("the other server's uptime", lambda: busy_uptime(other_url) >= 3, timeout=10)
        repointed = collect_once(redis_config(store, other_url), store, t0 + 17)[0]
        assert repointed.status.state == "ok"
        hits = series(store, "redis.keyspace.hits")
        assert t0 + 17 not in set(hits["ts"]), hits  # a baseline: no delta of its 503 past hits
        for _ in range(4):
            redis.Redis.from_url(other_url).get("x")
        collect_once(redis_config(store, other_url), store, t0 + 32)
        assert at(store, "redis.keyspace.hits", t0 + 32) == 4
        assert_no_leak(tmp_path / "store.db", caplog.text, status_row(store, "redis", "cache-1").to_json())
        store.close()
