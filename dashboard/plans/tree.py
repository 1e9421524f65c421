"""A plan as EXPLAIN (FORMAT JSON) gives it, read into typed nodes with what people look for first:
each node's own share of the time (or of the cost, for an estimated plan) and the hottest path.

Plans come from our own EXPLAIN and from people: a pasted or uploaded plan is untrusted input, so
reading checks its shape and size and says what is wrong instead of failing somewhere later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_BYTES = 5_000_000  # a pasted plan: EXPLAIN of a 1,000-node statement is about 1 MB
MAX_NODES = 10_000
MAX_DEPTH = 200

BUFFERS = {  # EXPLAIN's key -> our short name
    "Shared Hit Blocks": "shared_hit",
    "Shared Read Blocks": "shared_read",
    "Shared Dirtied Blocks": "shared_dirtied",
    "Shared Written Blocks": "shared_written",
    "Local Hit Blocks": "local_hit",
    "Local Read Blocks": "local_read",
    "Temp Read Blocks": "temp_read",
    "Temp Written Blocks": "temp_written",
}


class PlanUnreadable(ValueError):
    """The text or JSON is not a plan EXPLAIN (FORMAT JSON) could have written: the message says why."""


@dataclass(frozen=True, slots=True)
class PlanNode:
    id: int  # position in a depth-first walk: the root is 0, a parent comes before its children
    parent: int | None
    depth: int
    children: tuple[int, ...]
    node_type: str  # 'Seq Scan', 'Hash Join', ...
    label: str  # 'Seq Scan on public.orders o', for people
    relation: str | None  # 'public.orders' (schema known with VERBOSE), else 'orders'
    index: str | None
    startup_cost: float
    total_cost: float  # inclusive of the children, as EXPLAIN gives it
    est_rows: float  # per loop
    width: int
    own_cost: float  # total_cost less the children's: what this node adds
    actual_rows: float | None  # per loop; None for an estimated plan (or a node never executed)
    loops: float | None
    total_ms: float | None  # inclusive, all loops: Actual Total Time x loops
    own_ms: float | None  # total_ms less the children's, never below 0
    buffers: dict[str, int]
    detail: dict[str, Any]  # every other key EXPLAIN gave for this node (no 'Plans')

    @property
    def never_executed(self) -> bool:
        return self.loops == 0

    @property
    def rows_total(self) -> float | None:
        """Rows over all loops (actual), as the node handed them up."""
        if self.actual_rows is None or self.loops is None:
            return None
        return self.actual_rows * self.loops

    @property
    def misestimate(self) -> float | None:
        """How many times the estimate was off (>= 1), per loop; None when not executed."""
        if self.actual_rows is None or not self.loops:
            return None
        est, act = max(self.est_rows, 1.0), max(self.actual_rows, 1.0)
        return max(est, act) / min(est, act)


@dataclass(frozen=True)
class Plan:
    nodes: list[PlanNode]
    analyzed: bool  # run with ANALYZE: actual rows and times
    planning_ms: float | None = None
    execution_ms: float | None = None
    jit: dict[str, Any] | None = None
    settings: dict[str, str] = field(default_factory=dict)  # what EXPLAIN (SETTINGS) reports changed
    triggers: list[dict[str, Any]] = field(default_factory=list)
    raw: list[dict[str, Any]] = field(default_factory=list, repr=False)  # as EXPLAIN gave it

    @property
    def root(self) -> PlanNode:
        return self.nodes[0]

    @property
    def total_cost(self) -> float:
        return self.root.total_cost

    @property
    def measure(self) -> str:
        """What shares are of: 'ms' for an executed plan, 'cost' for an estimate."""
        return "ms" if self.analyzed else "cost"

    def own(self, node: PlanNode) -> float:
        """The node's own time (executed) or cost (estimated)."""
        return (node.own_ms or 0.0) if self.analyzed else node.own_cost

    def inclusive(self, node: PlanNode) -> float:
        return (node.total_ms or 0.0) if self.analyzed else node.total_cost

    def share(self, node: PlanNode) -> float:
        """The node's own part of the whole plan's time or cost, 0-1."""
        whole = sum(self.own(n) for n in self.nodes)
        return self.own(node) / whole if whole > 0 else 0.0

    def hottest_path(self) -> list[int]:
        """From the root, the child holding the most time (or cost) each step down: where to look."""
        path = [0]
        while self.nodes[path[-1]].children:
            children = [self.nodes[c] for c in self.nodes[path[-1]].children]
            path.append(max(children, key=self.inclusive).id)
        return path

    def hottest(self) -> PlanNode:
        """The node with the largest own time (or cost)."""
        return max(self.nodes, key=self.own)

    def to_json(self) -> str:
        """The plan as EXPLAIN wrote it: loads back with read_plan()."""
        return json.dumps(self.raw, indent=2)


def read_plan(source: str | bytes | list | dict) -> Plan:
    """A plan from EXPLAIN (FORMAT JSON) output: its text, or the parsed list, or one `{"Plan": ...}`
    object, or a bare top node. Raises PlanUnreadable with the reason."""
    data = _parsed(source)
    if isinstance(data, list):
        if len(data) != 1:
            raise PlanUnreadable(f"{len(data)} plans in one document: give one at a time")
        data = data[0]
    if not isinstance(data, dict):
        raise PlanUnreadable("not a plan: EXPLAIN (FORMAT JSON) writes a list holding one object")
    top = data if "Plan" in data else {"Plan": data}
    if not isinstance(top["Plan"], dict) or "Node Type" not in top["Plan"]:
        raise PlanUnreadable('not a plan: its "Plan" has no "Node Type"')
    nodes = _walk(top["Plan"])
    analyzed = any(n.loops is not None for n in nodes)
    return Plan(
        nodes=nodes,
        analyzed=analyzed,
        planning_ms=_number(top, "Planning Time", None),
        execution_ms=_number(top, "Execution Time", None),
        jit=top["JIT"] if isinstance(top.get("JIT"), dict) else None,
        settings={str(k): str(v) for k, v in top.get("Settings", {}).items()}
        if isinstance(top.get("Settings"), dict)
        else {},
        triggers=[t for t in top.get("Triggers", []) if isinstance(t, dict)]
        if isinstance(top.get("Triggers"), list)
        else [],
        raw=[top],
    )


def _parsed(source: str | bytes | list | dict) -> Any:
    if isinstance(source, list | dict):
        return source
    if isinstance(source, bytes):
        if len(source) > MAX_BYTES:
            raise PlanUnreadable(f"{len(source):,} bytes: plans up to {MAX_BYTES:,} bytes are read")
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError:
            raise PlanUnreadable("not UTF-8 text: save the plan as EXPLAIN (FORMAT JSON) prints it") from None
    if len(source) > MAX_BYTES:
        raise PlanUnreadable(f"{len(source):,} characters: plans up to {MAX_BYTES:,} are read")
    text = source.strip()
    if not text:
        raise PlanUnreadable("empty: paste the output of EXPLAIN (FORMAT JSON)")
    if not text.startswith(("[", "{")):
        raise PlanUnreadable(
            "not JSON: this reads the output of EXPLAIN (FORMAT JSON, ...); the text format is not read"
        )
    try:
        return json.loads(text)
    except RecursionError:
        raise PlanUnreadable(f"nested too deeply (at most {MAX_DEPTH} levels)") from None
    except ValueError as err:
        raise PlanUnreadable(f"not valid JSON: {err}") from None


def _walk(top: dict) -> list[PlanNode]:
    """Nodes depth-first, iteratively (no Python recursion on input), with own cost and time."""
    order: list[tuple[dict, int | None, int, float]] = []  # (node, parent id, depth, processes)
    stack: list[tuple[dict, int | None, int, float]] = [(top, None, 0, 1.0)]
    while stack:
        node, parent, depth, processes = stack.pop()
        if not isinstance(node, dict) or not isinstance(node.get("Node Type"), str):
            raise PlanUnreadable(f'a node at depth {depth} is not a plan node (no "Node Type")')
        if depth > MAX_DEPTH:
            raise PlanUnreadable(f"nested over {MAX_DEPTH} nodes deep")
        order.append((node, parent, depth, processes))
        if len(order) > MAX_NODES:
            raise PlanUnreadable(f"over {MAX_NODES:,} nodes: too large to show")
        subplans = node.get("Plans", [])
        if not isinstance(subplans, list):
            raise PlanUnreadable(f'"Plans" of a {node["Node Type"]} node is not a list')
        if node["Node Type"] in ("Gather", "Gather Merge"):  # below it, workers and the leader
            processes = _number(node, "Workers Launched", 0.0) + 1.0
        me = len(order) - 1
        stack.extend((child, me, depth + 1, processes) for child in reversed(subplans))
    children: dict[int, list[int]] = {i: [] for i in range(len(order))}
    for i, (_, parent, _, _) in enumerate(order):
        if parent is not None:
            children[parent].append(i)
    total_ms = [_inclusive_ms(raw, processes) for raw, _, _, processes in order]
    return [
        _node(i, raw, parent, depth, children[i], [order[c][0] for c in children[i]], total_ms)
        for i, (raw, parent, depth, _) in enumerate(order)
    ]


def _node(
    i: int, raw: dict, parent: int | None, depth: int, kids: list[int], kid_nodes: list[dict], total_ms: list
) -> PlanNode:
    cost = _number(raw, "Total Cost", 0.0)
    inside = [k for k, node in zip(kids, kid_nodes, strict=True) if _counts_inside(node)]
    own_ms = None
    if total_ms[i] is not None:
        own_ms = max(total_ms[i] - sum(total_ms[k] or 0.0 for k in inside), 0.0)
    kids_cost = sum(_number(node, "Total Cost", 0.0) for node in kid_nodes if _counts_inside(node))
    return PlanNode(
        id=i,
        parent=parent,
        depth=depth,
        children=tuple(kids),
        node_type=raw["Node Type"],
        label=_label(raw),
        relation=_relation(raw),
        index=_text(raw, "Index Name"),
        startup_cost=_number(raw, "Startup Cost", 0.0),
        total_cost=cost,
        est_rows=_number(raw, "Plan Rows", 0.0),
        width=int(_number(raw, "Plan Width", 0.0)),
        own_cost=max(cost - kids_cost, 0.0),
        actual_rows=_number(raw, "Actual Rows", None),
        loops=_number(raw, "Actual Loops", None),
        total_ms=total_ms[i],
        own_ms=own_ms,
        buffers={short: int(_number(raw, key, 0.0)) for key, short in BUFFERS.items() if key in raw},
        detail={k: v for k, v in raw.items() if k != "Plans"},
    )


def _counts_inside(child: dict) -> bool:
    """An InitPlan runs once before its parent starts: its time is not inside the parent's. Every
    other child's (SubPlans included) is."""
    return child.get("Parent Relationship") != "InitPlan"


def _inclusive_ms(raw: dict, processes: float) -> float | None:
    """Wall time over all loops. Under a Gather each process (the workers and the leader) runs the
    node, and EXPLAIN averages its time over them: loops per process, not loops, repeat it."""
    per_loop = _number(raw, "Actual Total Time", None)
    loops = _number(raw, "Actual Loops", None)
    if per_loop is None or loops is None:
        return None
    return per_loop * max(loops / processes, 1.0 if loops else 0.0)


# The largest figure EXPLAIN writes, by key: a plan's estimates grow with the product of the joined
# tables' rows (a cross join of 4 tables of 100,000 rows: 1e20 rows, cost 1.3e18) up to PostgreSQL's
# clamp of row estimates at 1e100, costs past it; what a run measures (rows, loops, ms, blocks) stays
# far below 1e15 (1e15 ms is 31,000 years). Past these a figure is no plan's, and sums of 10,000 of
# them stay finite.
_ESTIMATE_MAX = {"Startup Cost": 1e300, "Total Cost": 1e300, "Plan Rows": 1e100}
_MEASURED_MAX = 1e15


def _number(raw: dict, key: str, default: float | None) -> Any:
    """A figure of the node: a finite number from 0 to its bound (EXPLAIN writes no other), else the
    default when absent or null; anything else says the plan is not one EXPLAIN wrote."""
    value = raw.get(key)
    if value is None:
        return default
    most = _ESTIMATE_MAX.get(key, _MEASURED_MAX)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= most:
        node = raw.get("Node Type", "plan")
        bound = f"{most:.0e}".replace("e+", "e")
        raise PlanUnreadable(f'"{key}" of a {node} node is not a number between 0 and {bound}: {value!r:.40}')
    return float(value)


def _text(raw: dict, key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _relation(raw: dict) -> str | None:
    name = _text(raw, "Relation Name")
    if name is None:
        return None
    schema = _text(raw, "Schema")
    return f"{schema}.{name}" if schema else name


def _label(raw: dict) -> str:
    """What EXPLAIN's text form puts on the node's line."""
    kind = raw["Node Type"]
    words = [kind]
    if raw.get("Parallel Aware") is True:
        words.insert(0, "Parallel")
    join = _text(raw, "Join Type")
    if join not in (None, "Inner") and kind in ("Hash Join", "Merge Join", "Nested Loop"):
        words = [f"{kind.removesuffix(' Join')} {join} Join"]  # 'Hash Left Join', 'Nested Loop Anti Join'
    if (index := _text(raw, "Index Name")) is not None:
        words.append(f"using {index}")
    if (relation := _relation(raw)) is not None:
        alias = _text(raw, "Alias")
        words.append(f"on {relation}" + (f" {alias}" if alias and alias != raw.get("Relation Name") else ""))
    elif (name := _text(raw, "CTE Name")) is not None:
        words.append(f"on {name}")
    elif (fn := _text(raw, "Function Name")) is not None:
        words.append(f"on {fn}")
    if (strategy := _text(raw, "Strategy")) is not None and kind == "Aggregate":
        words[0] = {"Hashed": "HashAggregate", "Sorted": "GroupAggregate", "Mixed": "MixedAggregate"}.get(
            strategy, kind
        )
    return " ".join(words)
