"""The Tables & maintenance page's analysis: the connected database's largest tables, their growth,
dead rows and vacuum, sequential scans, wraparound headroom and partitioning candidates. No Streamlit.

Everything comes from the store: the tables part's snapshot (`PostgresDetails.tables`: the 50
largest tables of the database the target's DSN names, read every 5 minutes), its series per table
{table=schema.name} (sizes, live and dead rows, xid age as gauges; scans and row changes as counters
stored as deltas), the server_stats part's transaction ID age per database, and the recorded
statements of the same database.

Partitioning candidates are judged without the catalog: the store keeps no column types. A table
is one when it is among the PARTITION_TOP_SIZES largest and one of the window's PARTITION_STATEMENTS
most expensive statements of its database filters it with a range (`<`, `<=`, `>`, `>=`, BETWEEN)
on a column that looks like a time: by its name (created_at, order_date, updated ...) or by what it
is compared with (now(), an interval, a date literal, a cast to a date or timestamp).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import pandas as pd
from sqlglot import exp

from dashboard.advisor.shapes import ShapeError, parse
from dashboard.analysis import statements as statement_reads
from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core import metrics
from dashboard.core.details import PostgresDetails
from dashboard.core.guarded import Refused, check
from dashboard.core.health import ServerNow, TablesNow
from dashboard.core.health.server import WRAPAROUND_WARN_LEFT, XID_LIMIT
from dashboard.core.health.tables import DEAD_RATIO_WARN
from dashboard.store.reads import Window

DAY = 86400.0
PREFIX = "pg.table."
TOTAL_BYTES = PREFIX + "total_bytes"
DEAD = PREFIX + "dead"
SEQ_SCAN, SEQ_TUP_READ, IDX_SCAN = PREFIX + "seq_scan", PREFIX + "seq_tup_read", PREFIX + "idx_scan"
SERIES = (TOTAL_BYTES, DEAD, SEQ_SCAN, SEQ_TUP_READ, IDX_SCAN)  # what the page reads over time

LARGEST = 20  # tables in the largest-tables list
GROWING = 10  # ... in the fastest-growing list
CHART_TABLES = 5  # the largest tables drawn over time
SEQ_SCAN_MIN_ROWS = 10_000  # "large": a table with fewer live rows is cheap to read whole
SEQ_SCAN_SHARE = 0.5  # listed when more than this share of its scans in the window were sequential
PARTITION_TOP_SIZES = 5  # a partitioning candidate is among this many largest tables
PARTITION_STATEMENTS = 20  # ... and filtered by a time range in one of this many top statements
PARTITION_WORTH_BYTES = 10 * 2**30  # below this, partitioning rarely pays yet: said, not hidden

# A column whose name says it holds a time: created_at, order_date, start_time, created, updated ...
TIME_NAME = re.compile(
    r"(?:^|_)(?:at|date|time|ts|timestamp|day|created|updated|modified|deleted)$", re.IGNORECASE
)
DATE_LITERAL = re.compile(r"^\s*\d{4}-\d{2}-\d{2}")
TIME_FUNCTIONS = frozenset({"now", "clock_timestamp", "statement_timestamp", "transaction_timestamp",
                            "localtimestamp", "to_timestamp", "to_date", "date_trunc", "make_date",
                            "make_timestamp", "make_timestamptz", "date_bin"})  # fmt: skip
TIME_NODES = re.compile(r"Date|Time|Interval")  # sqlglot's expression classes: CurrentTimestamp ...
TEMPORAL = (*exp.DataType.TEMPORAL_TYPES, exp.DataType.Type.INTERVAL)
RANGES = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between)
GROWTH_COLUMNS = ["table", "first_bytes", "last_bytes", "grown_bytes", "per_day", "span_days"]
SEQUENTIAL_COLUMNS = ["table", "seq_scan", "idx_scan", "seq_share", "rows_per_scan", "seq_tup_read", "live"]
LONG_COLUMNS = ["ts", "series", "value"]


# -- the snapshots ------------------------------------------------------------------------------
def snapshots(reader: Reader, target: Target) -> tuple[TablesNow | None, ServerNow | None]:
    """The tables and server_stats parts' last readings (None before their first)."""
    details = reader.store.details(int(target.id))
    if not isinstance(details, PostgresDetails):
        return None, None
    return details.tables, details.server_stats


def table_frame(snapshot: TablesNow) -> pd.DataFrame:
    """One row per table of the snapshot, largest first: sizes, rows, dead ratio (and whether it is
    past DEAD_RATIO_WARN), days since the last vacuum and analyze (NaN: never), rows changed since
    the last analyze, xid age and the transactions left before wraparound."""
    columns = ["table", "labels", "total_bytes", "table_bytes", "index_bytes", "toast_bytes", "live",
               "dead", "dead_ratio", "dead_flag", "vacuumed", "analyzed", "vacuum_days",
               "analyze_days", "modified_since_analyze", "seq_scan", "idx_scan", "xid_age",
               "xid_left", "xid_flag"]  # fmt: skip
    rows = []
    for t in snapshot.tables:
        rows.append(
            {
                "table": t.table_name,
                "labels": metrics.encode({"table": t.table_name}),
                "total_bytes": t.total_bytes,
                "table_bytes": t.table_bytes,
                "index_bytes": t.index_bytes,
                "toast_bytes": t.toast_bytes,
                "live": t.live,
                "dead": t.dead,
                "dead_ratio": t.dead_ratio,
                "dead_flag": t.dead_ratio > DEAD_RATIO_WARN,
                "vacuumed": t.vacuumed,
                "analyzed": t.analyzed,
                "vacuum_days": _days(snapshot.ts, t.vacuumed),
                "analyze_days": _days(snapshot.ts, t.analyzed),
                "modified_since_analyze": t.modified_since_analyze,
                "seq_scan": t.seq_scan,
                "idx_scan": t.idx_scan,
                "xid_age": t.xid_age,
                "xid_left": XID_LIMIT - t.xid_age,
                "xid_flag": XID_LIMIT - t.xid_age < WRAPAROUND_WARN_LEFT,
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["total_bytes", "table"], ascending=[False, True], ignore_index=True)


def _days(now: int, then: int | None) -> float:
    return math.nan if then is None else max(0.0, (now - then) / DAY)


def dead_rows(tables: pd.DataFrame) -> pd.DataFrame:
    """Every table, highest dead ratio first (then most dead rows, then largest)."""
    return tables.sort_values(["dead_ratio", "dead", "total_bytes"], ascending=False, ignore_index=True)


def vacuum_sql(tables: pd.DataFrame) -> str:
    """VACUUM (ANALYZE) of each flagged table (the snapshot's names are quoted as PostgreSQL quotes
    them: format('%I.%I')), or '' when none is flagged."""
    return "\n".join(f"VACUUM (ANALYZE) {t};" for t in tables.loc[tables["dead_flag"], "table"])


# -- over the window ----------------------------------------------------------------------------
def series(reader: Reader, target: Target, window: Window) -> pd.DataFrame:
    """The page's series of the target over the window, with a `table` column."""
    frame = reader.series([target], SERIES, window)
    frame["table"] = frame["labels"].map(lambda labels: metrics.decode(labels).get("table", labels))
    return frame


def _gauge(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    points = frame[frame["name"] == name]
    return points.assign(value=points["sum"] / points["count"].where(points["count"] > 0))


def growth(frame: pd.DataFrame) -> pd.DataFrame:
    """Per table, its total size at the first and last reading of the window and the growth per day
    between them (tables read once in the window are left out), fastest-growing first."""
    columns = GROWTH_COLUMNS
    points = _gauge(frame, TOTAL_BYTES).dropna(subset=["value"]).sort_values("ts")
    rows = []
    for table, own in points.groupby("table", sort=False):
        first, last = own.iloc[0], own.iloc[-1]
        span = float(last["ts"] - first["ts"])
        if span <= 0:
            continue
        grown = float(last["value"] - first["value"])
        rows.append([table, first["value"], last["value"], grown, grown / span * DAY, span / DAY])
    found = pd.DataFrame(rows, columns=columns)
    return found.sort_values(["per_day", "table"], ascending=[False, True], ignore_index=True)


def sequential(frame: pd.DataFrame, tables: pd.DataFrame) -> pd.DataFrame:
    """The large tables (SEQ_SCAN_MIN_ROWS live rows or more) read mostly by sequential scans in the
    window (more than SEQ_SCAN_SHARE of their scans), with the rows each scan read; most rows read
    sequentially first."""
    columns = SEQUENTIAL_COLUMNS
    counters = frame[frame["name"].isin([SEQ_SCAN, SEQ_TUP_READ, IDX_SCAN])]
    sums = counters.pivot_table(index="table", columns="name", values="sum", aggfunc="sum")
    sums = sums.reindex(columns=[SEQ_SCAN, SEQ_TUP_READ, IDX_SCAN]).fillna(0.0)
    live = tables.set_index("table")["live"]
    rows = []
    for table, r in sums.iterrows():
        seq, idx, read = r[SEQ_SCAN], r[IDX_SCAN], r[SEQ_TUP_READ]
        rows_now = live.get(table)
        if seq <= 0 or rows_now is None or rows_now < SEQ_SCAN_MIN_ROWS:
            continue
        share = seq / (seq + idx)
        if share <= SEQ_SCAN_SHARE:
            continue
        rows.append([table, seq, idx, share, read / seq, read, rows_now])
    found = pd.DataFrame(rows, columns=columns)
    return found.sort_values(["seq_tup_read", "table"], ascending=[False, True], ignore_index=True)


def over_time(frame: pd.DataFrame, name: str, tables: Sequence[str], scale: float = 1.0) -> pd.DataFrame:
    """A gauge of the given tables as a long frame (ts, series, value), in their order."""
    points = _gauge(frame, name)
    points = points[points["table"].isin(list(tables))]
    order = {t: i for i, t in enumerate(tables)}
    points = points.assign(order=points["table"].map(order)).sort_values(["order", "ts"])
    return pd.DataFrame(
        {
            "ts": points["ts"].to_numpy(),
            "series": points["table"].to_numpy(),
            "value": (points["value"] * scale).to_numpy(),
        }
    )


# -- wraparound ---------------------------------------------------------------------------------
def database_headroom(server: ServerNow | None) -> pd.DataFrame:
    """Per database (server_stats), its xid age and the transactions left, fewest left first."""
    columns = ["database", "xid_age", "xid_left", "used", "xid_flag"]
    if server is None:
        return pd.DataFrame(columns=columns)
    rows = [
        [d.datname, d.xid_age, d.headroom, d.xid_age / XID_LIMIT, d.headroom < WRAPAROUND_WARN_LEFT]
        for d in server.databases
    ]
    return pd.DataFrame(rows, columns=columns).sort_values("xid_left", ignore_index=True)


def table_headroom(tables: pd.DataFrame, limit: int = 10) -> pd.DataFrame:
    """The tables with the oldest relfrozenxid (the tables snapshot's xid age), fewest left first."""
    found = tables.sort_values(["xid_age", "table"], ascending=[False, True], ignore_index=True)
    found = found.head(limit)
    return found.assign(used=found["xid_age"] / XID_LIMIT)[
        ["table", "xid_age", "xid_left", "used", "xid_flag"]
    ]


# -- partitioning -------------------------------------------------------------------------------
class TimeRange(NamedTuple):
    """A statement's range filter on a time-like column of one table."""

    schema: str | None  # as written (None: unqualified, resolved by the search path)
    table: str
    column: str
    why: str  # what makes the column look like a time
    predicate: str  # the comparison's SQL


class Candidate(NamedTuple):
    table: str  # as the snapshot names it
    size_rank: int  # 1: the largest table
    total_bytes: int
    column: str
    statement_ids: tuple[int, ...]
    queries: tuple[str, ...]  # their texts, in the same order
    share: float  # of the window's statement time, the statements that filter it so
    calls: float
    reason: str  # how it was decided, in words


class Partitioning(NamedTuple):
    candidates: list[Candidate]
    statements: int  # the top statements looked at
    unread: int  # ... of which could not be read (not a statement sqlglot or the guard can parse)


def time_ranges(text: str) -> list[TimeRange] | None:
    """The range filters of `text` on time-like columns; None when it cannot be read. Placeholders
    of typed literals (`interval $1`, as pg_stat_statements writes them) become casts first."""
    tree = _tree(text)
    if tree is None:
        return None
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found = []
    for node in tree.find_all(*RANGES):
        for column, other in _sides(node):
            why = _time_like(column, other)
            if why is None:
                continue
            table = _owner_table(column, ctes)
            if table is not None:
                predicate = node.sql(dialect="postgres")
                found.append(TimeRange(table[0], table[1], _ident(column.this), why, predicate[:200]))
    return found


def _tree(text: str) -> exp.Expression | None:
    try:
        return parse(check(text).text)
    except (Refused, ShapeError):
        return None


def _sides(node: exp.Expression) -> list[tuple[exp.Column, list[exp.Expression]]]:
    """(column, what it is compared with) for each plain column side of a comparison."""
    if isinstance(node, exp.Between):
        this = node.this
        return [(this, [node.args["low"], node.args["high"]])] if isinstance(this, exp.Column) else []
    left, right = node.this, node.expression
    pairs = []
    if isinstance(left, exp.Column):
        pairs.append((left, [right]))
    if isinstance(right, exp.Column):
        pairs.append((right, [left]))
    return pairs


def _time_like(column: exp.Column, others: list[exp.Expression]) -> str | None:
    name = _ident(column.this)
    if TIME_NAME.search(name):
        return "its name"
    for other in others:
        for node in other.walk():
            if isinstance(node, exp.Cast) and node.to.is_type(*TEMPORAL):
                return f"a {node.to.sql(dialect='postgres').lower()} it is compared with"
            if isinstance(node, exp.Literal) and node.is_string and DATE_LITERAL.match(node.this):
                return "a date it is compared with"
            if isinstance(node, exp.Anonymous) and str(node.this).lower() in TIME_FUNCTIONS:
                return f"{str(node.this).lower()}() it is compared with"
            if isinstance(node, exp.CurrentTimestamp):
                return "now() it is compared with"
            if TIME_NODES.search(type(node).__name__):
                return f"{node.sql(dialect='postgres').lower()[:40]} it is compared with"
    return None


def _ident(node: exp.Expression | None) -> str:
    """An identifier as PostgreSQL reads it: unquoted names fold to lower case."""
    if isinstance(node, exp.Identifier):
        return node.this if node.quoted else node.this.lower()
    return node.name if node is not None else ""


def _query_of(node: exp.Expression) -> exp.Expression | None:
    """The SELECT, UPDATE or DELETE that `node` belongs to (its nearest)."""
    parent = node.parent
    while parent is not None and not isinstance(parent, exp.Select | exp.Update | exp.Delete):
        parent = parent.parent
    return parent


def _owner_table(column: exp.Column, ctes: set[str]) -> tuple[str | None, str] | None:
    """(schema, table) of the base table a column is of, through aliases; None when it cannot be
    told without the catalog (an unqualified column with several tables in reach, a subquery's)."""
    qualifier = _ident(column.args.get("table")) if column.args.get("table") else None
    query = _query_of(column)
    while query is not None:
        tables = [
            t for t in query.find_all(exp.Table)
            if isinstance(t.this, exp.Identifier) and _query_of(t) is query
        ]  # fmt: skip
        by_name = {}
        for t in tables:
            by_name[_ident(t.args.get("alias").this) if t.args.get("alias") else _ident(t.this)] = t
        if qualifier is None:
            if len(tables) != 1:
                return None
            found = tables[0]
        else:
            found = by_name.get(qualifier)
            if found is None:  # an outer query's table (a correlated subquery), or a subquery's alias
                query = _query_of(query)
                continue
        schema = _ident(found.args["db"]) if found.args.get("db") else None
        name = _ident(found.this)
        return None if schema is None and name in ctes else (schema, name)
    return None


def split_name(name: str) -> tuple[str, str]:
    """(schema, table) of a name as format('%I.%I') writes it: `public."Order Lines"`."""
    parts, i = [], 0
    while i <= len(name):
        if name.startswith('"', i):
            j, part = i + 1, ""
            while j < len(name):
                if name.startswith('""', j):
                    part, j = part + '"', j + 2
                elif name[j] == '"':
                    break
                else:
                    part, j = part + name[j], j + 1
            parts.append(part)
            i = j + 2  # past the quote and the dot
        else:
            end = name.find(".", i)
            end = len(name) if end < 0 else end
            parts.append(name[i:end])
            i = end + 1
    return (parts[0], parts[1]) if len(parts) == 2 else ("", name)


def _match(ranges: Iterable[TimeRange], tables: pd.DataFrame) -> dict[str, list[TimeRange]]:
    """The snapshot's tables each range is on: a qualified name exactly, an unqualified one by its
    name (public first when several schemas have it; the search path is not known)."""
    names = {t: split_name(t) for t in tables["table"]}
    out: dict[str, list[TimeRange]] = {}
    for r in ranges:
        hits = [t for t, (schema, name) in names.items() if name == r.table and r.schema in (None, schema)]
        if len(hits) > 1:
            hits = [t for t in hits if names[t][0] == "public"] or []
        for t in hits[:1]:
            out.setdefault(t, []).append(r)
    return out


def partitioning(tables: pd.DataFrame, top: pd.DataFrame) -> Partitioning:
    """The candidates among the PARTITION_TOP_SIZES largest `tables` (table_frame) filtered by a time
    range in the `top` statements (statement_totals: statement_id, query, exec_ms, calls, share)."""
    ranked = tables.head(PARTITION_TOP_SIZES)
    hits: dict[str, list[tuple[TimeRange, pd.Series]]] = {}
    unread = 0
    for _, stmt in top.iterrows():
        ranges = time_ranges(str(stmt["query"]))
        if ranges is None:
            unread += 1
            continue
        for table, on_table in _match(ranges, ranked).items():
            hits.setdefault(table, []).extend((r, stmt) for r in on_table)
    candidates = []
    for rank, row in enumerate(ranked.itertuples(), start=1):
        found = hits.get(row.table)
        if not found:
            continue
        by_column: dict[str, float] = {}
        for r, stmt in found:
            by_column[r.column] = by_column.get(r.column, 0.0) + float(stmt["exec_ms"])
        column = max(by_column, key=lambda c: (by_column[c], c))
        picked = [(r, s) for r, s in found if r.column == column]
        ids = tuple(dict.fromkeys(int(s["statement_id"]) for _, s in picked))
        stmts = {int(s["statement_id"]): s for _, s in picked}
        share = sum(float(s["share"]) for s in stmts.values())
        calls = sum(float(s["calls"]) for s in stmts.values())
        first = picked[0][0]
        size_note = (
            ""
            if row.total_bytes >= PARTITION_WORTH_BYTES
            else f" At {_size(row.total_bytes)} it is small for partitioning (it rarely pays under "
            f"{_size(PARTITION_WORTH_BYTES)}): a candidate by its workload, to watch as it grows."
        )
        verb = "filters" if len(ids) == 1 else "filter"
        reason = (
            f"Size rank {rank} of the database's {len(tables)} largest tables; {len(ids)} of the "
            f"window's top {len(top)} statements by total time ({share:.0%} of the time) {verb} it "
            f"with a range on {column} ({first.predicate}), which looks like a time by {first.why}. "
            f"Column types are not known to the store: check that {column} is a date or timestamp "
            f"before partitioning by range on it.{size_note}"
        )
        queries = tuple(str(stmts[i]["query"]) for i in ids)
        candidates.append(
            Candidate(row.table, rank, int(row.total_bytes), column, ids, queries, share, calls, reason)
        )
    return Partitioning(candidates, len(top), unread)


def _size(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def top_statements(reader: Reader, target: Target, window: Window, datname: str | None) -> pd.DataFrame:
    """The window's PARTITION_STATEMENTS most expensive statements of the database (total time)."""
    if not datname:
        return pd.DataFrame(columns=["statement_id", "query", "exec_ms", "calls", "share"])
    return statement_reads.top_statements(
        reader, [target], window, database=datname, order="exec_ms", limit=PARTITION_STATEMENTS
    )


# -- the page's view ----------------------------------------------------------------------------
class TablesView(NamedTuple):
    """What the page shows of one target at first (pickled by the page's cache: plain records only).
    The partitioning candidates are apart (`candidates`): the page reads them once that section is
    opened, and they cost a sqlglot parse of each top statement."""

    snapshot: TablesNow | None
    server: ServerNow | None
    tables: pd.DataFrame  # table_frame
    growth: pd.DataFrame
    sequential: pd.DataFrame
    dead_over_time: pd.DataFrame  # long frames (ts, series, value) of the charted tables
    size_over_time: pd.DataFrame


def view(reader: Reader, target: Target, window: Window) -> TablesView:
    snapshot, server = snapshots(reader, target)
    if snapshot is None:
        empty = pd.DataFrame(columns=LONG_COLUMNS)
        return TablesView(
            None,
            server,
            table_frame(TablesNow(ts=0)),
            pd.DataFrame(columns=GROWTH_COLUMNS),
            pd.DataFrame(columns=SEQUENTIAL_COLUMNS),
            empty,
            empty,
        )
    tables = table_frame(snapshot)
    frame = series(reader, target, window)
    largest = tables["table"].head(CHART_TABLES).tolist()
    dead = _gauge(frame, DEAD).groupby("table")["value"].max()
    most_dead = dead[dead > 0].sort_values(ascending=False).head(CHART_TABLES).index.tolist()
    return TablesView(
        snapshot,
        server,
        tables,
        growth(frame),
        sequential(frame, tables),
        over_time(frame, DEAD, most_dead),
        over_time(frame, TOTAL_BYTES, largest, 1 / 2**20),
    )


def candidates(reader: Reader, target: Target, window: Window) -> Partitioning:
    """The partitioning candidates of the target's last tables snapshot, judged on the window's top
    statements of its database (none before the first snapshot)."""
    snapshot, _ = snapshots(reader, target)
    if snapshot is None:
        return Partitioning([], 0, 0)
    return partitioning(table_frame(snapshot), top_statements(reader, target, window, snapshot.datname))
