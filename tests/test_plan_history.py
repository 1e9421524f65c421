"""Plan history: the daemon's advisor job keeps each recorded statement's plan, one row per shape,
against a real server and a real store; Investigate reads the versions and sees the plan flip."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, inspect, select, text

from collectors.jobs.advisor import advise_target
from dashboard.advisor.planner import Plan
from dashboard.analysis import plan_history as analysis
from dashboard.analysis.reader import Reader, StoreReads
from dashboard.core.config import AdvisorSettings, Config, Retention
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store, migrations, schema
from dashboard.store.plan_history import plan_history, shape_hash, text_hash
from dashboard.store.reads import statement_ids_by_text
from dashboard.store.schema import advice, statement_plans
from tests.support.cycles import T0, cycle
from tests.support.postgres import advisor_dsn, new_database, run_workload
from tests.support.stores import collect_once, make_config

TARGET = "shop"
EVERY = AdvisorSettings(min_calls=1, min_mean_ms=0.0)  # run_workload's statements are quick
# run_workload's statements as pg_stat_statements records them, each planned by the advisor (an
# UPDATE as the SELECT that finds its rows); its INSERT has nothing to plan and is not kept.
PLANNED = {
    "SELECT * FROM orders WHERE id = $1",
    "SELECT count(*) FROM orders WHERE customer = $1",
    "SELECT status, sum(total) FROM orders GROUP BY status",
    "UPDATE orders SET status = $2 WHERE id = $1",
    "SELECT * FROM orders ORDER BY total DESC, customer LIMIT $1",
}
BY_CUSTOMER = "SELECT count(*) FROM orders WHERE customer = $1"
HOUR = 3600


def recorded_database(pg: ThrowawayPostgres) -> str:
    """A new database whose run_workload is all pg_stat_statements holds (so the job advises it and
    `postgres`, not every database the session made)."""
    name = new_database(pg, "plans")
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    return name


def setup(pg: ThrowawayPostgres, store: Store, now: int) -> tuple[Config, str]:
    """A target on a fresh database with run_workload recorded and collected (two real cycles)."""
    name = recorded_database(pg)
    config = make_config(store.url, [{"name": TARGET, "dsn": advisor_dsn(pg, name), "interval": "60s"}])
    collect_once(config, store, now - 60)
    run_workload(pg.dsn(dbname=name))
    collect_once(config, store, now)
    return config, name


def versions_by_text(store: Store, datname: str) -> dict[str, list]:
    tid = store.target_id("postgres", TARGET)
    return {t: plan_history(store.engine, tid, datname, t) for t in PLANNED}


def index_names(plan_json: str) -> set[str]:
    found: set[str] = set()

    def walk(node: dict) -> None:
        if "Index Name" in node:
            found.add(node["Index Name"])
        for child in node.get("Plans", ()):
            walk(child)

    walk(json.loads(plan_json)[0]["Plan"])
    return found


def test_the_job_keeps_one_row_per_plan_shape_and_sees_a_plan_flip(
    pg: ThrowawayPostgres, store: Store
) -> None:
    t1 = int(time.time())
    config, datname = setup(pg, store, t1)
    target = config.targets.postgres[0]

    assert advise_target(store, target, EVERY, now=t1)[datname] is None
    first = versions_by_text(store, datname)
    with store.engine.connect() as conn:
        kept = set(
            conn.execute(
                select(statement_plans.c.text_hash).where(statement_plans.c.datname == datname)
            ).scalars()
        )
    assert kept == {text_hash(t) for t in PLANNED}, "only the planned workload statements are kept"
    for text_, rows in first.items():
        assert len(rows) == 1, text_
        (row,) = rows
        tree = json.loads(row.plan_json)
        assert (row.first_seen, row.last_seen) == (t1, t1)
        assert row.cost == tree[0]["Plan"]["Total Cost"] > 0
        assert row.shape_hash == shape_hash(tree)
    assert index_names(first[BY_CUSTOMER][0].plan_json) == set()  # no index on customer yet
    assert index_names(first["SELECT * FROM orders WHERE id = $1"][0].plan_json) == {"orders_pkey"}

    # An hour later, nothing changed: the same rows, seen again.
    t2 = t1 + HOUR
    assert advise_target(store, target, EVERY, now=t2)[datname] is None
    second = versions_by_text(store, datname)
    for text_, rows in second.items():
        (row,) = rows
        assert (row.first_seen, row.last_seen, row.shape_hash) == (t1, t2, first[text_][0].shape_hash), text_

    # A real index flips one statement's plan: a second version for it, the others move on.
    with psycopg.connect(pg.dsn(dbname=datname), autocommit=True) as conn:
        conn.execute("CREATE INDEX orders_customer_idx ON orders (customer)")
        conn.execute("ANALYZE orders")
    t3 = t2 + HOUR
    assert advise_target(store, target, EVERY, now=t3)[datname] is None
    third = versions_by_text(store, datname)
    new, old = third[BY_CUSTOMER]
    assert (new.first_seen, new.last_seen) == (t3, t3) and (old.first_seen, old.last_seen) == (t1, t2)
    assert new.shape_hash != old.shape_hash and old.shape_hash == first[BY_CUSTOMER][0].shape_hash
    assert index_names(new.plan_json) == {"orders_customer_idx"} and new.cost < old.cost
    for text_ in PLANNED - {BY_CUSTOMER}:
        (row,) = third[text_]
        assert (row.first_seen, row.last_seen) == (t1, t3), text_

    # Investigate reads the recorded statement's versions: the flip is marked.
    tid = store.target_id("postgres", TARGET)
    sid = statement_ids_by_text(store.engine, tid, [BY_CUSTOMER], datname=datname)[BY_CUSTOMER]
    reader = Reader(StoreReads.open(store.url), config)
    try:
        versions = analysis.history(reader, sid)
    finally:
        reader.store.close()
    assert [(v.first_seen, v.last_seen, v.changed) for v in versions] == [(t3, t3, True), (t1, t2, False)]
    assert versions[0].cost == new.cost and versions[0].unreadable is None
    assert {n.index for n in versions[0].plan.nodes} >= {"orders_customer_idx"}
    assert "Seq Scan" in {n.node_type for n in versions[1].plan.nodes}
    assert analysis.version_at(versions, t2 + 60) is versions[1]
    assert analysis.version_at(versions, t3) is versions[0]
    assert analysis.version_at(versions, t1 - 1) is None

    # Retention: a shape last seen before the hourly horizon goes; what the advisor still sees stays.
    deleted = store.prune(Retention(raw=60, hourly=HOUR, daily=30 * HOUR), now=t3 + HOUR // 2)
    assert deleted["statement_plans"] == 1
    after = versions_by_text(store, datname)
    assert after[BY_CUSTOMER] == [new]
    assert all(len(rows) == 1 for rows in after.values())


def test_a_store_that_cannot_keep_plans_still_gets_the_report(
    pg: ThrowawayPostgres, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    name = recorded_database(pg)
    run_workload(pg.dsn(dbname=name))
    config = make_config(store.url, [{"name": TARGET, "dsn": advisor_dsn(pg, name), "interval": "60s"}])
    with store.engine.begin() as conn:  # a real failure to write plans: the table is gone
        conn.execute(text("DROP TABLE statement_plans"))
    with caplog.at_level(logging.ERROR, logger="observatory.advise"):
        outcome = advise_target(store, config.targets.postgres[0], EVERY, now=T0)
    assert outcome == {name: None}
    assert f"keeping the plans of {name} failed" in caplog.text
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(advice)).scalar() == 1


def test_the_shape_is_the_planners_choices_not_its_estimates() -> None:
    def plan(
        join: str = "Hash Join", index: str = "orders_pkey", cost: float = 10.0, swap: bool = False
    ) -> list:
        scan = {
            "Node Type": "Index Scan",
            "Parent Relationship": "Outer",
            "Index Name": index,
            "Relation Name": "orders",
            "Total Cost": cost / 2,
            "Plan Rows": cost,
        }
        seq = {
            "Node Type": "Seq Scan",
            "Parent Relationship": "Inner",
            "Relation Name": "customers",
            "Total Cost": cost / 3,
            "Filter": f"(id > {cost})",
        }
        children = [seq, scan] if swap else [scan, seq]
        return [{"Plan": {"Node Type": join, "Join Type": "Inner", "Total Cost": cost, "Plans": children},
                 "Planning Time": cost}]  # fmt: skip

    assert shape_hash(plan(cost=10.0)) == shape_hash(plan(cost=99999.5))
    others = {shape_hash(plan(join="Merge Join")), shape_hash(plan(index="orders_ref_idx")),
              shape_hash(plan(swap=True))}  # fmt: skip
    assert shape_hash(plan()) not in others and len(others) == 3
    anti = plan()
    anti[0]["Plan"]["Join Type"] = "Anti"
    assert shape_hash(anti) != shape_hash(plan())
    nested = plan()
    nested[0]["Plan"]["Plans"][0]["Plans"] = [nested[0]["Plan"]["Plans"].pop(1)]  # same nodes, nested
    assert shape_hash(nested) != shape_hash(plan())


def test_the_tree_is_not_part_of_a_plans_identity() -> None:
    bare = Plan(10.0, frozenset({"orders_pkey"}), "Index Scan using orders_pkey on orders")
    with_tree = Plan(10.0, frozenset({"orders_pkey"}), bare.text, [{"Plan": {"Node Type": "Index Scan"}}])
    assert bare == with_tree and hash(bare) == hash(with_tree) and "Node Type" not in repr(with_tree)


def as_version_2(store: Store) -> None:
    """The store as an observatory of schema version 2 left it: no plan history."""
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE statement_plans"))
        conn.execute(text("UPDATE meta SET value = '2' WHERE key = 'schema_version'"))


def test_a_version_2_store_gains_the_plan_history_and_keeps_its_data(backend_store: Store) -> None:
    backend_store.write_cycle(cycle(T0 + 60, {1: 5}))
    as_version_2(backend_store)
    assert migrations.migrate(backend_store.engine) == 2
    with backend_store.engine.connect() as conn:
        assert migrations.current_version(conn) == schema.SCHEMA_VERSION
        found = inspect(conn)
        # Every later version's tables too: blocking chains (4), the index catalog (5).
        assert {"statement_plans", "blocking_chains", "index_catalog"} <= set(found.get_table_names())
        assert {i["name"] for i in found.get_indexes("statement_plans")} == {"ix_statement_plans_statement"}
        assert conn.execute(select(func.sum(schema.STMT["raw"].c.calls))).scalar() == 5
    tree = [{"Plan": {"Node Type": "Seq Scan", "Relation Name": "t", "Total Cost": 12.5}}]
    assert backend_store.write_plans("postgres", "erp", "erp", T0 + 120, {"SELECT 1 FROM t": tree}) == 1
    (row,) = plan_history(
        backend_store.engine, backend_store.target_id("postgres", "erp"), "erp", "SELECT 1 FROM t"
    )
    assert (row.first_seen, row.cost, json.loads(row.plan_json)) == (T0 + 120, 12.5, tree)


def test_a_reader_of_a_version_2_store_finds_no_history_until_it_is_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.write_cycle(cycle(T0 + 60, {1: 5}))
    as_version_2(store)
    store.close()
    config = make_config(url)
    reader = Reader(StoreReads.open(url), config)
    try:
        (sid,) = statement_ids_by_text(reader.store.engine, 1, ["SELECT 1 FROM t WHERE id = $1"]).values()
        assert reader.plan_history(1, "erp", "SELECT 1 FROM t WHERE id = $1") == []
        assert analysis.history(reader, sid) == []
        with reader.store.engine.connect() as conn:
            assert not inspect(conn).has_table("statement_plans"), "a reader never migrates"
        writer = Store(url)  # the daemon of this version starts: it migrates and keeps plans
        tree = [{"Plan": {"Node Type": "Seq Scan", "Relation Name": "t", "Total Cost": 12.5}}]
        writer.write_plans("postgres", "erp", "erp", T0 + 120, {"SELECT 1 FROM t WHERE id = $1": tree})
        writer.close()
        (version,) = analysis.history(reader, sid)  # the running reader sees it, without a restart
        assert (version.first_seen, version.cost, version.changed) == (T0 + 120, 12.5, False)
        assert version.plan is not None and version.plan.root.relation == "t"
    finally:
        reader.store.close()
