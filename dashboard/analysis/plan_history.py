"""A recorded statement's plan over time, as the daemon's advisor kept it: which plan it had when,
and where the plan changed shape (a plan flip: a classic cause of "it got slower").

The advisor plans each workload statement hourly, without hypothetical indexes, and the store keeps
one row per shape (dashboard.store.plan_history). Here those rows become typed plans for
Investigate's "this statement's plan on date A against date B" (dashboard.plans.compare). No
Streamlit here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dashboard.analysis import statements
from dashboard.analysis.reader import Reader
from dashboard.plans.tree import Plan, PlanUnreadable, read_plan
from dashboard.store.plan_history import StoredPlan


@dataclass(frozen=True)
class Version:
    """One shape of the statement's plan, from when the advisor first planned it so to when last."""

    first_seen: int
    last_seen: int
    cost: float  # the planner's estimate, at last_seen
    plan: Plan | None  # None when the stored plan cannot be read (`unreadable` says why)
    changed: bool  # its shape differs from the version before it (False for the oldest kept)
    shape_hash: str = field(repr=False)
    unreadable: str | None = None


def history(reader: Reader, statement_id: int) -> list[Version]:
    """The stored statement's plan versions in its database, newest first; none for a statement
    without text or database, or one the advisor never planned (too small to matter, refused...)."""
    info = statements.statement(reader, statement_id)
    if info is None or not info.query or info.datname is None:
        return []
    return versions(reader.plan_history(info.target_id, info.datname, info.query))


def versions(stored: Sequence[StoredPlan]) -> list[Version]:
    """Stored rows (newest first) as versions, each marked changed against the older one after it."""
    found = []
    for i, row in enumerate(stored):
        older = stored[i + 1] if i + 1 < len(stored) else None
        plan, problem = _read(row.plan_json)
        changed = older is not None and older.shape_hash != row.shape_hash
        found.append(Version(row.first_seen, row.last_seen, row.cost, plan, changed, row.shape_hash, problem))
    return found


def version_at(found: Sequence[Version], ts: int) -> Version | None:
    """The version in effect at `ts`: the newest first seen by then (None before the first)."""
    return next((v for v in found if v.first_seen <= ts), None)


def _read(text: str) -> tuple[Plan | None, str | None]:
    try:
        return read_plan(text), None
    except PlanUnreadable as err:
        return None, str(err)
