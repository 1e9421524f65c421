"""What is wrong with a plan, in words, each finding pointing at its node, with the fix.

`find(plan, facts)` reads the figures EXPLAIN gives (rows, loops, time, memory, batches) and the
catalog's facts about the tables read (size, statistics age: `facts.read_facts`), and says what it
sees: a sequential scan that keeps few rows, an estimate off by orders of magnitude, a sort or hash
that spilled to disk, a nested loop run thousands of times, rows filtered or rechecked in bulk,
parallel workers that never came, JIT costing more than it saves, a lossy bitmap, stale statistics.

An estimated plan (no ANALYZE) shows only what estimates can: a sequential scan expected to keep few
rows of a large table, and stale statistics. Everything a plan holds is someone's text: names and
conditions are quoted as given (the UI escapes them) and the words are plain, no markup; a figure
is read only as EXPLAIN writes it (a JSON number of sane size), so a pasted plan never makes find()
raise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dashboard.plans.tree import Plan, PlanNode

# A sequential scan is worth an index from this many rows (or pages: 8 MB, for a table never
# analyzed): below it, reading the whole table costs about what an index lookup does.
SEQ_SCAN_MIN_ROWS = 10_000
SEQ_SCAN_MIN_PAGES = 1_000
# ... and when it keeps at most this share of the rows it reads: past about 5 %, an index scan
# touches most pages anyway and the planner is right to read them in order.
SEQ_SCAN_KEEP_SHARE = 0.05
# A scan (or its filter) is a finding from this much of its own time, over all loops: below a
# millisecond an index saves less than the statement's round trip costs. A LIMIT that stops a scan
# after a few hundred rows takes about 0.05 ms, whatever the table's size.
SCAN_MIN_MS = 1.0
# Actual rows this many times the estimate, or this many times fewer, change join methods, join
# order and memory sizing: plan choices are made on estimates.
MISESTIMATE_RATIO = 10.0
# ... unless both sides are this small (over all loops): a few hundred rows fit any plan.
MISESTIMATE_MIN_ROWS = 500
# A nested loop is suspect when its inner side runs at least this many times ...
NESTED_LOOP_MIN_LOOPS = 1_000
# ... and those runs take at least this share of the statement's time, and this many ms.
NESTED_LOOP_MIN_SHARE = 0.25
NESTED_LOOP_MIN_MS = 10.0
# A filter worth a finding discards at least this share of the rows the scan reads ...
FILTER_REMOVED_SHARE = 0.8
# ... and at least this many rows over all loops: discarding fewer costs under a millisecond.
FILTER_MIN_ROWS = 10_000
# Rows removed by an index recheck: at least this many, and this share of the rows fetched.
RECHECK_MIN_ROWS = 1_000
RECHECK_MIN_SHARE = 0.1
# JIT is a finding when compiling takes this share of the execution time, and this many ms.
JIT_MIN_SHARE = 0.1
JIT_MIN_MS = 20.0
# Statistics are stale when this share of the live rows changed since the last ANALYZE (autovacuum
# waits for 10 % by default), and at least this many rows did: fewer barely move an estimate.
STALE_MODIFIED_SHARE = 0.2
STALE_MIN_ROWS = 1_000
# A node taking this share of the statement's time (or cost) is a high finding; under LOW_SHARE, low.
HIGH_SHARE = 0.3
LOW_SHARE = 0.05
# Memory an operation needs, from what EXPLAIN reports after it spilled (measured on PostgreSQL 15):
SORT_MEMORY_PER_DISK = 2.5  # a sort holds 2-2.4 times in memory what it writes to disk
HASHAGG_BYTES_PER_GROUP = 128  # a hash aggregate's group: entry, tuple header, states, besides its width
BITMAP_BYTES_PER_PAGE = 64  # a bitmap's exact entry for one heap page, with its hash table slot
# Above this, a work_mem to fit the operation is no advice: reduce the rows instead.
WORK_MEM_MAX_MB = 1_024
# Built-in defaults, for settings a plan does not report (EXPLAIN SETTINGS lists only changed ones).
DEFAULT_WORK_MEM_KB = 4_096
WORK_MEM_RANGE_KB = (64, 2_147_483_647)  # what PostgreSQL takes: a plan's setting outside is no setting
DEFAULT_HASH_MEM_MULTIPLIER = 2.0
DEFAULT_JIT_ABOVE_COST = 100_000.0
CONDITION_CHARS = 200  # conditions quoted in a finding are cut to this length
# The largest figure (rows, blocks, kB, ms) read from a node's details: EXPLAIN measures none near it
# (1e15 ms is 31,000 years). A larger one, a string, NaN or infinity is someone's text, not a figure.
FIGURE_MAX = 1e15

SEVERITIES = ("high", "medium", "low")
KINDS = (  # a plan-wide order for findings of the same severity and weight: root causes first
    "misestimate",
    "stale_stats",
    "seq_scan",
    "spill",
    "nested_loop",
    "lossy_bitmap",
    "filter",
    "recheck",
    "workers",
    "jit",
)


@dataclass(frozen=True)
class TableFacts:
    """What the catalog says about a table a plan reads (pg_class, pg_stat_user_tables)."""

    relation: str  # 'public.orders', as the plan names it with VERBOSE
    reltuples: float
    pages: int
    size_bytes: int
    live: int | None
    modified_since_analyze: int | None
    last_analyze: datetime | None  # the later of last_analyze and last_autoanalyze
    # pg_stats holds statistics on its columns (or, on 14+, ANALYZE or VACUUM found it empty); None
    # when not known. The counters above are empty after pg_stat_reset, a crash and on a standby:
    # a table may be analyzed with no last_analyze.
    has_statistics: bool | None = None

    @property
    def rows(self) -> float:
        """The table's rows as best known: reltuples lags behind inserts until VACUUM or ANALYZE."""
        return max(self.reltuples, float(self.live or 0))


@dataclass(frozen=True)
class Facts:
    """What the findings know beyond the plan: `facts.read_facts` reads all but `suggestions`."""

    tables: dict[str, TableFacts] = field(default_factory=dict)
    work_mem_kb: int | None = None
    suggestions: dict[str, str] = field(default_factory=dict)  # relation -> the advisor's CREATE INDEX
    now: datetime | None = None
    hash_mem_multiplier: float | None = None  # hashes get work_mem times this (PostgreSQL 13+)
    in_recovery: bool = False  # a standby: ANALYZE, CREATE INDEX, CREATE STATISTICS run on the primary


@dataclass(frozen=True)
class Finding:
    kind: str  # 'seq_scan', 'misestimate', 'spill', 'nested_loop', 'filter', 'recheck', 'workers',
    #            'jit', 'lossy_bitmap', 'stale_stats'
    node: int | None  # PlanNode.id it points at; None for the whole plan (JIT)
    severity: str  # 'high' | 'medium' | 'low'
    title: str  # one line: 'Sequential scan of public.orders (1.2 M rows) keeps 12 rows'
    detail: str  # the figures behind it, in words
    fix: str | None  # what to do: an index, a work_mem, ANALYZE ...


Ranked = Iterator[tuple[Finding, float]]  # a finding and its weight: the share of time it concerns


def find(plan: Plan, facts: Facts | None = None) -> list[Finding]:
    """Every finding of the plan, most severe first (then the largest share of the time or cost,
    then plan order): the same plan and facts always give the same list."""
    ctx = _Context(plan, facts or Facts())
    ranked: list[tuple[Finding, float]] = []
    for node in plan.nodes:
        for check in _NODE_CHECKS:
            ranked.extend(check(ctx, node))
    ranked.extend(_jit(ctx))
    ranked.extend(_stale_stats(ctx))
    ranked.sort(
        key=lambda r: (
            SEVERITIES.index(r[0].severity),
            -round(r[1], 6),
            -1 if r[0].node is None else r[0].node,
            KINDS.index(r[0].kind),
        )
    )
    return [finding for finding, _ in ranked]


class _Context:
    """The plan with its facts and the figures every check asks for."""

    def __init__(self, plan: Plan, facts: Facts) -> None:
        self.plan = plan
        self.facts = facts
        self.whole = sum(plan.own(n) for n in plan.nodes)

    def share(self, node: PlanNode) -> float:
        """The node's own part of the statement's time (or cost)."""
        return self.plan.own(node) / self.whole if self.whole > 0 else 0.0

    def inclusive_share(self, node: PlanNode) -> float:
        """The part of the statement's time (or cost) spent in the node and below it."""
        return min(self.plan.inclusive(node) / self.whole, 1.0) if self.whole > 0 else 0.0

    def table(self, node: PlanNode) -> TableFacts | None:
        return self.facts.tables.get(node.relation) if node.relation else None

    def work_mem_kb(self) -> float:
        """The work_mem the plan ran with: as the plan reports it, else the server's."""
        given = _setting_kb(self.plan.settings.get("work_mem"))
        return _first(given, self.facts.work_mem_kb, DEFAULT_WORK_MEM_KB)

    def hash_mem_multiplier(self) -> float:
        given = _setting_number(self.plan.settings.get("hash_mem_multiplier"), 1.0, 1000.0)
        return _first(given, self.facts.hash_mem_multiplier, DEFAULT_HASH_MEM_MULTIPLIER)


# --- sequential scans and filters ---------------------------------------------------------------


@dataclass(frozen=True)
class _Scan:
    """What a scan read and kept, over all loops (estimated: per the table's size, and the part of it
    the planner expects to read before a Limit above stops the scan)."""

    read: float
    kept: float
    table_rows: float  # the table's size, or what one loop read when the catalog is not known
    estimated: bool
    part: float = 1.0  # estimated: the part of the table read before a Limit stops it


def _seq_scan_figures(ctx: _Context, node: PlanNode) -> _Scan | None:
    """A sequential scan that read many rows (or pages) and kept few; None for any other node.

    Executed, it is judged by the rows it read, not the table's size (a Limit may have stopped it
    after a few rows), and only when it took SCAN_MIN_MS. Estimated, by the rows the planner expects
    it to read: the whole table, or the part of it before a Limit above has its rows."""
    if node.node_type != "Seq Scan" or not node.relation or "Filter" not in node.detail:
        return None
    table = ctx.table(node)
    if ctx.plan.analyzed:
        if not node.loops or node.actual_rows is None:
            return None
        if node.own_ms is not None and node.own_ms < SCAN_MIN_MS:  # fast whatever it read
            return None
        kept = node.actual_rows * node.loops
        read = kept + _num(node, "Rows Removed by Filter") * node.loops
        pages = _pages_read(node)  # per loop, like the rows: many loops are the nested loop's finding
        if pages is not None:
            pages /= node.loops
        elif table is not None and not _may_stop_early(ctx.plan, node):
            pages = table.pages  # no BUFFERS, and nothing stopped it: it read the whole table
        large = read / node.loops >= SEQ_SCAN_MIN_ROWS or (pages or 0.0) >= SEQ_SCAN_MIN_PAGES
        size = table.rows if table else read / node.loops
        scan = _Scan(read=read, kept=kept, table_rows=size, estimated=False)
    else:
        if table is None:  # an estimate gives rows kept, not read: the table's size says that
            return None
        part = _part_run(ctx.plan, node)
        kept = node.est_rows * _parallel_divisor(ctx, node) * part
        scan = _Scan(read=table.rows * part, kept=kept, table_rows=table.rows, estimated=True, part=part)
        large = scan.read >= SEQ_SCAN_MIN_ROWS or table.pages * part >= SEQ_SCAN_MIN_PAGES
    if not large or scan.read <= 0 or scan.kept / scan.read > SEQ_SCAN_KEEP_SHARE:
        return None
    return scan


def _pages_read(node: PlanNode) -> float | None:
    """The blocks the node read over all loops, from BUFFERS (cached or not); None without BUFFERS."""
    keys = ("shared_hit", "shared_read", "local_hit", "local_read")
    found = [node.buffers[k] for k in keys if k in node.buffers]
    return float(sum(found)) if found else None


def _seq_scan(ctx: _Context, node: PlanNode) -> Ranked:
    scan = _seq_scan_figures(ctx, node)
    if scan is None:
        return
    condition = _condition(node, "Filter")
    if scan.estimated and scan.part < 1:
        title = (
            f"Sequential scan of {node.relation} ({_rows(scan.table_rows)} rows) expected to read "
            f"{_rows(scan.read)} to keep {_rows(scan.kept)}"
        )
        detail = (
            f"The planner expects to read about {_rows(scan.read)} of the {_rows(scan.table_rows)} rows of "
            f"{node.relation} before the Limit above has its rows, and keep {_rows(scan.kept)} "
            f"({_pct(scan.kept / scan.read)}) with the filter {condition}; this scan is "
            f"{_pct(ctx.share(node))} of the plan's cost."
        )
    elif scan.estimated:
        title = (
            f"Sequential scan of {node.relation} ({_rows(scan.table_rows)} rows) "
            f"expected to keep {_rows(scan.kept)}"
        )
        detail = (
            f"The planner expects to read all {_rows(scan.table_rows)} rows of {node.relation} and keep "
            f"{_rows(scan.kept)} ({_pct(scan.kept / scan.read)}) with the filter {condition}; "
            f"this scan is {_pct(ctx.share(node))} of the plan's cost."
        )
    else:
        title = f"Sequential scan of {node.relation} reads {_rows(scan.read)} rows to keep {_rows(scan.kept)}"
        loops = f" over {_rows(node.loops or 1)} loops" if (node.loops or 1) > 1 else ""
        detail = (
            f"It read {_rows(scan.read)} rows{loops} ({node.relation} holds about "
            f"{_rows(scan.table_rows)}) and the filter {condition} kept {_rows(scan.kept)} "
            f"({_pct(scan.kept / scan.read)}); it took {_ms(node.own_ms)}, "
            f"{_pct(ctx.share(node))} of the statement's time."
        )
    yield _finding(ctx, "seq_scan", node, _by_share(ctx.share(node)), title, detail, _index_fix(ctx, node))


def _filter(ctx: _Context, node: PlanNode) -> Ranked:
    if not ctx.plan.analyzed or not node.relation or not node.loops or node.actual_rows is None:
        return
    if node.own_ms is not None and node.own_ms < SCAN_MIN_MS:  # discarding them cost next to nothing
        return
    removed = _num(node, "Rows Removed by Filter") * node.loops
    kept = node.actual_rows * node.loops
    if removed < FILTER_MIN_ROWS or removed / (removed + kept) < FILTER_REMOVED_SHARE:
        return
    if _seq_scan_figures(ctx, node) is not None:  # the seq_scan finding says it already
        return
    share = removed / (removed + kept)
    via = f" through {node.index}" if node.index else ""
    title = f"Filter discards {_pct(share)} of the rows {node.label} reads"
    detail = (
        f"{node.label} fetched {_rows(removed + kept)} rows{via} and its filter "
        f"{_condition(node, 'Filter')} discarded {_rows(removed)}, keeping {_rows(kept)}; "
        f"it took {_ms(node.own_ms)}, {_pct(ctx.share(node))} of the statement's time."
    )
    severity = _cap(_by_share(ctx.share(node)), "medium")
    yield _finding(ctx, "filter", node, severity, title, detail, _index_fix(ctx, node))


def _index_fix(ctx: _Context, node: PlanNode) -> str:
    """The advisor's index for the relation when it has one, else an index on the filter's columns
    (and, for an index scan, its condition's after them)."""
    suggestion = ctx.facts.suggestions.get(node.relation or "")
    if suggestion:
        return (
            f"{suggestion} (the index advisor's proposal): PostgreSQL then reads only the rows it keeps."
            + _on_primary(ctx)
        )
    condition = _condition(node, "Filter")
    columns = _columns(node, "Filter")
    if node.index:
        columns = list(dict.fromkeys([*columns, *_columns(node, "Index Cond")]))
        what = f"both the filter {condition} and the index condition"
    else:
        what = f"the filter {condition}"
    on = f"An index on {_table_name(node)} ({', '.join(columns)})" if columns else "An index"
    return (
        f"{on} covering {what} lets PostgreSQL find the rows it keeps instead of reading and "
        "discarding the rest." + _on_primary(ctx)
    )


def _parallel_divisor(ctx: _Context, node: PlanNode) -> float:
    """How many processes share a parallel scan's estimated rows (the planner's own divisor)."""
    if node.detail.get("Parallel Aware") is not True:
        return 1.0
    for ancestor in _ancestors(ctx.plan, node):
        if ancestor.node_type in ("Gather", "Gather Merge"):
            workers = _num(ancestor, "Workers Planned")
            return workers + max(1.0 - 0.3 * workers, 0.0)
    return 1.0


# --- estimates and statistics -------------------------------------------------------------------

# Nodes whose row counts are not rows: bitmaps count pages or nothing, ModifyTable returns none.
_NO_ROW_COUNT = {"Bitmap Index Scan", "BitmapAnd", "BitmapOr", "ModifyTable"}
# Nodes that read their whole input before returning a row: a Limit above them stops nothing below.
_BLOCKING = {"Sort", "Hash", "SetOp"}
_BLOCKING_STRATEGIES = ("Plain", "Hashed", "Mixed")  # aggregates but the sorted (streaming) one


def _misestimate(ctx: _Context, node: PlanNode) -> Ranked:
    off = _estimate_off(ctx, node)
    if off is None:
        return
    ratio, under = off
    loops = node.loops or 1
    if not under and _may_stop_early(ctx.plan, node):  # a Limit or a semi-join stopped it: not wrong
        return
    if max(node.est_rows, node.actual_rows or 0.0) * loops < MISESTIMATE_MIN_ROWS:
        return
    own = ratio / max([1.0, *(_inherited(ctx, node, under))])
    if ratio < MISESTIMATE_RATIO or own < MISESTIMATE_RATIO:  # the child's estimate, passed up
        return
    way = "more" if under else "fewer"
    per = f" per loop, over {_rows(loops)} loops" if loops > 1 else ""
    title = (
        f"Row estimate {_amount(ratio)}x off at {node.label}: "
        f"{_rows(node.est_rows)} expected, {_rows(node.actual_rows or 0)} found"
    )
    detail = (
        f"The planner expected {_rows(node.est_rows)} rows and {node.label} gave "
        f"{_rows(node.actual_rows or 0)}{per}: {_amount(ratio)} times {way}. Join methods, join order "
        "and memory are chosen from this estimate."
    )
    conditions = _condition_text(node)
    if conditions:
        detail += f" The condition: {_cut(conditions)}."
    table = ctx.table(node)
    if table is not None:
        detail += " " + _statistics_age(ctx, table)
    severity = "high" if ctx.inclusive_share(node) >= HIGH_SHARE else "medium"
    yield _finding(ctx, "misestimate", node, severity, title, detail, _estimate_fix(ctx, node))


def _estimate_off(ctx: _Context, node: PlanNode) -> tuple[float, bool] | None:
    """(how many times off, True when more rows came than expected) for an executed node."""
    if not ctx.plan.analyzed or node.node_type in _NO_ROW_COUNT or node.misestimate is None:
        return None
    return node.misestimate, (node.actual_rows or 0.0) > node.est_rows


def _inherited(ctx: _Context, node: PlanNode, under: bool) -> list[float]:
    """How far off the children were in the same direction: a node passing up its child's error
    (a Hash, a Sort, a join of a misestimated scan) adds nothing of its own."""
    found = []
    for child in (ctx.plan.nodes[c] for c in node.children):
        off = _estimate_off(ctx, child)
        if off is not None and off[1] == under:
            found.append(off[0])
    return found


def _may_stop_early(plan: Plan, node: PlanNode) -> bool:
    """True when something above may stop reading the node before its end (a Limit, a merge join,
    the inner side of a semi- or anti-join, an EXISTS subplan): fewer rows than estimated is then
    no error. A node that reads all its input first (Sort, Hash) shields what is below it."""
    child = node
    for parent in _ancestors(plan, node):
        relationship = child.detail.get("Parent Relationship")
        if relationship == "SubPlan" or parent.node_type in ("Limit", "Merge Join"):
            return True
        if parent.detail.get("Join Type") in ("Semi", "Anti") and relationship == "Inner":
            return True
        if _blocks(parent):
            return False
        child = parent
    return False


def _blocks(node: PlanNode) -> bool:
    """The node reads all its input before it returns a row: nothing above it stops what is below."""
    return node.node_type in _BLOCKING or node.detail.get("Strategy") in _BLOCKING_STRATEGIES


def _part_run(plan: Plan, node: PlanNode) -> float:
    """The part of its work the planner expects the node to do, 0-1: a Limit above it (with nothing
    between that reads all its input first) stops it once it has its rows. The Limit's cost says
    which part: its child's startup cost plus that part of the rest (OFFSET included). An InitPlan
    or SubPlan runs whole each time, whatever stops its parent."""
    part, child = 1.0, node
    for parent in _ancestors(plan, node):
        if child.detail.get("Parent Relationship") in ("InitPlan", "SubPlan") or _blocks(parent):
            break
        run = child.total_cost - child.startup_cost
        if parent.node_type == "Limit" and run > 0:
            part *= min(max((parent.total_cost - child.startup_cost) / run, 0.0), 1.0)
        child = parent
    return part


def _estimate_fix(ctx: _Context, node: PlanNode) -> str:
    return _estimate_fix_text(ctx, node) + _on_primary(ctx)


def _estimate_fix_text(ctx: _Context, node: PlanNode) -> str:
    table = ctx.table(node)
    name = _table_name(node) if node.relation else None
    if name is None:
        return (
            "Check the estimates of the scans below it first (ANALYZE their tables). A join's estimate "
            "also goes wrong when its columns are correlated with the filters: extended statistics "
            "(CREATE STATISTICS ... (dependencies, ndistinct, mcv)) on those columns help."
        )
    if table is not None and _stale(table) is not None:
        return f"ANALYZE {name}: the statistics the estimate comes from are older than the data."
    conditions = _condition_text(node)
    columns = _columns(node, "Filter", "Index Cond", "Recheck Cond")
    if " AND " in conditions and len(columns) >= 2:
        parts = [str(node.detail.get("Relation Name", "t")), *(_bare(c) for c in columns), "stats"]
        stats = _ident("_".join(parts)[:63])
        return (
            f"The condition tests {', '.join(columns)} together and the planner multiplies their "
            "selectivities as if they were independent. Extended statistics tell it they are not: "
            f"CREATE STATISTICS {stats} (dependencies, ndistinct, mcv) ON {', '.join(columns)} "
            f"FROM {name}; then ANALYZE {name}."
        )
    column = columns[0] if columns else "the column"
    return (
        f"ANALYZE {name}; if the estimate stays off, raise the statistics target of the column the "
        f"condition tests (ALTER TABLE {name} ALTER COLUMN {column} SET STATISTICS 1000) and ANALYZE "
        "again."
    )


def _on_primary(ctx: _Context) -> str:
    """On a standby, where ANALYZE and every DDL fail (read-only): where to run the fix instead."""
    if not ctx.facts.in_recovery:
        return ""
    return (
        " This server is a standby, which is read-only: create indexes and statistics and run ANALYZE "
        "on the primary; replication brings them here."
    )


def _stale(table: TableFacts) -> str | None:
    """Why the table's statistics are stale, or None when they are not (or nothing says so).

    The counters (last_analyze, n_mod_since_analyze, n_live_tup) start empty after pg_stat_reset,
    a crash or a failover, and stay empty on a standby: with no last ANALYZE, a table whose columns
    have statistics was analyzed at an unknown time, and the changes counted are those since the
    reset, a lower bound."""
    changed = table.modified_since_analyze or 0
    if table.last_analyze is None and not table.has_statistics:
        if max(table.rows, changed) >= STALE_MIN_ROWS:
            return "never analyzed"
        return None
    if table.last_analyze is None:  # n_live_tup restarted at the reset too: the share is a guess
        if changed >= STALE_MIN_ROWS and changed / max(table.rows, 1.0) > STALE_MODIFIED_SHARE:
            return f"at least {_rows(changed)} rows changed since its last ANALYZE"
        return None
    live = max(float(table.live or 0), 1.0)
    if changed >= STALE_MIN_ROWS and changed / live > STALE_MODIFIED_SHARE:
        return (
            f"{_rows(changed)} rows changed since its last ANALYZE "
            f"({_pct(changed / live)} of its {_rows(table.live or 0)} live rows)"
        )
    return None


def _statistics_age(ctx: _Context, table: TableFacts) -> str:
    """One sentence on how old the table's statistics are."""
    if table.last_analyze is None and table.has_statistics:
        why = (
            "this server is a standby, whose statistics counters stay empty"
            if ctx.facts.in_recovery
            else "the statistics counters were reset since (pg_stat_reset, a crash or a failover)"
        )
        changed = table.modified_since_analyze
        since = f"; {_rows(changed)} rows changed since the reset" if changed else ""
        return f"{table.relation} has statistics, but when it was last analyzed is unknown: {why}{since}."
    if table.last_analyze is None:
        return f"{table.relation} was never analyzed: the planner has no statistics on its columns."
    age = f"{_age(ctx.facts.now - table.last_analyze)} ago" if ctx.facts.now else f"at {table.last_analyze}"
    changed = table.modified_since_analyze
    since = (
        f"; {_rows(changed)} rows changed since, of {_rows(table.live or 0)} live"
        if changed is not None
        else ""
    )
    return f"{table.relation} was last analyzed {age}{since}."


def _stale_stats(ctx: _Context) -> Ranked:
    seen: set[str] = set()
    for node in ctx.plan.nodes:
        table = ctx.table(node)
        if table is None or table.relation in seen:
            continue
        seen.add(table.relation)
        why = _stale(table)
        if why is None:
            continue
        name = _table_name(node)
        title = f"Statistics of {table.relation} are stale: {why}"
        detail = _statistics_age(ctx, table) + " The planner's estimates for it come from those statistics."
        where = (
            " on the primary: this server is a standby, where ANALYZE cannot run, and the statistics "
            "reach it by replication"
            if ctx.facts.in_recovery
            else ""
        )
        fix = (
            f"ANALYZE {name}{where}. Autovacuum analyzes a table once autovacuum_analyze_threshold "
            "(default 50) rows plus autovacuum_analyze_scale_factor (default 10 %) of its rows changed: "
            f"for a table that changes in bursts, ALTER TABLE {name} SET "
            "(autovacuum_analyze_scale_factor = 0.02), and check that autovacuum is enabled for it."
        )
        yield _finding(ctx, "stale_stats", node, "medium", title, detail, fix)


# --- memory -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spill:
    title: str
    detail: str
    need_kb: float  # memory the operation needs to stay in memory
    hashed: bool  # its memory is work_mem x hash_mem_multiplier


def _spill(ctx: _Context, node: PlanNode) -> Ranked:
    if not ctx.plan.analyzed or not node.loops:
        return
    spill = _sort_spill(node) or _hash_spill(node) or _hashagg_spill(node)
    if spill is None:
        return
    work_mem = ctx.work_mem_kb()
    multiplier = ctx.hash_mem_multiplier() if spill.hashed else 1.0
    fit_kb = spill.need_kb / multiplier
    written = node.buffers.get("temp_written", 0) * 8
    detail = spill.detail + (f" It wrote {_kb(written)} of temporary files." if written else "")
    detail += f" work_mem is {_kb(work_mem)}" + (
        f" (hash tables get {multiplier:g} times that: hash_mem_multiplier)." if spill.hashed else "."
    )
    fix = _work_mem_fix(fit_kb, work_mem, spill.hashed)
    severity = "high" if ctx.share(node) >= HIGH_SHARE else "medium"
    yield _finding(ctx, "spill", node, severity, spill.title, detail, fix)


def _sort_spill(node: PlanNode) -> _Spill | None:
    if node.node_type != "Sort":
        return None
    workers = node.detail.get("Workers")
    workers = [w for w in workers if isinstance(w, dict)] if isinstance(workers, list) else []
    runs = [node.detail, *workers]
    on_disk = [_float(r.get("Sort Space Used")) or 0.0 for r in runs if r.get("Sort Space Type") == "Disk"]
    disk = max(on_disk, default=0.0)
    if disk <= 0:
        return None
    need = disk * SORT_MEMORY_PER_DISK
    return _Spill(
        title=f"Sort spilled to disk: {_kb(disk)} written, about {_kb(need)} of memory needed",
        detail=(
            f"The sort of {_rows(node.rows_total or 0)} rows by {_cut(_keys(node, 'Sort Key'))} did not fit "
            f"in memory and merged {_kb(disk)} of runs on disk "
            f"({node.detail.get('Sort Method', 'external merge')}); "
            f"in memory it would take about {_kb(need)}."
        ),
        need_kb=need,
        hashed=False,
    )


def _hash_spill(node: PlanNode) -> _Spill | None:
    batches = _num(node, "Hash Batches")
    if node.node_type != "Hash" or batches <= 1:
        return None
    original = _num(node, "Original Hash Batches") or batches
    need = _num(node, "Peak Memory Usage") * batches  # each batch held about the peak
    grew = f", up from the {original:.0f} planned" if batches > original else ""
    return _Spill(
        title=f"Hash split into {batches:.0f} batches on disk: about {_kb(need)} needed",
        detail=(
            f"The hash table of {_rows(node.rows_total or 0)} rows did not fit in memory: it was built "
            f"in {batches:.0f} batches{grew}, each written to and read back from disk, at "
            f"{_kb(_num(node, 'Peak Memory Usage'))} each."
        ),
        need_kb=need,
        hashed=True,
    )


def _hashagg_spill(node: PlanNode) -> _Spill | None:
    hashed = node.node_type == "Aggregate" and node.detail.get("Strategy") in ("Hashed", "Mixed")
    batches, disk = _num(node, "HashAgg Batches"), _num(node, "Disk Usage")
    if not hashed or (batches <= 1 and disk <= 0):
        return None
    groups = node.actual_rows or 0.0  # per loop: each loop builds its own table
    need = max(_num(node, "Peak Memory Usage"), groups * (node.width + HASHAGG_BYTES_PER_GROUP) / 1024)
    return _Spill(
        title=f"Hash aggregate spilled to disk in {batches:.0f} batches: about {_kb(need)} needed",
        detail=(
            f"The hash table of {_rows(groups)} groups by {_cut(_keys(node, 'Group Key'))} did not fit in "
            f"memory: it wrote {_kb(disk)} to disk in {batches:.0f} batches; all groups in memory take "
            f"about {_kb(need)}."
        ),
        need_kb=need,
        hashed=True,
    )


def _work_mem_fix(fit_kb: float, work_mem_kb: float, hashed: bool) -> str:
    mb = _round_up_mb(fit_kb)
    grew = ""
    if mb * 1024 <= work_mem_kb:  # it should have fitted: it grew past the estimate while running
        mb = _round_up_mb(2 * work_mem_kb)
        grew = "It outgrew what the planner expected (see the row estimates); "
    if mb > WORK_MEM_MAX_MB:
        need = f"more than {_kb(work_mem_kb)}" if grew else f"about {_kb(fit_kb)}"
        return (
            f"{grew}It needs {need} of work_mem: too much to give one operation. Make it handle "
            "fewer rows: a tighter filter, an index that returns the rows in order, a LIMIT, or fewer "
            "columns."
        )
    also = " (or raise hash_mem_multiplier)" if hashed else ""
    return (
        f"{grew}SET work_mem = '{mb}MB'{also} for this statement, now {_kb(work_mem_kb)}: "
        "every sort and hash of every connection may take that much, so raise it for the statement, "
        "the transaction (SET LOCAL) or the role (ALTER ROLE ... SET work_mem), not server-wide."
    )


def _lossy_bitmap(ctx: _Context, node: PlanNode) -> Ranked:
    if not _degraded_bitmap(ctx, node):
        return
    exact, lossy = _num(node, "Exact Heap Blocks"), _num(node, "Lossy Heap Blocks")
    need_kb = (exact + lossy) * BITMAP_BYTES_PER_PAGE / 1024
    recheck = _num(node, "Rows Removed by Index Recheck") * (node.loops or 1)
    title = f"Bitmap went lossy: {_rows(lossy)} of {_rows(exact + lossy)} heap blocks read whole"
    detail = (
        f"The bitmap of {node.label} outgrew work_mem ({_kb(ctx.work_mem_kb())}): for {_rows(lossy)} "
        f"blocks it kept only 'somewhere in this block', so every row of them was checked again and "
        f"{_rows(recheck)} rows were thrown away (Rows Removed by Index Recheck); {_rows(exact)} "
        "blocks stayed exact."
    )
    mb = _round_up_mb(need_kb)
    if mb > WORK_MEM_MAX_MB:
        fix = (
            f"An exact bitmap of {_rows(exact + lossy)} blocks takes about {_kb(need_kb)}: too much "
            "work_mem to give one operation. A more selective condition, or an index on more of its "
            "columns, makes the bitmap smaller."
        )
    else:
        fix = (
            f"SET work_mem = '{mb}MB' for this statement (now {_kb(ctx.work_mem_kb())}): "
            f"an exact bitmap of {_rows(exact + lossy)} blocks takes about {_kb(need_kb)}."
        )
    severity = _cap(_by_share(ctx.share(node)), "medium")
    yield _finding(ctx, "lossy_bitmap", node, severity, title, detail, fix)


def _degraded_bitmap(ctx: _Context, node: PlanNode) -> bool:
    """A bitmap that went lossy for want of work_mem: lossy blocks beside exact ones. A bitmap with
    no exact block at all comes from an index lossy by design (BRIN): work_mem would not help."""
    if not ctx.plan.analyzed or node.node_type != "Bitmap Heap Scan":
        return False
    return _num(node, "Lossy Heap Blocks") > 0 and _num(node, "Exact Heap Blocks") > 0


def _recheck(ctx: _Context, node: PlanNode) -> Ranked:
    if not ctx.plan.analyzed or not node.loops or node.actual_rows is None:
        return
    removed = _num(node, "Rows Removed by Index Recheck") * node.loops
    fetched = removed + (node.actual_rows + _num(node, "Rows Removed by Filter")) * node.loops
    if removed < RECHECK_MIN_ROWS or removed / fetched < RECHECK_MIN_SHARE:
        return
    if _degraded_bitmap(ctx, node):  # the lossy_bitmap finding explains these rows
        return
    condition = (
        _condition(node, "Recheck Cond") if "Recheck Cond" in node.detail else _condition(node, "Index Cond")
    )
    title = f"Index recheck discards {_rows(removed)} of {_rows(fetched)} rows at {node.label}"
    detail = (
        f"The index gave {_rows(fetched)} candidate rows and checking {condition} again on each "
        f"discarded {_rows(removed)} ({_pct(removed / fetched)}); it took {_ms(node.own_ms)}."
    )
    if _num(node, "Lossy Heap Blocks") > 0 and _num(node, "Exact Heap Blocks") == 0:
        fix = (
            "The index only narrows the search to ranges of blocks (a BRIN index is lossy by design), so "
            "every row of those blocks is checked. A smaller pages_per_range narrows it; for lookups this "
            "selective, a B-tree index on the condition's columns finds the rows themselves."
        )
    else:
        fix = (
            "The index's operator class only approximates the condition (trigram, full-text or geometric "
            "indexes recheck their candidates): a more selective condition, or a B-tree index where the "
            "condition allows one, fetches fewer rows to recheck."
        )
    severity = _cap(_by_share(ctx.share(node)), "medium")
    yield _finding(ctx, "recheck", node, severity, title, detail, fix)


# --- joins, parallelism, JIT ----------------------------------------------------------------------


def _nested_loop(ctx: _Context, node: PlanNode) -> Ranked:
    if not ctx.plan.analyzed or node.node_type != "Nested Loop" or len(node.children) < 2:
        return
    outer, inner = (ctx.plan.nodes[c] for c in node.children[:2])
    loops, inner_ms = inner.loops or 0.0, inner.total_ms or 0.0
    share = inner_ms / ctx.whole if ctx.whole > 0 else 0.0
    if loops < NESTED_LOOP_MIN_LOOPS or share < NESTED_LOOP_MIN_SHARE or inner_ms < NESTED_LOOP_MIN_MS:
        return
    title = f"Nested loop runs {inner.label} {_rows(loops)} times: {_ms(inner_ms)}, {_pct(share)} of the time"
    condition = _condition_text(inner) or _condition_text(node)
    detail = (
        f"For each of the {_rows(outer.rows_total or 0)} rows of {outer.label} (the planner expected "
        f"{_rows(outer.est_rows * (outer.loops or 1))}), {inner.label} runs once"
        + (f" on {_cut(condition)}" if condition else "")
        + f": {_ms(inner_ms / loops)} a run, {_ms(inner_ms)} in all."
    )
    severity = "high" if share >= 2 * NESTED_LOOP_MIN_SHARE else "medium"
    yield _finding(ctx, "nested_loop", node, severity, title, detail, _nested_loop_fix(ctx, outer, inner))


def _nested_loop_fix(ctx: _Context, outer: PlanNode, inner: PlanNode) -> str:
    off = _estimate_off(ctx, outer)
    if off is not None and off[1] and off[0] >= MISESTIMATE_RATIO:
        return (
            f"The planner expected {_rows(outer.est_rows * (outer.loops or 1))} outer rows, not "
            f"{_rows(outer.rows_total or 0)}: with the right estimate it would choose a hash join, which "
            "reads the inner side once. Fix that estimate first (see the row estimate finding)."
        )
    scanned = inner if inner.relation else next((ctx.plan.nodes[c] for c in inner.children), inner)
    if scanned.node_type == "Seq Scan":
        return (
            f"Each run reads {scanned.relation} whole: an index on its join column lets each run find its "
            "rows directly, or a hash join reads it once." + _on_primary(ctx)
        )
    return (
        "A hash or merge join reads the inner side once: run the statement with SET enable_nestloop = off "
        "to compare; if that is faster, the planner underrates the rows feeding this loop (ANALYZE, "
        "extended statistics on the outer side's filtered columns)." + _on_primary(ctx)
    )


def _workers(ctx: _Context, node: PlanNode) -> Ranked:
    if not ctx.plan.analyzed or node.node_type not in ("Gather", "Gather Merge") or not node.loops:
        return
    planned, launched = _num(node, "Workers Planned"), _num(node, "Workers Launched")
    if launched >= planned:
        return
    title = f"{planned:.0f} parallel workers planned, {launched:.0f} launched"
    detail = (
        f"{node.label} asked for {planned:.0f} workers and got {launched:.0f}: "
        + ("the leader did all the work alone" if launched == 0 else "fewer processes did all the work")
        + f", {_ms(node.total_ms)} below the {node.node_type}."
    )
    now = ctx.plan.settings.get("max_parallel_workers")
    fix = (
        "All sessions share max_parallel_workers"
        + (f" (now {now})" if now is not None else " (8 by default)")
        + " and max_worker_processes: they were taken when this ran. Raise max_parallel_workers (and "
        "max_worker_processes, which takes a restart), or run fewer parallel queries at once."
    )
    severity = "medium" if launched == 0 else "low"
    yield _finding(ctx, "workers", node, severity, title, detail, fix)


def _jit(ctx: _Context) -> Ranked:
    jit = ctx.plan.jit or {}
    timing = jit.get("Timing")
    execution = ctx.plan.execution_ms
    if not ctx.plan.analyzed or not isinstance(timing, dict) or not execution:
        return
    total = _float(timing.get("Total")) or 0.0
    share = min(total / execution, 1.0)  # compiling is part of the execution time
    if total < JIT_MIN_MS or share < JIT_MIN_SHARE:
        return
    parts = ", ".join(
        f"{part.lower()} {_ms(_jit_part(timing.get(part)))}"
        for part in ("Generation", "Inlining", "Optimization", "Emission")
        if part in timing
    )
    title = f"JIT compilation took {_ms(total)}, {_pct(share)} of the execution time"
    detail = (
        f"Compiling {jit.get('Functions', 'its')} functions took {_ms(total)} ({parts}) of the "
        f"{_ms(execution)} the statement ran: compiling pays off only for statements that run long."
    )
    cost = ctx.plan.total_cost
    given = _setting_number(ctx.plan.settings.get("jit_above_cost"), -1.0, 1e300)
    above = _first(given, DEFAULT_JIT_ABOVE_COST)
    fix = (
        f"The plan's cost, {_amount(cost)}, is above jit_above_cost ({_amount(above)}): raise "
        "jit_above_cost above the cost of statements like this one, or SET jit = off for them."
    )
    options = jit.get("Options") if isinstance(jit.get("Options"), dict) else {}
    if options.get("Inlining") or options.get("Optimization"):
        fix += (
            " Inlining and optimization are the expensive part: raising jit_inline_above_cost and "
            f"jit_optimize_above_cost above {_amount(cost)} keeps the cheap compilation only."
        )
    severity = "high" if share >= 0.5 else "medium"
    yield _finding(ctx, "jit", None, severity, title, detail, fix, weight=share)


def _jit_part(value: object) -> float:
    """A JIT timing: a number, or (PostgreSQL 17+ Generation) an object with its Total."""
    if isinstance(value, dict):
        value = value.get("Total")
    return _float(value) or 0.0


_NODE_CHECKS = (
    _seq_scan,
    _misestimate,
    _spill,
    _nested_loop,
    _filter,
    _recheck,
    _workers,
    _lossy_bitmap,
)


# --- shared helpers -----------------------------------------------------------------------------


def _finding(
    ctx: _Context,
    kind: str,
    node: PlanNode | None,
    severity: str,
    title: str,
    detail: str,
    fix: str | None,
    weight: float | None = None,
) -> tuple[Finding, float]:
    if weight is None:
        weight = ctx.share(node) if node is not None else 0.0
    finding = Finding(kind, node.id if node else None, severity, title, detail, fix)
    return finding, weight


def _by_share(share: float) -> str:
    return "high" if share >= HIGH_SHARE else "medium" if share >= LOW_SHARE else "low"


def _cap(severity: str, most: str) -> str:
    """The severity, at most `most`."""
    return SEVERITIES[max(SEVERITIES.index(severity), SEVERITIES.index(most))]


def _ancestors(plan: Plan, node: PlanNode) -> Iterator[PlanNode]:
    while node.parent is not None:
        node = plan.nodes[node.parent]
        yield node


def _num(node: PlanNode, key: str) -> float:
    return _float(node.detail.get(key)) or 0.0


def _first(*values: float | None) -> float:
    """The first value given (a setting of 0 is a value, not a missing one)."""
    return next(float(v) for v in values if v is not None)


def _float(value: object) -> float | None:
    """A figure of a node's details (rows, blocks, kB, ms) as EXPLAIN writes it: a JSON number from 0
    to FIGURE_MAX. Anything else (a string, NaN, infinity, a negative or absurd number) is None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= FIGURE_MAX:  # NaN fails this too
        return None
    return float(value)


def _setting_number(value: str | None, low: float, high: float) -> float | None:
    """A numeric setting as EXPLAIN SETTINGS prints it (a string), when PostgreSQL would take it."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and low <= number <= high else None


_UNITS_KB = {"kB": 1, "MB": 1024, "GB": 1024**2, "TB": 1024**3}


def _setting_kb(value: str | None) -> float | None:
    """A memory setting as EXPLAIN SETTINGS prints it ('64kB', '4MB', '1GB'), in kB, when
    PostgreSQL would take it as work_mem."""
    if not value:
        return None
    match = re.fullmatch(r"\s*(\d{1,20}(?:\.\d{1,20})?)\s*(kB|MB|GB|TB)?\s*", value)
    if match is None:
        return None
    kb = float(match[1]) * _UNITS_KB[match[2] or "kB"]
    return kb if WORK_MEM_RANGE_KB[0] <= kb <= WORK_MEM_RANGE_KB[1] else None


def _round_up_mb(kb: float) -> int:
    """A work_mem that holds `kb`: the next power of two in MB (1, 2, 4, 8 ... MB). Past
    WORK_MEM_MAX_MB no size is advised: any larger need gives twice WORK_MEM_MAX_MB."""
    mb = kb / 1024
    if not mb <= WORK_MEM_MAX_MB:  # NaN too
        return 2 * WORK_MEM_MAX_MB
    if mb <= 1:
        return 1
    return 2 ** math.ceil(math.log2(mb) - 1e-9)


def _condition_text(node: PlanNode) -> str:
    """The node's conditions, as EXPLAIN gives them, joined with AND."""
    keys = ("Index Cond", "Recheck Cond", "Filter", "Hash Cond", "Merge Cond", "Join Filter")
    texts = [str(node.detail[key]) for key in keys if isinstance(node.detail.get(key), str)]
    return " AND ".join(dict.fromkeys(texts))


def _condition(node: PlanNode, key: str) -> str:
    return _cut(str(node.detail.get(key, "")))


def _keys(node: PlanNode, key: str) -> str:
    value = node.detail.get(key)
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value or "")


def _cut(text: str) -> str:
    return text if len(text) <= CONDITION_CHARS else text[: CONDITION_CHARS - 3] + "..."


_QUALIFIED = r'\.("(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_BARE = re.compile(  # '(a = 1)', '((pad)::text ~~ ...)': the column before an operator
    # A cast's type is words with one space between ('character varying'): no run of spaces both it
    # and the \s+ after it could take, which made a pasted condition of spaces take quadratic time.
    r'\(\(?("(?:[^"]|"")+"|[A-Za-z_][\w$]*)\)?(?:::[\w"]+(?: [\w"]+)*)?'
    r"\s+(?:=|<>|<=|>=|<|>|~~\*?|!~~\*?|IS)\s"
)


def _columns(node: PlanNode, *keys: str) -> list[str]:
    """The node's table's columns its conditions test, as EXPLAIN writes them, in order: with
    VERBOSE they are qualified by the scan's alias; without, the column before an operator."""
    text = " ".join(str(node.detail[k]) for k in keys if isinstance(node.detail.get(k), str))
    alias = node.detail.get("Alias")
    found = []
    if isinstance(alias, str):  # EXPLAIN quotes an alias that needs it: '"Big T".id'
        spellings = {re.escape(alias), re.escape('"' + alias.replace('"', '""') + '"')}
        found = re.findall(r"(?<![\w\"$.])(?:" + "|".join(sorted(spellings)) + ")" + _QUALIFIED, text)
    if not found:
        found = _BARE.findall(text)
    return list(dict.fromkeys(found))


def _bare(column: str) -> str:
    return re.sub(r"\W", "", column) or "col"


def _ident(name: str) -> str:
    """An identifier as SQL takes it: quoted unless it is plain lowercase."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def _table_name(node: PlanNode) -> str:
    """The node's relation as SQL names it, schema-qualified when the plan says the schema."""
    name = _ident(str(node.detail.get("Relation Name", node.relation or "")))
    schema = node.detail.get("Schema")
    return f"{_ident(schema)}.{name}" if isinstance(schema, str) else name


def _rows(n: float) -> str:
    if n >= 1e15:  # an estimate of a cross join, or loops times a hostile figure
        return f"{n:.1e}"
    if n >= 1e9:
        return f"{n / 1e9:.1f} billion"
    if n >= 1e6:
        return f"{n / 1e6:.1f} M"
    return f"{n:,.0f}"


def _pct(share: float) -> str:
    pct = share * 100
    if 0 < pct < 0.1:
        return "under 0.1 %"
    return f"{pct:.1f} %" if 0 < pct < 1 or 99 < pct < 100 else f"{pct:.0f} %"


def _ms(ms: float | None) -> str:
    if ms is None:
        return "an unknown time"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms" if ms >= 1 else f"{ms:.3f} ms"


def _amount(n: float) -> str:
    """A cost or a ratio: whole, with thousands separators, up to 1e15."""
    return f"{n:,.0f}" if n < 1e15 else f"{n:.1e}"


def _kb(kb: float) -> str:
    if kb >= 1024**3:
        return f"{_amount(kb / 1024**3)} TB" if kb >= 1024**4 else f"{kb / 1024**3:.1f} TB"
    if kb >= 1024**2:
        return f"{kb / 1024**2:.1f} GB"
    if kb >= 1024:
        return f"{kb / 1024:.1f} MB"
    return f"{kb:.0f} kB"


def _age(delta: timedelta) -> str:
    seconds = max(delta.total_seconds(), 0.0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{int(seconds)} second{'s' if int(seconds) != 1 else ''}"
