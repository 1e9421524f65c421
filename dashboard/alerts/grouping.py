"""Alertmanager's aggregation groups and notification log, for one receiver, as plain JSON.

Alerts with the same values of the `group_by` labels form a group, notified together:

- a new group is first notified `group_wait` after it appeared;
- a group that changed since its last notification (an alert fires that the receiver was not told
  of, a notified alert resolved, or the last notification was not delivered) is notified again no
  sooner than `group_interval` after it;
- an unchanged group that still fires is notified again every `repeat_interval`;
- a resolved alert is sent once (with its endsAt), and only if the receiver had been told it fired
  (Alertmanager's rule: a receiver is not told about alerts that fired and resolved unseen);
- a group with nothing firing and nothing left to send is forgotten (an alert it was told of that
  fires on, muted, keeps it: the resolution is still owed).

The book is what the journal keeps: per group its labels, when it appeared, when it was last
notified, the fingerprints that notification said were firing, the resolved alerts not yet
delivered, and whether the last notification failed. Sent resolved alerts stay in the book until the
worker reports them delivered, so a failure or a restart sends them again instead of losing them;
a group with a notification in flight waits for its outcome (kept in memory: after a restart the
unconfirmed resolved alerts count as a change).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

from dashboard.alerts import payloads
from dashboard.core.alerts import Alert
from dashboard.core.config import AlertSettings


class Current(NamedTuple):
    """A group's alerts in this evaluation."""

    labels: dict[str, str]
    firing: list[Alert]
    resolved: list[Alert]


def group_labels(alert: Alert, group_by: list[str]) -> dict[str, str]:
    return {k: alert.labels[k] for k in group_by if alert.labels.get(k)}


def group_id(labels: dict[str, str]) -> str:
    """A short, fixed-size key for the book (a group's labels can be huge)."""
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "replace")).hexdigest()[:20]


def by_group(alerts: list[Alert], group_by: list[str]) -> dict[str, Current]:
    groups: dict[str, Current] = {}
    for alert in alerts:
        labels = group_labels(alert, group_by)
        kept = {k: payloads.clip(v, payloads.MAX_LABEL_VALUE) for k, v in labels.items()}  # journal size
        found = groups.setdefault(group_id(labels), Current(kept, [], []))
        (found.resolved if alert.state == "resolved" else found.firing).append(alert)
    return groups


class Book:
    """One receiver's groups (see the module's docstring)."""

    def __init__(self, saved: str | None) -> None:
        self.groups: dict[str, dict[str, Any]] = _load(saved)
        self.inflight: set[str] = set()

    def dump(self) -> str:
        return json.dumps({"version": 1, "groups": self.groups}, ensure_ascii=False, sort_keys=True)

    def observe(self, gid: str, current: Current, now: float, entry_of: Any) -> None:
        """Take in a group's alerts of this evaluation; `entry_of(alert)` is what a resolved alert
        is kept as until delivered."""
        group = self.groups.get(gid)
        if group is None:
            if not current.firing:
                return  # nothing the receiver knows of resolved: nothing to say
            group = self.groups[gid] = _new_group(current.labels, now)
        notified = set(group["notified"])
        for alert in current.resolved:
            if alert.fingerprint in notified:
                group["resolved"][alert.fingerprint] = entry_of(alert)
        for alert in current.firing:  # fires again before its resolution went out: no resolution
            group["resolved"].pop(alert.fingerprint, None)

    def due(self, gid: str, firing: set[str], now: float, settings: AlertSettings) -> bool:
        group = self.groups.get(gid)
        if group is None or gid in self.inflight or not (firing or group["resolved"]):
            return False
        if group["sent_at"] is None:
            return bool(firing) and now - group["created"] >= settings.group_wait
        since = now - group["sent_at"]
        changed = group["failed"] or bool(group["resolved"]) or not firing <= set(group["notified"])
        if changed:
            return since >= settings.group_interval
        return bool(firing) and since >= settings.repeat_interval

    def sent(self, gid: str, firing: set[str], now: float) -> list[str]:
        """Record a notification handed to the worker; the token for its outcome."""
        group = self.groups[gid]
        # Unconfirmed until the worker says delivered: a process that dies with it in flight sends
        # it again after a restart (at least once, as Alertmanager's log), never loses it.
        group.update(sent_at=now, notified=sorted(firing), failed=True)
        self.inflight.add(gid)
        return sorted(group["resolved"])

    def outcome(self, gid: str, delivered: bool, token: list[str]) -> None:
        self.inflight.discard(gid)
        group = self.groups.get(gid)
        if group is None:
            return
        if delivered:
            group["failed"] = False
            for fp in token:
                group["resolved"].pop(fp, None)
        else:
            group["failed"] = True

    def prune(self, current: dict[str, Current], muted: frozenset[str] = frozenset()) -> bool:
        """Forget groups with nothing firing and nothing to send; whether any was. A group whose
        notified alert fires on, muted (silenced, inhibited), is kept: its resolution is still owed."""
        gone = [
            gid
            for gid, group in self.groups.items()
            if gid not in self.inflight
            and not group["resolved"]
            and not (gid in current and current[gid].firing)
            and not muted.intersection(group["notified"])
        ]
        for gid in gone:
            del self.groups[gid]
        return bool(gone)


def _new_group(labels: dict[str, str], now: float) -> dict[str, Any]:
    return {
        "labels": labels,
        "created": now,
        "sent_at": None,
        "notified": [],
        "resolved": {},
        "failed": False,
    }


def _load(saved: str | None) -> dict[str, dict[str, Any]]:
    """The journal's groups; an unreadable entry starts afresh rather than stopping notifications."""
    if not saved:
        return {}
    try:
        groups = json.loads(saved)["groups"]
        return {gid: {**_new_group({}, 0.0), **g} for gid, g in groups.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}
