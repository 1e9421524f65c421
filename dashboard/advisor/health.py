"""Index health: unused, redundant and invalid indexes, foreign keys without an index, B-tree bloat.

Read-only catalog and statistics queries (one .sql file per check under sql/), all readable by a
role with only pg_monitor; the bloat estimate additionally needs pg_stats, which shows only columns
the role may SELECT, so indexes it cannot see are listed in `notes` instead of being guessed.
HypoPG's hypothetical indexes are not in pg_class, so no check ever sees them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from dashboard.core.advice import (
    BloatedIndex,
    IndexHealthReport,
    InvalidIndex,
    MissingFkIndex,
    RedundantIndex,
    UnusedIndex,
)
from dashboard.core.records import OWN_MARKER
from dashboard.core.sqlfiles import SqlFiles

SQL = SqlFiles(Path(__file__).with_name("sql"))
MB = 1024 * 1024
REPLICA_NOTE = (
    "Counts are this server's only: a replica keeps its own, so check that no replica uses it "
    "before dropping."
)
ESTIMATE_NOTE = (
    "An estimate from planner statistics (pg_stats, reltuples), not a measurement: "
    "pgstattuple's pgstatindex() measures it."
)


def _sql(name: str) -> str:
    return SQL(f"health_{name}")


def human_bytes(n: int) -> str:
    """Sizes the way pg_size_pretty writes them, with one decimal: '8 kB', '1.5 MB'."""
    value = float(n)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            text = f"{value:.1f}".removesuffix(".0") if unit != "bytes" else str(n)
            return f"{text} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def index_health(
    conn: psycopg.Connection,
    *,
    min_unused_bytes: int = 1 * MB,
    min_fk_table_rows: int = 10_000,
    min_bloat_bytes: int = 100 * MB,
) -> IndexHealthReport:
    """Every check, in one transaction so statistics come from one snapshot (stats_fetch_consistency)."""
    # Our own cursor with dict rows: the caller's row factory and settings stay as they are.
    with _one_snapshot(conn), conn.cursor(row_factory=dict_row) as cur:
        unused = unused_indexes(cur, min_unused_bytes)
        redundant = redundant_indexes(cur)
        invalid = invalid_indexes(cur)
        missing = fk_without_index(cur, min_fk_table_rows)
        bloat, notes = btree_bloat(cur, min_bloat_bytes)
    return IndexHealthReport(
        unused=unused,
        redundant=redundant,
        invalid=invalid,
        missing_fk_indexes=missing,
        bloat=bloat,
        notes=notes,
    )


@contextlib.contextmanager
def _one_snapshot(conn: psycopg.Connection) -> Iterator[None]:
    """A transaction begun and ended by marked statements: `conn.transaction()` sends a bare BEGIN
    and COMMIT, which pg_stat_statements would record as the monitored server's workload. Outside
    autocommit, or inside a transaction, psycopg's own handling stays (it begins one itself)."""
    if not conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE:
        with conn.transaction():
            yield
        return
    conn.execute(OWN_MARKER + "BEGIN")
    try:
        yield
    except BaseException:
        with contextlib.suppress(psycopg.Error):  # a lost connection: the error that lost it counts
            conn.execute(OWN_MARKER + "ROLLBACK")
        raise
    conn.execute(OWN_MARKER + "COMMIT")


def _common(row: dict[str, Any], reason: str, fix_sql: str | None) -> dict[str, Any]:
    return {
        "schema": row["schema_name"],
        "table": row["table_name"],
        "index": row["index_name"],
        "definition": row["definition"],
        "size_bytes": int(row["size_bytes"]),
        "size": human_bytes(int(row["size_bytes"])),
        "reason": reason,
        "fix_sql": fix_sql,
    }


# -- 1. unused ------------------------------------------------------------------------------
def unused_indexes(cur: psycopg.Cursor, min_bytes: int) -> list[UnusedIndex]:
    found = []
    for row in cur.execute(_sql("unused_indexes"), {"min_bytes": min_bytes}).fetchall():
        since, since_text = _since(row)
        reason = (
            f"no index scans {since_text}, or since it was created if later; "
            f"{human_bytes(row['size_bytes'])} kept on disk and updated by every write. {REPLICA_NOTE}"
        )
        if row["has_expressions"]:
            reason += " Its expression statistics may still guide the planner's estimates."
        found.append(
            UnusedIndex(**_common(row, reason + _partitioned(row), _drop_sql(row)), unused_since=since)
        )
    return found


def _drop_sql(row: dict[str, Any]) -> str:
    # CONCURRENTLY is refused for a partitioned index.
    keyword = "DROP INDEX" if row["is_partitioned"] else "DROP INDEX CONCURRENTLY"
    return f"{keyword} {row['index_sql']};"


def _partitioned(row: dict[str, Any]) -> str:
    if not row["is_partitioned"]:
        return ""
    return (
        " A partitioned index (scans and size summed over its partitions): it cannot be dropped "
        "CONCURRENTLY, and DROP INDEX locks every partition."
    )


def _since(row: dict[str, Any]) -> tuple[datetime | None, str]:
    if row["stats_reset"] is not None:
        return row["stats_reset"], f"since statistics were reset at {_when(row['stats_reset'])}"
    # Never reset: counters survive clean restarts, so the server start is a lower bound.
    start = row["postmaster_start"]
    return start, f"since at least the server start at {_when(start)} (statistics never reset)"


def _when(ts: datetime) -> str:
    return ts.isoformat(sep=" ", timespec="seconds")


# -- 2. duplicate / redundant -----------------------------------------------------------------
def redundant_indexes(cur: psycopg.Cursor) -> list[RedundantIndex]:
    pairs = cur.execute(_sql("duplicate_indexes")).fetchall()
    verdicts = [(row, _verdict(row)) for row in pairs]
    flagged = [(row, v) for row, v in verdicts if v is not None]
    dropped = {row["oid"] for row, v in flagged if v == "drop"}
    by_index: dict[int, list[tuple[dict[str, Any], str]]] = {}
    for row, verdict in flagged:
        by_index.setdefault(row["oid"], []).append((row, verdict))
    found = []
    for choices in by_index.values():
        # Name a cover that stays: with (a) < (a,b) < (a,b,c), both smaller ones point at (a,b,c).
        row, verdict = min(choices, key=lambda rv: (rv[0]["cover_oid"] in dropped, rv[0]["cover_oid"]))
        found.append(_redundant(row, drop=verdict == "drop"))
    return sorted(found, key=lambda f: (f.table, f.index or ""))


def _verdict(row: dict[str, Any]) -> str | None:
    """'drop' the candidate, 'report' it without a fix (both back constraints), or None."""
    exact, unique, cover_unique = row["exact"], row["is_unique"], row["cover_unique"]
    mine = bool(row["constraints"])
    # A partition's copy of a partitioned index is as fixed as a constraint's index.
    theirs = bool(row["cover_constraints"]) or row["cover_attached"]
    if unique and not (exact and cover_unique and row["same_nulls"]):
        return None  # it enforces uniqueness its cover does not (fewer columns, or NULLs)
    if not exact or unique != cover_unique:
        # A strict prefix, or the plain twin of a unique index: the cover does all it does.
        if not mine:
            return "drop"
        return "report" if theirs else None
    # Exact twins: keep the one a constraint uses, else the older (lower oid); report once.
    if mine != theirs:
        return None if mine else "drop"
    if row["oid"] < row["cover_oid"] and not row["cover_attached"]:
        return None  # the reverse pair (never formed with an attached candidate) reports it
    return "report" if mine else "drop"


def _redundant(row: dict[str, Any], drop: bool) -> RedundantIndex:
    cover = row["cover_name"]
    if row["exact"]:
        reason = f"covered by {cover}: an exact duplicate ({row['cover_definition']})"
    else:
        reason = (
            f"covered by {cover} ({row['cover_definition']}): its columns lead {cover}, with the "
            "same method, operator classes and predicate"
        )
    reason += _partitioned(row) if drop else _kept_because(row)
    return RedundantIndex(
        **_common(row, reason, _drop_sql(row) if drop else None),
        covered_by=cover,
        covered_by_definition=row["cover_definition"],
        exact_duplicate=row["exact"],
    )


def _kept_because(row: dict[str, Any]) -> str:
    if row["cover_constraints"]:
        pair = f"both back constraints ({row['constraints']}; {row['cover_constraints']})"
    else:
        pair = f"it backs {row['constraints']} and {row['cover_name']} belongs to a partitioned index"
    return f"; {pair}: drop a constraint with ALTER TABLE ... DROP CONSTRAINT if one is not needed"


# -- 3. invalid -----------------------------------------------------------------------------
def invalid_indexes(cur: psycopg.Cursor) -> list[InvalidIndex]:
    found = []
    for row in cur.execute(_sql("invalid_indexes")).fetchall():
        reason, fix, alternative = _invalid_advice(row)
        found.append(
            InvalidIndex(
                **_common(row, reason, fix), alternative_sql=alternative, build_running=row["build_running"]
            )
        )
    return found


def _invalid_advice(row: dict[str, Any]) -> tuple[str, str | None, str | None]:
    name = row["index_sql"]
    if row["is_partitioned"]:
        reason = (
            "invalid partitioned index: some partition has no matching index attached; create it "
            f"and ALTER INDEX {name} ATTACH PARTITION it"
        )
        return reason, None, None
    reason = "invalid: the planner never uses it"
    reason += ", yet every write still updates it" if row["is_ready"] else ""
    reason += "; usually left by a failed CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY."
    if row["is_unique"]:
        reason += " As a unique index it most likely failed on duplicate values: remove them first."
    if row["build_running"]:
        reason += " A CREATE INDEX or REINDEX is running on this table now: this may be that build."
    recreate = re.sub(r"^CREATE (UNIQUE )?INDEX ", r"CREATE \1INDEX CONCURRENTLY ", row["definition"])
    return reason, f"REINDEX INDEX CONCURRENTLY {name};", f"DROP INDEX CONCURRENTLY {name};\n{recreate};"


# -- 4. foreign keys without an index ---------------------------------------------------------
def fk_without_index(cur: psycopg.Cursor, min_rows: int) -> list[MissingFkIndex]:
    found = []
    for row in cur.execute(_sql("fk_without_index"), {"min_rows": min_rows}).fetchall():
        columns = ", ".join(row["columns"])
        reason = (
            f"foreign key {row['constraint_name']} references {row['parent_name']}, but no valid "
            f"index on {row['table_name']} starts with ({columns}): every DELETE or key UPDATE on "
            f"{row['parent_name']} scans {row['table_name']} (~{row['table_rows']:,} rows) for "
            "referencing rows, and joins on the key cannot use an index"
        )
        if row["partition_of"]:
            reason += (
                f". A partition of {row['partition_of']}: an index on {row['partition_of']} covers "
                "every partition (built without CONCURRENTLY, or per partition and then attached)"
            )
        common = _common(
            {**row, "index_name": None, "size_bytes": row["table_bytes"]},
            reason,
            f"CREATE INDEX CONCURRENTLY ON {row['table_name']} ({columns});",
        )
        found.append(
            MissingFkIndex(
                **common,
                constraint=row["constraint_name"],
                referenced_table=row["parent_name"],
                columns=tuple(row["columns"]),
                table_rows=int(row["table_rows"]),
            )
        )
    return found


# -- 5. B-tree bloat estimate -----------------------------------------------------------------
def btree_bloat(cur: psycopg.Cursor, min_bytes: int) -> tuple[list[BloatedIndex], list[str]]:
    found, unknown = [], []
    for row in cur.execute(_sql("btree_bloat"), {"min_bytes": min_bytes}).fetchall():
        if not row["estimated"]:
            unknown.append(row["index_sql"])
            continue
        bloat = human_bytes(row["bloat_bytes"])
        reason = (
            f"estimated {row['bloat_percent']:g} % bloat (~{bloat} of {human_bytes(row['size_bytes'])}). "
            f"{ESTIMATE_NOTE}"
        )
        reason += " REINDEX CONCURRENTLY needs room for a second copy while it runs."
        if row["has_name_type"]:
            reason += " Columns of type name make this estimate unreliable."
        common = _common(row, reason, f"REINDEX INDEX CONCURRENTLY {row['index_sql']};")
        found.append(
            BloatedIndex(
                **common, bloat_bytes=int(row["bloat_bytes"]), bloat=bloat, bloat_percent=row["bloat_percent"]
            )
        )
    notes = [_unknown_bloat_note(unknown)] if unknown else []
    return found, notes


def _unknown_bloat_note(indexes: list[str]) -> str:
    shown = ", ".join(indexes[:10]) + (f" and {len(indexes) - 10} more" if len(indexes) > 10 else "")
    return (
        f"bloat not estimated for {len(indexes)} B-tree index(es): {shown}. The widths of some of "
        "their columns are unknown: never ANALYZEd, or hidden from this role (pg_stats shows only "
        "columns it may SELECT, and index expressions only to the index's owner). Grant SELECT on "
        "the tables, or run as their owner, to estimate them"
    )
