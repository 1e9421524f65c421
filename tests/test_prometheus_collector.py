"""The Prometheus collector against a real Prometheus scraping real exporters started here.

One Prometheus (1 s scrapes and rule evaluations) scrapes the demo service (request histogram and
counters with known values, dashboard.demo.service), node_exporter, and a port nobody listens on;
its rules hold an always-firing and an always-pending alert. Series use 15 s windows so values
exist a few seconds after start.
"""

from __future__ import annotations

import itertools
import json
import math
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from dashboard.core.prometheus_preset import seed_series
from dashboard.demo.service import (
    DemoService,
    Traffic,
    expected_error_ratio,
    expected_quantile,
)
from dashboard.servers.throwaway import ThrowawayNodeExporter, ThrowawayPrometheus, free_port
from dashboard.store import Store
from dashboard.store.reads import Window, series_frame, target_statuses
from tests.support.stores import collect_once, make_config, only_value, status_row

EVERYTHING = Window(0, 4_000_000_000)
WINDOW = "15s"
pytestmark = pytest.mark.slow  # Prometheus waiting for its scrapes: 9 s for the world, 9 s a traffic pattern
RULES = """
groups:
  - name: observatory-tests
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        for: 0s
        labels: {severity: critical}
        annotations: {summary: "fires from the first evaluation"}
      - alert: AlwaysPending
        expr: vector(1)
        for: 1h
"""
P95 = f"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[{WINDOW}]))) * 1000"


@dataclass
class World:
    prom: ThrowawayPrometheus
    service: DemoService
    node: ThrowawayNodeExporter
    closed: str  # host:port of a scrape target nobody listens on


def query(prom: ThrowawayPrometheus, expr: str, at: int | None = None) -> list:
    params = {"query": expr} if at is None else {"query": expr, "time": at}
    url = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)["data"]["result"]


def wait_for(prom: ThrowawayPrometheus, expr: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query(prom, expr):
            return
        time.sleep(0.25)
    raise AssertionError(f"Prometheus has no data for {expr} after {timeout:g}s")


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with DemoService() as service, ThrowawayNodeExporter() as node:
        closed = f"127.0.0.1:{free_port()}"
        with ThrowawayPrometheus([service.address, node.address, closed], rules=RULES) as prom:
            # Rates need two scrapes, also at a cycle time a second in the past: wait for four.
            # The alert needs one evaluation, the closed port one failed scrape.
            for exporter in (service, node):
                wait_for(prom, f'count_over_time(up{{instance="{exporter.address}"}}[1m]) >= 4')
            wait_for(prom, P95)
            wait_for(prom, 'ALERTS{alertname="AlwaysFiring",alertstate="firing"}')
            wait_for(prom, f'up{{instance="{closed}"}} == 0')
            yield World(prom, service, node, closed)


def target(url: str, name: str = "prod", **extra) -> dict:
    return {"name": name, "url": url, "interval": "2s", "timeout": "2s", "backfill": "1m", **extra}


def points(store: Store, name: str = "prom.series", labels: str | None = None, level: str = "raw"):
    frame = series_frame(store.engine, [store.target_id("prometheus", "prod")], [name], EVERYTHING, level)
    return frame if labels is None else frame[frame["labels"] == labels]


def value_at(store: Store, labels: str, ts: int, name: str = "prom.series") -> float:
    return only_value(points(store, name, labels), ts, f"{name} {labels}")


# -- the seed's targets ------------------------------------------------------------------------------
def test_known_traffic_gives_the_expected_slos(world: World, store: Store) -> None:
    assert expected_quantile(0.95) == pytest.approx(0.175)  # 1800 <= 0.1 s, 200 in (0.1, 0.25]
    assert expected_error_ratio() == pytest.approx(0.0005)
    service = f'instance="{world.service.address}"'
    metrics = {"window": WINDOW, "selector": service, "node_selector": f'instance="{world.node.address}"'}
    config = make_config(
        store.url, [target(world.prom.url, preset="seed", metrics=metrics)], kind="prometheus"
    )
    now = int(time.time())
    cycle = collect_once(config, store, now)[0]

    assert cycle.status.state == "ok", (cycle.status.error, cycle.status.hints)
    assert cycle.status.server_version.startswith("Prometheus 2.")
    assert value_at(store, "name=api_p95_ms", now) == pytest.approx(1000 * expected_quantile(0.95), abs=0.01)
    assert value_at(store, "name=error_ratio", now) == pytest.approx(expected_error_ratio(), rel=1e-6)
    assert value_at(store, "name=availability", now) == 1.0
    assert 0 <= value_at(store, "name=cpu_utilisation", now) <= 1
    assert 0 < value_at(store, "name=memory_utilisation", now) < 1
    details = store.status_details("prometheus", "prod")
    seed = seed_series(metrics)
    assert set(details.series) == set(seed)
    p95 = details.series["api_p95_ms"]
    assert (p95.state, p95.unit, p95.target, p95.expr) == (
        "ok",
        "ms",
        "< 200",
        seed["api_p95_ms"].expr,
    )
    assert all(s.state == "ok" and s.last_ts == now for s in details.series.values())


def test_another_traffic_pattern_moves_p95_by_the_interpolation(store: Store) -> None:
    # p95 rank 0.95 x 100 = 95: 90 in the first bucket, 10 in (0.25, 0.5]: 0.25 + 0.25 x 5/10.
    traffic = Traffic(tick=0.5, requests=100, slow=10, errors=3, fast_seconds=0.03, slow_seconds=0.4)
    assert expected_quantile(0.95, traffic) == pytest.approx(0.375)
    with DemoService(traffic=traffic) as service, ThrowawayPrometheus([service.address]) as prom:
        wait_for(prom, "count_over_time(up[1m]) >= 4")
        series = {
            "p95": {"expr": P95, "unit": "ms", "target": "< 200"},
            "p50": {"expr": P95.replace("0.95", "0.5"), "unit": "ms"},
            "errors": {"expr": f'sum(rate(http_requests_total{{code="500"}}[{WINDOW}])) / '
                               f"sum(rate(http_requests_total[{WINDOW}]))"},
        }  # fmt: skip
        now = int(time.time())
        collect_once(make_config(store.url, [target(prom.url, series=series)], kind="prometheus"), store, now)
    assert value_at(store, "name=p95", now) == pytest.approx(375, abs=0.01)
    assert value_at(store, "name=p50", now) == pytest.approx(1000 * expected_quantile(0.5, traffic), abs=0.01)
    assert value_at(store, "name=errors", now) == pytest.approx(0.03, rel=1e-6)


def test_a_query_with_several_series_keeps_their_labels(world: World, store: Store) -> None:
    series = {"up": {"expr": f"avg_over_time(up[{WINDOW}])", "unit": "ratio"}}
    now = int(time.time())
    assert (
        collect_once(
            make_config(store.url, [target(world.prom.url, series=series)], kind="prometheus"), store, now
        )[0].status.state
        == "ok"
    )
    frame = points(store)
    frame = frame[frame["ts"] == now].set_index("labels")["sum"]  # (the first cycle back-fills too)
    assert frame[f"name=up,instance={world.service.address},job=demo"] == 1.0
    assert frame[f"name=up,instance={world.closed},job=demo"] == 0.0
    assert not any("__name__" in labels for labels in frame.index)


def test_series_told_apart_only_by_metric_name_are_all_kept(world: World, store: Store) -> None:
    """A selector over several metrics returns series whose labels differ only in __name__: each
    keeps its value under its own `metric=` label, whatever order Prometheus returns them in."""
    instance = world.service.address
    expr = f'{{__name__=~"up|scrape_samples_scraped", instance="{instance}"}}'
    now = int(time.time())
    collect_once(
        make_config(store.url, [target(world.prom.url, series={"mix": {"expr": expr}})], kind="prometheus"),
        store,
        now,
    )
    frame = points(store)
    values = frame[frame["ts"] == now].set_index("labels")["sum"].to_dict()
    base = f"name=mix,instance={instance},job=demo"
    scraped = float(query(world.prom, f'scrape_samples_scraped{{instance="{instance}"}}', now)[0]["value"][1])
    assert scraped > 1
    assert values == {f"{base},metric=scrape_samples_scraped": scraped, f"{base},metric=up": 1.0}


# -- back-fill ---------------------------------------------------------------------------------------
def test_backfill_after_a_gap_lands_on_steps_once(world: World, store: Store) -> None:
    wait_for(world.prom, f'count_over_time(up{{instance="{world.service.address}"}}[1m]) >= 10')
    series = {"p95": {"expr": P95, "unit": "ms"}}
    config = make_config(
        store.url, [target(world.prom.url, series=series, backfill="10m")], kind="prometheus"
    )
    now = int(time.time())
    gap_start = now - 120  # the last successful cycle, two minutes ago (a daemon that was stopped)
    first = collect_once(config, store, gap_start)[0]
    assert first.status.state == "degraded"  # Prometheus had no data yet back then
    assert store.status_details("prometheus", "prod").series["p95"].state == "no data"

    cycle = collect_once(config, store, now)[0]  # a new collector: state comes from the store
    assert cycle.status.state == "ok"
    filled = sorted(p.ts for p in cycle.points if p.name == "prom.series" and p.ts is not None)
    assert len(filled) >= 3, filled  # Prometheus holds a few seconds of data
    assert all(gap_start < ts < now and ts % 2 == 0 for ts in filled)  # on the 2 s steps, in the gap
    assert all(b - a == 2 for a, b in itertools.pairwise(filled))  # one every step
    frame = points(store, labels="name=p95")
    assert set(frame["ts"]) == {*filled, now}
    assert frame["sum"].tolist() == pytest.approx([175.0] * len(frame), abs=0.01)

    time.sleep(2)
    later = now + 2
    cycle = collect_once(config, store, later)[0]  # no gap now: only the instant value
    assert [p.ts for p in cycle.points if p.name == "prom.series"] == [None]
    frame = points(store, labels="name=p95")
    assert sorted(frame["ts"]) == sorted({*filled, now, later})
    hourly = points(store, labels="name=p95", level="hourly")
    assert hourly["count"].sum() == len(frame)  # every sample counted once in the roll-ups too


# -- problems ---------------------------------------------------------------------------------------
def test_bad_promql_and_unknown_metric_leave_the_others_running(world: World, store: Store) -> None:
    series = {
        "p95": {"expr": P95, "unit": "ms"},
        "broken": {"expr": "sum(rate(http_requests_total[5m]"},
        "ghost": {"expr": "rate(no_such_metric_total[15s])"},
        "clash": {"expr": "up * on() up"},  # several series match: 422 execution error
    }
    config = make_config(store.url, [target(world.prom.url, series=series)], kind="prometheus")
    now = int(time.time())
    cycle = collect_once(config, store, now)[0]
    assert cycle.status.state == "degraded"
    details = store.status_details("prometheus", "prod").series
    assert details["p95"].state == "ok"
    assert value_at(store, "name=p95", now) == pytest.approx(175, abs=0.01)
    broken = details["broken"]
    assert broken.state == "error" and broken.error.startswith("HTTP 400: bad_data:")
    assert "parse error" in broken.error
    assert details["ghost"].state == "no data"
    assert details["ghost"].error == "no data: the metric may not exist (check the name)"
    clash = details["clash"]
    assert clash.state == "error" and clash.error.startswith("HTTP 422: execution:")
    row = status_row(store, "prometheus", "prod")
    assert row["state"] == "degraded" and "broken" in row["last_error"]
    hints = " | ".join(row["hints"])
    for name in ("broken", "ghost", "clash"):
        assert f"series {name}:" in hints
    assert points(store, labels="name=ghost").empty and points(store, labels="name=broken").empty
    # The page still gets alerts and targets from a degraded cycle.
    assert store.status_details("prometheus", "prod").alerts


def test_down_server_is_a_clear_down_status_without_secrets(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBS_TEST_PROM_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("OBS_TEST_PROM_TOKEN", "tok-very-secret")
    port = free_port()
    config = make_config(
        store.url,
        [
            target(
                f"http://ops:url-secret@127.0.0.1:{port}",
                username="ops",
                password_env="OBS_TEST_PROM_PASSWORD",
                preset="seed",
            ),
            target(f"http://127.0.0.1:{free_port()}", name="bearer", bearer_token_env="OBS_TEST_PROM_TOKEN"),
        ],
        kind="prometheus",
    )
    cycles = collect_once(config, store, int(time.time()))
    for cycle in cycles:
        assert cycle.status.state == "down"
        assert "connection refused" in cycle.status.error
        assert cycle.status.hints == ["is Prometheus running and listening on that host and port?"]
    row = status_row(store, "prometheus", "prod")
    assert row["state"] == "down" and f"127.0.0.1:{port}" in row["last_error"]
    stored = json.dumps(target_statuses(store.engine).astype(str).to_dict("records"))
    for secret in ("hunter2-secret", "tok-very-secret", "url-secret"):
        assert secret not in stored and all(secret not in str(c.status) for c in cycles)


def test_a_server_that_never_answers_is_down_after_the_timeout(store: Store) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        cycle = collect_once(
            make_config(store.url, [target(url, timeout="1s", preset="seed")], kind="prometheus"), store
        )[0]
    assert time.monotonic() - started < 5  # one request timed out; nothing else was tried
    assert cycle.status.state == "down"
    assert cycle.status.error == "Prometheus did not answer within 1s"


def test_missing_password_variable_is_down_with_a_hint(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OBS_TEST_UNSET", raising=False)
    config = make_config(
        store.url,
        [target("http://127.0.0.1:9", username="ops", password_env="OBS_TEST_UNSET")],
        kind="prometheus",
    )
    cycle = collect_once(config, store)[0]
    assert cycle.status.state == "down"
    assert cycle.status.error == "environment variable OBS_TEST_UNSET (password_env) is not set"


# -- alerts and scrape targets -----------------------------------------------------------------------
def test_alerts_and_scrape_targets(world: World, store: Store) -> None:
    config = make_config(
        store.url, [target(world.prom.url, series={"p95": {"expr": P95}})], kind="prometheus"
    )
    now = int(time.time())
    assert collect_once(config, store, now)[0].status.state == "ok"
    details = store.status_details("prometheus", "prod")

    firing = [a for a in details.alerts if a.name == "AlwaysFiring"]
    assert len(firing) == 1 and firing[0].state == "firing"
    assert firing[0].labels == {"severity": "critical"} and firing[0].active_at
    assert firing[0].summary == "fires from the first evaluation" and float(firing[0].value) == 1
    assert [a.state for a in details.alerts] == ["firing", "pending"]  # firing first
    assert value_at(store, "state=firing", now, "prom.alerts") == 1
    assert value_at(store, "state=pending", now, "prom.alerts") == 1

    by_instance = {t.instance: t for t in details.targets}
    assert by_instance[world.service.address].health == "up"
    assert by_instance[world.node.address].health == "up"
    down = by_instance[world.closed]
    assert down.health == "down" and "connection refused" in down.last_error
    assert down.job == "demo" and down.last_scrape
    assert details.targets[0] == down  # down targets first
    assert value_at(store, "health=up", now, "prom.targets") == 2
    assert value_at(store, "health=down", now, "prom.targets") == 1


def test_nan_is_not_stored(world: World, store: Store) -> None:
    series = {"zero": {"expr": "vector(0) / vector(0)"}, "p95": {"expr": P95}}
    now = int(time.time())
    cycle = collect_once(
        make_config(store.url, [target(world.prom.url, series=series)], kind="prometheus"), store, now
    )[0]
    assert cycle.status.state == "ok"  # a 0/0 is no fault of the target
    assert store.status_details("prometheus", "prod").series["zero"].state == "undefined"
    assert points(store, labels="name=zero").empty
    assert not math.isnan(value_at(store, "name=p95", now))


def test_a_url_that_is_no_prometheus_api_is_down(world: World, store: Store) -> None:
    cycle = collect_once(
        make_config(store.url, [target(f"http://{world.service.address}")], kind="prometheus"), store
    )[0]
    assert cycle.status.state == "down"
    assert "is not Prometheus API JSON" in cycle.status.error
    assert "no Prometheus HTTP API at this url" in cycle.status.hints[0]


def test_two_cycles_in_one_second_count_once(world: World, store: Store) -> None:
    config = make_config(
        store.url, [target(world.prom.url, series={"p95": {"expr": P95}})], kind="prometheus"
    )
    now = int(time.time())
    collect_once(config, store, now)
    collect_once(config, store, now)
    hourly = points(store, labels="name=p95", level="hourly")
    assert hourly["count"].sum() == len(points(store, labels="name=p95"))
    assert points(store, "prom.alerts", "state=firing", level="hourly")["count"].sum() == 1
