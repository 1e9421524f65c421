"""The tables health part on a real PostgreSQL, through real collector cycles into a real store:
dead rows after a mass UPDATE and their clearing after VACUUM, sizes, and scans as deltas."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import psycopg
import pytest

from collectors.postgres import reads as reads_module
from collectors.postgres.collector import forget_absent
from dashboard.core import metrics
from dashboard.core.health.tables import TablesNow
from dashboard.core.records import Point
from dashboard.core.sqlfiles import SqlFiles
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.reads import Window, series_frame, target_details
from tests.support.postgres import advisor_dsn, new_database
from tests.support.stores import collect_once, make_config

TABLE = '"Order Lines"'  # quoted: the label and the snapshot keep it as PostgreSQL writes it


def _tables(store: Store) -> TablesNow:
    details = target_details(store.engine, store.target_id("postgres", "t"))
    assert details is not None and details.tables is not None
    return details.tables


def _row(store: Store, table: str):
    (found,) = [t for t in _tables(store).tables if t.table_name == f"public.{table}"]
    return found


def _flush(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_stat_force_next_flush()")  # counters reach the views at once


def test_dead_rows_appear_after_a_mass_update_and_clear_after_vacuum(
    pg: ThrowawayPostgres, store: Store
) -> None:
    name = new_database(pg, "tables")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, qty int) WITH (autovacuum_enabled = off)")
        conn.execute(f"INSERT INTO {TABLE} SELECT g, 1 FROM generate_series(1, 20000) g")
        _flush(conn)  # the inserts counted before VACUUM sets the live rows
        conn.execute(f"VACUUM ANALYZE {TABLE}")
        _flush(conn)
    # The least-privilege role: pg_monitor reads every table's statistics and sizes.
    target = {"name": "t", "dsn": advisor_dsn(pg, name), "interval": "60s", "health": {"indexes": "5m"}}
    config = make_config(store.url, [target])
    now = int(time.time())
    collect_once(config, store, now)
    before = _row(store, TABLE)
    assert (before.live, before.dead, before.vacuumed is not None) == (20000, 0, True)
    assert before.total_bytes >= before.table_bytes + before.index_bytes > 0
    assert _tables(store).datname == name

    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(f"UPDATE {TABLE} SET qty = qty + 1")  # every row gets a dead version
        for _ in range(3):
            conn.execute(f"SELECT count(*) FROM {TABLE} WHERE qty > 5").fetchone()  # sequential scans
        for i in range(5):
            conn.execute(f"SELECT qty FROM {TABLE} WHERE id = %s", (i + 1,)).fetchone()  # its primary key
        _flush(conn)
    collect_once(config, store, now + 300)
    updated = _row(store, TABLE)
    assert updated.dead == 20000 and 0.45 < updated.dead_ratio < 0.55
    assert updated.modified_since_analyze == 20000

    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(f"VACUUM {TABLE}")
        _flush(conn)
    collect_once(config, store, now + 600)
    vacuumed = _row(store, TABLE)
    assert vacuumed.dead == 0 and vacuumed.vacuumed >= updated.vacuumed

    tid = store.target_id("postgres", "t")
    names = ["pg.table.dead", "pg.table.seq_scan", "pg.table.updated"]
    frame = series_frame(store.engine, [tid], names, Window(now - 1, now + 601), "raw")
    labels = metrics.encode({"table": f"public.{TABLE}"})
    mine = frame[frame["labels"] == labels]
    dead = mine[mine["name"] == "pg.table.dead"].sort_values("ts")["sum"].tolist()
    assert dead == [0.0, 20000.0, 0.0]
    # Counters are stored as deltas between cycles: 20,000 rows updated, at least 3 scans, then none.
    updated_rows = mine[mine["name"] == "pg.table.updated"].sort_values("ts")["sum"].tolist()
    assert updated_rows == [20000.0, 0.0]
    scans = mine[mine["name"] == "pg.table.seq_scan"].sort_values("ts")["sum"].tolist()
    assert scans[0] >= 3 and scans[1] >= 0

    # The indexes part: the primary key's size, and its scans as deltas (5 lookups, then none).
    index = metrics.encode({"index": 'public."Order Lines_pkey"', "table": f"public.{TABLE}"})
    frame = series_frame(
        store.engine, [tid], ["pg.index.scans", "pg.index.size_bytes"], Window(now - 1, now + 601), "raw"
    )
    pkey = frame[frame["labels"] == index]
    assert pkey[pkey["name"] == "pg.index.scans"].sort_values("ts")["sum"].tolist()[:2] == [5.0, 0.0]
    assert (pkey[pkey["name"] == "pg.index.size_bytes"]["sum"] > 0).all()


def test_a_part_that_fails_is_a_hint_and_the_cycle_stands(
    pg: ThrowawayPostgres, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part whose query the server refuses (here: its SQL replaced by one that divides by zero)
    is named in a hint; the statements, the other parts and the target's state are unaffected."""
    folder = tmp_path / "sql"
    shutil.copytree(Path(reads_module.__file__).with_name("sql"), folder)
    (folder / "sessions.13.sql").write_text("SELECT 1 / 0 AS broken")
    monkeypatch.setattr(reads_module, "SQL", SqlFiles(folder))
    name = new_database(pg, "broken")
    config = make_config(store.url, [{"name": "t", "dsn": advisor_dsn(pg, name), "interval": "60s"}])
    (cycle,) = collect_once(config, store, int(time.time()))
    assert cycle.status.state == "ok", cycle.status
    assert "health part sessions could not be read: division by zero" in cycle.status.hints
    details = target_details(store.engine, store.target_id("postgres", "t"))
    assert details.sessions is None and details.tables is not None and details.settings is not None


def test_a_table_back_in_the_top_50_starts_from_a_new_baseline() -> None:
    """The baseline of a counter the part no longer returns is dropped: a table that leaves the
    top 50 and comes back a month later gets no month of scans in one point."""
    last = {
        ("pg.table.seq_scan", "table=a"): 7.0,
        ("pg.table.seq_scan", "table=b"): 1.0,
        ("pg.db.x", ""): 3.0,
    }
    read = [Point("pg.table.seq_scan", 9.0, "counter", "table=a", 2.0)]
    assert forget_absent(last, read) == {("pg.table.seq_scan", "table=a"): 7.0, ("pg.db.x", ""): 3.0}
