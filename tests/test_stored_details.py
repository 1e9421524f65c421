"""The PostgreSQL and Redis collectors' details as they cross the store (dashboard.core.details).

CAPTURED are target_status.details rows written by the collectors before the details were typed
records, against the throwaway servers: PostgreSQL 15 (a database with pg_stat_statements, one
without) and Redis 7.0 (queue reads, a slow log). They still load with the model their source
registers, hold what the collectors compare, and are written back byte for byte; the collectors
still see a restart in them; and today's collectors write the same keys, with values of the same types.
"""

from __future__ import annotations

import json
import time

import psycopg
import pytest
from sqlalchemy import select

from collectors.postgres.collector import _reset_since
from dashboard.core import sources
from dashboard.core.details import PostgresDetails, RedisDetails
from dashboard.servers.throwaway import ThrowawayPostgres, ThrowawayRedis
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.reads import target_details
from dashboard.store.schema import target_status
from tests.support import redis_target
from tests.support.postgres import new_database, run_workload
from tests.support.stores import collect_once, make_config, stored_details

PG_READ = (
    '{"postmaster_start": 1796027362, "pgss_reset": 1796027362.058574, "dealloc": 0, '
    '"pgss_snapshot": 1796027377}'
)  # a cycle that read pg_stat_statements
PG_NO_PGSS = '{"postmaster_start": 1796027362}'  # a database without the extension
REDIS = (
    '{"run_id": "0d99e1a84dee0622d08306a92a907e4bf99f465e", "uptime": 0, "role": "master", '
    '"redis_version": "7.0.15", "maxmemory_policy": "noeviction", "cluster_enabled": false, '
    '"slowlog_last_id": 40, "own_hits": 0, "own_misses": 33, "queue_ts": 1796027377}'
)
CAPTURED = {("postgres", "t1"): PG_READ, ("postgres", "noext"): PG_NO_PGSS, ("redis", "cache-1"): REDIS}


def details_row(store: Store, kind: str, name: str) -> str:
    tid = store.target_id(kind, name)
    with store.engine.connect() as conn:
        return conn.execute(select(target_status.c.details).where(target_status.c.target_id == tid)).scalar()


def test_rows_written_before_the_records_load(store: Store) -> None:
    engine = make_engine(store.url, readonly=True)
    try:
        for (kind, name), text in CAPTURED.items():
            tid = stored_details(store, kind, name, text)
            found = store.status_details(kind, name)  # as the collector reads it after a restart
            assert type(found) is sources.BY_KIND[kind].details
            assert found.to_stored() == text  # same keys, same order, same values
            assert target_details(engine, tid) == found  # as the pages read it
    finally:
        engine.dispose()
    read, no_pgss = store.status_details("postgres", "t1"), store.status_details("postgres", "noext")
    assert isinstance(read, PostgresDetails) and isinstance(no_pgss, PostgresDetails)
    assert read.postmaster_start == 1796027362 and read.pgss_reset == 1796027362.058574
    assert (read.dealloc, read.pgss_snapshot) == (0, 1796027377)
    assert no_pgss.postmaster_start == 1796027362
    assert (no_pgss.pgss_reset, no_pgss.dealloc, no_pgss.pgss_snapshot) == (None, None, None)  # no baseline
    redis = store.status_details("redis", "cache-1")
    assert isinstance(redis, RedisDetails)
    assert (redis.run_id, redis.uptime, redis.role) == (
        "0d99e1a84dee0622d08306a92a907e4bf99f465e",
        0,
        "master",
    )
    assert (redis.redis_version, redis.maxmemory_policy, redis.cluster_enabled) == (
        "7.0.15",
        "noeviction",
        False,
    )
    assert (redis.slowlog_last_id, redis.own_hits, redis.own_misses, redis.queue_ts) == (
        40,
        0,
        33,
        1796027377,
    )


def test_a_reset_time_saved_to_the_second_stays_an_int(store: Store) -> None:
    """Older versions saved pg_stat_statements' reset time to the second: it must still match its second."""
    stored_details(
        store, "postgres", "t1", '{"postmaster_start": 1, "pgss_reset": 1796027362, "pgss_snapshot": 2}'
    )
    details = store.status_details("postgres", "t1")
    assert isinstance(details, PostgresDetails) and type(details.pgss_reset) is int
    assert not _reset_since(details.pgss_reset, 1796027362.4)
    assert _reset_since(details.pgss_reset, 1796027363.1)


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        # Keys another version added are ignored; the ones this one knows load.
        ("redis", '{"run_id": "abc", "uptime": 7, "added_later": [1]}', '{"run_id": "abc", "uptime": 7}'),
        ("postgres", '{"postmaster_start": 5, "added_later": {}}', '{"postmaster_start": 5}'),
        # Unreadable rows count as none: the collector starts again from its defaults.
        ("redis", '{"uptime": "a while"}', None),
        ("postgres", '{"postmaster_start": "yesterday"}', None),
        ("redis", "{not json", None),
        ("postgres", "[1, 2]", None),
        ("redis", "{}", None),
    ],
)
def test_other_versions_rows_never_break_the_collector(
    store: Store, kind: str, text: str, expected: str | None
) -> None:
    tid = stored_details(store, kind, "t", text)
    found = store.status_details(kind, "t")
    model = sources.BY_KIND[kind].details
    assert found == (model() if expected is None else model.from_stored(expected))
    engine = make_engine(store.url, readonly=True)
    try:
        shown = target_details(engine, tid)
    finally:
        engine.dispose()
    assert (shown.to_stored() if shown else None) == expected


def test_redis_collector_sees_a_restart_in_a_captured_row(store: Store) -> None:
    """The row names another server (run_id) that had logged 40 slow commands: this server's slow
    log, whose ids start at 0, is read whole rather than taken for already seen."""
    with ThrowawayRedis() as server:
        r = redis_target.client(server.url)
        r.config_set("slowlog-log-slower-than", "0")  # log everything
        r.set("a", "b")
        stored_details(store, "redis", "cache-1", REDIS)
        config = make_config(store.url, [redis_target.target(server.url)], kind="redis")
        cycle = collect_once(config, store, int(time.time()))[0]
        assert cycle.status.state == "ok"
        assert "SET a b" in [e.command for e in cycle.slowlog]
        assert max(e.entry_id for e in cycle.slowlog) < 40  # all at or below the row's last id
        live = store.status_details("redis", "cache-1")
        assert isinstance(live, RedisDetails) and live.run_id == r.info("server")["run_id"]


def test_postgres_baseline_follows_the_captured_rows(pg: ThrowawayPostgres, store: Store) -> None:
    """A row of a cycle that read pg_stat_statements is a baseline (the next cycle's totals count);
    one of a cycle that could not read it is not."""
    dsn = pg.dsn(dbname=new_database(pg))
    run_workload(dsn)
    stored_details(store, "postgres", "t1", PG_READ)
    stored_details(store, "postgres", "t2", PG_NO_PGSS)
    config = make_config(store.url, [{"name": n, "dsn": dsn, "interval": "60s"} for n in ("t1", "t2")])
    baseline, first = collect_once(config, store)
    assert baseline.status.state == first.status.state == "ok"
    assert any(p.name == "pg.statements.calls" for p in baseline.points)
    assert not any(p.name == "pg.statements.calls" for p in first.points)


HEALTH_PARTS = ("sessions", "replication", "server_stats", "settings", "tables")


def test_collectors_write_todays_keys(pg: ThrowawayPostgres, store: Store) -> None:
    """What the collectors store now has the captured rows' keys, in their order, with values of
    the same types."""
    dsn = pg.dsn(dbname=new_database(pg))
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS details_no_ext")
        conn.execute("CREATE DATABASE details_no_ext")
    targets = [{"name": "t1", "dsn": dsn, "interval": "60s"}]
    targets.append({"name": "noext", "dsn": pg.dsn(dbname="details_no_ext"), "interval": "60s"})
    config = make_config(store.url, targets)
    now = int(time.time())
    for ts in (now, now + 60):
        run_workload(dsn)
        collect_once(config, store, ts)
    with ThrowawayRedis() as server:
        r = redis_target.client(server.url)
        r.config_set("slowlog-log-slower-than", "0")
        queues = {"bullmq": ["email"], "rq": ["default"], "celery": ["celery"]}
        config = make_config(store.url, [redis_target.target(server.url, queues=queues)], kind="redis")
        for ts in (now, now + 15):
            r.get("absent")
            collect_once(config, store, ts)
    for (kind, name), text in CAPTURED.items():
        captured, written = json.loads(text), json.loads(details_row(store, kind, name))
        # Since then, a PostgreSQL cycle also keeps its health parts' snapshots (after the rest).
        added = [k for k in written if k not in captured]
        assert list(written)[: len(captured)] == list(captured), (kind, name)
        assert added == (list(HEALTH_PARTS) if kind == "postgres" else [])
        assert all(isinstance(written[k], dict) and isinstance(written[k]["ts"], int) for k in added)
        shared = {k: type(written[k]) for k in captured}
        assert shared == {k: type(v) for k, v in captured.items()}
