"""Notifications: from the alerts of each evaluation to the configured receivers.

The daemon builds one `Notifier` and, after every evaluation, calls `update(alerts, now)` with every
alert pending or firing now plus those that resolved in this evaluation (given once). `update` only
decides and queues: it never waits for a receiver. `close(timeout)` at shutdown.

    alerts --> muting (silences, TargetDown inhibition) --> per receiver:
        webhook / Slack: grouping (group_wait, group_interval, repeat_interval) -> worker -> POST
        Alertmanager: every firing alert, re-sent each minute; resolved once -> worker -> POST

Bookkeeping goes through the journal (`load(key)`, `save(key, value)`, one JSON text per receiver,
key `alerts.notify.<receiver id>`), so a new Notifier over the same journal picks up every group's
schedule: a restarted daemon neither forgets a firing alert nor notifies it twice.

Receiver ids (journal keys, the webhook's `receiver`, log names) hold no secret: `webhook-<hash>`
and `alertmanager-<hash>` (of the URL without its password), `slack-<variable name>`. The Slack URL
is read from its variable when a message is sent, and never logged.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import queue
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from dashboard.alerts.dispatch import Outcome, Retry, Sender
from dashboard.alerts.muting import audible
from dashboard.alerts.payloads import slack_payload
from dashboard.alerts.receivers import Grouped, Journal, Pushed
from dashboard.core.alerts import Alert
from dashboard.core.config import AlertmanagerReceiver, AlertSettings, Receiver, SlackReceiver
from dashboard.core.redaction import password_of, redact, secret_from_env

__all__ = ["MemoryJournal", "Notifier", "Retry"]
log = logging.getLogger("observatory.alerts")
DEFAULT_RETRY = Retry()  # 6 tries, 1, 2, 4, 8, 16 s apart, 5 s per request


class MemoryJournal:
    """A journal in a dict (tests, and a daemon without a store)."""

    def __init__(self) -> None:
        self.entries: dict[str, str] = {}

    def load(self, key: str) -> str | None:
        return self.entries.get(key)

    def save(self, key: str, value: str) -> None:
        self.entries[key] = value


class Notifier:
    def __init__(
        self,
        settings: AlertSettings,
        journal: Journal,
        now: Callable[[], float] = time.time,
        external_url: str | None = None,
        *,
        retry: Retry = DEFAULT_RETRY,
    ) -> None:
        self.settings = settings
        self._now = now
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.receivers: dict[str, Grouped | Pushed] = {}
        for receiver in settings.receivers:
            sender = _sender(receiver, self._outcomes, retry)
            if sender.name in self.receivers:  # the same URL twice: one receiver
                sender.close(0)
                continue
            if isinstance(receiver, AlertmanagerReceiver):
                self.receivers[sender.name] = Pushed(sender, journal, settings, external_url)
            else:
                render = slack_payload if isinstance(receiver, SlackReceiver) else _as_is
                self.receivers[sender.name] = Grouped(sender, journal, settings, external_url, render)

    def update(self, alerts: list[Alert], now: float | None = None) -> None:
        """Decide and queue this evaluation's notifications; never waits for a receiver."""
        now = self._now() if now is None else now
        self._drain()
        heard = audible(alerts, self.settings.silences, now)
        every = [a for a in alerts if a.state != "pending"]  # Alertmanager mutes by its own rules
        muted = frozenset(a.fingerprint for a in every if a.state == "firing") - {
            a.fingerprint for a in heard
        }
        for receiver in self.receivers.values():
            try:
                if isinstance(receiver, Pushed):
                    receiver.update(every, now)
                else:
                    receiver.update(heard, now, muted)
            except Exception:  # a bug with one receiver must not silence the others
                log.exception("alert notifications to %s failed", receiver.sender.label)

    def wait(self, timeout: float = 5.0) -> bool:
        """Wait until every queued notification was delivered or given up, and record it; whether
        that happened within `timeout` (`collect --once` before it exits; the tests)."""
        deadline = time.monotonic() + timeout
        while not all(r.sender.idle for r in self.receivers.values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._drain()
        return all(r.sender.idle for r in self.receivers.values())

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers (each finishes the request in progress, within `timeout` in all) and
        record what they delivered."""
        deadline = time.monotonic() + timeout
        for receiver in self.receivers.values():
            receiver.sender.close(max(0.0, deadline - time.monotonic()))
        self._drain()

    def _drain(self) -> None:
        """Apply the workers' outcomes, in this (the caller's) thread: the journal is not shared."""
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except queue.Empty:
                return
            receiver = self.receivers.get(outcome.receiver)
            if receiver is not None:
                receiver.outcome(outcome)


def _as_is(body: dict) -> dict:
    return body


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:10]


def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
    except ValueError:
        return "an invalid URL"


def _sender(receiver: Receiver, outcomes: queue.SimpleQueue[Outcome], retry: Retry) -> Sender:
    """The worker of a receiver, with its id, the name logs give it and the secrets to keep out."""
    if isinstance(receiver, SlackReceiver):
        variable = receiver.slack.url_env
        slack_url = functools.partial(secret_from_env, variable, "url_env")  # read at each send
        return Sender(f"slack-{variable}", f"slack ({variable})", slack_url, outcomes, retry, [])
    url = receiver.alertmanager if isinstance(receiver, AlertmanagerReceiver) else receiver.webhook
    kind = "alertmanager" if isinstance(receiver, AlertmanagerReceiver) else "webhook"
    name = f"{kind}-{_short_hash(redact(url))}"  # the password out first: no hash of a secret
    target = url.rstrip("/") + "/api/v2/alerts" if kind == "alertmanager" else url
    return Sender(name, f"{name} ({_origin(url)})", lambda: target, outcomes, retry, [password_of(url) or ""])
