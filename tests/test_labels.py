"""The label codec (dashboard.core.metrics): reversible, collision-free, unchanged for plain names;
and its readers, from a real PostgreSQL cluster's databases to the figures per database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from collectors.prometheus.samples import instant_points
from dashboard.analysis import slo, statements
from dashboard.analysis.reader import Reader
from dashboard.core import metrics
from dashboard.core.config import Series
from dashboard.core.records import Cycle, Point, Status
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.reads import Window, series_frame
from tests.support.stores import collect_once, make_config

EVERYTHING = Window(0, 4_000_000_000)
AWKWARD = ["a,b", "a_b", "a=b", "a%b", "a%2Cb", "100%", "k=v,k2=v2", "~", "", " ", "é,ü=ß", "a\nb"]


# -- the codec ---------------------------------------------------------------------------------------
def test_names_without_percent_comma_or_equals_are_written_as_before() -> None:
    assert metrics.encode({"datname": "a_b"}) == "datname=a_b"
    assert (
        metrics.encode({"lib": "bullmq", "queue": "email", "state": "wait"})
        == "lib=bullmq,queue=email,state=wait"
    )
    assert metrics.encode({"state": "idle in transaction (aborted)"}) == "state=idle in transaction (aborted)"
    assert (
        metrics.encode({"replica": "10.0.0.7:6380", "cmd": "client|list"})
        == "replica=10.0.0.7:6380,cmd=client|list"
    )
    assert metrics.encode({"name": "x" * metrics.LABEL_CHARS}) == "name=" + "x" * metrics.LABEL_CHARS


@pytest.mark.parametrize("value", AWKWARD)
def test_every_key_and_value_comes_back_as_it_was(value: str) -> None:
    labels = {"datname": value, value or "empty": "x", "after": value}
    text = metrics.encode(labels)
    assert metrics.decode(text) == labels
    assert len(text.split(",")) == len(labels)  # nothing split into labels of its own


def test_the_reserved_characters_are_percent_encoded() -> None:
    assert metrics.encode({"datname": "a,b"}) == "datname=a%2Cb"
    assert metrics.encode({"datname": "a=%b"}) == "datname=a%3D%25b"
    assert metrics.encode({"k=1": "v"}) == "k%3D1=v"


def test_no_two_label_sets_meet() -> None:
    sets = [{"datname": v} for v in AWKWARD] + [{"a": "1,b=2"}, {"a": "1", "b": "2"}, {"a=1": "2"}]
    encoded = [metrics.encode(s) for s in sets]
    assert len(set(encoded)) == len(sets), encoded


def test_old_labels_still_decode() -> None:
    assert metrics.decode("datname=100%") == {"datname": "100%"}  # written raw before the codec
    assert metrics.decode("state=idle") == {"state": "idle"}
    assert metrics.decode("") == metrics.decode(None) == {}


@pytest.mark.parametrize(
    "value",
    ["x" * 201, "x" * 5000, "," * 120, "x" * 190 + "," * 20, "x" * 189 + "," * 20, "é" * 300],
)
def test_long_values_are_cut_and_marked_with_a_hash_of_the_whole(value: str) -> None:
    text = metrics.label_value(value)
    assert len(text) <= metrics.LABEL_CHARS
    head, mark, digest = text.rpartition("~")
    assert mark and len(digest) == metrics.HASH_CHARS and int(digest, 16) >= 0
    shown = metrics.decode(metrics.encode({"v": value}))["v"]
    assert shown == metrics.decode(f"v={head}")["v"] + "~" + digest  # no escape cut in two
    assert "%" not in shown and value.startswith(shown.rpartition("~")[0])
    assert metrics.label_value(value) == text  # the same every time: a series stays a series


def test_long_values_that_share_their_start_stay_apart() -> None:
    common = "q" * 300
    values = [common, common + "1", common + "2", "x" * 191 + "~" + "0" * 8]
    assert len({metrics.label_value(v) for v in values}) == len(values)
    # A name shaped like a cut one is marked too, so it never meets the value it looks cut from.
    lookalike = metrics.label_value(common)
    assert len(lookalike) == metrics.LABEL_CHARS and metrics.label_value(lookalike) != lookalike


def test_labels_never_outgrow_the_stores_column_and_stay_apart() -> None:
    """Many long labels (a Prometheus result with long path and handler labels): the whole string
    fits the column (String(400): a PostgreSQL store refuses more), and two such sets stay apart."""
    wide = {f"label{i}": "v" * 150 + str(i) for i in range(4)}
    other = {**wide, "label3": "w" * 150}
    encoded = [metrics.encode(labels) for labels in (wide, other)]
    assert all(len(e) <= metrics.LABELS_CHARS for e in encoded) and encoded[0] != encoded[1]
    decoded = metrics.decode(encoded[0])
    assert decoded["label0"] == wide["label0"] and len(decoded["~"]) == metrics.HASH_CHARS
    assert metrics.encode({"a": "b"}) == "a=b"  # short ones as they were


def test_a_label_called_metric_survives_a_clash_in_any_order() -> None:
    result = [
        {"metric": {"__name__": "up", "job": "a"}, "value": [0, "1"]},
        {"metric": {"__name__": "foo", "job": "a"}, "value": [0, "2"]},
        {"metric": {"__name__": "x", "job": "a", "metric": "up"}, "value": [0, "4"]},
    ]
    expected = {
        "name=mix,job=a,metric=up": 1.0,
        "name=mix,job=a,metric=foo": 2.0,
        "name=mix,exported_metric=up,job=a": 4.0,
    }
    for order in (result, result[::-1], [result[1], result[2], result[0]]):
        assert {p.labels: p.value for p in instant_points("mix", order, [])} == expected


def test_result_series_told_apart_only_by_metric_name_are_labelled_in_any_order() -> None:
    result = [
        {"metric": {"__name__": "up", "job": "demo"}, "value": [0, "1"]},
        {"metric": {"__name__": "scrape_samples_scraped", "job": "demo"}, "value": [0, "42"]},
        {"metric": {"__name__": "up", "job": "node"}, "value": [0, "0"]},
    ]
    expected = {
        "name=mix,job=demo,metric=up": 1.0,
        "name=mix,job=demo,metric=scrape_samples_scraped": 42.0,
        "name=mix,job=node": 0.0,
    }
    for order in (result, result[::-1], [result[1], result[2], result[0]]):
        assert {p.labels: p.value for p in instant_points("mix", order, [])} == expected


# -- readers -----------------------------------------------------------------------------------------
def test_slo_label_sets_stay_apart_and_show_as_written(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    ts = 1_700_000_000
    own = [{"instance": "a=1,b"}, {"instance": "a_1_b"}]
    points = [
        Point(metrics.PROM_SERIES, value, "gauge", metrics.encode({"name": "cpu", **labels}))
        for labels, value in zip(own, (0.5, 0.9), strict=True)
    ]
    store.write_cycle(Cycle("prometheus", "prod", ts, Status(), points=points))
    raw = series_frame(
        store.engine, [store.target_id("prometheus", "prod")], [metrics.PROM_SERIES], EVERYTHING, "raw"
    )
    store.close()
    card = slo.scorecard(raw, raw, raw, {"cpu": Series(expr="x", unit="ratio", target="< 0.7")})
    shown = slo.scorecard_table(card).set_index("objective")["window"].to_dict()
    assert shown == {"cpu (instance=a=1,b)": "50.00 %", "cpu (instance=a_1_b)": "90.00 %"}
    lines = slo.series_lines(raw, "cpu")
    assert dict(zip(lines["series"], lines["value"], strict=True)) == {
        "instance=a=1,b": 0.5,
        "instance=a_1_b": 0.9,
    }


@pytest.fixture
def awkward_databases(pg: ThrowawayPostgres) -> Iterator[list[str]]:
    """Three databases whose names the old codec wrote alike ("a,b" and "a_b") or lost ("=", "%")."""
    stem = f"lbl{uuid.uuid4().hex[:8]}"
    names = [f"{stem},b", f"{stem}_b", f"{stem}=%b"]
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    for name in names:  # no autovacuum: its ANALYZE would write pg_statistic rows between the cycles
        run(pg, name, "CREATE TABLE t (id int) WITH (autovacuum_enabled = off)")
    yield names
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def run(pg: ThrowawayPostgres, dbname: str, *statements: str, timeout: float = 10.0) -> None:
    """Each statement in its own transaction in `dbname`, then wait until pg_stat_database counts
    them all (a backend flushes its statistics when it goes idle, all it holds at once)."""
    commits = "SELECT xact_commit FROM pg_stat_database WHERE datname = %s"
    with psycopg.connect(pg.dsn(), dbname=dbname, autocommit=True) as conn:
        before = conn.execute(commits, (dbname,)).fetchone()[0]
        for statement in statements:
            conn.execute(statement)
        conn.execute("SELECT pg_stat_force_next_flush()")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # counted: the first select, the statements and the flush
            if conn.execute(commits, (dbname,)).fetchone()[0] >= before + len(statements) + 2:
                return
            time.sleep(0.05)
    raise AssertionError(f"{dbname}: the statistics of {len(statements)} transactions never showed")


def test_databases_named_alike_by_the_old_codec_keep_their_own_series(
    pg: ThrowawayPostgres, awkward_databases: list[str], tmp_path: Path
) -> None:
    comma, underscore, reserved = awkward_databases
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    config = make_config(store.url, [{"name": "t1", "dsn": pg.dsn(), "interval": "60s"}])
    now = int(time.time())
    collect_once(config, store, now - 60)  # the baseline
    inserts = {comma: 30, underscore: 2, reserved: 5}  # rows, one transaction each
    for name, rows in inserts.items():
        run(pg, name, *[f"INSERT INTO t VALUES ({i})" for i in range(rows)])
    collect_once(config, store, now)

    tid = store.target_id("postgres", "t1")
    frame = series_frame(store.engine, [tid], ["pg.db.tup_inserted"], EVERYTHING, "raw")
    frame = frame.assign(database=frame["labels"].map(lambda lb: metrics.decode(lb)["datname"]))
    ours = frame[frame["database"].isin(inserts)]
    assert ours.groupby("database")["labels"].nunique().to_dict() == dict.fromkeys(inserts, 1)
    assert ours["labels"].nunique() == 3  # three series, never one shared by "a,b" and "a_b"
    # Each database's delta is its own rows: none taken against another database's counter.
    assert set(ours["ts"]) == {now}  # the baseline stores no delta
    assert ours.set_index("database")["sum"].to_dict() == inserts

    reader = Reader.open(config)
    try:
        targets = reader.targets("postgres")
        databases, _ = statements.filters(reader, targets)  # the Queries page's database picker
        assert set(inserts) <= set(databases)
    finally:
        reader.store.close()
    store.close()
