"""The daemon's alerting job: after each round of cycles, every rule once, its states saved, the
changes notified (dashboard.alerts). It runs with no browser open.

The rules are read when the job starts; a broken rule file or rule is reported (the Alerts page,
`observatory alerts`) and left out, never the others. The alerts pending or firing are kept in the
store, so a restarted daemon goes on from them: a firing alert neither resolves nor fires again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dashboard.alerts.detectors import Slo
from dashboard.alerts.evaluate import Outcome, PromQuery, evaluate
from dashboard.alerts.notify import Notifier
from dashboard.alerts.rules import Rule, load
from dashboard.alerts.series import Known, Sample
from dashboard.core.config import Config
from dashboard.core.prometheus_preset import series_for
from dashboard.core.sources import BY_KIND, configured
from dashboard.store import Store

log = logging.getLogger("observatory.alerts")
RULE_ERRORS = "rule_errors"  # journal key: {"load": [problems], "rules": {name: error}}


class AlertsJob:
    def __init__(
        self, config: Config, store: Store, prometheus: PromQuery | None = None, notifier: Any = None
    ) -> None:
        self.store = store
        base = Path(config.source).parent if config.source != "embedded defaults" else Path.cwd()
        names = {t.name for t in config.targets.prometheus}
        self.rules: list[Rule]
        self.rules, self.load_errors = load(config.alerts, base, names)
        for problem in self.load_errors:
            log.warning("alert rules: %s", problem)
        self.prometheus = prometheus
        self.notifier = notifier
        slos = {  # every Prometheus series with a target, for the burn-rate rules
            t.name: {name: Slo(*spec.slo, spec.budget) for name, spec in series_for(t).items() if spec.slo}
            for t in config.targets.prometheus
        }
        intervals = {f"{kind}/{t.name}": t.interval for kind in BY_KIND for t in configured(config, kind)}
        self.known = Known(slos, intervals)

    def run(self, now: int) -> Outcome:
        previous = self.store.active_alerts()
        outcome = evaluate(self.rules, previous, self.store.engine, now, self.prometheus, self.known)
        self.store.save_alerts(outcome.active, outcome.changes, now)
        errors = {"load": self.load_errors, "rules": outcome.errors}
        self.store.save_journal(RULE_ERRORS, json.dumps(errors, sort_keys=True))
        if self.notifier is not None:
            resolved = [a for a in outcome.changes if a.state == "resolved"]
            self.notifier.update(outcome.active + resolved, now)
        return outcome


class StoreJournal:
    """The notifier's bookkeeping in the store's alert journal, so a restart notifies nothing twice."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self, key: str) -> str | None:
        return self.store.journal(key)

    def save(self, key: str, value: str) -> None:
        self.store.save_journal(key, value)


def notifier_for(config: Config, store: Store, clock: Callable[[], float]) -> Notifier | None:
    """The configured receivers' notifier, or None when there are none."""
    settings = config.alerts
    if not settings.receivers:
        return None
    return Notifier(settings, StoreJournal(store), now=clock, external_url=settings.external_url)


def prometheus_query(
    query: Callable[[str, str, int], list[dict[str, Any]]], now: Callable[[], float]
) -> PromQuery:
    """A PromQuery over `query(target, expr, ts)` (the Prometheus collectors' API): each result
    series is an alert's sample, with its labels, `target` and `kind`."""

    def ask(target: str, expr: str) -> list[Sample]:
        found = []
        for item in query(target, expr, int(now())):
            labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items() if k != "__name__"}
            for own in ("target", "kind"):  # the series' own, kept as Prometheus keeps clashing labels
                if own in labels:
                    labels[f"exported_{own}"] = labels.pop(own)
            value = float(item["value"][1])
            found.append(Sample({**labels, "target": target, "kind": "prometheus"}, value))
        return found

    return ask
