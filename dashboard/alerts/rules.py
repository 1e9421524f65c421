"""Alerting rules: Prometheus' rule-file layout, read with the line and column of every problem.

    groups:
      - name: cache
        rules:
          - alert: CacheHitRateLow
            expr: avg_over(5m, redis.hit_rate) < 0.9      # source: store (the default): expr.py
            for: 5m
            keep_firing_for: 2m
            labels: {severity: warning}
            annotations: {summary: "hit rate {{ $value }} on {{ $labels.target }}"}
          - alert: ApiSlow
            source: prometheus                             # PromQL, sent to a Prometheus target
            target: services
            expr: histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 0.2

The built-in pack is `default_rules.yaml` beside this module. `check()` is `observatory alerts check`.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from dashboard.alerts.expr import Expr, ExprError, parse
from dashboard.alerts.series import unfit_function
from dashboard.core.config import AlertSettings, parse_duration

DEFAULT_RULES = Path(__file__).with_name("default_rules.yaml")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations", "source", "target"}
_TEMPLATE = re.compile(r"\{\{\s*(\$labels\.([A-Za-z_][A-Za-z0-9_]*)|\$value|\$labels)\s*\}\}")


class Rule(NamedTuple):
    name: str  # the alert's name
    group: str
    expr: str
    source: str  # store | prometheus
    target: str | None  # the Prometheus target, for source: prometheus
    for_s: float
    keep_firing_for_s: float
    labels: dict[str, str]
    annotations: dict[str, str]
    parsed: Expr | None  # source: store
    where: str  # file:line, for messages


class RuleError(ValueError):
    """A rule file's problem, as 'file:line:column: message'."""


MAX_BYTES = 1 << 20  # a rule file is a few kilobytes; bigger is a mistake or an attack


class _Loader(yaml.SafeLoader):
    """Keeps each mapping's position, so problems point at the line and column. Refuses aliases:
    rules never need them, and nested ones expand a few hundred bytes into gigabytes."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.constructor.ConstructorError(
                None, None, "aliases (*name) are not allowed in rule files", mark
            )
        return super().compose_node(parent, index)


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict:
    value = loader.construct_mapping(node, deep=True)
    value["__mark__"] = (node.start_mark.line + 1, node.start_mark.column + 1)
    value["__marks__"] = {
        str(k.value): (v.start_mark.line + 1, v.start_mark.column + 1) for k, v in node.value
    }
    value["__styles__"] = {str(k.value): getattr(v, "style", None) for k, v in node.value}
    value["__keys__"] = {
        str(k.value): (k.start_mark.line + 1, k.start_mark.column + 1) for k, _ in node.value
    }
    return value


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(settings: AlertSettings, base: Path, prometheus_targets: set[str]) -> tuple[list[Rule], list[str]]:
    """The rules of the built-in pack (less `disabled_rules`) and of `rule_files` (globs, relative to
    `base`), and the problems found: a broken file or rule is left out, never the others."""
    rules: list[Rule] = []
    errors: list[str] = []
    if settings.default_rules:
        pack, problems = read(DEFAULT_RULES, prometheus_targets=None)
        rules += [r for r in pack if r.name not in settings.disabled_rules]
        errors += problems
    for pattern in settings.rule_files:
        paths = (
            sorted(glob.glob(str(base / pattern))) if not Path(pattern).is_absolute() else glob.glob(pattern)
        )
        if not paths:
            errors.append(f"{pattern}: no rule file matches")
        for path in paths:
            found, problems = read(Path(path), prometheus_targets)
            rules += found
            errors += problems
    return _first_of_each_name(rules, errors)


def _first_of_each_name(rules: list[Rule], errors: list[str]) -> tuple[list[Rule], list[str]]:
    """Alerts are known by name (their state, their notifications): a second rule of a name is a
    mistake, reported, and left out. To change a built-in rule, disable it and write your own."""
    kept: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in kept:
            errors.append(f"{rule.where}: {rule.name} is defined twice (first at {kept[rule.name].where})")
        else:
            kept[rule.name] = rule
    return list(kept.values()), errors


def read(path: Path, prometheus_targets: set[str] | None) -> tuple[list[Rule], list[str]]:
    """One file's rules and problems; `prometheus_targets` None: not checked (the built-in pack).
    Nothing in a file, however odd, raises: it is a problem in the list."""
    try:
        return _read(path, prometheus_targets)
    except Exception as err:  # a case not foreseen: still a problem of this file, never a crash
        return [], [f"{path}: cannot be read as rules: {type(err).__name__}: {err}"]


def _read(path: Path, prometheus_targets: set[str] | None) -> tuple[list[Rule], list[str]]:
    try:
        if path.stat().st_size > MAX_BYTES:
            return [], [f"{path}: over {MAX_BYTES // 1024} KiB: not a rule file"]
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # a SafeLoader
    except OSError as err:
        return [], [f"{path}: cannot read it: {err.strerror or err}"]
    except UnicodeDecodeError:
        return [], [f"{path}: not UTF-8 text"]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        return [], [f"{where}: not valid YAML: {getattr(err, 'problem', None) or err}"]
    if data is None:  # an empty file holds no rule (promtool accepts it too)
        return [], []
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        return [], [f"{path}:1:1: a rule file is a mapping with a list `groups`"]
    rules, errors = [], []
    for group in data["groups"]:
        if not isinstance(group, dict) or not isinstance(group.get("rules"), list):
            errors.append(_at(path, group, None, "each group needs `name` and a list `rules`"))
            continue
        for item in group["rules"]:
            try:
                rules.append(_rule(path, str(group.get("name", "")), item, prometheus_targets))
            except RuleError as err:
                errors.append(str(err))
    return rules, errors


def _at(path: Path, node: Any, key: str | None, message: str, at_key: bool = False) -> str:
    """'file:line:column: message' at the value of `key` (its key itself with `at_key`), else the node."""
    marks = node.get("__keys__" if at_key else "__marks__", {}) if isinstance(node, dict) else {}
    line, column = marks.get(key) or (node.get("__mark__") if isinstance(node, dict) else None) or (1, 1)
    return f"{path}:{line}:{column}: {message}"


def _rule(path: Path, group: str, item: Any, prometheus_targets: set[str] | None) -> Rule:
    if not isinstance(item, dict):
        raise RuleError(f"{path}: a rule is a mapping (alert, expr, for, ...)")
    fail = lambda key, message: RuleError(_at(path, item, key, message))  # noqa: E731
    unknown = sorted(str(k) for k in item if not str(k).startswith("__") and k not in _RULE_KEYS)
    if unknown:
        known = ", ".join(sorted(_RULE_KEYS))
        raise RuleError(
            _at(path, item, unknown[0], f"unknown key {unknown[0]!r} (known: {known})", at_key=True)
        )
    name = item.get("alert")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("alert", "`alert` must be a name such as CacheHitRateLow (letters, digits, _)")
    expr = item.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        raise fail("expr", f"{name}: `expr` is required")
    source = item.get("source", "store")
    if source not in ("store", "prometheus"):
        raise fail("source", f"{name}: `source` is store or prometheus, not {source!r}")
    target = item.get("target")
    parsed = None
    if source == "store":
        try:
            parsed = parse(expr)
            unfit = unfit_function(parsed)
            if unfit:
                raise ExprError(unfit, 1)
        except ExprError as err:
            line, column = item["__marks__"]["expr"]
            style = item["__styles__"].get("expr")
            if style in ("|", ">"):  # a block scalar: its text starts on a later line
                raise RuleError(f"{path}:{line}:{column}: {name}: in its expr, {err}") from None
            column += err.column - (0 if style in ("'", '"') else 1)  # past the opening quote
            raise RuleError(f"{path}:{line}:{column}: {name}: {err}") from None
    elif not isinstance(target, str):
        raise fail("source", f"{name}: a prometheus rule names its Prometheus `target`")
    elif prometheus_targets is not None and target not in prometheus_targets:
        raise fail("target", f"{name}: no Prometheus target named {target!r} in the configuration")
    return Rule(
        name=name,
        group=group,
        expr=expr,
        source=source,
        target=target,
        for_s=_seconds(item, "for", fail),
        keep_firing_for_s=_seconds(item, "keep_firing_for", fail),
        labels=_strings(item, "labels", fail),
        annotations=_strings(item, "annotations", fail),
        parsed=parsed,
        where=_at(path, item, None, "").rstrip(": "),
    )


def _seconds(item: dict, key: str, fail) -> float:
    if key not in item:
        return 0.0
    value = item[key]
    if value in (0, "0", "0s"):
        return 0.0
    try:
        return parse_duration(value)
    except ValueError as err:
        raise fail(key, f"`{key}`: {err}") from None


def _strings(item: dict, key: str, fail) -> dict[str, str]:
    value = item.get(key) or {}
    if not isinstance(value, dict):
        raise fail(key, f"`{key}` is a mapping of names to text")
    given = {str(k): v for k, v in value.items() if not str(k).startswith("__")}
    if any(isinstance(v, dict | list) for v in given.values()):
        raise fail(key, f"`{key}`: each value is text, not a list or mapping")
    out = {k: str(v) for k, v in given.items()}
    bad = [k for k in out if not _NAME.match(k)]
    if bad:
        raise fail(key, f"`{key}`: {bad[0]!r} is not a label name")
    return out


def render(template: str, labels: dict[str, str], value: float) -> str:
    """`{{ $labels.x }}` and `{{ $value }}` with Prometheus' meaning; other text as written."""

    def one(match: re.Match) -> str:
        if match.group(1) == "$value":
            return f"{value:.4g}"
        if match.group(2):
            return labels.get(match.group(2), "")
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))

    return _TEMPLATE.sub(one, template)


def check(paths: list[str]) -> list[str]:
    """`observatory alerts check FILE...`: every problem of the files ([] when they are sound)."""
    errors: list[str] = []
    for path in paths:
        errors += read(Path(path), prometheus_targets=None)[1]
    return errors
