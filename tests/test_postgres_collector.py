"""The PostgreSQL collector against a real server: deltas, resets, evictions, failures, privileges."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import func, select

from collectors.postgres import collector as pgc
from collectors.scheduler import Scheduler
from dashboard.servers.throwaway import ThrowawayPostgres, free_port
from dashboard.store import Store
from dashboard.store.reads import Window, series_frame, statement_totals, target_statuses
from dashboard.store.schema import STMT, statements
from tests.support.postgres import new_database, run_workload
from tests.support.stores import collect_once, make_config

LOOKUP = "SELECT * FROM orders WHERE id = $1"


def totals(store: Store, level: str = "raw"):
    """Per-statement sums over everything stored, with query text."""
    now = int(time.time())
    return statement_totals(store.engine, [1, 2, 3], Window(0, now + 86400), level, limit=10_000)


def calls_of(store: Store, text: str) -> int:
    frame = totals(store)
    return int(frame.loc[frame["query"] == text, "calls"].sum())


def no_negative_deltas(store: Store) -> bool:
    with store.engine.connect() as conn:
        table = STMT["raw"]
        worst = conn.execute(select(func.min(table.c.calls), func.min(table.c.exec_ms))).one()
    return all(v is None or v >= 0 for v in worst)


def two_cycles_of_workload(dsn: str, store: Store, collect=collect_once):
    """A baseline cycle and one with the workload's deltas; returns the config to collect again."""
    config = make_config(store.url, [target(dsn)])
    for _ in range(2):
        run_workload(dsn)
        collect(config, store)
    return config


@pytest.fixture(params=["once", "daemon"])
def collect(request: pytest.FixtureRequest):
    """Collect every target once: with new collectors each time, as `collect --once` does (each
    read is complete), or with the same ones all along, as the daemon does (each read returns only
    the entries that moved since)."""
    if request.param == "once":
        yield collect_once
        return
    schedulers: dict[int, Scheduler] = {}

    def with_one_collector(config, store: Store):
        scheduler = schedulers.setdefault(id(config), Scheduler(config, store))
        cycles = [scheduler.collect(c) for c in scheduler.collectors]
        assert scheduler.writer.write_now(cycles) == []
        return cycles

    yield with_one_collector
    for scheduler in schedulers.values():
        for collector in scheduler.collectors:
            collector.close()


def target(dsn: str, name: str = "t1", **extra) -> dict:
    return {"name": name, "dsn": dsn, "interval": "60s", **extra}


def test_two_cycles_store_the_workload_as_deltas(
    pg: ThrowawayPostgres, database: str, store: Store, collect
) -> None:
    dsn = pg.dsn(dbname=database)
    config = make_config(store.url, [target(dsn)])
    run_workload(dsn)
    first = collect(config, store)[0]
    assert first.status.state == "ok", first.status
    assert first.deltas == []  # the first cycle is only the baseline: no spike
    run_workload(dsn)
    second = collect(config, store)[0]
    assert second.status.state == "ok"
    frame = totals(store)
    lookup = frame[frame["query"] == LOOKUP]
    assert lookup["calls"].sum() == 50  # exactly the second workload's 50 lookups
    assert lookup["datname"].iloc[0] == database and lookup["rolname"].iloc[0] == "postgres"
    assert lookup["rows_per_call"].iloc[0] == pytest.approx(1.0)
    assert calls_of(store, "UPDATE orders SET status = $2 WHERE id = $1") == 20
    sort = frame[frame["query"].str.contains("ORDER BY total DESC", regex=False)]
    assert sort["temp_written"].sum() > 0  # the 64kB work_mem sort spilled to disk
    assert no_negative_deltas(store)
    # The Overview's totals series hold the same activity as the statements.
    series = series_frame(store.engine, [1], ["pg.statements.calls"], Window(0, int(time.time()) + 60), "raw")
    assert series["sum"].sum() == frame["calls"].sum()


@pytest.mark.parametrize("collect", ["daemon"], indirect=True)
def test_steady_cycles_read_only_the_entries_that_moved(
    pg: ThrowawayPostgres, database: str, store: Store, collect
) -> None:
    dsn = pg.dsn(dbname=database)
    config = two_cycles_of_workload(dsn, store, collect)
    with psycopg.connect(dsn, autocommit=True) as conn:
        on_server = conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()[0]
        for i in range(3):
            conn.execute("SELECT * FROM orders WHERE id = %s", (i + 1,))
    cycle = collect(config, store)[0]
    assert cycle.status.state == "ok"
    assert on_server > 40 and len(cycle.entries) < 12  # what ran, and the collector's own reads
    assert sorted(d.deltas[0] for d in cycle.deltas) == [1.0, 3.0]  # the count, the 3 lookups
    assert calls_of(store, LOOKUP) == 53
    assert collect(config, store)[0].deltas == []  # nothing ran: nothing recorded


def test_collector_queries_are_not_counted_as_workload(
    pg: ThrowawayPostgres, database: str, store: Store, collect
) -> None:
    dsn = pg.dsn(dbname=database)
    config = make_config(store.url, [target(dsn)])
    for _ in range(4):  # the collector's own entries appear and get their text fetched once
        collect(config, store)
    cycle = collect(config, store)[0]
    assert cycle.texts == {} and cycle.vanished == []  # nothing new: no text read at all
    assert totals(store).empty  # only the collector ran, and it does not count itself
    assert store.own_statements("postgres", "t1")  # but it knows its entries after a restart


def test_reset_of_pg_stat_statements_gives_no_negative_delta(
    pg: ThrowawayPostgres, database: str, store: Store, collect
) -> None:
    dsn = pg.dsn(dbname=database)
    config = two_cycles_of_workload(dsn, store, collect)
    before = calls_of(store, LOOKUP)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        for i in range(7):
            conn.execute("SELECT * FROM orders WHERE id = %s", (i + 1,))
    cycle = collect(config, store)[0]
    assert cycle.status.state == "ok"
    assert calls_of(store, LOOKUP) == before + 7  # counted from zero after the reset
    assert no_negative_deltas(store)


def test_reset_of_one_entry_gives_no_negative_delta(
    pg: ThrowawayPostgres, database: str, store: Store, collect
) -> None:
    dsn = pg.dsn(dbname=database)
    config = two_cycles_of_workload(dsn, store, collect)
    with psycopg.connect(dsn, autocommit=True) as conn:
        queryid = conn.execute(
            "SELECT queryid FROM pg_stat_statements WHERE query = %s AND dbid = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            (LOOKUP,),
        ).fetchone()[0]
        conn.execute("SELECT pg_stat_statements_reset(0, 0, %s)", (queryid,))
        for i in range(3):
            conn.execute("SELECT * FROM orders WHERE id = %s", (i + 1,))
    collect(config, store)
    assert calls_of(store, LOOKUP) == 53
    assert no_negative_deltas(store)


def test_entry_back_with_its_old_counters_after_a_reset_is_counted(
    pg: ThrowawayPostgres, database: str, store: Store, collect
) -> None:
    """After a reset, an entry that ran as often as before has the signature it had: it must still
    be read, and counted from zero."""
    dsn = pg.dsn(dbname=database)
    config = two_cycles_of_workload(dsn, store, collect)
    rare = "SELECT count(*) FROM orders WHERE customer = $1 AND status = $2"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM orders WHERE customer = %s AND status = %s", (1, "new"))
    collect(config, store)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("SELECT count(*) FROM orders WHERE customer = %s AND status = %s", (2, "new"))
    collect(config, store)
    assert calls_of(store, rare) == 2
    assert no_negative_deltas(store)


@pytest.mark.parametrize("collect", ["daemon"], indirect=True)
def test_a_failed_cycle_changes_nothing(
    pg: ThrowawayPostgres, database: str, store: Store, collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query that fails late in a cycle (here the text read, made to fail) leaves the collector's
    state as it was: the next cycle counts the activity again and reads the new text."""
    dsn = pg.dsn(dbname=database)
    config = two_cycles_of_workload(dsn, store, collect)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(5):
            conn.execute("SELECT id FROM orders WHERE customer = %s ORDER BY id LIMIT 1", (i,))

    def text_read_fails(*_args):
        raise psycopg.OperationalError("the connection was lost")

    with monkeypatch.context() as patch:
        patch.setattr(pgc, "_texts", text_read_fails)
        assert collect(config, store)[0].status.state == "down"
    assert collect(config, store)[0].status.state == "ok"
    assert calls_of(store, "SELECT id FROM orders WHERE customer = $1 ORDER BY id LIMIT $2") == 5


def test_server_restart_gives_no_spike(store: Store) -> None:
    with ThrowawayPostgres() as server:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        config = two_cycles_of_workload(server.dsn(), store)
        server.restart()  # pg_stat_statements.save=on: counters survive a clean restart
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            for i in range(4):
                conn.execute("SELECT * FROM orders WHERE id = %s", (i + 1,))
        cycle = collect_once(config, store)[0]
        assert cycle.status.state == "ok"
        assert calls_of(store, LOOKUP) == 54
        assert no_negative_deltas(store)


def test_eviction_is_counted_from_zero_and_explained(store: Store, collect) -> None:
    with ThrowawayPostgres(settings={"pg_stat_statements.max": "100"}) as server:
        dsn = server.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("CREATE TABLE wide AS SELECT g AS id FROM generate_series(1, 10) g")
        config = make_config(store.url, [target(dsn)])
        collect(config, store)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(150):  # 150 distinct shapes: more than pg_stat_statements.max
                conn.execute(f"SELECT id AS c{i} FROM wide WHERE id IN ({', '.join(['1'] * (i + 1))})")
        cycle = collect(config, store)[0]
        assert cycle.status.state == "ok"
        assert any("pg_stat_statements.max" in h for h in cycle.status.hints)
        collect(config, store)
        assert no_negative_deltas(store)
        with store.engine.connect() as conn:
            gone = conn.execute(select(func.count()).where(statements.c.present.is_(False))).scalar()
        assert gone > 0  # entries the server evicted are marked, so their return starts from zero


def test_down_target_does_not_stop_the_others(pg: ThrowawayPostgres, database: str, store: Store) -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    config = make_config(store.url, [target(down, "down"), target(pg.dsn(dbname=database), "up")])
    started = time.monotonic()
    cycles = {c.target: c for c in collect_once(config, store)}
    assert time.monotonic() - started < 10
    assert cycles["up"].status.state == "ok"
    assert cycles["down"].status.state == "down"
    assert "Connection refused" in cycles["down"].status.error
    assert "is PostgreSQL running" in cycles["down"].status.hints[0]
    status = target_statuses(store.engine).set_index("name")
    assert status.loc["down", "failures"] == 1 and status.loc["up", "state"] == "ok"
    collect_once(config, store)
    assert target_statuses(store.engine).set_index("name").loc["down", "failures"] == 2


@pytest.mark.parametrize(
    ("dsn", "hint"),
    [
        ("this is not a dsn", "the dsn is not valid"),
        ("postgresql://postgres@127.0.0.1:{port}/no_such_db", "does not exist on that server"),
        ("postgresql://nobody@127.0.0.1:{port}/postgres", "the user named in the dsn does not exist"),
    ],
)
def test_bad_dsn_is_explained(pg: ThrowawayPostgres, store: Store, dsn: str, hint: str) -> None:
    cycle = collect_once(make_config(store.url, [target(dsn.format(port=pg.port))]), store)[0]
    assert cycle.status.state == "down"
    assert hint in cycle.status.hints[0]
    assert cycle.status.error


def test_password_is_used_and_never_shown(pg: ThrowawayPostgres, store: Store, monkeypatch) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS secretive")
        conn.execute("CREATE ROLE secretive LOGIN PASSWORD 'Hunter2-pw' IN ROLE pg_monitor")
    good = pg.dsn(user="secretive", password="Hunter2-pw")
    wrong = pg.dsn(user="secretive", password="Wrong-pw-77")
    monkeypatch.setenv("OBS_TEST_PW", "Hunter2-pw")
    from_env = target(pg.dsn(user="secretive"), "env", password_env="OBS_TEST_PW")
    config = make_config(store.url, [target(good, "good"), target(wrong, "wrong"), from_env])
    cycles = {c.target: c for c in collect_once(config, store)}
    assert cycles["good"].status.state == "ok" and cycles["env"].status.state == "ok"
    assert cycles["wrong"].status.state == "down"
    assert "check the password" in cycles["wrong"].status.hints[0]
    shown = target_statuses(store.engine).to_json()
    assert "Hunter2-pw" not in shown and "Wrong-pw-77" not in shown


def test_role_without_pg_monitor_is_explained(pg: ThrowawayPostgres, database: str, store: Store) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS plain")
        conn.execute("CREATE ROLE plain LOGIN")
        conn.execute(f"GRANT CONNECT ON DATABASE {database} TO plain")
    run_workload(pg.dsn(dbname=database))  # statements of another user, hidden from plain
    config = make_config(store.url, [target(pg.dsn(user="plain", dbname=database))])
    collect_once(config, store)
    cycle = collect_once(config, store)[0]
    assert cycle.status.state == "degraded"
    assert "GRANT pg_monitor TO plain;" in " ".join(cycle.status.hints)
    texts = set(totals(store)["query"]) | {e for e in cycle.texts.values()}
    assert not any("orders" in t for t in texts)  # others' statements are invisible, not garbage
    assert any("pg_stat_statements" in t for t in texts)  # its own statements are collected


def test_missing_preload_is_explained(store: Store) -> None:
    with ThrowawayPostgres(settings={"shared_preload_libraries": ""}) as server:
        cycle = collect_once(make_config(store.url, [target(server.dsn())]), store)[0]
        assert cycle.status.state == "degraded"
        assert cycle.status.hints[0] == pgc.HINT_PRELOAD
        assert any(p.name == "pg.db.xact_commit" for p in cycle.points)  # the rest still collected
        status = target_statuses(store.engine).iloc[0]
        assert "shared_preload_libraries = 'pg_stat_statements'" in status["last_error"]


def test_missing_extension_is_explained(pg: ThrowawayPostgres, store: Store) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS no_ext")
        conn.execute("CREATE DATABASE no_ext")
    cycle = collect_once(make_config(store.url, [target(pg.dsn(dbname="no_ext"))]), store)[0]
    assert cycle.status.state == "degraded"
    assert cycle.status.hints[0] == pgc.hint_create_extension("no_ext")


def test_database_stats_reset_gives_no_negative_delta(pg: ThrowawayPostgres, store: Store) -> None:
    name = new_database(pg)
    dsn = pg.dsn(dbname=name)
    config = two_cycles_of_workload(dsn, store)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_reset()")
    cycle = collect_once(config, store)[0]
    deltas = [p.delta for p in cycle.points if p.name.startswith("pg.db.") and p.delta is not None]
    assert deltas and min(deltas) >= 0
    sizes = [p.value for p in cycle.points if p.name == "pg.db.size_bytes" and p.labels == f"datname={name}"]
    assert sizes and sizes[0] > 1_000_000
    active = [p for p in cycle.points if p.name == "pg.connections" and p.labels == "state=active"]
    assert active and active[0].value >= 1  # the collector's own query is active
