"""The two ways a receiver is fed.

- `Grouped` (webhook, Slack): our own grouping (dashboard.alerts.grouping), one notification per
  group when it is due, as an Alertmanager would send it.
- `Pushed` (an Alertmanager): every firing alert as Prometheus sends it, since Alertmanager groups,
  silences and routes by itself: a new firing alert at once, then again every RESEND seconds with
  endsAt = now + 4 x max(evaluation interval, RESEND), so Alertmanager resolves it by itself if we
  stop (die); a resolved alert once, with endsAt = its resolution time.

Each keeps its bookkeeping in the journal under its own key, written when it changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from dashboard.alerts import grouping, payloads
from dashboard.alerts.dispatch import Job, Outcome, Sender
from dashboard.core.alerts import Alert
from dashboard.core.config import AlertSettings

log = logging.getLogger("observatory.alerts")
RESEND = 60.0  # Prometheus' --rules.alert.resend-delay


class Journal(Protocol):
    def load(self, key: str) -> str | None: ...

    def save(self, key: str, value: str) -> None: ...


class _Kept:
    """A receiver's journal entry, written only when its text changed."""

    def __init__(self, journal: Journal, key: str) -> None:
        self.journal, self.key = journal, key
        self.text = self._load()

    def _load(self) -> str | None:
        try:
            return self.journal.load(self.key)
        except Exception as exc:  # the store is down: start afresh rather than not notify at all
            log.warning("alert journal %s unreadable (%s); starting afresh", self.key, type(exc).__name__)
            return None

    def save(self, text: str) -> None:
        if text == self.text:
            return
        try:
            self.journal.save(self.key, text)
            self.text = text
        except Exception as exc:  # the store is down: keep notifying, try again next time
            log.warning("alert journal %s not saved (%s)", self.key, type(exc).__name__)


class Grouped:
    """A webhook or Slack receiver: our grouping, then `render` (webhook JSON -> the body)."""

    def __init__(
        self,
        sender: Sender,
        journal: Journal,
        settings: AlertSettings,
        external_url: str | None,
        render: Callable[[dict[str, Any]], Any],
    ) -> None:
        self.sender, self.settings, self.external_url, self.render = sender, settings, external_url, render
        self.kept = _Kept(journal, f"alerts.notify.{sender.name}")
        self.book = grouping.Book(self.kept.text)

    def _entry(self, alert: Alert) -> dict[str, Any]:
        return payloads.webhook_alert(alert, self.external_url)

    def update(self, alerts: list[Alert], now: float, muted: frozenset[str] = frozenset()) -> None:
        """`alerts`: the audible ones; `muted`: fingerprints of those firing but muted."""
        current = grouping.by_group(alerts, self.settings.group_by)
        for gid, found in current.items():
            self.book.observe(gid, found, now, self._entry)
        for gid, group in list(self.book.groups.items()):
            found = current.get(gid, grouping.Current(group["labels"], [], []))
            firing = {a.fingerprint for a in found.firing}
            if self.book.due(gid, firing, now, self.settings):
                self._send(gid, found, firing, now)
        self.book.prune(current, muted)
        self.kept.save(self.book.dump())

    def _send(self, gid: str, found: grouping.Current, firing: set[str], now: float) -> None:
        group = self.book.groups[gid]
        entries = [self._entry(a) for a in found.firing] + list(group["resolved"].values())
        body = payloads.webhook_payload(self.sender.name, group["labels"], entries, self.external_url)
        token = self.book.sent(gid, firing, now)
        self.sender.submit(Job(gid, self.render(body), token))

    def outcome(self, outcome: Outcome) -> None:
        self.book.outcome(outcome.key, outcome.delivered, outcome.token)
        self.kept.save(self.book.dump())


class Pushed:
    """An Alertmanager: POST /api/v2/alerts, Prometheus' way (see the module's docstring)."""

    def __init__(self, sender: Sender, journal: Journal, settings: AlertSettings, external_url: str | None):
        self.sender, self.settings, self.external_url = sender, settings, external_url
        self.kept = _Kept(journal, f"alerts.notify.{sender.name}")
        self.sent, self.resolved = _load_pushed(self.kept.text)
        self.inflight: set[str] = set()  # resolved alerts handed to the worker

    def update(self, alerts: list[Alert], now: float) -> None:
        firing = {a.fingerprint: a for a in alerts if a.state == "firing"}
        for alert in alerts:
            if alert.state == "resolved" and alert.fingerprint in self.sent:
                ends = alert.resolved_at if alert.resolved_at is not None else now
                self.resolved[alert.fingerprint] = payloads.alertmanager_alert(alert, ends, self.external_url)
        for fp in firing:
            self.resolved.pop(fp, None)  # fires again before its resolution went out
        self.sent = {fp: t for fp, t in self.sent.items() if fp in firing}
        due = [a for fp, a in firing.items() if now - self.sent.get(fp, float("-inf")) >= RESEND]
        pending = [fp for fp in self.resolved if fp not in self.inflight]
        if due or pending:
            self._send(due, pending, now)
        self._save()

    def _send(self, due: list[Alert], pending: list[str], now: float) -> None:
        ends = now + 4 * max(self.settings.evaluation_interval, RESEND)
        body = [payloads.alertmanager_alert(a, ends, self.external_url) for a in due]
        body += [self.resolved[fp] for fp in pending]
        for alert in due:
            self.sent[alert.fingerprint] = now
        self.inflight.update(pending)
        self.sender.submit(Job("", body, ([a.fingerprint for a in due], pending)))

    def outcome(self, outcome: Outcome) -> None:
        fired, resolved = outcome.token
        self.inflight.difference_update(resolved)
        if outcome.delivered:
            for fp in resolved:
                self.resolved.pop(fp, None)
        else:  # not delivered: the next evaluation sends them again
            for fp in fired:
                self.sent.pop(fp, None)
        self._save()

    def _save(self) -> None:
        state = {"version": 1, "sent": self.sent, "resolved": self.resolved}
        self.kept.save(json.dumps(state, sort_keys=True))


def _load_pushed(saved: str | None) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    try:
        found = json.loads(saved or "{}")
        return dict(found.get("sent", {})), dict(found.get("resolved", {}))
    except (ValueError, TypeError, AttributeError):
        return {}, {}
