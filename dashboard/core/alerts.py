"""What an alert is, shared by the rules, their evaluation, the notifications and the pages.

An alert is one series of one rule's result (one label set), with Prometheus' meaning: *pending*
while its condition holds for less than the rule's `for`, *firing* after, *resolved* once the
condition has stopped holding for `keep_firing_for`. The fingerprint names it across evaluations,
restarts and notifications.
"""

from __future__ import annotations

import hashlib
from typing import Literal, NamedTuple

State = Literal["pending", "firing", "resolved"]


def fingerprint(labels: dict[str, str]) -> str:
    """A stable name for a label set (alertname included), as Alertmanager keys alerts."""
    canonical = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(labels.items()))
    # surrogatepass: a label read from a server may hold a lone surrogate; it still gets a name
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Alert(NamedTuple):
    labels: dict[str, str]  # the rule's labels and the series' labels; `alertname` always
    annotations: dict[str, str]  # templates filled in: summary, description, ...
    state: State
    value: float  # the last value of the rule's expression for this series
    active_at: int  # Unix seconds: when the condition first held (pending began)
    fired_at: int | None = None  # when it went firing (Alertmanager's startsAt)
    resolved_at: int | None = None  # when it resolved (endsAt)
    held_at: int | None = None  # the last evaluation at which the condition held (keep_firing_for)
    source_url: str | None = None  # the page behind it: a statement, a Redis node, a service

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)
