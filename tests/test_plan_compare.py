"""Two plans side by side, and the plan file, on real plans of a real server: before and after a
HypoPG index, two runs under another work_mem or data volume, a join whose strategy changes; our
file written and read back, psql's printouts pasted, hostile files refused with the reason."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest

from dashboard.plans.compare import Comparison, compare
from dashboard.plans.document import PlanDocument, dumps, file_name, loads
from dashboard.plans.facts import read_facts
from dashboard.plans.findings import find
from dashboard.plans.tree import MAX_BYTES, Plan, PlanUnreadable, read_plan
from dashboard.servers.throwaway import ThrowawayPostgres
from tests.support.postgres import new_database

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 1000) g;
CREATE TABLE invoices (id serial PRIMARY KEY, customer_id int NOT NULL, total numeric NOT NULL);
INSERT INTO invoices (customer_id, total) SELECT g % 1000, g FROM generate_series(1, 100000) g;
CREATE TABLE events (id int, kind text);
INSERT INTO events SELECT g, 'k' || g % 5 FROM generate_series(1, 10000) g;
ANALYZE;
"""
JOIN = (
    "SELECT c.name, sum(i.total) FROM invoices i JOIN customers c ON c.id = i.customer_id"
    " WHERE c.name LIKE 'c1%' GROUP BY c.name"
)
CUSTOMERS = "public.customers c"
PSQL = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"


@pytest.fixture(scope="module")
def shop(pg: ThrowawayPostgres) -> str:
    """A database of invoices, customers and events, with HypoPG: its DSN."""
    name = new_database(pg, "compare")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("CREATE EXTENSION hypopg")
    return pg.dsn(dbname=name)


@pytest.fixture
def conn(shop: str) -> Iterator[psycopg.Connection]:
    """A session without parallel workers or JIT, so that plans do not depend on the machine."""
    with psycopg.connect(shop, autocommit=True) as found:
        found.execute("SET max_parallel_workers_per_gather = 0")
        found.execute("SET jit = off")
        yield found


def plan_of(conn: psycopg.Connection, sql: str, *, analyze: bool = False) -> Plan:
    options = "ANALYZE, BUFFERS, VERBOSE" if analyze else "VERBOSE"
    return read_plan(conn.execute(f"EXPLAIN (FORMAT JSON, {options}) {sql}").fetchone()[0])


def hypothetical(conn: psycopg.Connection, create: str) -> str:
    return conn.execute("SELECT indexname FROM hypopg_create_index(%s)", (create,)).fetchone()[0]


def shape(comparison: Comparison) -> list[tuple[str, str | None, str | None]]:
    return [(n.kind, n.a.label if n.a else None, n.b.label if n.b else None) for n in comparison.nodes]


def percent(was: float, now: float) -> str:
    return f"{(now / was - 1) * 100:+,.0f} %"


# Comparing ----------------------------------------------------------------------------------------


def test_a_hypothetical_index_replaces_the_scan_and_its_sort(conn: psycopg.Connection) -> None:
    sql = "SELECT * FROM invoices ORDER BY customer_id LIMIT 10"
    before = plan_of(conn, sql)
    index = hypothetical(conn, "CREATE INDEX ON invoices (customer_id)")
    after = plan_of(conn, sql)
    assert re.fullmatch(r"<\d+>btree_invoices_customer_id", index)

    found = compare(before, after)

    assert shape(found) == [
        ("same", "Limit", "Limit"),  # its own cost is nil either way: what changed is below it
        ("removed", "Sort", None),
        ("changed", "Seq Scan on public.invoices", f"Index Scan using {index} on public.invoices"),
    ]
    scan = found.nodes[2]
    assert scan.reasons[0] == f"Seq Scan -> Index Scan using {index}"
    assert scan.reasons[1:] == (f"own cost {scan.a.own_cost:,.0f} -> {scan.b.own_cost:,.0f}",)
    assert (found.cost_a, found.cost_b) == (before.total_cost, after.total_cost)
    assert found.execution_ms_a is None and found.execution_ms_b is None and not found.timed
    assert re.fullmatch(
        rf"Total cost {before.total_cost:,.0f} -> 0\.\d+ \(-100 %\): Seq Scan on public\.invoices"
        rf" became Index Scan using {re.escape(index)}; Sort removed",
        found.summary,
    ), found.summary
    assert found.changed == [found.nodes[1], found.nodes[2]]


def test_a_bitmap_scan_names_the_hypothetical_index_it_reads(conn: psycopg.Connection) -> None:
    sql = "SELECT * FROM invoices WHERE customer_id = 42"
    before = plan_of(conn, sql)
    index = hypothetical(conn, "CREATE INDEX ON invoices (customer_id)")
    after = plan_of(conn, sql)

    found = compare(before, after)

    assert shape(found) == [
        ("changed", "Seq Scan on public.invoices", "Bitmap Heap Scan on public.invoices"),
        ("added", None, f"Bitmap Index Scan using {index}"),
    ]
    drop = percent(before.total_cost, after.total_cost)
    assert found.summary == (
        f"Total cost {before.total_cost:,.0f} -> {after.total_cost:,.0f} ({drop}):"
        f" Seq Scan on public.invoices became Bitmap Heap Scan using {index}"
    )


def test_a_join_whose_strategy_changes(conn: psycopg.Connection) -> None:
    before = plan_of(conn, JOIN)
    conn.execute("SET enable_hashjoin = off")
    conn.execute("SET enable_mergejoin = off")
    after = plan_of(conn, JOIN)

    found = compare(before, after)

    # Each scan pairs with the scan of its own alias, the join with the join that replaced it.
    assert shape(found) == [
        ("same", "HashAggregate", "HashAggregate"),
        ("changed", "Hash Join", "Nested Loop"),
        ("same", "Seq Scan on public.invoices i", "Seq Scan on public.invoices i"),
        ("added", None, "Memoize"),
        ("removed", "Hash", None),
        (
            "changed",
            "Seq Scan on public.customers c",
            "Index Scan using customers_pkey on public.customers c",
        ),
    ]
    join = found.nodes[1]
    assert join.reasons[0] == "Hash Join -> Nested Loop"
    assert found.nodes[5].reasons[:2] == (
        "Seq Scan -> Index Scan using customers_pkey",
        f"rows {found.nodes[5].a.est_rows:,.0f} -> 1",
    )
    assert found.summary.startswith(
        f"Total cost {before.total_cost:,.0f} -> {after.total_cost:,.0f}"
        f" ({percent(before.total_cost, after.total_cost)}): Hash Join became Nested Loop; "
    )


def test_a_parallel_plan_against_a_serial_one_drops_the_gather(conn: psycopg.Connection) -> None:
    sql = (
        "SELECT i.total, c.name FROM invoices i JOIN customers c ON c.id = i.customer_id"
        " WHERE i.total < 50000"
    )
    for setting in ("parallel_setup_cost = 0", "parallel_tuple_cost = 0", "min_parallel_table_scan_size = 0"):
        conn.execute(f"SET {setting}")
    conn.execute("SET max_parallel_workers_per_gather = 2")
    parallel = plan_of(conn, sql)
    conn.execute("SET max_parallel_workers_per_gather = 0")
    conn.execute("SET enable_hashjoin = off")
    serial = plan_of(conn, sql)

    found = compare(parallel, serial)

    # The two roots differ; the join pairs with the join (by family), so the Gather is left over.
    assert shape(found) == [
        ("removed", "Gather", None),
        ("changed", "Parallel Hash Join", "Nested Loop"),
        ("changed", "Parallel Seq Scan on public.invoices i", "Seq Scan on public.invoices i"),
        ("added", None, "Memoize"),
        ("removed", "Parallel Hash", None),
        (
            "changed",
            "Parallel Seq Scan on public.customers c",
            f"Index Scan using customers_pkey on {CUSTOMERS}",
        ),
    ]
    assert found.nodes[1].reasons[0] == "Parallel Hash Join -> Nested Loop"
    assert found.nodes[2].reasons[0] == "Parallel Seq Scan -> Seq Scan"

    conn.execute("SET max_parallel_workers_per_gather = 2")
    partial = plan_of(conn, "SELECT count(*) FROM invoices")
    conn.execute("SET max_parallel_workers_per_gather = 0")
    whole = compare(partial, plan_of(conn, "SELECT count(*) FROM invoices"))
    assert [(n.kind, n.reasons[:1]) for n in whole.nodes] == [
        ("removed", ()),  # the Finalize Aggregate above the Gather
        ("removed", ()),
        ("changed", ("Partial Aggregate -> Aggregate",)),
        ("changed", ("Parallel Seq Scan -> Seq Scan",)),
    ]
    assert "; Finalize Aggregate removed" in whole.summary


def test_work_mem_moves_an_executed_sort_into_memory(conn: psycopg.Connection) -> None:
    sql = "SELECT * FROM invoices ORDER BY total DESC, id"
    conn.execute("SET work_mem = '64kB'")
    spilled = plan_of(conn, sql, analyze=True)
    conn.execute("SET work_mem = '64MB'")
    in_memory = plan_of(conn, sql, analyze=True)

    found = compare(spilled, in_memory)

    assert found.timed
    assert (found.execution_ms_a, found.execution_ms_b) == (spilled.execution_ms, in_memory.execution_ms)
    assert (found.planning_ms_a, found.planning_ms_b) == (spilled.planning_ms, in_memory.planning_ms)
    assert [(n.a.node_type, n.b.node_type) for n in found.nodes] == [
        ("Sort", "Sort"),
        ("Seq Scan", "Seq Scan"),
    ]
    sort = found.nodes[0]
    assert sort.kind == "changed"
    assert "sort external merge (Disk) -> quicksort (Memory)" in sort.reasons
    # The times are the machine's: either way round, and the largest change of own time named.
    figures = (
        r"Execution ([\d.,]+ ms -> [\d.,]+ ms \([+-][\d,]+ %\)|[\d.,]+ ms \(unchanged\)),"
        r" total cost [\d,]+ -> [\d,]+ \(-\d+ %\)"
    )
    top = max(found.changed, key=lambda n: max(n.a.own_ms, n.b.own_ms))
    more = "; 1 more node changed" if len(found.changed) == 2 else ""
    named = re.escape(f"the same plan shape; {top.label}: {top.reason}{more}")
    assert re.fullmatch(f"{figures}: {named}", found.summary), found.summary


def test_more_data_shows_in_the_executed_rows(conn: psycopg.Connection) -> None:
    sql = "SELECT kind, count(*) FROM events GROUP BY kind"
    small = plan_of(conn, sql, analyze=True)
    conn.execute("INSERT INTO events SELECT g, 'k' || g % 5 FROM generate_series(10001, 50000) g")
    conn.execute("ANALYZE events")
    try:
        large = plan_of(conn, sql, analyze=True)
    finally:
        conn.execute("DELETE FROM events WHERE id > 10000")

    found = compare(small, large)

    assert [(n.a.label, n.b.label) for n in found.nodes] == [
        ("HashAggregate", "HashAggregate"),
        ("Seq Scan on public.events", "Seq Scan on public.events"),
    ]
    scan = found.nodes[1]
    assert scan.kind == "changed"
    assert "rows 10,000 -> 50,000" in scan.reasons  # actual rows, not the estimate
    assert not any(r.startswith("rows") for r in found.nodes[0].reasons)  # five kinds either way
    assert found.summary.startswith("Execution ") and "the same plan shape; " in found.summary


def test_identical_plans_are_the_same_everywhere(conn: psycopg.Connection) -> None:
    first, second = plan_of(conn, JOIN), plan_of(conn, JOIN)

    found = compare(first, second)

    assert [n.kind for n in found.nodes] == ["same"] * len(first.nodes) and found.changed == []
    assert [(n.a.id, n.b.id) for n in found.nodes] == [(i, i) for i in range(len(first.nodes))]
    assert found.summary == f"Total cost {first.total_cost:,.0f} (unchanged): the same plan"
    bare = plan_of(conn, "SELECT 1 UNION ALL SELECT 2")  # nothing read: paired from the root down
    assert [(n.kind, n.a.id, n.b.id) for n in compare(bare, bare).nodes] == [("same", i, i) for i in range(3)]
    executed = plan_of(conn, JOIN, analyze=True)
    itself = compare(executed, executed)
    assert itself.changed == [] and itself.summary.endswith("(unchanged): the same plan")
    assert itself.summary.startswith("Execution ")


def test_an_executed_plan_against_an_estimate_compares_cost_only(conn: psycopg.Connection) -> None:
    sql = "SELECT * FROM invoices WHERE total < 5000 AND customer_id = 3"  # estimated 5 rows, 5 found
    executed, estimated = plan_of(conn, sql, analyze=True), plan_of(conn, sql)

    found = compare(executed, estimated)

    assert not found.timed and found.execution_ms_a == executed.execution_ms and found.execution_ms_b is None
    assert found.changed == []
    cost = f"{executed.total_cost:,.0f}"
    assert (
        found.summary
        == f"Total cost {cost} (unchanged; cost only, as the second plan is an estimate): the same plan"
    )
    assert compare(estimated, executed).summary == (
        f"Total cost {cost} (unchanged; cost only, as the first plan is an estimate): the same plan"
    )


def test_a_plan_of_thousands_of_nodes_pairs_each_arm_quickly(conn: psycopg.Connection) -> None:
    arms = 1000
    sql = " UNION ALL ".join(f"SELECT id FROM invoices WHERE customer_id = {k}" for k in range(arms))
    before = plan_of(conn, sql)
    index = hypothetical(conn, "CREATE INDEX ON invoices (customer_id)")
    after = plan_of(conn, sql)
    assert (len(before.nodes), len(after.nodes)) == (arms + 1, 2 * arms + 1)

    started = time.perf_counter()
    found = compare(before, after)
    elapsed = time.perf_counter() - started

    assert elapsed < 2.0, f"{elapsed:.2f} s to compare {len(before.nodes) + len(after.nodes)} nodes"
    changed = [n for n in found.nodes if n.kind == "changed"]
    assert len(changed) == arms
    # Each arm's scan with the same arm's bitmap scan: the customer each one filters on matches.
    assert all(n.a.detail["Filter"] == n.b.detail["Recheck Cond"] for n in changed)
    assert [n.kind for n in found.nodes].count("added") == arms
    assert found.summary.endswith(f"became Bitmap Heap Scan using {index}; and {arms - 3} more changes")


# The plan file ------------------------------------------------------------------------------------


def document(conn: psycopg.Connection, **overrides: object) -> PlanDocument:
    values: dict = {
        "plan": plan_of(conn, JOIN, analyze=True),
        "statement": JOIN,
        "target": "erp-primary",
        "database": "shop",
        "server_version": conn.info.server_version,
        "captured_at": datetime(2026, 11, 30, 15, 30, 12, 345678, tzinfo=UTC),
        "command": "EXPLAIN (ANALYZE, BUFFERS, VERBOSE)",
        "generic": False,
    }
    return PlanDocument(**{**values, **overrides})


def test_our_file_loads_back_as_it_was(conn: psycopg.Connection) -> None:
    doc = document(conn)

    text = dumps(doc)

    data = json.loads(text)
    assert list(data) == [
        "observatory_plan",
        "captured_at",
        "target",
        "database",
        "server_version",
        "statement",
        "command",
        "generic",
        "plan",
    ]
    assert data["observatory_plan"] == 1 and data["captured_at"] == "2026-11-30T15:30:12.345678Z"
    assert data["plan"] == doc.plan.raw and text.isascii()
    assert loads(text) == doc
    assert loads(b"\xef\xbb\xbf" + text.encode()) == doc  # saved with a byte order mark
    assert compare(doc.plan, loads(text).plan).changed == []


def test_a_file_never_carries_a_dsn_or_password(conn: psycopg.Connection, pg: ThrowawayPostgres) -> None:
    assert {f.name for f in fields(PlanDocument)} == {
        "plan", "statement", "target", "database", "server_version", "captured_at", "command", "generic",
    }  # fmt: skip
    data = json.loads(dumps(document(conn)))
    data["dsn"] = pg.dsn(password="hunter2-secret")
    data["password"] = "hunter2-secret"

    again = dumps(loads(json.dumps(data)))  # a tampered file read and saved again

    assert "hunter2" not in again and "postgresql://" not in again
    assert not {"dsn", "password"} & set(json.loads(again))


def test_times_are_kept_in_utc_and_names_are_safe(conn: psycopg.Connection) -> None:
    paris = timezone(timedelta(hours=1))
    doc = document(
        conn,
        target="../../etc/passwd; DROP TABLE x",
        database="naïve db\n",
        captured_at=datetime(2026, 11, 30, 16, 30, tzinfo=paris),
    )
    assert file_name(doc) == "plan-etc_passwd_DROP_TABLE_x-naive_db-20261130T1530Z.json"
    assert loads(dumps(doc)).captured_at == datetime(2026, 11, 30, 15, 30, tzinfo=UTC)
    naive = document(conn, captured_at=datetime(2026, 11, 30, 15, 30))
    assert loads(dumps(naive)).captured_at == datetime(2026, 11, 30, 15, 30, tzinfo=UTC)
    bare = document(conn, target="数据库", database=None, captured_at=None)
    assert file_name(bare) == "plan.json"
    assert file_name(document(conn, target="x" * 500)) == f"plan-{'x' * 40}-shop-20261130T1530Z.json"


def test_a_long_statement_is_cut_once(conn: psycopg.Connection) -> None:
    long = "SELECT " + ", ".join(["1"] * 150_000)  # 450,005 characters

    loaded = loads(dumps(document(conn, statement=long)))

    assert len(loaded.statement) == 100_000
    assert loaded.statement.startswith("SELECT 1, 1, ")
    assert loaded.statement.endswith("\n-- [cut: 450,005 characters in all]")
    assert loads(dumps(loaded)) == loaded  # cutting again changes nothing


# Pasted from psql ---------------------------------------------------------------------------------

PASTED = "SELECT * FROM customers WHERE name = '| ↵ +' OR id = 1"  # frame marks inside a value too


@pytest.mark.parametrize(
    "options",
    [
        [],  # aligned: header, dashes, '+' at line ends, '(1 row)'
        ["-A"],
        ["-t"],
        ["-A", "-t"],
        ["-x"],
        ["-A", "-x"],
        ["-x", "-P", "border=0"],
        ["-P", "border=2"],
        ["--csv"],
        ["--csv", "-t"],  # as pgAdmin copies a cell: quoted, quotes doubled
        ["-P", "linestyle=unicode"],
        ["-x", "-P", "linestyle=unicode", "-P", "border=2"],
    ],
    ids=lambda o: " ".join(o) or "aligned",
)
def test_psql_output_loads(conn: psycopg.Connection, shop: str, options: list[str]) -> None:
    assert os.path.exists(PSQL), "psql is needed to print real plans (postgresql-client)"
    printed = subprocess.run(
        [PSQL, "-X", "-d", shop, *options, "-c", f"EXPLAIN (FORMAT JSON, VERBOSE) {PASTED}"],
        capture_output=True,
        check=True,
        timeout=30,
        env={"PGCLIENTENCODING": "UTF8", "PATH": "/usr/bin:/bin"},
    ).stdout

    loaded = loads(printed)

    assert loaded.plan == plan_of(conn, PASTED)
    assert loaded.plan.root.detail["Filter"] == "((customers.name = '| ↵ +'::text) OR (customers.id = 1))"
    assert (loaded.statement, loaded.target, loaded.captured_at, loaded.generic) == (None, None, None, False)


def test_a_bare_plan_in_one_object_loads(conn: psycopg.Connection) -> None:
    plan = plan_of(conn, JOIN)
    assert loads(json.dumps(plan.raw[0])).plan == plan  # {"Plan": ...} without the list around it
    assert loads(plan.to_json().encode()).plan == plan


# Hostile files ------------------------------------------------------------------------------------

RESULT = {"Plan": {"Node Type": "Result", "Total Cost": 0.01, "Plan Rows": 1}}


def envelope(**fields: object) -> str:
    return json.dumps({"observatory_plan": 1, "plan": [RESULT], **fields})


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "empty: paste the output of EXPLAIN (FORMAT JSON)"),
        ("QUERY PLAN\n----------\n(0 rows)\n", "empty: paste the output of EXPLAIN (FORMAT JSON)"),
        (
            "Seq Scan on orders  (cost=0.00..35.50 rows=2550 width=4)",
            "EXPLAIN's text format is not read: run EXPLAIN (FORMAT JSON, ...) instead",
        ),
        ("<html>", "not JSON: give EXPLAIN (FORMAT JSON, ...)'s output or a plan file saved here"),
        ('[{"Plan": ', "not valid JSON: Expecting value: line 1 column 10 (char 9)"),
        (
            '[{"Plan": {"Node Type": "Result", "Total Cost": NaN}}]',
            "not valid JSON: NaN is not a number JSON has",
        ),
        ('[{"Plan": {"Node Type": "Result", "Total Cost": 1' + "0" * 5000 + "}}]", "not valid JSON: Exceeds"),
        ("[" * 100_000, "nested too deeply (plans go at most 200 levels down)"),
        (" " * MAX_BYTES + "[]", "characters: plan files up to 5,000,000 are read"),
        (b"[" + b"\xff" * 10 + b"]", "not UTF-8 text"),
        (b"x" * (MAX_BYTES + 1), "5,000,001 bytes: plan files up to 5,000,000 bytes are read"),
        (None, "not text but NoneType"),
        ("[]", "0 plans in one document"),
        ('{"observatory_plan": 2, "plan": []}', "a version 2 plan file: this observatory reads version 1"),
        ('{"observatory_plan": "1", "plan": []}', "\"observatory_plan\" is not a file version: '1'"),
        ('{"observatory_plan": true, "plan": []}', '"observatory_plan" is not a file version: True'),
        ('{"observatory_plan": 1}', 'a plan file without its "plan"'),
        (envelope(plan="[]"), '"plan" is not EXPLAIN\'s JSON (a list holding one object)'),
        (envelope(target=42), '"target" is not text: 42'),
        (envelope(statement=["SELECT 1"]), '"statement" is not text: a list'),
        (envelope(database={"name": "x"}), '"database" is not text: an object'),
        (envelope(target=json.loads("[" * 900 + "]" * 900)), '"target" is not text: a list'),
        (envelope(server_version=True), '"server_version" is not a server_version_num such as 150004: True'),
        (envelope(server_version="150004"), '"server_version" is not a server_version_num'),
        (envelope(server_version=-1), '"server_version" is not a server_version_num'),
        (envelope(captured_at="yesterday"), "\"captured_at\" is not an ISO-8601 time: 'yesterday'"),
        (envelope(captured_at=1764516600), '"captured_at" is not an ISO-8601 time: 1764516600'),
        (envelope(generic="yes"), "\"generic\" is not true or false: 'yes'"),
        (envelope(plan=[{"Plan": {"Node Type": "Result", "Total Cost": "12"}}]), '"Total Cost" of a Result'),
        (envelope(plan=[{"Plan": {"Node Type": "Result", "Plans": [7]}}]), "a node at depth 1 is not a plan"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_hostile_files_are_refused_with_the_reason(given: str | bytes | None, message: str) -> None:
    with pytest.raises(PlanUnreadable) as raised:
        loads(given)  # type: ignore[arg-type]
    assert message in str(raised.value)
    assert len(str(raised.value)) < 300  # the reason, never the file echoed back


def test_a_large_statement_in_a_file_is_cut_not_refused() -> None:
    loaded = loads(envelope(statement="x" * 4_000_000))
    assert len(loaded.statement) == 100_000 and loaded.statement.endswith("4,000,000 characters in all]")


def test_every_cut_of_a_real_file_is_refused_cleanly(conn: psycopg.Connection) -> None:
    """A download cut short anywhere: a reason every time, never another exception."""
    text = dumps(document(conn))
    reasons = set()
    for end in range(0, len(text) - 1, max(1, len(text) // 400)):
        with pytest.raises(PlanUnreadable) as raised:
            loads(text[:end])
        reasons.add(str(raised.value).split(":")[0])
    assert reasons <= {"empty", "not valid JSON"}


def test_each_field_of_any_type_loads_or_gives_a_reason(conn: psycopg.Connection) -> None:
    """Every envelope field swapped for a value of each JSON type: loaded, or refused in words."""
    base = json.loads(dumps(document(conn)))
    values = [None, True, 0, -1, 2**63, 1.5, "", "x" * 300, [], [1], {}, {"Plan": 1}]
    loaded = refused = 0
    for key in base:
        for value in values:
            try:
                loads(json.dumps({**base, key: value}))
                loaded += 1
            except PlanUnreadable:
                refused += 1
    assert loaded and refused and loaded + refused == len(base) * len(values)


def test_a_real_plan_with_any_field_spoiled_loads_or_gives_a_reason(conn: psycopg.Connection) -> None:
    """Fields of a real executed plan swapped at random (seeded) for values of every JSON type:
    each loads, compares and goes through find() (with the catalog's facts and without), or is
    refused in words; never another exception."""
    good = plan_of(conn, JOIN, analyze=True)
    facts = read_facts(conn, good)
    assert sorted(facts.tables) == ["public.customers", "public.invoices"]
    values = [None, True, 0, -1, 1e308, "", "Seq Scan", [], {}, [1], {"Node Type": 1}]
    chance = random.Random(14)
    refused = 0
    for _ in range(400):
        raw = copy.deepcopy(good.raw)
        objects = _objects(raw)
        for _ in range(chance.randint(1, 3)):
            spoiled = chance.choice(objects)
            spoiled[chance.choice(list(spoiled))] = chance.choice(values)
        try:
            plan = loads(json.dumps(raw)).plan
        except PlanUnreadable:
            refused += 1
            continue
        assert compare(good, plan).summary and compare(plan, good).summary
        for found in (find(plan), find(plan, facts)):
            assert all(f.node is None or 0 <= f.node < len(plan.nodes) for f in found)
    assert 0 < refused < 400


def _objects(value: object) -> list[dict]:
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found += [item] if item else []
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
