"""The target status merge (dashboard.analysis.targets), shared by the pages and `observatory status`,
and the reader's view of a store nobody has written yet."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import START_COLLECTING
from dashboard.core import config as config_mod
from dashboard.servers.throwaway import free_port
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.migrations import SchemaError, current_version
from dashboard.store.rates import rate, widths
from dashboard.store.schema import SCHEMA_VERSION
from tests.support.cli import observatory
from tests.support.cycles import T0, cycle

TARGETS = {
    "postgres": [{"name": "erp", "dsn": "postgresql://monitor@127.0.0.1:1/erp"}],
    "redis": [{"name": "cache-9", "url": "redis://127.0.0.1:1/0"}],
    "prometheus": [{"name": "prod", "url": "http://127.0.0.1:9", "preset": "seed"}],
}


def write_config(tmp_path: Path, store: str) -> Path:
    path = tmp_path / "observatory.yaml"
    path.write_text(json.dumps({"store": store, "targets": TARGETS}))
    return path


def test_status_lists_every_configured_target_of_every_kind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    try:
        store.write_cycle(cycle(T0 + 60, {1: 2}))  # erp was collected; the others never were
    finally:
        store.close()
    config = write_config(tmp_path, url)

    result = observatory("status", "--json", "--config", str(config))
    assert result.returncode == 0, result.stderr
    rows = {(t["kind"], t["name"]): t for t in json.loads(result.stdout)["targets"]}
    assert set(rows) == {("postgres", "erp"), ("redis", "cache-9"), ("prometheus", "prod")}
    assert rows[("postgres", "erp")]["state"] == "ok" and rows[("postgres", "erp")]["samples"] > 0
    for key in (("redis", "cache-9"), ("prometheus", "prod")):
        row = rows[key]
        assert row["configured"] is True and row["state"] == "never collected"
        assert row["samples"] == 0 and row["failures"] == 0 and row["last_success"] is None
        assert row["last_error"] is None and row["server_version"] is None

    text = observatory("status", "--config", str(config)).stdout
    assert "redis/cache-9: never collected, last success never, 0 samples" in text
    assert "prometheus/prod: never collected, last success never, 0 samples" in text


def test_status_names_the_daemon_collecting_each_target(tmp_path: Path) -> None:
    """With several daemons sharing the targets, status says which one holds each target's lease,
    and follows a take-over; a target no daemon took has none."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    config = write_config(tmp_path, url)
    store = Store(url)
    try:
        store.write_cycle(cycle(T0 + 60, {1: 2}))
        store.take_lease("postgres", "erp", "db-host-1:4242:ab12cd34")
        first = json.loads(observatory("status", "--json", "--config", str(config)).stdout)
        store.take_lease("postgres", "erp", "db-host-2:77:ef56ab78")  # another daemon took it over
    finally:
        store.close()
    rows = {t["name"]: t["collected_by"] for t in first["targets"]}
    assert rows == {"erp": "db-host-1:4242:ab12cd34", "cache-9": None, "prod": None}
    text = observatory("status", "--config", str(config)).stdout
    assert "erp: ok" in text and "  last collected by: db-host-2:77:ef56ab78" in text
    assert text.count("collected by") == 1


def test_a_store_nobody_wrote_reads_as_empty_and_stays_unwritten(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    config = config_mod.from_dict({"store": url, "targets": TARGETS})
    reader = Reader.open(config)
    try:
        assert reader.targets() == [] and not reader.has_data()
        statuses = reader.statuses()
        assert list(zip(statuses["kind"], statuses["name"], strict=True)) == [
            ("postgres", "erp"),
            ("redis", "cache-9"),
            ("prometheus", "prod"),
        ]
        assert statuses["configured"].all() and not statuses["stale"].any()
        assert reader.store.statement(1) is None and reader.store.advice([1]) == []
    finally:
        reader.store.close()
    engine = make_engine(url, readonly=True)
    try:
        with engine.connect() as conn:
            assert current_version(conn) is None  # the reader created no schema
    finally:
        engine.dispose()


def test_status_only_reads_the_store(tmp_path: Path) -> None:
    """`observatory status` on a store nobody wrote: the configured targets, never collected, each
    with the hint to start collecting; no file or folder is created for it."""
    path = tmp_path / "not" / "yet" / "new.db"
    url = f"sqlite:///{path}"
    result = observatory("status", "--json", "--config", str(write_config(tmp_path, url)))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["targets"]
    assert [(t["kind"], t["name"], t["state"]) for t in rows] == [
        ("postgres", "erp", "never collected"),
        ("redis", "cache-9", "never collected"),
        ("prometheus", "prod", "never collected"),
    ]
    assert all(t["hints"] == [START_COLLECTING] and t["samples"] == 0 for t in rows)
    assert not (tmp_path / "not").exists()  # a reader creates nothing, not even the folder


def test_a_store_from_a_newer_observatory_is_refused_by_readers(tmp_path: Path) -> None:
    """Its schema is unknown here: `status` and the pages refuse it, as the collector does."""
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    Store(url).close()
    with sqlite3.connect(tmp_path / "newer.db") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    result = observatory("status", "--config", str(write_config(tmp_path, url)))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert "newer than this observatory" in line and result.stdout == ""
    with pytest.raises(SchemaError, match="newer than this observatory"):
        Reader.open(config_mod.from_dict({"store": url}))


def test_status_on_a_store_it_cannot_read_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database " * 100)
    for store, says in (
        (f"postgresql://observatory:Sekr3t-store@127.0.0.1:{free_port()}/store", "Connection refused"),
        (f"sqlite:///{junk}", "file is not a database"),
    ):
        result = observatory("status", "--config", str(write_config(tmp_path, store)))
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        (line,) = result.stderr.splitlines()
        assert line.startswith("observatory: store ") and ": cannot open: " in line and says in line, line
        assert "Sekr3t" not in line and result.stdout == ""


def test_the_rate_rule_divides_by_the_time_the_cycles_covered() -> None:
    # An hourly bucket written by 10 cycles of a 60 s target covered 600 s, not 3600 s.
    frame = pd.DataFrame({"target_id": [1, 2], "count": [10, 120], "sum": [1200.0, 7200.0]})
    covered = widths(frame, "hourly", ["target_id"], {1: 60.0, 2: 60.0})
    assert covered.tolist() == [600.0, 3600.0]  # never more than the bucket
    assert rate(frame["sum"], covered).tolist() == [2.0, 2.0]
    assert widths(frame, "hourly", ["target_id"]).tolist() == [3600, 3600]  # no intervals: the bucket
    raw = pd.DataFrame({"target_id": [1, 1, 1], "ts": [T0, T0 + 30, T0 + 90]})
    assert widths(raw, "raw", ["target_id"]).tolist() == [45.0, 30.0, 60.0]  # first: the usual gap
    assert rate(5.0, 0.0) != rate(5.0, 0.0)  # nothing covered: NaN, not infinity


def test_status_says_how_to_start_when_there_is_no_target(tmp_path: Path) -> None:
    """In a folder without a configuration: one message, exit 2, and no store file made."""
    env = {k: v for k, v in os.environ.items() if k != "OBSERVATORY_CONFIG"}
    done = observatory("status", env=env, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert "no target is configured" in done.stderr and "observatory up" in done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []
