"""Alerting rules: their files and expressions, Prometheus' states under a controllable clock, and
the daemon's evaluation over a real store and a real Redis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from collectors.jobs.alerts import AlertsJob, prometheus_query
from dashboard.alerts.evaluate import advance, evaluate
from dashboard.alerts.expr import ExprError, parse
from dashboard.alerts.rules import DEFAULT_RULES, Rule, load, read, render
from dashboard.alerts.series import Sample
from dashboard.core import config as config_mod
from dashboard.core.alerts import Alert
from dashboard.core.records import Cycle, Point, Status
from dashboard.servers.throwaway import ThrowawayRedis
from dashboard.store import Store
from tests.support.cli import observatory
from tests.support.receiver import RecordingReceiver
from tests.support.redis_target import target as redis_target

T0 = 1_800_000_000


# -- expressions ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("avg_over(5m redis.hit_rate) < 0.9", 13, "expected ','"),
        ("redis.hit_rate", 15, "expected a comparison"),
        ("redis.hit_rate <", 17, "expected a number"),
        ("a{b=c} > 1", 5, "quoted value"),
        ('a{b=~"x"} > 1', 5, "unexpected character '~'"),
        ("a > 1 and b > 2", 7, "unexpected 'and'"),
        ("rate > 1", 1, "rate needs its arguments"),
        ("a = 1", 3, "is not a comparison"),
    ],
)
def test_a_bad_expression_names_its_column(text: str, column: int, message: str) -> None:
    with pytest.raises(ExprError) as err:
        parse(text)
    assert err.value.column == column and message in str(err.value), str(err.value)


def test_an_expression_reads_into_its_parts() -> None:
    expr = parse('max_over(10m, pg.connections{state="idle in transaction", target!="x"}) >= 5')
    assert (expr.function, expr.window, expr.selector.name, expr.op, expr.threshold) == (
        "max_over",
        600.0,
        "pg.connections",
        ">=",
        5.0,
    )
    assert [(m.label, m.equal, m.value) for m in expr.selector.matchers] == [
        ("state", True, "idle in transaction"),
        ("target", False, "x"),
    ]
    assert expr.holds(5.0) and not expr.holds(4.9)


# -- rule files ----------------------------------------------------------------------------------
BAD_RULES = """\
groups:
  - name: cache
    rules:
      - alert: Fine
        expr: avg_over(5m, redis.hit_rate) < 0.9
      - alert: BadExpr
        expr: avg_over(5m redis.hit_rate) < 0.9
      - alert: 9lives
        expr: a > 1
      - alert: BadFor
        expr: a > 1
        for: 5 minutes
      - alert: Typo
        exprr: a > 1
      - alert: NoTarget
        source: prometheus
        expr: up == 0
"""


def test_a_rule_file_gives_each_problem_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BAD_RULES)
    rules, errors = read(path, prometheus_targets=set())
    assert [r.name for r in rules] == ["Fine"]  # the sound rule stands
    assert errors == [
        f"{path}:7:27: BadExpr: column 13: expected ',', found 'redis.hit_rate'",
        f"{path}:8:16: `alert` must be a name such as CacheHitRateLow (letters, digits, _)",
        f"{path}:12:14: `for`: '5 minutes' is not a duration: write e.g. 60s, 5m, 2h or 7d",
        f"{path}:14:9: unknown key 'exprr' (known: alert, annotations, expr, for, keep_firing_for, labels, "
        "source, target)",
        f"{path}:16:17: NoTarget: a prometheus rule names its Prometheus `target`",
    ]
    checked = observatory("alerts", "check", str(path))
    assert checked.returncode == 1 and checked.stderr.splitlines() == errors
    pack = DEFAULT_RULES.read_text().count("- alert:")
    assert observatory("alerts", "check", str(DEFAULT_RULES)).stdout.endswith(
        f"SUCCESS: {pack} rules found\n"
    )


def test_broken_yaml_points_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("groups:\n  - name: x\n    rules: [\n")
    _, errors = read(path, None)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:4:1: not valid YAML"), errors


def test_templates_have_prometheus_meaning() -> None:
    labels = {"alertname": "X", "target": "cache-1", "queue": "<b>email</b>"}
    text = "{{ $labels.target }}/{{$labels.queue}} at {{ $value }}{{ $labels.missing }}"
    assert render(text, labels, 0.8912345) == "cache-1/<b>email</b> at 0.8912"


# -- states, with a controllable clock ------------------------------------------------------------
def rule(for_s: float = 0.0, keep_s: float = 0.0) -> Rule:
    expr = "redis.hit_rate < 0.9"
    labels, annotations = {"severity": "warning"}, {"summary": "{{ $value }}"}
    return Rule(
        "HitRateLow", "g", expr, "store", None, for_s, keep_s, labels, annotations, parse(expr), "f:1"
    )


LOW = [Sample({"target": "cache-1", "kind": "redis"}, 0.5)]


def test_pending_then_firing_after_for_then_resolved() -> None:
    r = rule(for_s=60)
    active, changes = advance(r, LOW, [], T0)
    assert [(a.state, a.active_at) for a in active] == [("pending", T0)] and changes == active
    active, changes = advance(r, LOW, active, T0 + 30)
    assert [a.state for a in active] == ["pending"] and changes == []
    active, changes = advance(r, LOW, active, T0 + 60)
    assert [(a.state, a.fired_at) for a in active] == [("firing", T0 + 60)] and changes == active
    assert active[0].labels == {
        "target": "cache-1",
        "kind": "redis",
        "severity": "warning",
        "alertname": "HitRateLow",
    }
    assert active[0].annotations == {"summary": "0.5"} and active[0].source_url == "redis?targets=cache-1"
    active, changes = advance(r, [], active, T0 + 90)
    assert active == [] and [(c.state, c.resolved_at, c.fired_at) for c in changes] == [
        ("resolved", T0 + 90, T0 + 60)
    ]


def test_a_pending_alert_that_stops_holding_leaves_no_trace() -> None:
    active, _ = advance(rule(for_s=60), LOW, [], T0)
    assert advance(rule(for_s=60), [], active, T0 + 30) == ([], [])


def test_for_zero_fires_at_once_and_keep_firing_for_holds_it() -> None:
    r = rule(keep_s=120)
    active, changes = advance(r, LOW, [], T0)
    assert [c.state for c in changes] == ["pending", "firing"] and active[0].state == "firing"
    active, changes = advance(r, [], active, T0 + 60)  # stopped holding 60 s ago: still firing
    assert [a.state for a in active] == ["firing"] and changes == []
    active, changes = advance(r, [], active, T0 + 120)
    assert active == [] and [c.state for c in changes] == ["resolved"]


# -- over a real store ------------------------------------------------------------------------------
def redis_cycle(ts: int, hits: float, misses: float, name: str = "cache-1") -> Cycle:
    points = [
        Point("redis.keyspace.hits", None, "counter", delta=hits),
        Point("redis.keyspace.misses", None, "counter", delta=misses),
    ]
    return Cycle("redis", name, ts, Status(), points=points)


RULES = """\
groups:
  - name: cache
    rules:
      - alert: HitRateLow
        expr: redis.hit_rate < 0.9
        for: 1m
        annotations: {summary: "hit rate {{ $value }} on {{ $labels.target }}"}
"""


def test_the_daemons_job_fires_resolves_and_survives_a_restart(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    config_path = tmp_path / "observatory.yaml"
    config_path.write_text(f"store: {url}\nalerts: {{rule_files: [rules.yaml], default_rules: false}}\n")
    config = config_mod.load(config_path)
    store = Store(url)
    for i, (hits, misses) in enumerate([(95, 5), (50, 50), (40, 60), (45, 55), (99, 1)]):
        store.write_cycle(redis_cycle(T0 + 30 * i, hits, misses))
    states = []
    for i in range(5):
        job = AlertsJob(config, store)  # a new job each time: a restarted daemon
        outcome = job.run(T0 + 30 * i)
        states.append(([a.state for a in outcome.active], [c.state for c in outcome.changes]))
    # 95 %: fine; 50 %: pending; 40 %: 30 s pending; 45 %: 60 s, firing; 99 %: resolved.
    assert states == [
        ([], []),
        (["pending"], ["pending"]),
        (["pending"], []),
        (["firing"], ["firing"]),
        ([], ["resolved"]),
    ]
    history = store.engine.connect().exec_driver_sql("SELECT state, ts FROM alert_events ORDER BY id").all()
    assert history == [("pending", T0 + 30), ("firing", T0 + 90), ("resolved", T0 + 120)]
    store.close()


def test_a_rule_that_cannot_be_evaluated_keeps_its_alerts(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    down = Rule("PromDown", "g", "up == 0", "prometheus", "nowhere", 0, 0, {}, {}, None, "f:1")
    firing, _ = advance(down, [Sample({"target": "nowhere"}, 0.0)], [], T0)
    outcome = evaluate([down], firing, store.engine, T0 + 30, prometheus=None)
    assert outcome.active == firing and outcome.changes == []
    assert outcome.errors == {"PromDown": "RuntimeError: no Prometheus target to ask"}
    store.close()


def test_a_real_redis_driven_below_90_percent_fires_after_one_collect(tmp_path: Path) -> None:
    with ThrowawayRedis() as server:
        (tmp_path / "rules.yaml").write_text(RULES.replace("for: 1m", "for: 0s"))
        config = tmp_path / "observatory.yaml"
        config.write_text(
            f"store: sqlite:///{tmp_path / 'store.db'}\n"
            "alerts: {rule_files: [rules.yaml], default_rules: false}\n"
            f"targets:\n  redis: [{json.dumps(redis_target(server.url))}]\n"
        )
        r = redis.Redis.from_url(server.url)
        r.set("k", "v")
        for _ in range(50):
            r.get("k")
        assert observatory("collect", "--once", config=config).returncode == 0  # the baseline
        for i in range(50):
            r.get(f"missing-{i}")  # 50 hits, then 50 misses: the hit rate since is 0 %
        assert observatory("collect", "--once", config=config).returncode == 0
        shown = observatory("alerts", "--json", config=config)
    report = json.loads(shown.stdout)
    (alert,) = report["alerts"]
    assert (alert["alertname"], alert["state"], alert["labels"]["target"]) == (
        "HitRateLow",
        "firing",
        "cache-1",
    )
    assert (
        alert["value"] == 0.0 and alert["summary"] == "hit rate 0 on cache-1" and report["rule_errors"] == []
    )


def test_collect_once_notifies_a_webhook_once(tmp_path: Path) -> None:
    """The whole path as a user runs it: a real Redis, `collect --once` (collect, evaluate, notify),
    a real HTTP receiver; a second run while it still fires sends nothing again."""
    with ThrowawayRedis() as server, RecordingReceiver() as receiver:
        (tmp_path / "rules.yaml").write_text(RULES.replace("for: 1m", "for: 0s"))
        config = tmp_path / "observatory.yaml"
        alerts = {
            "rule_files": ["rules.yaml"],
            "default_rules": False,
            "group_wait": "0s",
            "receivers": [{"webhook": receiver.url}],
        }
        config.write_text(
            f"store: sqlite:///{tmp_path / 'store.db'}\n"
            f"alerts: {json.dumps(alerts)}\n"
            f"targets:\n  redis: [{json.dumps(redis_target(server.url))}]\n"
        )
        r = redis.Redis.from_url(server.url)
        assert observatory("collect", "--once", config=config).returncode == 0
        for i in range(20):
            r.get(f"missing-{i}")
        assert observatory("collect", "--once", config=config).returncode == 0
        (body,) = receiver.wait_for(1)
        assert observatory("collect", "--once", config=config).returncode == 0
        assert len(receiver.bodies()) == 1  # the journal in the store: not sent twice
    assert (body["version"], body["status"], body["commonLabels"]["alertname"]) == (
        "4",
        "firing",
        "HitRateLow",
    )
    assert [a["labels"]["target"] for a in body["alerts"]] == ["cache-1"]


ONE_RULE = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: "
ODD_FILES = {
    "bomb.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "groups: [{name: g, rules: [{alert: A, expr: a > 1, labels: {x: *c}}]}]\n",
    "intkey.yaml": f"{ONE_RULE}a > 1\n        1: x\n",
    "nested.yaml": f"{ONE_RULE}a > 1\n        labels: {{x: [1]}}\n",
    "inf.yaml": f"{ONE_RULE}a > 1\n        for: .inf\n",
    "digits.yaml": f"{ONE_RULE}target.up > ١٠\n",
    "ratio.yaml": f"{ONE_RULE}max_over(1h, redis.hit_rate) < 0.9\n",
    "now.yaml": f"{ONE_RULE}delta(1h, target.up) < 0\n",
}
ODD_MESSAGES = {
    "bomb.yaml": ":2:8: not valid YAML: aliases (*name) are not allowed in rule files",
    "intkey.yaml": ":6:9: unknown key '1'",
    "nested.yaml": ":6:17: `labels`: each value is text, not a list or mapping",
    "inf.yaml": ":6:14: `for`: a duration must be a finite number of seconds",
    "digits.yaml": ":5:27: A: column 13: unexpected character '١'",
    "ratio.yaml": ":5:15: A: column 1: redis.hit_rate is read over a window: only avg_over(window, "
    "redis.hit_rate) sets it",
    "now.yaml": ":5:15: A: column 1: target.up is a value now: it takes no function (write `target.up ...` "
    "alone)",
}


@pytest.mark.parametrize("name", sorted(ODD_FILES))
def test_odd_rule_files_are_problems_never_crashes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(ODD_FILES[name])
    rules, errors = read(path, None)
    assert rules == [] and len(errors) == 1 and errors[0].startswith(f"{path}{ODD_MESSAGES[name]}"), errors


def test_an_empty_file_holds_no_rule_and_a_name_twice_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    assert read(tmp_path / "empty.yaml", None) == ([], [])
    (tmp_path / "mine.yaml").write_text(RULES + RULES.split("rules:\n", 1)[1])  # HitRateLow twice
    config = config_mod.from_dict({"alerts": {"rule_files": ["*.yaml"], "default_rules": False}})
    rules, errors = load(config.alerts, tmp_path, set())
    assert [r.name for r in rules] == ["HitRateLow"]
    mine = tmp_path / "mine.yaml"
    assert errors == [f"{mine}:8:9: HitRateLow is defined twice (first at {mine}:4:9)"]


def test_promql_labels_that_clash_are_kept_and_one_alert_is_one_series() -> None:
    answer = [
        {"metric": {"__name__": "probe_success", "job": "blackbox", "target": site}, "value": [T0, "0"]}
        for site in ("a.example", "b.example")
    ]
    ask = prometheus_query(lambda target, expr, ts: answer, lambda: T0)
    found = ask("prom", "probe_success == 0")
    assert [s.labels for s in found] == [
        {"job": "blackbox", "exported_target": site, "target": "prom", "kind": "prometheus"}
        for site in ("a.example", "b.example")
    ]
    down = Rule("SiteDown", "g", "probe_success == 0", "prometheus", "prom", 0, 0, {}, {}, None, "f:1")
    assert len(advance(down, found, [], T0)[0]) == 2  # two sites down: two alerts
    same = [Sample({"target": "x"}, 1.0), Sample({"target": "x"}, 2.0)]
    with pytest.raises(ValueError, match="same labels"):
        advance(down, same, [], T0)


def test_for_starts_again_after_the_daemon_was_away() -> None:
    r = rule(for_s=600)
    active, _ = advance(r, LOW, [], T0)
    active, changes = advance(r, LOW, active, T0 + 3 * 3600)  # 3 h later: no evaluation in between
    assert [(a.state, a.active_at) for a in active] == [("pending", T0 + 3 * 3600)]
    assert [c.state for c in changes] == ["pending"]


def test_a_target_taken_out_of_the_configuration_is_no_longer_watched(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.write_cycle(Cycle("redis", "old-cache", T0, Status(state="down", error="refused")))
    store.write_cycle(Cycle("redis", "cache-1", T0, Status(state="down", error="refused")))
    up = parse("target.up == 0")
    from dashboard.alerts.series import Known
    from dashboard.alerts.series import evaluate as values

    assert {s.labels["target"] for s in values(store.engine, up, T0)} == {"old-cache", "cache-1"}
    configured = Known({}, {"redis/cache-1": 15.0})
    assert {s.labels["target"] for s in values(store.engine, up, T0, configured)} == {"cache-1"}
    store.close()


def test_alerts_json_has_no_infinity_and_lists_firing_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    pending = Alert({"alertname": "A", "target": "x"}, {}, "pending", 1.0, T0)
    firing = Alert({"alertname": "B", "target": "x"}, {}, "firing", float("inf"), T0, fired_at=T0)
    store.save_alerts([pending, firing], [], T0)
    store.close()
    config = tmp_path / "observatory.yaml"
    config.write_text(f"store: {url}\n")
    shown = observatory("alerts", "--json", config=config)
    rows = json.loads(shown.stdout)["alerts"]  # strict JSON: Infinity would not parse everywhere
    assert "Infinity" not in shown.stdout and [(r["alertname"], r["value"]) for r in rows] == [
        ("B", "inf"),
        ("A", 1.0),
    ]


def test_one_process_evaluates_and_notifies_per_store(tmp_path: Path) -> None:
    """Two daemons on one store (a daemon and `collect --once`): the one holding the store's
    alerting lock evaluates; the other leaves it, so nothing is notified twice."""
    from collectors.scheduler import Scheduler

    (tmp_path / "rules.yaml").write_text(RULES)
    config_path = tmp_path / "observatory.yaml"
    config_path.write_text(
        f"store: sqlite:///{tmp_path / 'store.db'}\n"
        "alerts: {rule_files: [rules.yaml], default_rules: false}\n"
    )
    config = config_mod.load(config_path)
    first, second = Store(config.store), Store(config.store)
    daemon, once = Scheduler(config, first, []), Scheduler(config, second, [])
    assert daemon.evaluate_alerts() is True  # keeps the lock, as the daemon's loop does
    assert once.evaluate_alerts(keep_lock=False) is False
    daemon.locks.close()  # the daemon stops
    assert once.evaluate_alerts(keep_lock=False) is True
    assert once.evaluate_alerts(keep_lock=False) is True  # released after each: taken again
    first.close()
    second.close()


def test_columns_point_into_quoted_and_block_expressions(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(f'{ONE_RULE}"a > x"\n      - alert: B\n        expr: >\n          a > x\n')
    _, errors = read(path, None)
    assert errors == [
        f"{path}:5:20: A: column 5: expected a number, found 'x'",  # the x inside the quotes
        f"{path}:7:15: B: in its expr, column 5: expected a number, found 'x'",
    ]


def test_a_rule_over_a_series_the_store_never_held_is_broken(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES.replace("redis.hit_rate", "redis.hit_rat"))
    config_path = tmp_path / "observatory.yaml"
    config_path.write_text(
        f"store: sqlite:///{tmp_path / 'store.db'}\nalerts: {{rule_files: [rules.yaml]}}\n"
    )
    store = Store(config_mod.load(config_path).store)
    outcome = AlertsJob(config_mod.load(config_path), store).run(T0)
    # The misspelt one is broken; the built-in pack's rules over sources not collected are not.
    assert outcome.errors == {
        "HitRateLow": "no series named redis.hit_rat in the store yet (nor a derived one)"
    }
    store.close()
