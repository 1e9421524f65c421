"""Reading EXPLAIN (FORMAT JSON) into typed nodes: own time and cost on real plans (loops, parallel
workers, InitPlans), the hottest path, and pasted plans that are not plans."""

from __future__ import annotations

import itertools
import json

import psycopg
import pytest

from dashboard.plans.tree import MAX_NODES, Plan, PlanUnreadable, read_plan
from dashboard.servers.throwaway import ThrowawayPostgres
from tests.support.postgres import new_database

ANALYZE = "EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON) "


@pytest.fixture(scope="module")
def conn(pg: ThrowawayPostgres) -> psycopg.Connection:
    name = new_database(pg, "tree")
    conn = psycopg.connect(pg.dsn(dbname=name), autocommit=True)
    conn.execute(
        "CREATE TABLE t AS SELECT g AS id, g % 100 AS k FROM generate_series(1, 200000) g;"
        "CREATE INDEX t_k ON t (k); ANALYZE t;"
    )
    yield conn
    conn.close()


def _plan(conn: psycopg.Connection, sql: str, prefix: str = ANALYZE) -> Plan:
    return read_plan(conn.execute(prefix + sql).fetchone()[0])


def test_own_times_add_up_to_the_statement_and_loops_count(conn: psycopg.Connection) -> None:
    conn.execute("SET max_parallel_workers_per_gather = 0")
    plan = _plan(conn, "SELECT count(*) FROM t a JOIN t b ON b.id = a.id + 0 WHERE a.k = 3")
    conn.execute("RESET max_parallel_workers_per_gather")
    root = plan.root
    assert plan.analyzed and plan.measure == "ms"
    assert all(n.own_ms is not None and n.own_ms >= 0 for n in plan.nodes)
    # Without workers, own times add up to the root's inclusive time (rounding of 3 decimals aside).
    assert sum(n.own_ms for n in plan.nodes) == pytest.approx(root.total_ms, rel=0.02, abs=0.05)
    assert abs(sum(plan.share(n) for n in plan.nodes) - 1.0) < 1e-9
    path = plan.hottest_path()
    assert path[0] == 0 and all(plan.nodes[b].parent == a for a, b in itertools.pairwise(path))
    scans = [n for n in plan.nodes if n.relation == "public.t"]
    assert len(scans) == 2 and {n.label.split(" on ")[1] for n in scans} == {"public.t a", "public.t b"}


def test_parallel_workers_are_not_counted_as_repeated_time(conn: psycopg.Connection) -> None:
    conn.execute(
        "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0"
    )
    plan = _plan(conn, "SELECT k, count(*) FROM t GROUP BY k")
    conn.execute("RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size")
    gather = next(n for n in plan.nodes if n.node_type in ("Gather", "Gather Merge"))
    assert gather.detail["Workers Launched"] >= 1
    below = [n for n in plan.nodes if n.depth > gather.depth]
    assert below and all(n.loops > 1 for n in below)  # each worker and the leader ran them
    # Time x loops would overcount: below the Gather no node takes longer than the whole statement.
    assert all(n.total_ms <= plan.root.total_ms * 1.05 + 0.5 for n in below)


def test_an_initplan_is_not_inside_its_parents_time(conn: psycopg.Connection) -> None:
    plan = _plan(conn, "SELECT * FROM t WHERE id = (SELECT max(id) FROM t)")
    init = [n for n in plan.nodes if n.detail.get("Parent Relationship") == "InitPlan"]
    assert init
    parent = plan.nodes[init[0].parent]
    assert parent.own_ms >= 0 and parent.own_cost >= 0


def test_an_estimated_plan_shares_cost(conn: psycopg.Connection) -> None:
    plan = _plan(conn, "SELECT * FROM t WHERE k = 5 ORDER BY id", "EXPLAIN (VERBOSE, FORMAT JSON) ")
    assert not plan.analyzed and plan.measure == "cost" and plan.execution_ms is None
    assert all(n.actual_rows is None and n.misestimate is None for n in plan.nodes)
    assert sum(n.own_cost for n in plan.nodes) == pytest.approx(plan.total_cost, rel=1e-6)
    assert plan.hottest().own_cost == max(n.own_cost for n in plan.nodes)


def test_a_plan_loads_back_from_its_json_and_from_the_forms_people_paste(conn: psycopg.Connection) -> None:
    plan = _plan(conn, "SELECT * FROM t WHERE k = 5 LIMIT 3")
    again = read_plan(plan.to_json())
    assert again.nodes == plan.nodes and again.execution_ms == plan.execution_ms
    top = json.loads(plan.to_json())[0]
    assert read_plan(top).nodes == plan.nodes  # one {"Plan": ...} object
    assert read_plan(top["Plan"]).nodes == plan.nodes  # the bare top node
    assert read_plan(plan.to_json().encode()).nodes == plan.nodes


NODE = {"Node Type": "Seq Scan", "Total Cost": 1.0, "Plan Rows": 1}


@pytest.mark.parametrize(
    "pasted, reason",
    [
        ("", "empty"),
        ("Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)", "not JSON"),
        ('[{"Plan": ', "not valid JSON"),
        ("[1, 2]", "2 plans in one document"),
        ('["a string"]', "not a plan"),
        ('{"Plan": {"Total Cost": 3}}', 'no "Node Type"'),
        (
            json.dumps({"Plan": {**NODE, "Total Cost": "1e308; DROP"}}),
            '"Total Cost" of a Seq Scan node is not a number',
        ),
        (json.dumps({"Plan": {**NODE, "Plan Rows": True}}), '"Plan Rows" of a Seq Scan node is not a number'),
        (
            json.dumps({"Plan": {**NODE, "Plans": {"Node Type": "x"}}}),
            '"Plans" of a Seq Scan node is not a list',
        ),
        (json.dumps({"Plan": {**NODE, "Plans": [42]}}), "not a plan node"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (b"\xff\xfe[]", "not UTF-8"),
        (
            json.dumps({"Plan": {**NODE, "Node Type": "Gather", "Workers Launched": -1}}),
            '"Workers Launched" of a Gather node is not a number between 0 and 1e15: -1',
        ),
        ('{"Plan": {"Node Type": "Seq Scan", "Total Cost": NaN}}', "not a number between 0 and 1e300: nan"),
        ('{"Plan": {"Node Type": "Seq Scan", "Actual Rows": 1e400}}', "not a number between 0 and 1e15: inf"),
        (
            json.dumps({"Plan": {**NODE, "Actual Total Time": 2e15}}),
            "not a number between 0 and 1e15: 2000000000000000.0",
        ),
        (json.dumps({"Plan": {**NODE, "Shared Hit Blocks": 10**16}}), "not a number between 0 and 1e15"),
        (
            json.dumps({"Plan": {**NODE, "Plan Rows": 1e101}}),
            '"Plan Rows" of a Seq Scan node is not a number between 0 and 1e100',
        ),
        (
            '{"Plan": {"Node Type": "Seq Scan"}, "Execution Time": Infinity}',
            '"Execution Time" of a plan node is not',
        ),
        ("x" * 6_000_000, "plans up to 5,000,000"),
    ],
)
def test_what_is_not_a_plan_says_why(pasted: str | bytes, reason: str) -> None:
    with pytest.raises(PlanUnreadable) as refused:
        read_plan(pasted)
    assert reason in str(refused.value)


def test_estimates_of_a_cross_join_are_read_up_to_postgresqls_clamp(conn: psycopg.Connection) -> None:
    """A plan's estimates grow with the product of the joined tables' rows: a cross join of four
    tables of 200,000 rows is 1.6e21 rows, a real plan past the bound of measured figures (1e15)."""
    found = conn.execute("EXPLAIN (FORMAT JSON) SELECT * FROM t a, t b, t c, t d").fetchone()[0]
    plan = read_plan(json.dumps(found))
    assert plan.root.est_rows == found[0]["Plan"]["Plan Rows"] > 1e21
    assert plan.total_cost == found[0]["Plan"]["Total Cost"] > 1e15
    clamped = read_plan({"Plan": {**NODE, "Plan Rows": 1e100, "Total Cost": 1e300}}).root
    assert (clamped.est_rows, clamped.total_cost) == (1e100, 1e300)


def test_null_figures_read_as_absent() -> None:
    plan = read_plan({"Plan": {**NODE, "Total Cost": None, "Plan Width": None, "Actual Loops": None}})
    assert plan.root.total_cost == 0.0 and plan.root.width == 0 and not plan.analyzed


def test_deep_and_wide_plans_are_bounded() -> None:
    deep: dict = dict(NODE)
    for _ in range(300):
        deep = {**NODE, "Node Type": "Limit", "Plans": [deep]}
    with pytest.raises(PlanUnreadable, match="nested over 200 nodes deep"):
        read_plan({"Plan": deep})
    wide = {**NODE, "Node Type": "Append", "Plans": [dict(NODE)] * (MAX_NODES + 1)}
    with pytest.raises(PlanUnreadable, match="over 10,000 nodes"):
        read_plan({"Plan": wide})
    markup = {**NODE, "Relation Name": "<script>alert(1)</script>", "Alias": "**x**"}
    assert read_plan({"Plan": markup}).root.label == "Seq Scan on <script>alert(1)</script> **x**"
