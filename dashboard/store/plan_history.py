"""Each statement's plan over time: one row per plan shape, so a plan that flipped shows as two rows.

The daemon's advisor job plans every workload statement hourly (without hypothetical indexes) and
writes the plans here (through `Store.write_plans`); Investigate reads a statement's versions. A
statement is named by the sha256 of its text as the collector stores it (`statements.query`), so
its history holds however many users, nesting levels or queryids recorded the same text.

A plan's shape is what the planner chose -- node types, strategies, relations, indexes, join types
and how the nodes nest -- not its estimates: a new shape is a new row, the same shape again only
moves the latest row's last_seen, cost and plan (the latest estimates of that shape).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, bindparam, select, update

from dashboard.store.schema import statement_plans

# What a node's shape is made of: keys EXPLAIN (FORMAT JSON) gives that name a choice the planner
# made, never a figure (costs, rows, widths, workers) nor an expression's text.
SHAPE_KEYS = (
    "Node Type",
    "Strategy",  # Aggregate: Plain, Sorted, Hashed, Mixed; SetOp
    "Partial Mode",
    "Parallel Aware",  # Parallel Seq Scan, Parallel Hash Join
    "Operation",
    "Join Type",
    "Parent Relationship",  # Outer, Inner, InitPlan, SubPlan: which side of a join
    "Scan Direction",
    "Schema",
    "Relation Name",
    "Index Name",
    "CTE Name",
    "Function Name",
)


class StoredPlan(NamedTuple):
    """One shape of a statement's plan: when the advisor first and last planned it so, the latest cost."""

    first_seen: int
    last_seen: int
    cost: float
    shape_hash: str
    plan_json: str  # EXPLAIN's JSON


def text_hash(text: str) -> str:
    """A statement's name in statement_plans: sha256 hex of its text."""
    # surrogatepass: a text read from a server may hold a lone surrogate; it still gets a name
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def shape_hash(tree: Any) -> str:
    """sha256 hex of the plan's shape (SHAPE_KEYS of each node, nested as the nodes are), from
    EXPLAIN's JSON as the server gives it: a list holding {"Plan": root}."""
    canonical = json.dumps(_shape(tree[0]["Plan"]), separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _shape(node: Mapping[str, Any]) -> list[Any]:
    own = [[key, node[key]] for key in SHAPE_KEYS if key in node]
    return [own, [_shape(child) for child in node.get("Plans", ())]]


def record(conn: Connection, target_id: int, datname: str, now: int, plans: Mapping[str, Any]) -> int:
    """Keep the plans (statement text -> EXPLAIN's JSON) of one database: a statement whose latest
    row has the same shape moves that row on to `now`; any other gets a new row. Returns how many
    rows were added (first plans and changed shapes)."""
    found = {text_hash(text): tree for text, tree in plans.items()}
    latest = _latest(conn, target_id, datname, list(found))
    added: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    for hashed, tree in found.items():
        shape, cost, plan = shape_hash(tree), float(tree[0]["Plan"]["Total Cost"]), json.dumps(tree)
        row = latest.get(hashed)
        if row is not None and row.shape_hash == shape:
            moved.append({"pid": row.id, "seen": now, "new_cost": cost, "new_plan": plan})
        else:
            added.append({"target_id": target_id, "datname": datname, "text_hash": hashed,
                          "shape_hash": shape, "first_seen": now, "last_seen": now, "cost": cost,
                          "plan": plan})  # fmt: skip
    if moved:
        conn.execute(
            update(statement_plans)
            .where(statement_plans.c.id == bindparam("pid"))
            .values(last_seen=bindparam("seen"), cost=bindparam("new_cost"), plan=bindparam("new_plan")),
            moved,
        )
    if added:
        conn.execute(statement_plans.insert(), added)
    return len(added)


def _latest(conn: Connection, target_id: int, datname: str, hashes: list[str]) -> dict[str, Any]:
    """The latest row (id, text_hash, shape_hash) of each statement named, by text hash."""
    if not hashes:
        return {}
    c = statement_plans.c
    query = (
        select(c.id, c.text_hash, c.shape_hash)
        .where(c.target_id == target_id, c.datname == datname, c.text_hash.in_(hashes))
        .order_by(c.last_seen, c.id)
    )
    return {row.text_hash: row for row in conn.execute(query)}  # the latest comes last and stays


def plan_history(engine: Engine, target_id: int, datname: str, text: str) -> list[StoredPlan]:
    """Every stored shape of the statement's plan in one database of a target, newest first."""
    c = statement_plans.c
    query = (
        select(c.first_seen, c.last_seen, c.cost, c.shape_hash, c.plan.label("plan_json"))
        .where(c.target_id == int(target_id), c.datname == datname, c.text_hash == text_hash(text))
        .order_by(c.last_seen.desc(), c.id.desc())
    )
    with engine.connect() as conn:
        return [StoredPlan(**row) for row in conn.execute(query).mappings()]
