"""The replication health part (collectors/postgres/parts.py): replicas, slots and replay delay.

sql/replication.*.sql answers one row: on a server that sends WAL, its replicas and slots (as JSON
arrays); on a replica, its replay delay. Points: each replica's replay lag and WAL not yet replayed
{replica=application_name}, each slot's retained WAL {slot}, the number of replicas and of inactive
slots, and a replica's replay delay. PgHero calls a replica healthy below 5 s of lag.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from collectors.postgres.parts import Part, PartRead
from dashboard.core import metrics
from dashboard.core.health import ReplicationNow
from dashboard.core.health.replication import Replica, Slot
from dashboard.core.records import Point


def read(rows: list[dict[str, Any]], now: int) -> PartRead:
    if not rows:  # the query always answers one row; nothing to say otherwise
        return PartRead([], ReplicationNow(ts=now))
    found = snapshot(rows[0], now)
    return PartRead(points(found), found)


def snapshot(row: dict[str, Any], now: int) -> ReplicationNow:
    """The query's row as ReplicationNow."""
    replicas = row.get("replicas") or []
    names = _replica_names(replicas)
    return ReplicationNow(
        ts=now,
        role="replica" if row["in_recovery"] else "primary",
        replicas=tuple(Replica(name=n, **r) for n, r in zip(names, replicas, strict=True)),
        slots=tuple(Slot(name=s["slot_name"], **s) for s in row.get("slots") or []),
        replay_delay_s=row.get("replay_delay_s"),
        replay_bytes=row.get("replay_bytes"),
        replay_paused=row.get("replay_paused"),
        receiver_status=row.get("receiver_status"),
    )


def _replica_names(replicas: list[dict[str, Any]]) -> list[str]:
    """Each replica's label: its application_name, which is "walreceiver" for every replica that
    sets neither cluster_name nor application_name; those that share one get their address too,
    then a number, so no two replicas' series merge."""
    base = [r.get("application_name") or "(unnamed)" for r in replicas]
    shared = Counter(base)
    named = [
        f"{b} ({r.get('client_addr') or 'local'})" if shared[b] > 1 else b
        for b, r in zip(base, replicas, strict=True)
    ]
    seen: Counter[str] = Counter()
    out = []
    for name in named:
        seen[name] += 1
        out.append(name if seen[name] == 1 and named.count(name) == 1 else f"{name} #{seen[name]}")
    return out


def points(now: ReplicationNow) -> list[Point]:
    found = [
        Point(metrics.PG_REPLICATION_REPLICAS, float(len(now.replicas))),
        Point(metrics.PG_REPLICATION_SLOTS_INACTIVE, float(len(now.inactive_slots))),
    ]
    for replica in now.replicas:
        labels = metrics.encode({"replica": replica.name})
        if replica.lag_s is not None:
            found.append(Point(metrics.PG_REPLICATION_LAG_S, replica.lag_s, labels=labels))
        if replica.replay_bytes is not None:
            found.append(Point(metrics.PG_REPLICATION_LAG_BYTES, replica.replay_bytes, labels=labels))
    for slot in now.slots:
        if slot.retained_bytes is not None:
            labels = metrics.encode({"slot": slot.name})
            found.append(
                Point(metrics.PG_REPLICATION_SLOT_RETAINED_BYTES, slot.retained_bytes, labels=labels)
            )
    if now.role == "replica" and now.replay_delay_s is not None:
        found.append(Point(metrics.PG_REPLICATION_REPLAY_DELAY_S, now.replay_delay_s))
    return found


PART = Part("replication", read)
