"""The store's schema, one SQLAlchemy Core definition for SQLite and PostgreSQL.

Times are integer Unix seconds (UTC). Counters are stored as per-interval deltas. Each table of
deltas exists at three levels -- raw (one row per cycle), hourly and daily -- and the writer adds
every delta to all three in the same transaction, so the coarse levels are always current and
retention can drop old raw rows at any time without a roll-up job falling behind.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 7  # 6: raw and hourly tables partitioned by time on PostgreSQL (partitions.py); 7: leases
LEVELS = ("raw", "hourly", "daily")
BUCKET_SECONDS = {"hourly": 3600, "daily": 86400}

# pg_stat_statements counters, in the order collectors report them (see collectors/postgres/sql).
STATEMENT_COUNTERS: tuple[str, ...] = (
    "calls",
    "exec_ms",
    "plan_ms",
    "rows",
    "shared_hit",
    "shared_read",
    "shared_dirtied",
    "shared_written",
    "temp_read",
    "temp_written",
    "read_ms",
    "write_ms",
    "wal_bytes",
)
_FLOAT_COUNTERS = {"exec_ms", "plan_ms", "read_ms", "write_ms"}

metadata = MetaData()
PARTITIONED_LEVELS = ("raw", "hourly")  # on PostgreSQL, by range of ts (partitions.py); ts is in every key


def _partitioned(level: str) -> dict[str, str]:
    return {"postgresql_partition_by": "RANGE (ts)"} if level in PARTITIONED_LEVELS else {}


meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

targets = Table(
    "targets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("kind", "name", name="uq_targets_kind_name"),
)

# Who collects a target, as a fencing token: a daemon that takes a target from another raises the
# epoch, and a cycle is saved only with the epoch it was collected under (writer.Store.take_lease).
# A lock alone cannot tell a daemon that it lost a target while its cycles waited in memory.
leases = Table(
    "leases",
    metadata,
    Column("target_id", Integer, primary_key=True),
    Column("holder", String(200), nullable=False),  # the daemon: host, pid and a random tag
    Column("epoch", BigInteger, nullable=False),
)

target_status = Table(
    "target_status",
    metadata,
    Column("target_id", Integer, ForeignKey("targets.id"), primary_key=True),
    Column("state", String(16), nullable=False),  # ok | degraded | down
    Column("last_attempt", BigInteger),
    Column("last_success", BigInteger),
    Column("last_error", Text),
    Column("hints", Text),  # JSON list of what to do about the state
    Column("failures", Integer, nullable=False, default=0),  # consecutive failed cycles
    Column("server_version", String(64)),
    Column("duration_ms", Float),  # of the last cycle
    Column("samples", BigInteger, nullable=False, default=0),  # rows written, all cycles
    Column("details", Text),  # JSON of the source's details model (core.details): epoch markers, settings
)

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target_id", Integer, ForeignKey("targets.id"), nullable=False),
    Column("name", String(120), nullable=False),
    Column("labels", String(400), nullable=False, default=""),  # canonical "k=v,k2=v2"
    Column("kind", String(8), nullable=False),  # counter (stored as deltas) | gauge
    Column("last_value", Float),  # last cumulative reading of a counter, to diff the next one
    Column("last_ts", BigInteger),
    UniqueConstraint("target_id", "name", "labels", name="uq_series"),
)

points_raw = Table(
    "points_raw",
    metadata,
    Column("series_id", Integer, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("value", Float, nullable=False),
    PrimaryKeyConstraint("series_id", "ts"),
    sqlite_with_rowid=False,
    postgresql_partition_by="RANGE (ts)",
)


def _points_rollup(level: str) -> Table:
    return Table(
        f"points_{level}",
        metadata,
        Column("series_id", Integer, nullable=False),
        Column("ts", BigInteger, nullable=False),  # bucket start
        Column("sum", Float, nullable=False),
        Column("count", Integer, nullable=False),
        Column("min", Float, nullable=False),
        Column("max", Float, nullable=False),
        PrimaryKeyConstraint("series_id", "ts"),
        sqlite_with_rowid=False,
        **_partitioned(level),
    )


points_hourly = _points_rollup("hourly")
points_daily = _points_rollup("daily")
POINTS = {"raw": points_raw, "hourly": points_hourly, "daily": points_daily}

statements = Table(
    "statements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target_id", Integer, ForeignKey("targets.id"), nullable=False),
    Column("queryid", BigInteger, nullable=False),
    Column("dbid", BigInteger, nullable=False),
    Column("userid", BigInteger, nullable=False),
    Column("toplevel", Boolean, nullable=False),
    Column("datname", String(200)),
    Column("rolname", String(200)),
    Column("query", Text),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),  # last cycle its counters moved
    # Collector state: the last cumulative counters (JSON list in STATEMENT_COUNTERS order) and
    # whether the entry was in the server's last snapshot (an entry that vanished was evicted).
    Column("present", Boolean, nullable=False, default=True),
    Column("last_counters", Text),
    # Non-additive figures, as the server last reported them (since stats_since).
    Column("min_ms", Float),
    Column("max_ms", Float),
    Column("mean_ms", Float),
    Column("stddev_ms", Float),
    Column("stats_since", BigInteger),
    UniqueConstraint("target_id", "queryid", "dbid", "userid", "toplevel", name="uq_statements"),
)


def _statement_stats(level: str) -> Table:
    counters = [
        Column(name, Float if name in _FLOAT_COUNTERS else BigInteger, nullable=False, default=0)
        for name in STATEMENT_COUNTERS
    ]
    table = Table(
        f"stmt_{level}",
        metadata,
        Column("target_id", Integer, nullable=False),
        Column("ts", BigInteger, nullable=False),
        Column("statement_id", Integer, nullable=False),
        *counters,
        PrimaryKeyConstraint("target_id", "ts", "statement_id"),
        sqlite_with_rowid=False,
        **_partitioned(level),
    )
    Index(f"ix_stmt_{level}_statement", table.c.statement_id, table.c.ts)
    return table


STMT = {level: _statement_stats(level) for level in LEVELS}


# The index advisor's latest report per target and database (JSON: see dashboard.advisor).
advice = Table(
    "advice",
    metadata,
    Column("target_id", Integer, ForeignKey("targets.id"), nullable=False),
    Column("datname", String(200), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("duration_ms", Float),
    Column("report", Text, nullable=False),
    PrimaryKeyConstraint("target_id", "datname"),
)


# Each statement's plan over time, as the advisor planned it (no hypothetical index): one row per
# run of one plan shape, its last_seen, cost and plan moving while the shape holds (plan_history.py).
statement_plans = Table(
    "statement_plans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target_id", Integer, ForeignKey("targets.id"), nullable=False),
    Column("datname", String(200), nullable=False),
    Column("text_hash", String(64), nullable=False),  # sha256 hex of the text, as statements.query holds it
    Column("shape_hash", String(64), nullable=False),  # of the plan's nodes and structure, not its figures
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("cost", Float, nullable=False),  # the latest run's estimate
    Column("plan", Text, nullable=False),  # EXPLAIN's JSON, the latest of this shape
)
Index(
    "ix_statement_plans_statement",
    statement_plans.c.target_id,
    statement_plans.c.datname,
    statement_plans.c.text_hash,
    statement_plans.c.last_seen,
)


# Blocking chains that lasted (dashboard/core/health/chains.py): one row per chain, rewritten each
# cycle while it lasts. Keyed by its root and its start, which never move once it is seen.
blocking_chains = Table(
    "blocking_chains",
    metadata,
    Column("target_id", Integer, ForeignKey("targets.id"), nullable=False),
    Column("started", BigInteger, nullable=False),
    Column("root_pid", Integer, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("waited", Integer, nullable=False),  # sessions that waited behind it, to sort by
    Column("chain", Text, nullable=False),  # BlockingChain's JSON
    PrimaryKeyConstraint("target_id", "started", "root_pid"),
)


# Indexes as the collector's catalog reads saw them (dashboard/core/health/indexes.py), one row per
# index of a target's database: when it was first and last seen, so "created in the period" is known.
# `previous_read` is the catalog read before the one that first saw it: the index was created
# between the two. NULL: it was there at the first read ever (or the reading was capped), age unknown.
index_catalog = Table(
    "index_catalog",
    metadata,
    Column("target_id", Integer, ForeignKey("targets.id"), nullable=False),
    Column("datname", String(200), nullable=False),
    Column("index_name", String(400), nullable=False),  # schema-qualified, quoted where needed
    Column("table_name", String(400), nullable=False),
    Column("definition", Text),  # pg_get_indexdef
    Column("key_columns", Text),  # JSON list of its key columns or expressions
    Column("first_seen", BigInteger, nullable=False),
    Column("previous_read", BigInteger),
    Column("last_seen", BigInteger, nullable=False),
    PrimaryKeyConstraint("target_id", "datname", "index_name"),
)

# When each database's catalog was first and last read: the baseline, and the read before a new index.
index_catalog_reads = Table(
    "index_catalog_reads",
    metadata,
    Column("target_id", Integer, ForeignKey("targets.id"), nullable=False),
    Column("datname", String(200), nullable=False),
    Column("first_read", BigInteger, nullable=False),
    Column("last_read", BigInteger, nullable=False),
    PrimaryKeyConstraint("target_id", "datname"),
)

# Every index the advisor suggested (dashboard.core.advice.IndexSuggestion), from its first report
# that did to its last: the `advice` table keeps only the latest report, this says "ours" later.
index_suggestions = Table(
    "index_suggestions",
    metadata,
    Column("target_id", Integer, ForeignKey("targets.id"), nullable=False),
    Column("datname", String(200), nullable=False),
    Column("table_name", String(400), nullable=False),  # as the suggestion names it: schema.table
    # JSON list of its columns, as the suggestion shows them ("created_at DESC", "lower(email)")
    Column("key_columns", String(1000), nullable=False),
    Column("create_sql", Text, nullable=False),
    Column("proven", Boolean, nullable=False),
    Column("first_suggested", BigInteger, nullable=False),
    Column("last_suggested", BigInteger, nullable=False),
    PrimaryKeyConstraint("target_id", "datname", "table_name", "key_columns"),
)


# Slow commands a server logged (Redis SLOWLOG); ids restart with the server, hence ts in the key.
slowlog = Table(
    "slowlog",
    metadata,
    Column("target_id", Integer, ForeignKey("targets.id"), nullable=False),
    Column("entry_id", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("duration_us", BigInteger, nullable=False),
    Column("command", Text, nullable=False),
    Column("client", String(200)),
    PrimaryKeyConstraint("target_id", "ts", "entry_id"),
)


# Alerts (dashboard.alerts): every alert pending or firing now, one row each, so a restarted daemon
# picks up where it stopped; every change of state, for the history; the notifier's bookkeeping.
alerts_now = Table(
    "alerts_now",
    metadata,
    Column("fingerprint", String(16), primary_key=True),
    Column("rule", String(200), nullable=False),
    Column("labels", Text, nullable=False),  # JSON object
    Column("annotations", Text, nullable=False),  # JSON object
    Column("state", String(10), nullable=False),  # pending | firing
    Column("value", Float),
    Column("active_at", BigInteger, nullable=False),
    Column("fired_at", BigInteger),
    Column("held_at", BigInteger),
    Column("source_url", Text),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(16), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("labels", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("state", String(10), nullable=False),  # pending | firing | resolved
    Column("value", Float),
)
Index("ix_alert_events_ts", alert_events.c.ts)
Index("ix_alert_events_fingerprint", alert_events.c.fingerprint, alert_events.c.ts)  # one alert's history

alert_journal = Table(
    "alert_journal",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),  # JSON, written whole
)
