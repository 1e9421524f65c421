"""Which alerts are kept out of notifications: silences and inhibition. A muted alert still fires
(the pages show it); no receiver hears of it.

- A silence mutes an alert whose labels hold every one of its matchers (equality), until `until`.
- Inhibition, Alertmanager's classic rule written in: while an alert named `TargetDown` fires for
  `{target: X, kind: K}`, every other alert with the same target and kind is muted (names are unique
  only within a kind), so a dead target is one notification instead of one per rule over it. As in
  Alertmanager, the `TargetDown` alert counts as a source even when it is silenced itself. Unlike
  Alertmanager's `equal`, a missing or empty `target` label matches nothing (its
  missing-equals-missing would let one TargetDown mute every target-less alert).

Both mute firing alerts only. A resolution goes through: the receivers send it only for an alert
they were told was firing, and it is handed over once, so muting it would leave that incident open
at the receiver for good.

The Alertmanager receiver gets every alert unmuted: it silences and inhibits by its own rules, and an
alert no longer pushed would expire there as if it had resolved.
"""

from __future__ import annotations

from datetime import UTC

from dashboard.core.alerts import Alert
from dashboard.core.config import Silence

INHIBITOR = "TargetDown"
INHIBIT_EQUAL = ("target", "kind")


def _until(silence: Silence) -> float:
    until = silence.until if silence.until.tzinfo else silence.until.replace(tzinfo=UTC)
    return until.timestamp()


def silenced(alert: Alert, silences: list[Silence], now: float) -> bool:
    return any(
        now < _until(s) and all(alert.labels.get(k) == v for k, v in s.matchers.items()) for s in silences
    )


def _scope(alert: Alert) -> tuple[str, ...] | None:
    values = tuple(alert.labels.get(k, "") for k in INHIBIT_EQUAL)
    return values if values[0] else None


def inhibited_targets(alerts: list[Alert]) -> set[tuple[str, ...]]:
    """The (target, kind) a firing TargetDown alert is down for."""
    return {scope for a in alerts if a.state == "firing" and a.name == INHIBITOR and (scope := _scope(a))}


def audible(alerts: list[Alert], silences: list[Silence], now: float) -> list[Alert]:
    """The alerts a grouping receiver may hear of: firing ones neither silenced nor inhibited, and
    every resolution."""
    down = inhibited_targets(alerts)
    return [
        a
        for a in alerts
        if a.state == "resolved"
        or (
            a.state == "firing"
            and not silenced(a, silences, now)
            and not (a.name != INHIBITOR and _scope(a) in down)
        )
    ]
