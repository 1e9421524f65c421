"""Did the index help? Indexes created in the period, the advisor's suggestions still open, and the
indexes nothing uses (the weekly review's index sections). No Streamlit here.

An index is created in the period when the collector's catalog reads (the indexes health part,
kept in the store's index_catalog) first saw it in the period, a read before having not: it was
created between the two. The indexes there at a database's first read ever are not creations.

Method, per created index:
- the statements that now use it: those whose latest plan the advisor kept (statement_plans) at or
  after the creation names it ("Index Name"), among the statements of its database that ran;
- before is from the baseline's start to the catalog read before the creation, after is from the
  read that saw it to the period's end: the statement deltas between the two reads are left out,
  since the index was created somewhere in between;
- the table's write cost: the mean time of the INSERT, UPDATE, DELETE and MERGE statements on its
  table (parsed with pglast, PostgreSQL's own parser);
- the changes compare like with like: statements that ran on both sides, each weighted by its
  calls before (what the same work cost before and after).
Verdict, in this order: "not used yet" when no plan names it; "not measured" when the statements
that use it did not run on both sides, or made fewer than MIN_CALLS calls on either (together);
"hurt" when they got HURT_SLOWER slower or more; "helped" when they got faster (HELPED_FASTER
faster, or HELPED_READ fewer blocks read from outside the buffer cache while not slower) and the
table's writes got no more than max(WRITES_SLOWER, what the reads gained) slower; "hurt" when the
writes got slower by more than that (so by more than the reads gained); "no effect" otherwise.
`ours`: the advisor had suggested it (same table and method, its keys leading the index's) before
the read that first saw it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pglast import ast, parse_sql
from pglast.parser import ParseError

from dashboard.analysis.reader import Reader
from dashboard.analysis.review.model import IndexEffect, IndexOutcome, OpenSuggestion, Period, UnusedIndex
from dashboard.analysis.targets import Target
from dashboard.core.advice import IndexSuggestion, StoredAdvice
from dashboard.store.plan_history import text_hash
from dashboard.store.reads import StatementFilter, Window
from dashboard.store.schema import BUCKET_SECONDS

HELPED_FASTER = 0.20  # the statements that use it: mean time down by at least this
HELPED_READ = 0.50  # ... or blocks read per call down by at least this, their time not up
HURT_SLOWER = 0.20  # the statements that use it: mean time up by at least this is "hurt"
WRITES_SLOWER = 0.20  # the table's writes: up by at most this (or what the reads gained) for "helped"
MIN_CALLS = 10  # calls of the statements that use it, on each side, to judge at all
STATEMENTS = 10_000  # statements of one database read per review (all of them, in practice)
LEVEL_BUCKETS = 100_000  # raw when it is kept: before and after split at the catalog reads exactly
_WRITES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
_CAST = re.compile(r"::[a-z_ ]+(\[\])?", re.I)
_USING = re.compile(r"\bUSING\s+(\w+)", re.I)
_WRITE_WORD = re.compile(r"\b(insert|update|delete|merge)\b", re.I)  # before parsing: most texts read


# -- did the index help? ---------------------------------------------------------------------------
def outcomes(
    reader: Reader, targets: Sequence[Target], period: Period, baseline: Period
) -> tuple[IndexOutcome, ...]:
    """Every index of the PostgreSQL targets created in `period`, with its statements and tables
    before (from `baseline`'s start) and after (to the period's end), oldest creation first."""
    postgres = {t.id: t.name for t in targets if t.kind == "postgres"}
    if not postgres:
        return ()
    catalog = reader.store.index_catalog(list(postgres))
    made = catalog["previous_read"].notna() & catalog["first_seen"].between(period.start, period.end - 1)
    created = catalog[made]
    if created.empty:
        return ()
    suggested = reader.store.index_suggestions(list(postgres))
    span, level = _span(reader, Window(baseline.start, period.end), int(created["previous_read"].min()))
    found: list[IndexOutcome] = []
    for (tid, datname), rows in created.groupby(["target_id", "datname"], sort=False):
        db = _Database.read(reader, int(tid), str(datname), span, level, int(rows["first_seen"].min()))
        ours = suggested[(suggested["target_id"] == tid) & (suggested["datname"] == datname)]
        found += [_outcome(db, postgres[int(tid)], row, ours, span) for row in rows.itertuples()]
    return tuple(sorted(found, key=lambda o: (o.created, o.target, o.index)))


def _span(reader: Reader, span: Window, first_read: int) -> tuple[Window, str]:
    """The span and level to judge on: the raw cycles, split exactly at the catalog reads, while the
    store still keeps them for the reads before the first creation (the days since, as "before");
    else the buckets of the level the whole span is kept at."""
    horizon = int(reader.now() - reader.config.retention.raw)
    if first_read > horizon:
        return Window(max(span.start, horizon), span.end), "raw"
    return span, reader.level(span, LEVEL_BUCKETS)


@dataclass(frozen=True)
class _Database:
    """What one database's created indexes are judged on: its statements that ran over the
    review's span, their per-bucket counters, and the advisor's plans since the first creation."""

    statements: pd.DataFrame  # statement_id, query, written (the table a write statement writes)
    buckets: pd.DataFrame  # statement_series of them: statement_id, ts, calls, exec_ms, shared_read
    plans: pd.DataFrame  # text_hash, last_seen, plan
    width: int  # a bucket's span in seconds (0: raw, one point per cycle)

    @classmethod
    def read(cls, reader: Reader, tid: int, datname: str, span: Window, level: str, since: int) -> _Database:
        where = StatementFilter(database=datname, limit=STATEMENTS)
        ran = reader.store.statement_totals([tid], span, level, where)[["statement_id", "query"]].copy()
        ran["hash"] = ran["query"].map(text_hash)
        ran["written"] = ran["query"].map(written_table)
        plans = reader.store.plans_since(tid, datname, since)
        wanted = ran.loc[ran["hash"].isin(set(plans["text_hash"])) | ran["written"].notna(), "statement_id"]
        buckets = reader.store.statement_series([int(i) for i in wanted], span, level)
        return cls(ran, buckets, plans, BUCKET_SECONDS.get(level, 0))

    def side(self, ids: Sequence[int], first: int, last: int) -> pd.DataFrame:
        """Sums per statement (calls, exec_ms, shared_read) of the buckets wholly in [first, last]."""
        frame = self.buckets
        end = frame["ts"] + max(self.width - 1, 0)
        inside = frame["statement_id"].isin(ids) & (frame["ts"] >= first) & (end <= last)
        return frame[inside].groupby("statement_id")[["calls", "exec_ms", "shared_read"]].sum()

    def users(self, index: str, created: int) -> list[int]:
        """The statements whose latest plan at or after `created` names the index."""
        plans = self.plans[self.plans["last_seen"] >= created]
        latest = plans.groupby("text_hash")["plan"].last()  # the rows come oldest first
        bare = _bare(index).split(".")[-1]
        naming = {h for h, plan in latest.items() if bare in _index_names(plan)}
        return self.statements.loc[self.statements["hash"].isin(naming), "statement_id"].astype(int).tolist()

    def writers(self, table: str) -> list[int]:
        """The statements that write the table (INSERT, UPDATE, DELETE, MERGE)."""
        schema, _, name = _bare(table).rpartition(".")
        hits = self.statements["written"].map(
            lambda w: w is not None and w[1] == name and (w[0] is None or w[0] == schema)
        )
        return self.statements.loc[hits, "statement_id"].astype(int).tolist()


def _outcome(db: _Database, target: str, row: Any, suggested: pd.DataFrame, span: Window) -> IndexOutcome:
    created, before_end = int(row.first_seen), int(row.previous_read)
    users, writers = db.users(row.index_name, created), db.writers(row.table_name)
    before = db.side(users + writers, span.start, before_end)
    after = db.side(users + writers, created + 1, span.end - 1)
    texts = db.statements.set_index("statement_id")["query"]
    effects = tuple(
        IndexEffect(
            statement_id=sid,
            query=str(texts.get(sid, "")),
            mean_ms=(_per_call(before, sid, "exec_ms"), _per_call(after, sid, "exec_ms")),
            read_per_call=(_per_call(before, sid, "shared_read"), _per_call(after, sid, "shared_read")),
        )
        for sid in users
    )
    writes_ms = (_mean(before, writers), _mean(after, writers))
    verdict = _verdict(
        bool(users),
        _ratio(before, after, users, "exec_ms", MIN_CALLS),
        _ratio(before, after, users, "shared_read", MIN_CALLS),
        _ratio(before, after, writers, "exec_ms"),
    )
    return IndexOutcome(
        target=target,
        datname=row.datname,
        index=row.index_name,
        table=row.table_name,
        created=created,
        definition=row.definition,
        ours=_suggested_before(suggested, row, created),
        statements=effects,
        writes_ms=writes_ms,
        verdict=verdict,
    )


def _verdict(used: bool, reads: float | None, blocks: float | None, writes: float | None) -> str:
    """From the ratios after / before (None: not measured on both sides); module docstring."""
    if not used:
        return "not used yet"
    if reads is None:
        return "not measured"
    if reads >= 1 + HURT_SLOWER:
        return "hurt"
    gain = 1.0 - reads  # what the statements that use it gained (negative: lost)
    write_loss = (writes - 1.0) if writes is not None else 0.0
    allowed = max(WRITES_SLOWER, gain)
    faster = reads <= 1 - HELPED_FASTER or (blocks is not None and blocks <= 1 - HELPED_READ and reads <= 1)
    if faster and write_loss <= allowed:
        return "helped"
    if write_loss > allowed:  # > WRITES_SLOWER and > gain
        return "hurt"
    return "no effect"


def _per_call(side: pd.DataFrame, sid: int, column: str) -> float | None:
    if sid not in side.index or not side.at[sid, "calls"]:
        return None
    return float(side.at[sid, column] / side.at[sid, "calls"])


def _mean(side: pd.DataFrame, ids: Sequence[int]) -> float | None:
    """The mean time of the statements `ids` together on one side (None: none ran)."""
    rows = side[side.index.isin(ids)]
    calls = float(rows["calls"].sum())
    return float(rows["exec_ms"].sum()) / calls if calls else None


def _ratio(
    before: pd.DataFrame, after: pd.DataFrame, ids: Sequence[int], column: str, min_calls: int = 1
) -> float | None:
    """After over before per call of `column`, for the statements that ran on both sides, each
    weighted by its calls before: what the same work cost after, against what it cost before.
    None when they made fewer than `min_calls` calls on either side, together."""
    both = [
        i
        for i in ids
        if i in before.index and i in after.index and before.at[i, "calls"] and after.at[i, "calls"]
    ]
    calls = [sum(float(side.at[i, "calls"]) for i in both) for side in (before, after)]
    if not both or min(calls) < min_calls:
        return None
    was = sum(float(before.at[i, column]) for i in both)
    now = sum(float(before.at[i, "calls"]) * float(after.at[i, column] / after.at[i, "calls"]) for i in both)
    return now / was if was > 0 else None


# -- plans and statements --------------------------------------------------------------------------
def _index_names(plan_json: str) -> set[str]:
    """Every index a stored plan (EXPLAIN's JSON) scans."""
    try:
        tree = json.loads(plan_json)
    except ValueError:
        return set()
    return {node["Index Name"] for node in _nodes(tree) if "Index Name" in node}


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    stack = [item["Plan"] for item in tree if isinstance(item, dict) and "Plan" in item]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", ()))


def written_table(text: str | None) -> tuple[str | None, str] | None:
    """(schema or None, table) that an INSERT, UPDATE, DELETE or MERGE writes; None for any other
    statement or a text PostgreSQL's parser refuses."""
    if not text or not _WRITE_WORD.search(text):
        return None
    try:
        parsed = parse_sql(text)
    except (ParseError, ValueError, RecursionError):
        return None
    if len(parsed) != 1 or not isinstance(parsed[0].stmt, _WRITES):
        return None
    relation = parsed[0].stmt.relation
    return relation.schemaname, relation.relname


def _bare(name: str) -> str:
    """A name as the catalog writes it (public."Order"), without its quotes (public.Order)."""
    return name.replace('"', "")


# -- ours? -------------------------------------------------------------------------------------------
def _suggested_before(suggested: pd.DataFrame, row: Any, created: int) -> bool:
    """Whether the advisor suggested this index before the catalog read that first saw it."""
    earlier = suggested[suggested["first_suggested"] < created]
    return any(
        _serves(s.table_name, s.keys, s.create_sql, row.table_name, row.keys, row.definition)
        for s in earlier.itertuples()
    )


def _serves(
    table: str,
    columns: Sequence[str],
    create_sql: str,
    index_table: str,
    keys: Sequence[str],
    definition: str | None,
) -> bool:
    """Whether an index (as the catalog names it) is the suggested one (its columns as the suggestion
    shows them): same table and method, the suggested columns leading its keys."""
    wanted = [_key(_column(k)) for k in columns]
    return (
        _bare(table) == _bare(index_table)
        and _method(create_sql) == _method(definition)
        and [_key(k) for k in keys][: len(wanted)] == wanted
    )


def _column(shown: str) -> str:
    """A suggestion's column as shown ('created_at DESC', 'email gin_trgm_ops') without its
    ordering and operator class: what pg_get_indexdef gives of a key."""
    words = shown.split()
    if words and words[-1].upper() in ("DESC", "ASC"):
        words = words[:-1]
    if len(words) > 1 and words[-1].endswith("_ops"):
        words = words[:-1]
    return " ".join(words)


def _key(text: str) -> str:
    """A key column or expression compared loosely: no quotes, casts, parentheses or spaces."""
    return re.sub(r"[\s()\"]", "", _CAST.sub("", text))


def _method(sql: str | None) -> str:
    found = _USING.search(sql or "")
    return found.group(1).lower() if found else "btree"


# -- open suggestions, unused indexes ------------------------------------------------------------------
def open_suggestions(reader: Reader, targets: Sequence[Target]) -> tuple[OpenSuggestion, ...]:
    """The latest advisor reports' proven suggestions that no index in the last catalog read serves,
    most time saved first."""
    postgres = {t.id: t for t in targets if t.kind == "postgres"}
    if not postgres:
        return ()
    present = _present(reader.store.index_catalog(list(postgres)))
    found: list[tuple[float, OpenSuggestion]] = []
    for stored in _reports(reader, postgres):
        indexes = present.get((stored.target_id, stored.datname), [])
        for s in stored.report.suggestions:
            served = (
                _serves(s.table, s.columns, s.create_sql, r.table_name, r.keys, r.definition) for r in indexes
            )
            if not s.proven or any(served):
                continue
            item = OpenSuggestion(stored.target, stored.datname, s.create_sql, benefit(s))
            found.append((-(s.saved_ms_per_day or 0.0), item))
    return tuple(item for _, item in sorted(found, key=lambda pair: pair[0]))


def benefit(s: IndexSuggestion) -> str:
    """One line: "cost 12,219 -> 608 for 3 statements, about 4.1 s a day saved"."""
    n = len(s.statements)
    text = f"cost {s.cost_before:,.0f} -> {s.cost_after or 0:,.0f} for {n} statement{'s' if n != 1 else ''}"
    if s.saved_ms_per_day:
        text += f", about {_duration(s.saved_ms_per_day)} a day saved"
    return text


def _duration(ms: float) -> str:
    if ms >= 60_000:
        return f"{ms / 60_000:,.1f} min"
    return f"{ms / 1000:,.1f} s" if ms >= 1000 else f"{ms:,.0f} ms"


def unused(reader: Reader, targets: Sequence[Target]) -> tuple[UnusedIndex, ...]:
    """The latest advisor reports' unused and redundant indexes that are still there, largest first."""
    postgres = {t.id: t for t in targets if t.kind == "postgres"}
    if not postgres:
        return ()
    present = _present(reader.store.index_catalog(list(postgres)))
    found: list[UnusedIndex] = []
    for stored in _reports(reader, postgres):
        health = stored.report.health
        if health is None:
            continue
        listed = present.get((stored.target_id, stored.datname))
        names = {_bare(r.index_name) for r in listed} if listed else None
        for finding in [*health.unused, *health.redundant]:
            name = f"{finding.schema_}.{finding.index}"
            if names is not None and name not in names:
                continue  # dropped since the advisor looked
            found.append(
                UnusedIndex(stored.target, name, finding.table, float(finding.size_bytes), finding.reason)
            )
    return tuple(sorted(found, key=lambda u: (-u.bytes, u.target, u.index)))


def _reports(reader: Reader, postgres: dict[int, Target]) -> list[StoredAdvice]:
    """The latest report of every database of the targets that could be advised."""
    return [a for a in reader.store.advice(list(postgres)) if a.report.error is None]


def _present(catalog: pd.DataFrame) -> dict[tuple[int, str], list[Any]]:
    """The indexes of each database's last catalog read, by (target id, database)."""
    now = catalog[catalog["last_seen"] >= catalog["last_read"]]
    found: dict[tuple[int, str], list[Any]] = {}
    for row in now.itertuples():
        found.setdefault((int(row.target_id), str(row.datname)), []).append(row)
    return found
