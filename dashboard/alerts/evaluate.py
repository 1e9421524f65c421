"""One evaluation of every rule, and the alerts' states after it, as Prometheus moves them.

For each rule, each series whose value meets the condition is an alert: *pending* when it first
holds, *firing* once it has held for the rule's `for` (at once when `for` is 0), and *resolved* when
it stops holding, after `keep_firing_for` has also passed since it last held. A pending alert whose
condition stops holding is dropped without a trace, as in Prometheus. A rule that cannot be
evaluated this time (its Prometheus down, a bug) leaves its alerts as they were: an error is not
a recovery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple
from urllib.parse import urlencode

from sqlalchemy import Engine

from dashboard.alerts import series
from dashboard.alerts.rules import DEFAULT_RULES, Rule, render
from dashboard.core.alerts import Alert, fingerprint

log = logging.getLogger("observatory.alerts")
PromQuery = Callable[[str, str], list[series.Sample]]  # (Prometheus target, PromQL) -> samples
GRACE = 600  # a pending alert not seen held for this long starts its `for` again (Prometheus' grace)


class Outcome(NamedTuple):
    active: list[Alert]  # pending and firing after this evaluation
    changes: list[Alert]  # each alert that became pending, firing or resolved in it
    errors: dict[str, str]  # rule name -> why it could not be evaluated


def evaluate(
    rules: Sequence[Rule],
    previous: Sequence[Alert],
    engine: Engine,
    now: int,
    prometheus: PromQuery | None = None,
    known: series.Known = series.NOTHING_KNOWN,
) -> Outcome:
    """Every rule once, against the alerts the last evaluation left; `known`: what the configuration
    says that the store does not (series.Known)."""
    by_rule: dict[str, list[Alert]] = {}
    for alert in previous:
        by_rule.setdefault(alert.name, []).append(alert)
    active: list[Alert] = []
    changes: list[Alert] = []
    errors: dict[str, str] = missing_series(rules, engine)
    for rule in rules:
        before = by_rule.pop(rule.name, [])
        try:
            held = _samples(rule, engine, now, prometheus, known)
        except Exception as err:  # one broken rule never stops the others
            log.warning("alert rule %s (%s): %s", rule.name, rule.where, err)
            errors[rule.name] = f"{type(err).__name__}: {err}"
            active += before
            continue
        now_active, changed = advance(rule, held, before, now)
        active += now_active
        changes += changed
    for gone in by_rule.values():  # rules removed from the configuration: their alerts resolve
        changes += [a._replace(state="resolved", resolved_at=now) for a in gone if a.state == "firing"]
    return Outcome(active, changes, errors)


def missing_series(rules: Sequence[Rule], engine: Engine) -> dict[str, str]:
    """Your rules over a series the store does not hold (a misspelt name, a source not collected):
    not an error of the evaluation, but a rule that cannot fire, shown as broken. The built-in pack
    covers every source, whether collected or not: it is left out."""
    names = series.stored_names(engine)
    return {
        r.name: f"no series named {r.parsed.selector.name} in the store yet (nor a derived one)"
        for r in rules
        if r.parsed is not None
        and not r.where.startswith(str(DEFAULT_RULES))
        and r.parsed.selector.name not in series.DERIVED
        and r.parsed.selector.name not in names
    }


def _samples(
    rule: Rule, engine: Engine, now: int, prometheus: PromQuery | None, known: series.Known
) -> list[series.Sample]:
    if rule.source == "prometheus":
        if prometheus is None or rule.target is None:
            raise RuntimeError("no Prometheus target to ask")
        return prometheus(rule.target, rule.expr)
    assert rule.parsed is not None
    return [s for s in series.evaluate(engine, rule.parsed, now, known) if rule.parsed.holds(s.value)]


def advance(
    rule: Rule, held: Sequence[series.Sample], before: Sequence[Alert], now: int
) -> tuple[list[Alert], list[Alert]]:
    """The rule's alerts after an evaluation in which `held` met its condition."""
    previous = {a.fingerprint: a for a in before}
    active: list[Alert] = []
    changes: list[Alert] = []
    seen: set[str] = set()
    for sample in held:
        labels = {**sample.labels, **rule.labels, "alertname": rule.name}
        key = fingerprint(labels)
        if key in seen:  # two series that are one alert: Prometheus refuses the rule's result too
            raise ValueError(f"two series have the same labels once the rule's are added: {labels}")
        seen.add(key)
        annotations = {k: render(v, labels, sample.value) for k, v in rule.annotations.items()}
        old = previous.get(key)
        if old is not None and old.state == "pending" and now - (old.held_at or now) > GRACE:
            old = None  # it stopped being watched (the daemon was down): `for` starts again
        alert = Alert(
            labels=labels,
            annotations=annotations,
            state=old.state if old else "pending",
            value=sample.value,
            active_at=old.active_at if old else now,
            fired_at=old.fired_at if old else None,
            held_at=now,
            source_url=source_url(labels),
        )
        if old is None:
            changes.append(alert)  # pending (even with `for: 0`: the history shows when it began)
        if alert.state == "pending" and now - alert.active_at >= rule.for_s:
            alert = alert._replace(state="firing", fired_at=now)
            changes.append(alert)
        active.append(alert)
    for key, old in previous.items():
        if key in seen:
            continue
        if old.state == "firing" and now - (old.held_at or now) < rule.keep_firing_for_s:
            active.append(old)  # keep_firing_for: still firing a while after it stopped holding
        elif old.state == "firing":
            changes.append(old._replace(state="resolved", resolved_at=now))
    return active, changes


def source_url(labels: dict[str, str]) -> str | None:
    """The page behind an alert, relative to the app: its statement, Redis node or service."""
    if "statement_id" in labels:
        return "query?" + urlencode({"id": labels["statement_id"]})
    kind, target = labels.get("kind"), labels.get("target")
    pages = {"redis": "redis", "prometheus": "services", "postgres": "overview"}
    if kind in pages and target:
        return f"{pages[kind]}?" + urlencode({"targets": target})
    return None
