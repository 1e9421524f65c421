"""Which alerts are kept out of notifications: silences and inhibition. A muted alert still fires
(the pages show it); no receiver hears of it.

- A silence mutes an alert whose labels hold every one of its matchers (equality), until `until`.
- Inhibition, Alertmanager's classic rule written in: while an alert named `TargetDown` fires for
  `{target: X}`, every other alert with `target: X` is muted, so a dead target is one notification
  instead of one per rule over it. As in Alertmanager, the `TargetDown` alert counts as a source even
  when it is silenced itself. Unlike Alertmanager's `equal`, a missing or empty `target` label
  matches nothing (its missing-equals-missing would let one TargetDown mute every target-less alert).

Both apply to every receiver and to resolved alerts alike (Alertmanager mutes resolved alerts too).
"""

from __future__ import annotations

from datetime import UTC

from dashboard.core.alerts import Alert
from dashboard.core.config import Silence

INHIBITOR = "TargetDown"
INHIBIT_EQUAL = "target"


def _until(silence: Silence) -> float:
    until = silence.until if silence.until.tzinfo else silence.until.replace(tzinfo=UTC)
    return until.timestamp()


def silenced(alert: Alert, silences: list[Silence], now: float) -> bool:
    return any(
        now < _until(s) and all(alert.labels.get(k) == v for k, v in s.matchers.items()) for s in silences
    )


def inhibited_targets(alerts: list[Alert]) -> set[str]:
    """The targets a firing TargetDown alert is down for."""
    return {
        a.labels[INHIBIT_EQUAL]
        for a in alerts
        if a.state == "firing" and a.name == INHIBITOR and a.labels.get(INHIBIT_EQUAL)
    }


def audible(alerts: list[Alert], silences: list[Silence], now: float) -> list[Alert]:
    """The alerts a receiver may hear of: firing or resolved, neither silenced nor inhibited."""
    down = inhibited_targets(alerts)
    return [
        a
        for a in alerts
        if a.state != "pending"
        and not silenced(a, silences, now)
        and not (a.name != INHIBITOR and a.labels.get(INHIBIT_EQUAL) in down)
    ]
