"""Plan findings on real plans: every finding made to appear by a statement on a real PostgreSQL 15
(EXPLAIN ANALYZE as the superuser), with the catalog facts read as the least-privilege advisor role;
the fixes that name a work_mem are run again with it and must stop the spill. Statistics counters
emptied by a reset, and a real hot standby, must not read as tables never analyzed. Real plans
spoiled as a pasted one may be must never make find() raise."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest

from dashboard.plans.facts import read_facts
from dashboard.plans.findings import SCAN_MIN_MS, Facts, Finding, find
from dashboard.plans.tree import Plan, PlanUnreadable, read_plan
from dashboard.servers.throwaway import ThrowawayPostgres, free_port
from tests.support.postgres import ADVISOR_ROLE, advisor_dsn, new_database

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
INSERT INTO "we.ird"."Tab ""le"" x" SELECT g, g % 5000 FROM generate_series(1, 200000) g;
CREATE TABLE items (id int, kind int, pad text) WITH (autovacuum_enabled = off);
INSERT INTO items SELECT g, g % 50, md5(g::text) FROM generate_series(1, 50000) g;
CREATE TABLE reset_quiet (id int, k int) WITH (autovacuum_enabled = off);
INSERT INTO reset_quiet SELECT g, g % 10 FROM generate_series(1, 5000) g;
CREATE TABLE reset_busy (id int, k int) WITH (autovacuum_enabled = off);
INSERT INTO reset_busy SELECT g, g % 1000 FROM generate_series(1, 2000) g;
CREATE TABLE empty (id int) WITH (autovacuum_enabled = off);
"""
ANALYZED = ("big", "small", "stale", '"we.ird"."Tab ""le"" x"', "items", "reset_quiet", "reset_busy", "empty")


@pytest.fixture(scope="module")
def db(pg: ThrowawayPostgres) -> dict[str, str]:
    """The tables above, analyzed, then 50,000 rows more in `stale` (50,000 with k = 5000, a value
    its statistics never saw) and `fresh` never analyzed; the statistics counters of `reset_quiet` and
    `reset_busy` reset after ANALYZE (as pg_stat_reset, a crash or a failover leave them), then
    10,000 rows more in `reset_busy` (k = 5000): {dsn (superuser), facts_dsn (advisor)}."""
    name = new_database(pg, "findings")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(TABLES)
        # Counts of this backend reach pg_stat_* when it is next idle only if flushed now: else they
        # would land after ANALYZE and count as changes since it.
        conn.execute("SELECT pg_stat_force_next_flush()")
        for table in ANALYZED:
            conn.execute(f"ANALYZE {table}")
        conn.execute("INSERT INTO stale SELECT g, 5000 FROM generate_series(1, 50000) g")
        conn.execute("SELECT pg_stat_force_next_flush()")
        for table in ("reset_quiet", "reset_busy"):
            conn.execute("SELECT pg_stat_reset_single_table_counters(%s::regclass)", (table,))
        conn.execute("INSERT INTO reset_busy SELECT g, 5000 FROM generate_series(1, 10000) g")
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
    assert (big.has_statistics, stale.has_statistics, fresh.has_statistics) == (True, True, False)
    assert (facts.work_mem_kb, facts.hash_mem_multiplier, facts.in_recovery) == (4096, 2.0, False)
    empty = facts_of(db, explain(db, "SELECT * FROM empty")).tables["public.empty"]
    assert (empty.reltuples, empty.has_statistics) == (0, True)  # analyzed: nothing in pg_stats to show


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


def test_a_limit_that_stops_a_scan_early_is_no_finding(db: dict[str, str]) -> None:
    """A Limit stops the scan after the rows it needs: it read 500 rows of 50,000 in microseconds,
    and the estimate expects as much. Judged by the rows read, not the table's size."""
    statement = "SELECT * FROM items WHERE kind = 7 LIMIT 10"
    plan, found = findings(db, statement)
    scan = plan.nodes[1]
    assert (
        scan.node_type == "Seq Scan"
        and scan.actual_rows == 10
        and scan.detail["Rows Removed by Filter"] < 1_000
    )
    assert found == [], [f.title for f in found]
    estimated, found = findings(db, statement, options=ESTIMATE)
    assert estimated.nodes[1].est_rows > 400 and found == [], [f.title for f in found]  # the part read: 1 %


def test_a_limit_that_does_not_stop_the_scan_leaves_the_finding(db: dict[str, str]) -> None:
    """No row matches: the Limit never has its rows and the scan reads the whole table. Estimated,
    a Limit of 150 rows of the 200 expected reads three quarters of it."""
    statement = "SELECT * FROM big WHERE pad = 'none' LIMIT 10"
    _plan, found = findings(db, statement)
    assert [(f.kind, f.severity, f.title) for f in found] == [
        ("seq_scan", "high", "Sequential scan of public.big reads 200,000 rows to keep 0")
    ]
    _plan, found = findings(db, statement, options=ESTIMATE)
    assert [f.title for f in found] == ["Sequential scan of public.big (200,000 rows) expected to keep 1"]
    _plan, found = findings(db, "SELECT * FROM big WHERE cat = 7 LIMIT 150", options=ESTIMATE)
    scan = one(found, "seq_scan")
    read = re.fullmatch(
        r"Sequential scan of public.big \(200,000 rows\) expected to read ([\d,]+) to keep 150", scan.title
    )
    assert read and 140_000 < int(read[1].replace(",", "")) < 160_000, scan.title
    assert "before the Limit above has its rows" in scan.detail


def test_a_scan_or_filter_faster_than_a_millisecond_is_no_finding(db: dict[str, str]) -> None:
    """The same figures, but the scan's own time under SCAN_MIN_MS: not worth an index. Without
    timing (TIMING OFF) the rows alone decide."""
    for statement, settings, kind in (
        ("SELECT * FROM big WHERE cat = 7", SERIAL, "seq_scan"),
        (
            "SELECT * FROM big WHERE id <= 100000 AND cat = 3",
            (*SERIAL, "enable_seqscan = off", "enable_bitmapscan = off"),
            "filter",
        ),
    ):
        plan = explain(db, statement, settings)
        facts = facts_of(db, plan)
        assert kinds(find(plan, facts)) == [kind] and plan.root.own_ms >= SCAN_MIN_MS
        fast = copy.deepcopy(plan.raw)
        fast[0]["Plan"]["Actual Total Time"] = SCAN_MIN_MS * 0.9
        assert find(read_plan(fast), facts) == [], statement
        untimed = explain(db, statement, settings, "ANALYZE, TIMING OFF, VERBOSE")
        assert untimed.root.own_ms is None and kinds(find(untimed, facts)) == [kind]


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


def test_statistics_counters_reset_after_analyze_are_not_never_analyzed(db: dict[str, str]) -> None:
    """pg_stat_reset (or a crash, a failover) empties last_analyze and the change counts, and the
    statistics stay in pg_stats: the table was analyzed, at a time unknown, and is not to ANALYZE
    for that. Changes counted since the reset are at least those since the last ANALYZE."""
    plan, found = findings(db, "SELECT * FROM reset_quiet WHERE k = 3")
    facts = facts_of(db, plan)
    quiet = facts.tables["public.reset_quiet"]
    assert (quiet.last_analyze, quiet.modified_since_analyze, quiet.reltuples) == (None, 0, 5_000)
    assert quiet.has_statistics is True and found == []
    unknown = replace(facts, tables={"public.reset_quiet": replace(quiet, has_statistics=None)})
    assert kinds(find(plan, unknown)) == ["stale_stats"]  # the counters alone said: never analyzed

    plan, found = findings(db, "SELECT * FROM reset_busy WHERE k = 5000")
    assert kinds(found) == ["misestimate", "stale_stats"]
    off, stale = found
    assert (
        stale.title
        == "Statistics of public.reset_busy are stale: at least 10,000 rows changed since its last ANALYZE"
    )
    unknown = (
        "public.reset_busy has statistics, but when it was last analyzed is unknown: the statistics counters"
    )
    assert unknown in off.detail and unknown in stale.detail and "never" not in off.detail + stale.detail
    assert off.fix.startswith("ANALYZE public.reset_busy:") and stale.fix.startswith(
        "ANALYZE public.reset_busy."
    )
    assert "standby" not in off.fix + stale.fix


# A primary's tables, for its standby: `pairs` analyzed, `vacuumed` never analyzed (VACUUM counted
# its rows and wrote no statistics).
STANDBY_TABLES = f"""
CREATE TABLE pairs (id int, a int, b int) WITH (autovacuum_enabled = off);
INSERT INTO pairs SELECT g, g % 100, g % 100 FROM generate_series(1, 100000) g;
ANALYZE pairs;
CREATE TABLE vacuumed (id int, k int) WITH (autovacuum_enabled = off);
INSERT INTO vacuumed SELECT g, g % 10 FROM generate_series(1, 5000) g;
VACUUM vacuumed;
CREATE ROLE {ADVISOR_ROLE} LOGIN IN ROLE pg_monitor, pg_read_all_data;
"""


@pytest.fixture(scope="module")
def standby() -> Iterator[dict[str, str]]:
    """A real hot standby (pg_basebackup of a primary of its own, streaming from it) of the tables
    above: {dsn (superuser), facts_dsn (advisor)} on the standby."""
    with ThrowawayPostgres() as primary:
        with psycopg.connect(primary.dsn(), autocommit=True) as conn:
            for statement in STANDBY_TABLES.split(";")[:-1]:  # VACUUM runs in no transaction block
                conn.execute(statement)
        folder = tempfile.mkdtemp(prefix="obs-standby-")
        data, port = os.path.join(folder, "data"), free_port()
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if as_postgres:  # the server refuses to run as root: it runs as postgres, as the primary does
            shutil.chown(folder, "postgres", "postgres")

        def run(program: str, *args: str) -> None:
            done = subprocess.run(
                [*as_postgres, f"{primary.bindir}/{program}", *args],
                cwd=folder,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, (program, done.stderr)

        try:
            source = ("-h", "127.0.0.1", "-p", str(primary.port))
            run("pg_basebackup", "-D", data, "-R", "-X", "stream", "-c", "fast", *source)
            with open(os.path.join(data, "postgresql.auto.conf"), "a") as conf:  # the later line wins
                conf.write(f"port = '{port}'\nunix_socket_directories = '{folder}'\n")
            run("pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", os.path.join(folder, "server.log"))
            on_standby = f"postgresql://{{}}@127.0.0.1:{port}/postgres"
            yield {"dsn": on_standby.format("postgres"), "facts_dsn": on_standby.format(ADVISOR_ROLE)}
        finally:
            if os.path.exists(os.path.join(data, "postmaster.pid")):
                run("pg_ctl", "stop", "-w", "-m", "fast", "-D", data)
            shutil.rmtree(folder, ignore_errors=True)


def test_on_a_standby_analyze_is_advised_on_the_primary(standby: dict[str, str]) -> None:
    """A standby's statistics counters stay empty (no last ANALYZE) while its tables' statistics,
    replicated, are there: no stale statistics. Where a fix needs ANALYZE or DDL, it says to run it
    on the primary: the standby is read-only."""
    plan, found = findings(standby, "SELECT * FROM pairs WHERE a = 1 AND b = 1")
    facts = facts_of(standby, plan)
    pairs = facts.tables["public.pairs"]
    assert facts.in_recovery is True and (pairs.last_analyze, pairs.has_statistics) == (None, True)
    assert pairs.reltuples == 100_000
    assert kinds(found) == ["misestimate", "seq_scan"]  # no stale_stats: it was analyzed, on the primary
    off, scan = found
    assert (
        "public.pairs has statistics, but when it was last analyzed is unknown: this server is a standby"
        in off.detail
    )
    for fix in (off.fix, scan.fix):
        assert fix.endswith(
            "This server is a standby, which is read-only: create indexes and statistics and run "
            "ANALYZE on the primary; replication brings them here."
        )
    assert "CREATE STATISTICS pairs_a_b_stats" in off.fix

    plan, found = findings(standby, "SELECT count(*) FROM vacuumed")
    vacuumed = facts_of(standby, plan).tables["public.vacuumed"]
    assert (vacuumed.reltuples, vacuumed.has_statistics) == (5_000, False)
    stale = one(found, "stale_stats")
    assert stale.title == "Statistics of public.vacuumed are stale: never analyzed"
    assert stale.fix.startswith(
        "ANALYZE public.vacuumed on the primary: this server is a standby, where ANALYZE cannot run"
    )


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
    # Debian's postgresql-15 ships llvmjit: a server without it cannot show this finding, a failure.
    assert available, "this PostgreSQL has no JIT (postgresql-15 with llvmjit is what install.sh installs)"
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
    # ANALYZE samples at random: its estimate of 200 rows with cat = 7 comes out at 199 or 200
    assert re.fullmatch(
        r"Sequential scan of public.big \(200,000 rows\) expected to keep (?:199|200)", found[0].title
    )
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


# --- pasted plans: figures no EXPLAIN writes -----------------------------------------------------

INF, NAN = "__inf__", "__nan__"  # written as the JSON 1e400 (infinity, once read) and NaN
NOT_A_NUMBER = re.compile(r"\b(?:inf|infinity|nan)\b", re.IGNORECASE)
HASH_JOIN = "SELECT b.pad, s.id FROM small s JOIN big b ON b.id = s.ref"
HASH_ONLY = (*LOW_MEMORY, "enable_mergejoin = off", "enable_nestloop = off")
BITMAP_ONLY = (*LOW_MEMORY, "enable_seqscan = off", "enable_indexscan = off")


def pasted(raw: list) -> Plan:
    """The plan as someone may paste it: JSON text, with 1e400 and NaN where the markers are."""
    return read_plan(json.dumps(raw).replace(f'"{INF}"', "1e400").replace(f'"{NAN}"', "NaN"))


def spoiled(plan: Plan, node_type: str, **fields: object) -> list:
    """The plan's raw JSON with `fields` set on its first node of `node_type`."""
    raw = copy.deepcopy(plan.raw)
    node = next(n for n in _objects(raw) if n.get("Node Type") == node_type)
    node.update({key.replace("_", " "): value for key, value in fields.items()})
    return raw


def checked(plan: Plan, facts: Facts) -> list[Finding]:
    """find() on the plan: it must not raise, and must write no infinity or NaN (unless the plan's
    own text, quoted as given, says 'nan')."""
    found = find(plan, facts)
    quoted = any(
        isinstance(v, str) and NOT_A_NUMBER.search(v) for o in _objects(plan.raw) for v in o.values()
    )
    for finding in found:
        text = " ".join((finding.title, finding.detail, finding.fix or ""))
        assert quoted or not NOT_A_NUMBER.search(text), text
        assert finding.severity in ("high", "medium", "low")
        assert finding.node is None or 0 <= finding.node < len(plan.nodes)
    return found


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


def test_figures_no_explain_writes_are_ignored_not_a_crash(db: dict[str, str]) -> None:
    """EXPLAIN writes a node's figures as JSON numbers of sane size: a string, NaN, infinity or 1e308
    pasted in their place is no figure. find() reads the rest; past WORK_MEM_MAX_MB it advises
    fewer rows, not a work_mem."""
    sort = explain(db, "SELECT id, pad FROM big ORDER BY pad", LOW_MEMORY)
    facts = facts_of(db, sort)
    assert "spill" in kinds(checked(pasted(spoiled(sort, "Sort")), facts))
    for value in (INF, NAN, "1e400", "nan", "12345", 1e308, 1e16, -5, True, [1]):
        found = checked(pasted(spoiled(sort, "Sort", Sort_Space_Used=value)), facts)
        assert "spill" not in kinds(found), value
    spill = one(checked(pasted(spoiled(sort, "Sort", Sort_Space_Used=1e15)), facts), "spill")
    assert "931,323 TB written" in spill.title and "too much to give one operation" in spill.fix
    assert "SET work_mem" not in spill.fix

    hashed = explain(db, HASH_JOIN, HASH_ONLY)
    facts = facts_of(db, hashed)
    for batches, peak in ((1e308, 1e308), (INF, INF), (NAN, 100), ("64", "100")):
        found = checked(pasted(spoiled(hashed, "Hash", Hash_Batches=batches, Peak_Memory_Usage=peak)), facts)
        assert "spill" not in kinds(found), (batches, peak)
    found = checked(
        pasted(spoiled(hashed, "Hash", Hash_Batches=1_000_000, Peak_Memory_Usage=1_000_000)), facts
    )
    assert "too much to give one operation" in one(found, "spill").fix
    settings = {"work_mem": "9" * 400 + "TB", "hash_mem_multiplier": "0", "jit_above_cost": "nan"}
    raw = copy.deepcopy(hashed.raw)
    raw[0]["Settings"] = settings  # none PostgreSQL takes: the server's work_mem and the defaults
    assert "now 4.0 MB" in one(checked(pasted(raw), facts), "spill").fix

    bitmap = explain(db, "SELECT * FROM big WHERE grp = 1", BITMAP_ONLY)
    facts = facts_of(db, bitmap)
    huge = pasted(spoiled(bitmap, "Bitmap Heap Scan", Exact_Heap_Blocks=1e15, Lossy_Heap_Blocks=1e15))
    lossy = one(checked(huge, facts), "lossy_bitmap")
    assert "too much work_mem to give one operation" in lossy.fix and "SET work_mem" not in lossy.fix
    for value in (INF, NAN, "1e400", 1e308):
        found = checked(pasted(spoiled(bitmap, "Bitmap Heap Scan", Lossy_Heap_Blocks=value)), facts)
        assert "lossy_bitmap" not in kinds(found), value

    scan = explain(db, "SELECT * FROM big WHERE cat = 7")
    facts = facts_of(db, scan)
    for value in (INF, NAN, "inf", "1e400", 1e308):
        found = checked(pasted(spoiled(scan, "Seq Scan", Rows_Removed_by_Filter=value)), facts)
        assert "seq_scan" not in kinds(found), value  # it read what it kept: no rows removed are known
    for total in (INF, NAN, "inf", 1e308, 1e15):
        raw = copy.deepcopy(scan.raw)
        raw[0]["JIT"] = {
            "Functions": 2,
            "Timing": {"Generation": {"Total": INF}, "Inlining": NAN, "Total": total},
        }
        jit = [f for f in checked(pasted(raw), facts) if f.kind == "jit"]
        expected = (
            [f"JIT compilation took {1e12:.2f} s, 100 % of the execution time"] if total == 1e15 else []
        )
        assert [f.title for f in jit] == expected, total


def test_a_pasted_condition_takes_no_quadratic_time(db: dict[str, str]) -> None:
    """The columns an index fix names are read from the condition's text: a run of spaces where a
    cast's type goes must not make that take time growing with its square (30,000 spaces took 7 s)."""
    scan = explain(db, "SELECT * FROM big WHERE cat = 7")
    facts = facts_of(db, scan)
    filler = "((cat)::" + " " * 30_000 + "7)"  # no operator after the spaces: every split is tried
    started = time.monotonic()
    found = checked(pasted(spoiled(scan, "Seq Scan", Filter=filler)), facts)
    assert time.monotonic() - started < 1.0 and kinds(found) == ["seq_scan"]


def test_real_plans_spoiled_at_random_never_make_find_raise(db: dict[str, str]) -> None:
    """Real plans of every finding, their fields (or a field findings read) set at random (seeded)
    to values of every JSON type, hostile numbers included: each loads and goes through find(),
    with the catalog's facts, without, and as on a standby; or is refused in words."""
    sources = [
        explain(db, "SELECT id, pad FROM big ORDER BY pad", LOW_MEMORY),
        explain(db, HASH_JOIN, HASH_ONLY),
        explain(db, "SELECT pad, count(*) FROM big GROUP BY pad", (*LOW_MEMORY, "enable_sort = off")),
        explain(db, "SELECT * FROM big WHERE grp = 1", BITMAP_ONLY),
        explain(db, HASH_JOIN, (*SERIAL, "enable_mergejoin = off", "enable_hashjoin = off")),
        explain(db, "SELECT * FROM big b JOIN stale s USING (id) WHERE b.a = 1 AND b.b = 1 LIMIT 5"),
        explain(
            db,
            "SELECT count(*) FROM big WHERE cat = 5",
            ("max_parallel_workers = 0", "parallel_setup_cost = 0"),
        ),
        explain(db, "SELECT * FROM items WHERE kind = 7 LIMIT 10", options=ESTIMATE),
    ]
    facts = [facts_of(db, plan) for plan in sources]
    keys = [
        *("Sort Space Used", "Sort Space Type", "Workers", "Hash Batches", "Peak Memory Usage", "Strategy"),
        *("HashAgg Batches", "Disk Usage", "Exact Heap Blocks", "Lossy Heap Blocks", "Parallel Aware"),
        *(
            "Rows Removed by Filter",
            "Rows Removed by Index Recheck",
            "Workers Planned",
            "Parent Relationship",
        ),
        *("Join Type", "Filter", "Alias", "Schema", "Relation Name", "Settings", "JIT"),
    ]
    values = [
        *(None, True, 0, -1, 0.5, 1e15, 1e16, 1e308, INF, NAN, "", "nan", "1e400", "-1", "Disk", "Hashed"),
        *("Limit", "Semi", "SubPlan", "x" * 300, [], {}, [1], [{"Sort Space Used": INF}], {"Node Type": 1}),
        {"work_mem": "0kB", "hash_mem_multiplier": "0", "jit_above_cost": "-1e400"},
        {"Functions": 1, "Timing": {"Total": 1e308, "Emission": INF}, "Options": {"Inlining": 1}},
    ]
    chance = random.Random(15)
    loaded = 0
    for _ in range(600):
        pick = chance.randrange(len(sources))
        raw = copy.deepcopy(sources[pick].raw)
        objects = _objects(raw)
        for _ in range(chance.randint(1, 3)):
            target = chance.choice(objects)
            key = chance.choice(list(target)) if chance.random() < 0.5 else chance.choice(keys)
            target[key] = chance.choice(values)
        try:
            plan = pasted(raw)
        except PlanUnreadable:
            continue
        loaded += 1
        for given in (facts[pick], Facts(), replace(facts[pick], in_recovery=True)):
            checked(plan, given)
    assert loaded > 300
