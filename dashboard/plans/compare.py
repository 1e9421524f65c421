"""Two plans side by side: what the cost and time did, and which nodes changed.

The two plans are of one statement (before and after a hypothetical index, two dates, two servers),
so their trees may differ in shape: an index replaces a Seq Scan and its Sort, a Hash Join becomes a
Nested Loop. Nodes are matched in four steps, each leaving the rest to the next:

1. anchors: a scan of the same relation (or CTE, function) under the same alias is the same place,
   whatever the scan type became; repeats pair in tree order;
2. bottom-up: an unmatched node takes the nearest unmatched ancestor, in the other tree, of the
   partners of its matched descendants, first of the same node type, then of the same family
   (a join for a join, a scan for a scan ...);
3. the two roots, when both are still unmatched: the top of the statement is the same place;
4. top-down: the unmatched children of a matched pair pair in order by type, then by family.

What is left over was added or removed. All of it is deterministic and about linear in the nodes
(times the length of the unmatched chains walked up, which plans keep short). Text is plain.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dashboard.plans.tree import Plan, PlanNode

# Below these, a difference is noise rather than a change worth a line.
COST_RATIO = 1.1  # own cost
COST_MIN = 1.0
ROWS_RATIO = 2.0  # rows and loops: estimates are only trusted to a factor
TIME_RATIO = 2.0  # own time: two runs of one plan easily differ by tens of per cent
TIME_MIN_MS = 1.0
SUMMARY_PHRASES = 3

FAMILIES = {
    **dict.fromkeys(("Hash Join", "Merge Join", "Nested Loop"), "join"),
    **dict.fromkeys(
        (
            "Seq Scan",
            "Index Scan",
            "Index Only Scan",
            "Bitmap Heap Scan",
            "Tid Scan",
            "Tid Range Scan",
            "Sample Scan",
            "Foreign Scan",
            "Custom Scan",
        ),
        "scan",
    ),
    **dict.fromkeys(("Gather", "Gather Merge"), "gather"),
    **dict.fromkeys(("Append", "Merge Append"), "append"),
    **dict.fromkeys(("Sort", "Incremental Sort"), "sort"),
    **dict.fromkeys(("Materialize", "Memoize"), "cache"),
    **dict.fromkeys(("BitmapAnd", "BitmapOr", "Bitmap Index Scan"), "bitmap"),
    **dict.fromkeys(("Aggregate", "Group"), "aggregate"),
}
NAMED_BY = ("Relation Name", "CTE Name", "Function Name", "Table Function Name")


@dataclass(frozen=True)
class NodeChange:
    kind: str  # 'same' | 'changed' | 'added' (only in b) | 'removed' (only in a)
    a: PlanNode | None
    b: PlanNode | None
    reasons: tuple[str, ...] = ()  # for 'changed': 'Seq Scan -> Index Scan using x', 'rows 12 -> 40,000'

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    @property
    def label(self) -> str:
        node = self.b if self.b is not None else self.a
        return node.label if node is not None else ""


@dataclass(frozen=True)
class Comparison:
    a: Plan = field(repr=False)
    b: Plan = field(repr=False)
    cost_a: float
    cost_b: float
    execution_ms_a: float | None  # None for an estimated plan
    execution_ms_b: float | None
    planning_ms_a: float | None
    planning_ms_b: float | None
    timed: bool  # both plans executed: times compared as well as costs
    nodes: list[NodeChange]  # every node of both plans once, in a's tree order, b's additions in place
    summary: str  # one line, in words

    @property
    def changed(self) -> list[NodeChange]:
        return [n for n in self.nodes if n.kind != "same"]

    @property
    def cost_change(self) -> float | None:
        """b's total cost relative to a's (-0.95: 95 % less); None when a's is 0."""
        return self.cost_b / self.cost_a - 1.0 if self.cost_a > 0 else None


def compare(a: Plan, b: Plan) -> Comparison:
    """Plan a (before) against plan b (after): totals, matched nodes and a summary."""
    timed = a.analyzed and b.analyzed
    pairs = _match(a, b)
    nodes = _changes(a, b, pairs, timed)
    return Comparison(
        a=a,
        b=b,
        cost_a=a.total_cost,
        cost_b=b.total_cost,
        execution_ms_a=_execution_ms(a),
        execution_ms_b=_execution_ms(b),
        planning_ms_a=a.planning_ms,
        planning_ms_b=b.planning_ms,
        timed=timed,
        nodes=nodes,
        summary=_summary(a, b, nodes, timed),
    )


def _execution_ms(plan: Plan) -> float | None:
    """EXPLAIN's Execution Time, else the root's time (a plan pasted without its summary)."""
    if not plan.analyzed:
        return None
    return plan.execution_ms if plan.execution_ms is not None else plan.root.total_ms


# Matching ------------------------------------------------------------------------------------------


class _Matching:
    """The pairs found so far, both ways."""

    def __init__(self) -> None:
        self.ab: dict[int, int] = {}
        self.ba: dict[int, int] = {}

    def pair(self, x: int, y: int) -> None:
        self.ab[x] = y
        self.ba[y] = x


def _match(a: Plan, b: Plan) -> _Matching:
    m = _Matching()
    _match_anchors(a, b, m)
    for same in (_same_type, _same_family):
        _match_bottom_up(a, b, m, same)
    if 0 not in m.ab and 0 not in m.ba:
        m.pair(0, 0)
    _match_top_down(a, b, m)
    return m


def _family(node: PlanNode) -> str:
    return FAMILIES.get(node.node_type, node.node_type)


def _same_type(x: PlanNode, y: PlanNode) -> bool:
    return x.node_type == y.node_type


def _same_family(x: PlanNode, y: PlanNode) -> bool:
    return _family(x) == _family(y)


def _anchor(node: PlanNode) -> tuple[str, str, str] | None:
    """What a scan reads and under which alias; the schema is left out so that a plan with
    VERBOSE matches one without. A ModifyTable names its table too, but is not a scan of it."""
    name = next((v for k in NAMED_BY if isinstance(v := node.detail.get(k), str)), "")
    alias = node.detail.get("Alias")
    alias = alias if isinstance(alias, str) else ""
    if not name and not alias:
        return None
    return ("modify" if node.node_type == "ModifyTable" else "scan", name, alias)


def _match_anchors(a: Plan, b: Plan, m: _Matching) -> None:
    in_b: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for node in b.nodes:
        if (key := _anchor(node)) is not None:
            in_b[key].append(node.id)
    taken: dict[tuple[str, str, str], int] = defaultdict(int)
    for node in a.nodes:
        key = _anchor(node)
        if key is None or taken[key] >= len(in_b.get(key, ())):
            continue
        m.pair(node.id, in_b[key][taken[key]])
        taken[key] += 1


def _post_order(plan: Plan) -> list[int]:
    order, stack = [], [(0, False)]
    while stack:
        i, done = stack.pop()
        if done:
            order.append(i)
            continue
        stack.append((i, True))
        stack.extend((c, False) for c in reversed(plan.nodes[i].children))
    return order


def _match_bottom_up(a: Plan, b: Plan, m: _Matching, same: Callable[[PlanNode, PlanNode], bool]) -> None:
    """Each unmatched node of a, children first, takes the unmatched ancestor in b that holds the
    most of the partners of its nearest matched descendants (the nearest of those on a tie)."""
    frontier: dict[int, list[int]] = {}  # a's nearest matched descendants, through unmatched nodes
    for x in _post_order(a):
        below = []
        for c in a.nodes[x].children:
            below.extend([c] if c in m.ab else frontier.pop(c, []))
        frontier[x] = below
        if x in m.ab or not below:
            continue
        y = _best_ancestor(a.nodes[x], b, m, below, same)
        if y is not None:
            m.pair(x, y)


def _best_ancestor(
    x: PlanNode, b: Plan, m: _Matching, below: list[int], same: Callable[[PlanNode, PlanNode], bool]
) -> int | None:
    votes: dict[int, int] = defaultdict(int)
    distance: dict[int, int] = {}
    for d in below:
        y, steps = b.nodes[m.ab[d]].parent, 1
        while y is not None and y not in m.ba:  # a matched node stands for everything above it
            if same(x, b.nodes[y]):
                votes[y] += 1
                distance[y] = min(distance.get(y, steps), steps)
            y, steps = b.nodes[y].parent, steps + 1
    if not votes:
        return None
    return min(votes, key=lambda y: (-votes[y], distance[y], y))


def _match_top_down(a: Plan, b: Plan, m: _Matching) -> None:
    """Children of matched pairs, in order, by type and then by family; pairs made here are
    visited in turn, since a child's id is above its parent's."""
    for x in range(len(a.nodes)):
        if x not in m.ab:
            continue
        y = m.ab[x]
        for key in (lambda n: n.node_type, _family):
            left = [a.nodes[c] for c in a.nodes[x].children if c not in m.ab]
            right = [b.nodes[c] for c in b.nodes[y].children if c not in m.ba]
            for p, q in _in_order(left, right, key):
                m.pair(p, q)


def _in_order(
    left: list[PlanNode], right: list[PlanNode], key: Callable[[PlanNode], str]
) -> Iterable[tuple[int, int]]:
    """The i-th node of each key on the left with the i-th of that key on the right."""
    groups: dict[str, list[int]] = defaultdict(list)
    for node in right:
        groups[key(node)].append(node.id)
    seen: dict[str, int] = defaultdict(int)
    for node in left:
        k = key(node)
        if seen[k] < len(groups.get(k, ())):
            yield node.id, groups[k][seen[k]]
            seen[k] += 1


# Differences ---------------------------------------------------------------------------------------


def _changes(a: Plan, b: Plan, m: _Matching, timed: bool) -> list[NodeChange]:
    """Every node once: a's in tree order, each of b's additions after the entry of the b node
    before it in b's tree order."""
    out: list[tuple[tuple[int, int, int], NodeChange]] = []
    place: dict[int, int] = {}  # b id -> position of its entry among a's
    for x in a.nodes:
        if x.id in m.ab:
            y = b.nodes[m.ab[x.id]]
            reasons = _reasons(a, b, x, y, timed)
            place[y.id] = x.id
            out.append(((x.id, 0, 0), NodeChange("changed" if reasons else "same", x, y, reasons)))
        else:
            out.append(((x.id, 0, 0), NodeChange("removed", x, None)))
    after = -1
    for y in b.nodes:
        if y.id in place:
            after = place[y.id]
        else:
            out.append(((after, 1, y.id), NodeChange("added", None, y)))
    return [change for _, change in sorted(out, key=lambda item: item[0])]


def _reasons(a: Plan, b: Plan, x: PlanNode, y: PlanNode, timed: bool) -> tuple[str, ...]:
    reasons = []
    if (was := _kind(a, x)) != (now := _kind(b, y)):
        reasons.append(f"{was} -> {now}")
    if _reads(x) != _reads(y):  # matched by position, not by what they read
        reasons.append(f"{_place(x).strip() or 'no relation'} -> {_place(y).strip() or 'no relation'}")
    if timed:
        reasons += _timed_reasons(x, y)
    elif _apart(x.est_rows, y.est_rows, ROWS_RATIO, 0.0):
        reasons.append(f"rows {_num(x.est_rows)} -> {_num(y.est_rows)}")
    if _apart(x.own_cost, y.own_cost, COST_RATIO, COST_MIN):
        reasons.append(f"own cost {_num(x.own_cost)} -> {_num(y.own_cost)}")
    if x.detail.get("Workers Planned") != y.detail.get("Workers Planned"):
        reasons.append(f"workers planned {_shown(x, 'Workers Planned')} -> {_shown(y, 'Workers Planned')}")
    return tuple(reasons)


def _timed_reasons(x: PlanNode, y: PlanNode) -> list[str]:
    reasons = []
    if x.never_executed != y.never_executed:
        reasons.append("executed -> never executed" if y.never_executed else "never executed -> executed")
    if _apart(x.rows_total or 0.0, y.rows_total or 0.0, ROWS_RATIO, 0.0):
        reasons.append(f"rows {_num(x.rows_total or 0.0)} -> {_num(y.rows_total or 0.0)}")
    if _apart(x.loops or 0.0, y.loops or 0.0, ROWS_RATIO, 0.0):
        reasons.append(f"loops {_num(x.loops or 0.0)} -> {_num(y.loops or 0.0)}")
    if _apart(x.own_ms or 0.0, y.own_ms or 0.0, TIME_RATIO, TIME_MIN_MS):
        reasons.append(f"own time {_num(x.own_ms or 0.0)} -> {_num(y.own_ms or 0.0)} ms")
    if (was := _sort_method(x)) != (now := _sort_method(y)):
        reasons.append(f"sort {was} -> {now}")
    for key, name in (("Hash Batches", "batches"), ("Workers Launched", "workers launched")):
        if x.detail.get(key) != y.detail.get(key):
            reasons.append(f"{name} {_shown(x, key)} -> {_shown(y, key)}")
    return reasons


def _apart(was: float, now: float, ratio: float, minimum: float) -> bool:
    """Differ by the ratio (below 1 counted as 1, so 0 -> 1 is no change) and by the minimum."""
    if abs(now - was) < max(minimum, 1e-9):
        return False
    low, high = sorted((max(was, 1.0), max(now, 1.0)))
    return high / low >= ratio


def _sort_method(node: PlanNode) -> str | None:
    method = node.detail.get("Sort Method")
    if method is None:
        return None
    space = node.detail.get("Sort Space Type")
    return f"{method} ({space})" if space is not None else str(method)


def _shown(node: PlanNode, key: str) -> str:
    value = node.detail.get(key)
    return "none" if value is None else str(value)


def _reads(node: PlanNode) -> tuple[str, str] | None:
    """What the node reads and as what, schema left out (so VERBOSE or not does not matter)."""
    found = _anchor(node)
    return found[1:] if found is not None else None


def _place(node: PlanNode) -> str:
    """' on public.orders o' in the label: what the node reads, under which alias."""
    name = node.relation or next((v for k in NAMED_BY[1:] if isinstance(v := node.detail.get(k), str)), None)
    if name is None:
        return ""
    at = node.label.rfind(f" on {name}")
    return node.label[at:] if at >= 0 else ""


def _kind(plan: Plan, node: PlanNode) -> str:
    """The label without what it reads, with an aggregate's partial mode; a Bitmap Heap Scan names
    the indexes its bitmap comes from, so that one index against another shows."""
    place = _place(node)
    kind = node.label[: len(node.label) - len(place)] if place else node.label
    if node.detail.get("Partial Mode") in ("Partial", "Finalize"):  # as EXPLAIN's text shows it
        kind = f"{node.detail['Partial Mode']} {kind}"
    if node.node_type == "Bitmap Heap Scan":
        indexes = _bitmap_indexes(plan, node)
        if indexes:
            kind += " using " + ", ".join(indexes)
    return kind


def _bitmap_indexes(plan: Plan, node: PlanNode) -> list[str]:
    found, stack = [], list(reversed(node.children))
    while stack:
        child = plan.nodes[stack.pop()]
        if child.node_type == "Bitmap Index Scan" and child.index is not None:
            found.append(child.index)
        elif child.node_type in ("BitmapAnd", "BitmapOr"):
            stack.extend(reversed(child.children))
    return found


# Summary -------------------------------------------------------------------------------------------


def _summary(a: Plan, b: Plan, nodes: list[NodeChange], timed: bool) -> str:
    if timed:
        figures = f"Execution {_from_to(_execution_ms(a), _execution_ms(b), ' ms')}, total cost "
    else:
        figures = "Total cost "
    note = ""
    if a.analyzed != b.analyzed:
        note = f"cost only, as the {'second' if a.analyzed else 'first'} plan is an estimate"
    figures += _from_to(a.total_cost, b.total_cost, note=note)
    return f"{figures}: {_what_changed(a, b, nodes, timed)}"


def _from_to(was: float | None, now: float | None, unit: str = "", note: str = "") -> str:
    """'12,180 -> 604 (-95 %)', '604 (unchanged)', with the note inside the brackets."""
    if was is None or now is None:
        return "unknown"
    if _num(was) == _num(now):
        return f"{_num(was)}{unit} ({'; '.join(['unchanged', note] if note else ['unchanged'])})"
    brackets = [f"{(now / was - 1.0) * 100:+,.0f} %"] if was > 0 else []
    brackets += [note] if note else []
    inside = f" ({'; '.join(brackets)})" if brackets else ""
    return f"{_num(was)}{unit} -> {_num(now)}{unit}{inside}"


def _what_changed(a: Plan, b: Plan, nodes: list[NodeChange], timed: bool) -> str:
    """The changes of shape, largest first; else the largest change of figures."""
    matched = {(n.a.id, n.b.id) for n in nodes if n.a is not None and n.b is not None}
    kept = ({x for x, _ in matched}, {y for _, y in matched})
    shape = [
        n
        for n in nodes
        if (n.kind in ("added", "removed") and not _under_kept_heap(a, b, n, kept)) or _kind_changed(a, b, n)
    ]
    if shape:
        shape.sort(key=lambda n: -_weight(n, timed))  # stable: tree order on a tie
        words = [_phrase(a, b, n) for n in shape[:SUMMARY_PHRASES]]
        if len(shape) > SUMMARY_PHRASES:
            more = len(shape) - SUMMARY_PHRASES
            words.append(f"and {more} more change{'s' if more > 1 else ''}")
        return "; ".join(words)
    figures = sorted((n for n in nodes if n.kind == "changed"), key=lambda n: -_weight(n, timed))
    if not figures:
        return "the same plan"
    rest = len(figures) - 1
    more = f"; {rest} more node{'s' if rest > 1 else ''} changed" if rest else ""
    return f"the same plan shape; {figures[0].label}: {figures[0].reason}{more}"


def _kind_changed(a: Plan, b: Plan, n: NodeChange) -> bool:
    return n.kind == "changed" and n.a is not None and n.b is not None and _kind(a, n.a) != _kind(b, n.b)


def _under_kept_heap(a: Plan, b: Plan, n: NodeChange, kept: tuple[set[int], set[int]]) -> bool:
    """A bitmap node added or removed under a Bitmap Heap Scan that has a partner: the heap scan's
    change already names the indexes, so the summary leaves the bitmap nodes out."""
    node = n.a if n.a is not None else n.b
    if node is None or _family(node) != "bitmap":
        return False
    plan, ids = (a, kept[0]) if n.a is not None else (b, kept[1])
    while node.parent is not None and _family(node) == "bitmap":
        node = plan.nodes[node.parent]
    return node.node_type == "Bitmap Heap Scan" and node.id in ids


def _weight(n: NodeChange, timed: bool) -> float:
    """How much of the plan the change is about: the own time (or cost) on either side."""

    def own(node: PlanNode | None) -> float:
        if node is None:
            return 0.0
        return (node.own_ms or 0.0) if timed else node.own_cost

    return max(own(n.a), own(n.b))


def _phrase(a: Plan, b: Plan, n: NodeChange) -> str:
    if n.a is None:
        return f"{_kind(b, n.b)}{_place(n.b)} added"
    if n.b is None:
        return f"{_kind(a, n.a)}{_place(n.a)} removed"
    where = "" if _reads(n.a) == _reads(n.b) else _place(n.b)
    return f"{_kind(a, n.a)}{_place(n.a)} became {_kind(b, n.b)}{where}"


def _num(value: float) -> str:
    """12,180 / 604 / 8.3 / 0.42: thousands separated, three significant digits below 100."""
    if 0 < abs(value) < 0.001:
        return "<0.001" if value > 0 else "-<0.001"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
