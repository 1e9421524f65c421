"""Plan findings on real plans: every finding made to appear by a statement on a real PostgreSQL 15
(EXPLAIN ANALYZE as the superuser), with the catalog facts read as the least-privilege advisor role;
the fixes that name a work_mem are run again with it and must stop the spill."""

from __future__ import annotations

import os
import re
from dataclasses import replace

import psycopg
import pytest

from dashboard.plans.facts import read_facts
from dashboard.plans.findings import Facts, Finding, find
from dashboard.plans.tree import Plan, read_plan
from dashboard.servers.throwaway import ThrowawayPostgres
from tests.support.postgres import advisor_dsn, new_database

ANALYZE = "ANALYZE, BUFFERS, VERBOSE, SETTINGS"
ESTIMATE = "VERBOSE, SETTINGS"
SERIAL = ("max_parallel_workers_per_gather = 0",)  # no Gather unless a test asks for one
LOW_MEMORY = (*SERIAL, "work_mem = '64kB'")

# Autovacuum off for every table: ANALYZE only when the fixture says so.
TABLES = """
CREATE TABLE big (id int PRIMARY KEY, a int, b int, cat int, seq int, grp int, pad text)
  WITH (autovacuum_enabled = off);
INSERT INTO big SELECT g, g % 100, g % 100, g % 1000, g, g % 50, md5(g::text)
  FROM generate_series(1, 200000) g;
CREATE INDEX big_grp ON big (grp);
CREATE INDEX big_seq_brin ON big USING brin (seq);
CREATE TABLE small (id int PRIMARY KEY, ref int) WITH (autovacuum_enabled = off);
INSERT INTO small SELECT g, (g * 37) % 200000 + 1 FROM generate_series(1, 20000) g;
CREATE TABLE stale (id int, k int) WITH (autovacuum_enabled = off);
INSERT INTO stale SELECT g, g % 1000 FROM generate_series(1, 2000) g;
CREATE TABLE fresh (id int, k int) WITH (autovacuum_enabled = off);
INSERT INTO fresh SELECT g, g % 10 FROM generate_series(1, 3000) g;
CREATE SCHEMA "we.ird";
CREATE TABLE "we.ird"."Tab ""le"" x" (id int, v int) WITH (autovacuum_enabled = off);
INSERT INTO "we.ird"."Tab ""le"" x" SELECT g, g % 5000 FROM generate_series(1, 20000) g;
"""


@pytest.fixture(scope="module")
def db(pg: ThrowawayPostgres) -> dict[str, str]:
    """The tables above, analyzed, then 50,000 rows more in `stale` (50,000 with k = 5000, a value
    its statistics never saw) and `fresh` never analyzed: {dsn (superuser), facts_dsn (advisor)}."""
    name = new_database(pg, "findings")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(TABLES)
        # Counts of this backend reach pg_stat_* when it is next idle only if flushed now: else they
        # would land after ANALYZE and count as changes since it.
        conn.execute("SELECT pg_stat_force_next_flush()")
        for table in ("big", "small", "stale", '"we.ird"."Tab ""le"" x"'):
            conn.execute(f"ANALYZE {table}")
        conn.execute("INSERT INTO stale SELECT g, 5000 FROM generate_series(1, 50000) g")
        conn.execute("SELECT pg_stat_force_next_flush()")
    return {"dsn": pg.dsn(dbname=name), "facts_dsn": advisor_dsn(pg, name)}


def explain(
    db: dict[str, str], statement: str, settings: tuple[str, ...] = SERIAL, options: str = ANALYZE
) -> Plan:
    with psycopg.connect(db["dsn"]) as conn, conn.transaction():
        for setting in settings:
            conn.execute(f"SET LOCAL {setting}")
        found = conn.execute(f"EXPLAIN ({options}, FORMAT JSON) {statement}").fetchone()[0]
    return read_plan(found)


def facts_of(db: dict[str, str], plan: Plan) -> Facts:
    """The facts as the product reads them: the advisor role, search_path pinned to pg_catalog."""
    with psycopg.connect(db["facts_dsn"], options="-c search_path=pg_catalog,pg_temp") as conn:
        return read_facts(conn, plan)


def findings(db: dict[str, str], statement: str, settings: tuple[str, ...] = SERIAL, options: str = ANALYZE):
    plan = explain(db, statement, settings, options)
    found = find(plan, facts_of(db, plan))
    for finding in found:  # plain text for a web page and a terminal: one-line titles, no markup
        texts = (finding.title, finding.detail, finding.fix or "")
        assert "\n" not in finding.title and not any(m in t for t in texts for m in ("`", "**", "<b>"))
    return plan, found


def one(found: list[Finding], kind: str) -> Finding:
    matching = [f for f in found if f.kind == kind]
    assert len(matching) == 1, f"{kind}: {[(f.kind, f.title) for f in found]}"
    return matching[0]


def kinds(found: list[Finding]) -> list[str]:
    return [f.kind for f in found]


def suggested_work_mem(finding: Finding) -> str:
    match = re.search(r"SET work_mem = '(\d+MB)'", finding.fix or "")
    assert match, finding.fix
    return match[1]


def test_facts_of_the_tables_a_plan_reads(db: dict[str, str]) -> None:
    plan = explain(db, "SELECT * FROM big JOIN stale USING (id) JOIN fresh USING (id)")
    facts = facts_of(db, plan)
    assert sorted(facts.tables) == ["public.big", "public.fresh", "public.stale"]
    big, stale, fresh = (facts.tables[f"public.{t}"] for t in ("big", "stale", "fresh"))
    assert (big.reltuples, big.live, big.modified_since_analyze) == (200_000, 200_000, 0)
    assert big.pages > 1_000 and big.size_bytes == big.pages * 8192
    assert big.last_analyze is not None and facts.now is not None and big.last_analyze <= facts.now
    assert (stale.live, stale.modified_since_analyze) == (52_000, 50_000)
    assert fresh.last_analyze is None and fresh.live == 3_000
    assert (facts.work_mem_kb, facts.hash_mem_multiplier) == (4096, 2.0)


def test_facts_match_names_without_verbose_and_ignore_unknown_ones(db: dict[str, str]) -> None:
    """Without VERBOSE a plan names no schema: a name one relation alone has is still found. Names
    are data: quotes and dots in them neither break nor inject anything."""
    plan = explain(db, 'SELECT * FROM small JOIN "we.ird"."Tab ""le"" x" USING (id)', options="ANALYZE")
    facts = facts_of(db, plan)
    assert sorted(facts.tables) == ['Tab "le" x', "small"]
    assert facts.tables["small"].reltuples == 20_000
    hostile = read_plan(
        {"Plan": {"Node Type": "Seq Scan", "Relation Name": "x'); DROP TABLE big; --", "Schema": "public"}}
    )
    assert facts_of(db, hostile).tables == {}
    assert facts_of(db, read_plan({"Plan": {"Node Type": "Result"}})).work_mem_kb == 4096


def test_seq_scan_keeping_few_rows_names_the_index(db: dict[str, str]) -> None:
    plan, found = findings(db, "SELECT * FROM big WHERE cat = 7")
    assert kinds(found) == ["seq_scan"]
    scan = found[0]
    node = plan.nodes[scan.node]
    assert (node.node_type, node.relation, scan.severity) == ("Seq Scan", "public.big", "high")
    assert scan.title == "Sequential scan of public.big reads 200,000 rows to keep 200"
    assert "(big.cat = 7)" in scan.detail and "0.1 %" in scan.detail
    assert scan.fix.startswith("An index on public.big (cat) covering the filter (big.cat = 7)")
    advised = Facts(suggestions={"public.big": "CREATE INDEX ON public.big (cat)"})
    assert find(plan, advised)[0].fix.startswith("CREATE INDEX ON public.big (cat) (the index advisor's")


def test_correlated_columns_misestimate_asks_for_extended_statistics(db: dict[str, str]) -> None:
    plan, found = findings(db, "SELECT * FROM big WHERE a = 1 AND b = 1")
    assert kinds(found) == ["misestimate", "seq_scan"]  # the cause first
    off = found[0]
    node = plan.nodes[off.node]
    assert (node.node_type, node.relation, node.actual_rows) == ("Seq Scan", "public.big", 2000)
    assert node.est_rows < 100 and f"{node.est_rows:,.0f} expected, 2,000 found" in off.title
    assert "public.big was last analyzed" in off.detail and "0 rows changed since" in off.detail
    assert "CREATE STATISTICS big_a_b_stats (dependencies, ndistinct, mcv) ON a, b FROM public.big" in off.fix


def test_stale_statistics_and_the_misestimate_they_cause(db: dict[str, str]) -> None:
    plan, found = findings(db, "SELECT * FROM stale WHERE k = 5000")
    assert kinds(found) == ["misestimate", "stale_stats"]
    off, stale = found
    assert off.node == stale.node and plan.nodes[off.node].relation == "public.stale"
    assert "50,000 found" in off.title and off.fix.startswith("ANALYZE public.stale")
    assert "50,000 rows changed since its last ANALYZE (96 % of its 52,000 live rows)" in stale.title
    assert stale.fix.startswith("ANALYZE public.stale.") and "autovacuum_analyze_scale_factor" in stale.fix


def test_never_analyzed_table(db: dict[str, str]) -> None:
    plan, found = findings(db, "SELECT count(*) FROM fresh")
    stale = one(found, "stale_stats")
    assert plan.nodes[stale.node].relation == "public.fresh"
    assert stale.title == "Statistics of public.fresh are stale: never analyzed"
    assert "ANALYZE public.fresh" in stale.fix


def test_odd_names_are_quoted_in_fixes(db: dict[str, str]) -> None:
    plan, found = findings(db, 'SELECT * FROM "we.ird"."Tab ""le"" x" WHERE v = 7')
    scan = one(found, "seq_scan")
    assert plan.nodes[scan.node].relation == 'we.ird.Tab "le" x'
    assert scan.fix.startswith('An index on "we.ird"."Tab ""le"" x" (v)')


def test_sort_spill_and_the_work_mem_that_fits(db: dict[str, str]) -> None:
    statement = "SELECT id, pad FROM big ORDER BY pad"
    plan, found = findings(db, statement, LOW_MEMORY)
    spill = one(found, "spill")
    node = plan.nodes[spill.node]
    assert node.node_type == "Sort" and node.detail["Sort Space Type"] == "Disk"
    assert spill.title.startswith("Sort spilled to disk") and "work_mem is 64 kB" in spill.detail
    work_mem = suggested_work_mem(spill)
    assert "now 64 kB" in spill.fix
    again = explain(db, statement, (*SERIAL, f"work_mem = '{work_mem}'"))
    assert again.root.detail["Sort Space Type"] == "Memory", work_mem
    assert "spill" not in kinds(find(again, facts_of(db, again)))


def test_hash_join_batches(db: dict[str, str]) -> None:
    statement = "SELECT b.pad, s.id FROM small s JOIN big b ON b.id = s.ref"
    hash_only = ("enable_mergejoin = off", "enable_nestloop = off")
    plan, found = findings(db, statement, (*LOW_MEMORY, *hash_only))
    spill = one(found, "spill")
    node = plan.nodes[spill.node]
    assert node.node_type == "Hash" and node.detail["Hash Batches"] > 1
    assert f"Hash split into {node.detail['Hash Batches']} batches" in spill.title
    assert "hash_mem_multiplier" in spill.fix
    again = explain(db, statement, (*SERIAL, *hash_only, f"work_mem = '{suggested_work_mem(spill)}'"))
    hashes = [n for n in again.nodes if n.node_type == "Hash"]
    assert [n.detail["Hash Batches"] for n in hashes] == [1]


def test_hash_aggregate_spill(db: dict[str, str]) -> None:
    statement = "SELECT pad, count(*) FROM big GROUP BY pad"
    plan, found = findings(db, statement, (*LOW_MEMORY, "enable_sort = off"))
    spill = one(found, "spill")
    node = plan.nodes[spill.node]
    assert node.label == "HashAggregate" and node.detail["HashAgg Batches"] > 1
    assert "200,000 groups by big.pad" in spill.detail
    again = explain(
        db, statement, (*SERIAL, "enable_sort = off", f"work_mem = '{suggested_work_mem(spill)}'")
    )
    assert (again.root.label, again.root.detail["HashAgg Batches"]) == ("HashAggregate", 1)


def test_nested_loop_run_thousands_of_times(db: dict[str, str]) -> None:
    statement = "SELECT b.pad, s.id FROM small s JOIN big b ON b.id = s.ref"
    plan, found = findings(db, statement, (*SERIAL, "enable_mergejoin = off", "enable_hashjoin = off"))
    loop = one(found, "nested_loop")
    node = plan.nodes[loop.node]
    inner = plan.nodes[node.children[1]]
    assert node.node_type == "Nested Loop" and (inner.index, inner.loops) == ("big_pkey", 20_000)
    assert loop.title.startswith("Nested loop runs Index Scan using big_pkey on public.big b 20,000 times")
    assert "SET enable_nestloop = off" in loop.fix


def test_rows_removed_by_filter_on_an_index_scan(db: dict[str, str]) -> None:
    statement = "SELECT * FROM big WHERE id <= 100000 AND cat = 3"
    plan, found = findings(db, statement, (*SERIAL, "enable_seqscan = off", "enable_bitmapscan = off"))
    assert kinds(found) == ["filter"]
    node = plan.nodes[found[0].node]
    assert (node.node_type, node.index) == ("Index Scan", "big_pkey")
    assert "discarded 99,900, keeping 100" in found[0].detail
    assert found[0].fix.startswith("An index on public.big (cat, id) covering both the filter (big.cat = 3)")


def test_recheck_of_a_brin_index(db: dict[str, str]) -> None:
    statement = "SELECT * FROM big WHERE seq BETWEEN 1000 AND 1100"
    plan, found = findings(db, statement, (*SERIAL, "enable_seqscan = off"))
    assert kinds(found) == ["recheck"]
    node = plan.nodes[found[0].node]
    assert node.node_type == "Bitmap Heap Scan" and node.detail["Exact Heap Blocks"] == 0
    removed = node.detail["Rows Removed by Index Recheck"]
    assert f"discards {removed:,}" in found[0].title and "BRIN" in found[0].fix


def test_lossy_bitmap_for_want_of_work_mem(db: dict[str, str]) -> None:
    statement = "SELECT * FROM big WHERE grp = 1"
    bitmap_only = ("enable_seqscan = off", "enable_indexscan = off")
    plan, found = findings(db, statement, (*LOW_MEMORY, *bitmap_only))
    lossy = one(found, "lossy_bitmap")
    assert "recheck" not in kinds(found)  # the same rows: told once
    node = plan.nodes[lossy.node]
    assert node.node_type == "Bitmap Heap Scan" and node.detail["Lossy Heap Blocks"] > 0
    assert f"{node.detail['Lossy Heap Blocks']:,} of" in lossy.title
    again = explain(db, statement, (*SERIAL, *bitmap_only, f"work_mem = '{suggested_work_mem(lossy)}'"))
    assert again.root.detail["Lossy Heap Blocks"] == 0


def test_workers_planned_but_not_launched(db: dict[str, str]) -> None:
    parallel = (
        "max_parallel_workers = 0",
        "max_parallel_workers_per_gather = 2",
        "parallel_setup_cost = 0",
        "parallel_tuple_cost = 0",
        "min_parallel_table_scan_size = 0",
    )
    statement = "SELECT count(*) FROM big WHERE cat = 5"
    plan, found = findings(db, statement, parallel)
    workers = one(found, "workers")
    assert plan.nodes[workers.node].node_type == "Gather"
    assert workers.title == "2 parallel workers planned, 0 launched"
    assert "max_parallel_workers (now 0)" in workers.fix
    scan = one(found, "seq_scan")  # the parallel scan's rows over all its processes
    assert "reads 200,000 rows to keep 200" in scan.title
    estimated, found = findings(db, statement, parallel, ESTIMATE)
    assert not estimated.analyzed and kinds(found) == ["seq_scan"]


def test_jit_costing_more_than_the_statement(db: dict[str, str]) -> None:
    with psycopg.connect(db["dsn"]) as conn:
        available = conn.execute("SELECT pg_jit_available()").fetchone()[0]
    if not available and os.environ.get("CI") != "true":
        pytest.skip("this server has no JIT (llvmjit): CI's has")
    assert available, "CI's PostgreSQL must have JIT (postgresql-15 with llvmjit)"
    jit_everything = (
        "jit = on",
        "jit_above_cost = 0",
        "jit_inline_above_cost = 0",
        "jit_optimize_above_cost = 0",
    )
    statement = "SELECT a, sum(b * 2 + cat), avg(seq), max(pad) FROM big WHERE id < 1000 GROUP BY a"
    plan, found = findings(db, statement, (*SERIAL, *jit_everything))
    jit = one(found, "jit")
    assert jit.node is None and jit.title.startswith("JIT compilation took")
    assert plan.jit["Timing"]["Total"] >= 20
    assert "is above jit_above_cost (0)" in jit.fix and "jit_inline_above_cost" in jit.fix


def test_a_well_indexed_lookup_has_nothing_to_say(db: dict[str, str]) -> None:
    for statement in ("SELECT * FROM big WHERE id = 42", "SELECT * FROM big LIMIT 10"):  # a Limit stops it
        _plan, found = findings(db, statement)
        assert found == [], (statement, [f.title for f in found])


def test_an_estimated_plan_gets_only_what_estimates_show(db: dict[str, str]) -> None:
    cases = {
        "SELECT * FROM big WHERE cat = 7 ORDER BY pad": (LOW_MEMORY, ["seq_scan"]),  # no spill
        "SELECT * FROM stale WHERE k = 5000": (SERIAL, ["seq_scan", "stale_stats"]),  # no misestimate
        "SELECT * FROM big WHERE grp = 1": ((*LOW_MEMORY, "enable_seqscan = off"), []),  # no lossy bitmap
    }
    for statement, (settings, expected) in cases.items():
        plan, found = findings(db, statement, settings, ESTIMATE)
        assert not plan.analyzed and kinds(found) == expected, (statement, [f.title for f in found])
    plan, found = findings(db, "SELECT * FROM big WHERE cat = 7", options=ESTIMATE)
    assert found[0].title == "Sequential scan of public.big (200,000 rows) expected to keep 199"
    assert find(plan) == []  # without the catalog's facts, an estimate says nothing of rows read


def test_findings_are_deterministic_and_survive_a_round_trip(db: dict[str, str]) -> None:
    plan = explain(db, "SELECT * FROM big b JOIN stale s USING (id) WHERE b.a = 1 AND b.b = 1", LOW_MEMORY)
    facts = facts_of(db, plan)
    found = find(plan, facts)
    assert len(found) >= 2 and found == find(read_plan(plan.to_json()), facts)
    ranks = [("high", "medium", "low").index(f.severity) for f in found]
    assert ranks == sorted(ranks)
    assert all(f.node is None or 0 <= f.node < len(plan.nodes) for f in found)
    assert found == find(plan, replace(facts))
