"""The store under real faults: a writer SIGKILLed mid-write, a file locked by another process, a full
filesystem, corrupted bytes, a store from a newer version. Each leaves what was stored intact and
is reported in one line, never a traceback."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import event, func, select

from collectors.cycle_writer import CycleWriter
from dashboard.servers.throwaway import ThrowawayPostgres, ThrowawayRedis
from dashboard.store import Store
from dashboard.store.schema import SCHEMA_VERSION, STMT
from tests.support.cli import env_without_config, observatory
from tests.support.cycles import T0, cycle
from tests.support.faults import (
    fill,
    integrity,
    kill_mid_write,
    small_filesystem,
    sqlite_write_locked,
    wait_for,
)
from tests.support.stores import new_store_dsn, ops_stored, status_row

PASSWORD = "Fault-pw-93xq"  # in every target's DSN: it must reach no output nor the store


def write_config(tmp_path: Path, store_url: str, dsn: str | None = None) -> Path:
    dsn = dsn or f"postgresql://app:{PASSWORD}@127.0.0.1:9/erp"  # discard port: refused at once
    path = tmp_path / "observatory.yaml"
    path.write_text(
        f"store: {store_url}\ntargets:\n  postgres:\n"
        f"    - name: erp\n      dsn: {dsn}\n      interval: 60s\n      connect_timeout: 2s\n"
    )
    return path


def calls_by_ts(store: Store) -> dict[int, float]:
    raw = STMT["raw"]
    with store.engine.connect() as conn:
        rows = conn.execute(select(raw.c.ts, func.sum(raw.c.calls)).group_by(raw.c.ts)).all()
    return {int(ts): float(calls) for ts, calls in rows}


def one_line_error(result, *, code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert PASSWORD not in result.stderr + result.stdout
    return line


def test_a_writer_killed_mid_write_leaves_a_sound_store_and_a_gap(tmp_path: Path) -> None:
    """SIGKILL in the middle of a 3,000-statement cycle: the file passes SQLite's integrity check,
    the cycles saved before are whole, the killed one left nothing (not half a cycle), and writing
    resumes with the next one: its interval's point, and none at the killed one's time."""
    width = 3000
    for attempt in range(3):  # a new store each time the write was over before the kill landed
        path = tmp_path / f"store-{attempt}.db"
        url = f"sqlite:///{path}"
        if (done := kill_mid_write(url, T0, saved_before=2, width=width)) is not None:
            break
    assert done is not None, "the kill never landed during a write"
    saved, killed = done
    assert saved == [T0, T0 + 60] and killed == T0 + 120
    assert integrity(path) == "ok"
    store = Store(url)
    assert calls_by_ts(store) == {T0: 1.0 * width, T0 + 60: 2.0 * width}  # no half cycle at T0 + 120
    store.write_cycle(cycle(T0 + 180, {n: 4.0 for n in range(width)}, cumulative=T0 + 180.0))
    assert calls_by_ts(store) == {T0: 1.0 * width, T0 + 60: 2.0 * width, T0 + 180: 4.0 * width}
    store.close()


def test_a_store_locked_by_another_process(tmp_path: Path) -> None:
    """Another process holds a write transaction open: `collect --once` waits the busy timeout, then
    says in one line that the target was not collected (its lease, taken before collecting, could
    not be written); what was stored stays, and once the lock is gone the store is written again."""
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    store = Store(url)
    store.write_cycle(cycle(T0, {1: 5.0}))
    config = write_config(tmp_path, url)
    with sqlite_write_locked(path):
        result = observatory("collect", "--once", "--config", str(config))
    assert result.returncode == 1, result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("postgres/erp: ")]
    assert line == (
        "postgres/erp: not collected: its lease could not be taken:"
        " (sqlite3.OperationalError) database is locked"
    ), line
    assert "[parameters:" not in result.stderr  # a failed statement's values stay out of its error
    assert calls_by_ts(store) == {T0: 5.0}
    after = observatory("collect", "--once", "--config", str(config))
    assert after.returncode == 1 and "Traceback" not in after.stderr, after.stderr  # the target is down
    assert status_row(store, "postgres", "erp")["state"] == "down"  # saved, now the lock is gone
    assert calls_by_ts(store) == {T0: 5.0}
    store.close()
    assert "Traceback" not in result.stderr, result.stderr


def test_a_locked_store_is_tried_once_per_batch_not_once_per_cycle(tmp_path: Path) -> None:
    """While the store is locked, the writer tries a batch once and keeps every cycle for later:
    trying each cycle alone would wait the busy timeout once per target (10 s each, 100 targets)."""
    path = tmp_path / "store.db"
    store = Store(f"sqlite:///{path}")
    tries = []
    event.listen(store.engine, "connect", lambda conn, _record: conn.execute("PRAGMA busy_timeout=200"))
    event.listen(store.engine, "begin", lambda _conn: tries.append(1))
    store.engine.dispose()  # connections made again, with the short timeout
    writer = CycleWriter(store)
    batch = [replace(cycle(T0, {n: 1.0}), target=f"db{n}") for n in range(5)]
    with sqlite_write_locked(path):
        failed = writer.write_now(batch)
    assert [c for c, _ in failed] == batch and len(tries) == 1
    assert all(str(err) == "(sqlite3.OperationalError) database is locked" for _, err in failed)
    assert writer.write_now(batch) == [] and sum(calls_by_ts(store).values()) == 5  # nothing lost
    store.close()


def test_a_full_disk_loses_nothing_already_stored(tmp_path: Path) -> None:
    """The store's filesystem is full: the write fails with a clear error, what was stored is read
    back whole, and once space is freed writing goes on."""
    with small_filesystem(tmp_path / "tmpfs") as folder:
        path = folder / "store.db"
        url = f"sqlite:///{path}"
        store = Store(url)
        for i in range(3):
            store.write_cycle(cycle(T0 + 60 * i, {n: 1.0 for n in range(50)}))
        config = write_config(tmp_path, url)
        first = observatory("collect", "--once", "--config", str(config))  # its lock file made
        assert "postgres/erp: down" in first.stderr, first.stderr
        filler = fill(folder)
        with pytest.raises(Exception, match="full") as refused:
            for i in range(3, 40):  # until the WAL needs a page the disk does not have
                store.write_cycle(cycle(T0 + 60 * i, {n: 1.0 for n in range(3000)}))
        stored = calls_by_ts(store)
        assert {T0: 50.0, T0 + 60: 50.0, T0 + 120: 50.0}.items() <= stored.items()
        assert all(v == 3000.0 for ts, v in stored.items() if ts > T0 + 120), refused.value
        full = observatory("collect", "--once", "--config", str(config))
        assert full.returncode == 1 and PASSWORD not in full.stderr + full.stdout, full.stderr
        (line,) = [x for x in full.stderr.splitlines() if x.startswith("postgres/erp: ")]
        assert line.endswith(
            "lease could not be taken: (sqlite3.OperationalError) database or disk is full"
        ), line
        store.close()
        filler.unlink()
        assert integrity(path) == "ok"
        store = Store(url)
        store.write_cycle(cycle(T0 + 3600, {1: 7.0}))
        assert calls_by_ts(store)[T0 + 3600] == 7.0 and calls_by_ts(store)[T0] == 50.0
        store.close()
    assert "Traceback" not in full.stderr, full.stderr


def corrupt_a_page(path: Path) -> None:
    """Overwrite a page in the middle of the file (not its header) with garbage."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        for at in range(page * 2, size - page, page * 3):
            fh.seek(at)
            fh.write(b"\xde\xad\xbe\xef" * (page // 4))


@pytest.mark.parametrize("damage", ["header", "pages"])
def test_a_corrupted_store_is_one_line_and_left_as_it_is(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    store = Store(url)
    for i in range(20):
        store.write_cycle(cycle(T0 + 60 * i, {n: 1.0 for n in range(200)}))
    store.close()
    if damage == "header":
        with open(path, "r+b") as fh:
            fh.write(b"garbage, not SQLite" * 4)
    else:
        corrupt_a_page(path)
    before = path.read_bytes()
    config = write_config(tmp_path, url)
    for command in (("collect", "--once"), ("status",)):
        line = one_line_error(observatory(*command, "--config", str(config)))
        assert line.startswith("observatory: store ") and ("malformed" in line or "not a database" in line)
    assert path.read_bytes() == before  # nothing rewritten, nothing lost


def test_a_store_from_a_newer_version_is_refused_by_the_collector(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    store = Store(url)
    store.write_cycle(cycle(T0, {1: 5.0}))
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the file, none in the WAL
    before = path.read_bytes()
    line = one_line_error(observatory("collect", "--once", "--config", str(write_config(tmp_path, url))))
    assert "newer than this observatory" in line, line
    assert path.read_bytes() == before


def test_a_store_read_only_for_a_while_is_an_outage_not_a_refusal(
    pg: ThrowawayPostgres, redis_server: ThrowawayRedis, tmp_path: Path
) -> None:
    """The shared store turns read-only under a daemon (a failover's demoted primary, or
    default_transaction_read_only set) for a few seconds. Its cycles wait and are saved once it is
    writable, every command counted; the log has no traceback. Before, the read-only error was a
    refusal of the cycles' data: they were dropped, the target's thread ended on its lease, and the
    target was never collected again, its lock still held."""
    dsn = new_store_dsn(pg)
    datname = dsn.rsplit("/", 1)[1]
    config = tmp_path / "observatory.yaml"
    config.write_text(
        f"store: {dsn}\ntargets:\n  redis:\n    - name: r1\n      url: {redis_server.url}\n"
        "      interval: 1s\n"
    )
    log = tmp_path / "daemon.log"
    client = redis.Redis.from_url(redis_server.url)
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "-c", str(config), "collect"],
            stdout=subprocess.DEVNULL, stderr=err, env=env_without_config(),
        )  # fmt: skip
    try:
        wait_for("the first cycle", lambda: "redis/r1: ok" in log.read_text(), timeout=30)
        read_only(pg, datname, True)
        for _ in range(300):
            client.ping()
        time.sleep(4)  # cycles refused meanwhile
        read_only(pg, datname, False)
        wait_for("the cycles to be saved", lambda: ops_stored(dsn, "r1") >= 300, timeout=60)
    finally:
        read_only(pg, datname, False)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        client.close()
    text = log.read_text()
    assert "read-only transaction" in text and "Traceback" not in text, text[-3000:]
    assert "dropped" not in text, text[-3000:]


def read_only(pg: ThrowawayPostgres, datname: str, on: bool) -> None:
    """New sessions of the database read-only from now (on: and the open ones ended, so the daemon's
    reconnect read-only), or writable again: the sessions opened meanwhile stay read-only, as on a
    failover's old primary; the daemon must let them go."""
    with psycopg.connect(pg.dsn(), autocommit=True) as admin:
        setting = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
        admin.execute(f"ALTER DATABASE {datname} {setting}")
        if on:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (datname,),
            )
