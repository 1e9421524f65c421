"""The Alerts page through AppTest and in Chromium, on stores written through the real Store API:
collector cycles (`Store.write_cycle`) of a PostgreSQL, a Redis and a Prometheus target over two
hours, the daemon's alert states saved in the order it saves them (`Store.save_alerts`) and its
record of broken rules (`Store.save_journal`)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Page

from dashboard.analysis import alerts as alert_views
from dashboard.core.alerts import Alert
from dashboard.core.records import Cycle, Point, SlowlogEntry, Status
from dashboard.store import Store
from dashboard.store.reads import Window
from dashboard.ui import frame as ui
from tests.support.apptest import charts, no_exception, open_page, texts
from tests.support.browser import charts_drawn, serve, settle, shoot
from tests.support.cycles import cycle as pg_cycle

STEP = 60
HOURS = 2
PG, NODE, PROM = "erp", "cache-1", "prod"  # tests/support/cycles.py writes the PostgreSQL target "erp"
HOSTILE = "![x](http://127.0.0.1:9/beacon.png) <img src=http://127.0.0.1:9/b.png>\n# head :red[red] $x^2$"
BAD_RULES = """groups:
  - name: custom
    rules:
      - alert: QueueDeep
        expr: queue.depth{queue="email"} > 100
        for: 2m
        annotations: {summary: "queue {{ $labels.queue }} holds {{ $value }} jobs"}
      - alert: Broken
        expr: redis.hit_rate < $0.9
"""


def _now() -> int:
    return int(time.time()) // STEP * STEP


def alert(name: str, labels: dict, state: str, value: float, active_at: int, **more) -> Alert:
    return Alert(
        labels={"alertname": name, **labels},
        annotations={"summary": more.pop("summary", f"{name} on {labels.get('target', '?')}")},
        state=state,  # type: ignore[arg-type]
        value=value,
        active_at=active_at,
        **more,
    )


def write_series(store: Store, now: int) -> None:
    """Two hours of cycles: statement 2 starts running hot 25 minutes ago; lock waits, a Redis latency
    spike, a growing queue and slower API answers at the same time."""
    cycles = []
    for ts in range(now - HOURS * 3600, now + 1, STEP):
        hot = ts >= now - 1500
        base = pg_cycle(ts, {1: 10, 2: 300 if hot else 1}, cumulative=float(ts))
        base.points += [
            Point("pg.connections.waiting_on_lock", 4.0 if hot else 0.0),
            Point("pg.connections", 2.0, "gauge", "state=idle in transaction"),
            Point("pg.connections.max", 100.0),
            Point("pg.db.blks_hit", None, "counter", "datname=erp", delta=900.0),
            Point("pg.db.blks_read", None, "counter", "datname=erp", delta=100.0),
        ]
        cycles.append(base)
        hits, misses = (70.0, 30.0) if hot else (95.0, 5.0)
        cycles.append(
            Cycle(
                "redis",
                NODE,
                ts,
                Status(),
                points=[
                    Point("redis.keyspace.hits", None, "counter", delta=hits),
                    Point("redis.keyspace.misses", None, "counter", delta=misses),
                    Point("redis.ops", None, "counter", delta=hits + misses),
                    Point("redis.latency.latest_ms", 40.0 if hot else 1.0, "gauge", "event=command"),
                    Point(
                        "redis.queue.depth",
                        float((ts - now + 1500) // 60 if hot else 3),
                        "gauge",
                        "lib=bullmq,queue=email,state=wait",
                    ),
                    Point("redis.queue.depth", 500.0, "gauge", "lib=bullmq,queue=email,state=completed"),
                ],
                slowlog=[SlowlogEntry(ts // STEP, ts - 5, 25_000, "EVAL slow-script 0", "10.0.0.7:5000")]
                if hot and ts % 300 == 0
                else [],
            )
        )
        cycles.append(
            Cycle(
                "prometheus",
                PROM,
                ts,
                Status(),
                points=[
                    Point("prom.series", 350.0 if hot else 120.0, "gauge", "name=api_p95_ms"),
                    Point("prom.alerts", 2.0, "gauge", "state=firing"),
                    Point("prom.alerts", 0.0, "gauge", "state=pending"),
                ],
            )
        )
    store.write_cycles(cycles)


def write_alerts(store: Store, now: int) -> dict[str, Alert]:
    """The daemon's evaluations, in time order: a queue alert that fired and resolved an hour ago,
    the cache hit rate pending then firing, the connections pending now."""
    queue = alert("QueueBacklogGrowing", {"target": NODE, "kind": "redis", "queue": "email"}, "pending", 4.0,
                  now - 3600, source_url=f"redis?targets={NODE}")  # fmt: skip
    queue_firing = queue._replace(state="firing", fired_at=now - 3300, value=9.0)
    queue_resolved = queue_firing._replace(state="resolved", resolved_at=now - 3000, value=0.0)
    cache = alert("CacheHitRateLow", {"target": NODE, "kind": "redis", "severity": "warning"}, "pending", 0.7,
                  now - 1200, summary="Cache hit rate 0.7 on cache-1 (target > 0.9)",
                  source_url=f"redis?targets={NODE}")  # fmt: skip
    cache_firing = cache._replace(state="firing", fired_at=now - 900)
    conns = alert("PgConnectionsHigh", {"target": PG, "kind": "postgres"}, "pending", 0.85, now - 120,
                  source_url=f"overview?targets={PG}")  # fmt: skip
    store.save_alerts([queue], [queue], now - 3600)
    store.save_alerts([queue_firing], [queue_firing], now - 3300)
    store.save_alerts([], [queue_resolved], now - 3000)
    store.save_alerts([cache], [cache], now - 1200)
    store.save_alerts([cache_firing], [cache_firing], now - 900)
    store.save_alerts([cache_firing, conns], [conns], now - 120)
    return {"queue": queue_resolved, "cache": cache_firing, "conns": conns}


def write_config(folder: Path, url: str, **alerts: object) -> Path:
    config = {
        "store": url,
        "targets": {
            "postgres": [{"name": PG, "dsn": "postgresql://app@127.0.0.1:9/erp"}],
            "redis": [{"name": NODE, "url": "redis://127.0.0.1:9/0"}],
            "prometheus": [
                {
                    "name": PROM,
                    "url": "http://127.0.0.1:9",
                    "series": {"api_p95_ms": {"expr": "x", "unit": "ms", "target": "< 200"}},
                }
            ],
        },
        "alerts": alerts,
    }
    path = folder / "observatory.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("alerts")
    url = f"sqlite:///{folder / 'store.db'}"
    now = _now()
    store = Store(url)
    try:
        write_series(store, now)
        found = write_alerts(store, now)
        errors = {
            "load": ["rules/old.yaml:4:9: Gone: unknown key 'exprr'"],
            "rules": {"RedisMemoryHigh": "OperationalError: no such column: <b>value</b>"},
        }
        store.save_journal(alert_views.RULE_ERRORS, json.dumps(errors))
    finally:
        store.close()
    (folder / "rules.yaml").write_text(BAD_RULES)
    silence = {"matchers": {"alertname": "CacheHitRateLow"}, "until": "2099-01-01T00:00:00Z",
               "comment": "cache migration"}  # fmt: skip
    config = write_config(folder, url, rule_files=["rules.yaml"], silences=[silence])
    return {"url": url, "config": config, "now": now, **found}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A store whose alert carries markup in a label, its summary and a silence's comment."""
    folder = tmp_path_factory.mktemp("hostile-alerts")
    url = f"sqlite:///{folder / 'store.db'}"
    now = _now()
    store = Store(url)
    try:
        store.write_cycle(Cycle("redis", NODE, now - 60, Status(), points=[Point("redis.ops", 1.0)]))
        bad = alert("QueueJobsFailing", {"target": NODE, "kind": "redis", "queue": HOSTILE}, "firing", 3.0,
                    now - 600, fired_at=now - 600, summary=f"Queue {HOSTILE} fails")  # fmt: skip
        store.save_alerts([bad], [bad], now - 600)
        store.save_journal(
            alert_views.RULE_ERRORS, json.dumps({"load": [f"x.yaml:1:1: {HOSTILE}"], "rules": {}})
        )
    finally:
        store.close()
    silence = {"matchers": {"queue": HOSTILE}, "until": "2099-01-01T00:00:00Z", "comment": HOSTILE}
    config = write_config(folder, url, default_rules=False, silences=[silence])
    return {"url": url, "config": config, "now": now, "alert": bad}


def frames(at) -> list:
    return [d.value for d in at.dataframe]


def table_with(at, column: str):
    return next(t for t in frames(at) if column in t.columns)


# -- the analyses -----------------------------------------------------------------------------------
def test_episodes_follow_the_states(filled) -> None:
    now = filled["now"]
    window = Window(now - 86400, now)
    events = alert_views.history(_reader(filled), window)
    found = alert_views.episodes(events, [filled["cache"], filled["conns"]], window, now, 30)
    rows = {r.name: r for r in found.itertuples()}
    queue = rows["QueueBacklogGrowing"]
    assert (queue.start, queue.fired, queue.end, queue.state) == (
        now - 3600,
        now - 3300,
        now - 3000,
        "resolved",
    )
    assert queue.duration_s == 600 and not queue.ongoing
    cache = rows["CacheHitRateLow"]
    assert (cache.state, cache.start, cache.fired, cache.end, cache.ongoing) == (
        "firing",
        now - 1200,
        now - 900,
        now,
        True,
    )
    activity = alert_views.activity(found, window, now)
    firing = activity[activity["series"] == "firing"].set_index("ts")["value"]
    assert firing[now - 3300] == 1 and firing[now - 3000] == 0 and firing[now] == 1
    pending = activity[activity["series"] == "pending"].set_index("ts")["value"]
    assert pending[now - 120] == 1 and pending[now - 3600] == 1


def _reader(filled):
    from dashboard.analysis.reader import Reader
    from dashboard.core import config as config_mod

    return Reader.open(config_mod.load(str(filled["config"])))


# -- the page ---------------------------------------------------------------------------------------
def test_firing_and_pending_now(monkeypatch, filled) -> None:
    at = open_page(monkeypatch, filled["config"], "alerts")
    no_exception(at)
    assert ":red-badge[1 firing] :orange-badge[1 pending]" in texts(at.markdown)
    now_table = table_with(at, "since")
    assert now_table["name"].tolist() == ["CacheHitRateLow", "PgConnectionsHigh"]
    assert now_table["state"].tolist() == ["firing", "pending"]
    assert now_table["value"].tolist() == ["0.7", "0.85"]
    assert now_table["since"].iloc[0].timestamp() == filled["now"] - 1200
    assert now_table["for"].iloc[0] in ("20 min", "21 min", "22 min")
    assert now_table["summary"].iloc[0] == "Cache hit rate 0.7 on cache-1 (target > 0.9)"
    assert now_table["labels"].iloc[0] == "kind=redis, severity=warning, target=cache-1"
    assert now_table["page"].tolist() == [f"redis?targets={NODE}", f"overview?targets={PG}"]
    # the history: the window's chart, and one row per episode once its expander is opened
    titles = [c["title"] for c in charts(at)]
    assert titles == ["Alerts active"]
    assert not any("lasted" in t.columns for t in frames(at))
    at.session_state["episodes_open"] = True
    at.run()
    history = table_with(at, "lasted")
    assert history["name"].tolist() == ["PgConnectionsHigh", "CacheHitRateLow", "QueueBacklogGrowing"]
    assert history["state"].tolist() == ["pending (now)", "firing (now)", "resolved"]
    assert history["lasted"].iloc[2] == "10 min"
    # silences, Prometheus' own alerts
    silences = table_with(at, "matchers")
    assert silences.iloc[0][["matchers", "state", "comment", "muting"]].tolist() == [
        "alertname=CacheHitRateLow", "active", "cache migration", 1,
    ]  # fmt: skip
    prom = {m.label: m.value for m in at.metric}
    assert prom == {ui.md_escape(PROM): "2 firing"}
    # every change of state, once its expander is opened
    assert not any("time" in t.columns for t in frames(at))
    at.session_state["events_open"] = True
    at.run()
    events = table_with(at, "time")
    assert events["state"].tolist() == ["pending", "firing", "pending", "resolved", "firing", "pending"]
    assert events["name"].iloc[0] == "PgConnectionsHigh"


def test_rules_and_broken_ones(monkeypatch, filled) -> None:
    at = open_page(monkeypatch, filled["config"], "alerts")
    no_exception(at)
    errors = texts(at.error)
    assert ui.md_escape("Gone: unknown key 'exprr'") in errors  # the daemon's load problem
    assert ui.md_escape("Broken: column") in errors  # the file as it is now
    assert ui.md_escape("RedisMemoryHigh: OperationalError: no such column: <b>value</b>") in errors
    labels = "\n".join(e.label for e in at.expander)
    assert re.search(r"^All \d+ rules: 1 broken, 1 firing, 1 pending, \d+ ok$", labels, re.M), labels
    assert not any("expr" in t.columns for t in frames(at))  # the table is drawn once opened
    at.session_state["rules_open"] = True
    at.run()
    rules = table_with(at, "expr")
    by_name = rules.set_index("name")
    assert by_name.loc["CacheHitRateLow", "status"] == "firing"
    assert by_name.loc["PgConnectionsHigh", "status"] == "pending"
    assert by_name.loc["RedisMemoryHigh", "status"] == "broken"
    assert by_name.loc["RedisMemoryHigh", "error"].startswith("OperationalError")
    assert by_name.loc["TargetDown", "status"] == "ok"
    assert by_name.loc["QueueDeep", "group"] == "custom" and by_name.loc["QueueDeep", "for"] == "2 min"
    assert "Broken" not in by_name.index
    assert by_name.loc["QueueDeep", "where"].startswith("rules.yaml:4:")  # relative to the config file
    assert by_name.loc["TargetDown", "where"].startswith("built-in pack:")
    # the detail, drawn once opened: the rule's series and its threshold
    assert len(charts(at)) == 1
    at.session_state["rule_open"] = True
    at.run()
    names = rules["name"].tolist()
    at.selectbox(key="rule_detail").set_value(names.index("CacheHitRateLow")).run()
    no_exception(at)
    chart = charts(at)[-1]
    assert chart["title"] == "CacheHitRateLow"
    labels = [s["label"] for s in chart["series"]]
    assert labels == [NODE, "threshold < 0.9"]
    assert min(v for v in chart["series"][0]["values"] if v is not None) == pytest.approx(0.7)


def test_incident_view_across_layers(monkeypatch, filled) -> None:
    now = filled["now"]
    at = open_page(monkeypatch, filled["config"], "alerts", incident=filled["cache"].fingerprint)
    no_exception(at)
    assert "Incident: CacheHitRateLow" in texts(at.subheader)
    found = charts(at)
    titles = [c["title"] for c in found]
    assert titles == [
        "CacheHitRateLow: redis.hit_rate",
        "PostgreSQL sessions waiting on a lock",
        "Connections by state",
        "Redis latency (LATENCY LATEST)",
        "Queue backlog (jobs not finished)",
        "api_p95_ms",
    ]
    assert all(c["series"] for c in found), [c["title"] for c in found if not c["series"]]
    spec = at.get("iframe")[0].proto.srcdoc
    assert f'"window":[{now - 1200 - 1800},' in spec  # one time axis: 30 min before it became active
    statements = table_with(at, "change_s")
    assert statements["link"].iloc[0].startswith("query?id=")
    assert "SELECT 2 FROM t" in statements["query"].iloc[0]  # the statement that ran hot
    assert statements["change_s"].iloc[0] > 0
    slow = table_with(at, "duration_ms")
    assert len(slow) >= 4 and slow["command"].iloc[0] == "EVAL slow-script 0"
    assert at.button[0].label == "All alerts"
    at.button[0].click().run()
    assert "Firing and pending now" in texts(at.subheader)


def test_incident_of_a_resolved_alert_and_an_unknown_one(monkeypatch, filled) -> None:
    at = open_page(monkeypatch, filled["config"], "alerts", incident=filled["queue"].fingerprint)
    no_exception(at)
    assert "Incident: QueueBacklogGrowing" in texts(at.subheader)
    spec = at.get("iframe")[0].proto.srcdoc
    now = filled["now"]
    assert f'"window":[{now - 3600 - 1800},{now - 3000}]' in spec
    at = open_page(monkeypatch, filled["config"], "alerts", incident="[x](javascript:1)")
    no_exception(at)
    assert ui.md_escape("[x](javascript:1)") in texts(at.warning)


def test_empty_state(monkeypatch, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    Store(url).close()
    at = open_page(monkeypatch, write_config(tmp_path, url), "alerts")
    no_exception(at)
    assert "No alert firing or pending" in texts(at.success)
    assert 'README section "Alerts"' in texts(at.caption)
    assert "has not evaluated the rules yet" in texts(at.caption)
    assert "No alert was pending or firing" in texts(at.caption)
    assert "No silence configured" in texts(at.caption)


def test_hostile_labels_render_as_text(monkeypatch, hostile) -> None:
    at = open_page(monkeypatch, hostile["config"], "alerts")
    no_exception(at)
    now_table = table_with(at, "since")
    assert now_table["labels"].iloc[0] == f"kind=redis, queue={HOSTILE}, target={NODE}"  # a cell: text
    assert now_table["summary"].iloc[0] == f"Queue {HOSTILE} fails"
    assert ui.md_escape(f"x.yaml:1:1: {HOSTILE}") in texts(at.error)
    assert table_with(at, "matchers")["comment"].iloc[0] == HOSTILE
    at = open_page(monkeypatch, hostile["config"], "alerts", incident=hostile["alert"].fingerprint)
    no_exception(at)
    shown = texts(at.markdown) + texts(at.caption)
    assert ui.md_escape(f"Queue {HOSTILE} fails") in shown
    assert ui.md_escape(f"kind=redis, queue={HOSTILE}, target={NODE}") in shown
    for raw in ("![x](", "<img", ":red[", "$x^2$", "\n# head"):
        assert not re.search(r"(?<!\\)" + re.escape(raw), shown), raw  # each one escaped


# -- in Chromium --------------------------------------------------------------------------------------
def test_alerts_page_in_chromium(page: Page, filled, hostile, tmp_path_factory) -> None:
    with serve(str(filled["config"]), tmp_path_factory) as url:
        page.goto(f"{url}/alerts")
        page.get_by_role("heading", name="Firing and pending now").wait_for()
        settle(page)
        assert charts_drawn(page, 1) == 1
        assert page.locator("[data-testid='stException']").count() == 0
        shoot(page, "alerts")
        page.goto(f"{url}/alerts?incident={filled['cache'].fingerprint}")
        page.get_by_role("heading", name="Incident: CacheHitRateLow").wait_for()
        settle(page)
        assert charts_drawn(page, 6) == 6
        assert page.locator("[data-testid='stException']").count() == 0
        shoot(page, "alerts-incident")
    with serve(str(hostile["config"]), tmp_path_factory) as url:
        page.goto(f"{url}/alerts?incident={hostile['alert'].fingerprint}")
        page.get_by_role("heading", name="Incident: QueueJobsFailing").wait_for()
        settle(page)
        text = page.locator("body").inner_text().replace(ui.WORD_JOINER, "")
        assert "![x](http://127.0.0.1:9/beacon.png)" in text and ":red[red]" in text
        markdown = "[data-testid='stMarkdownContainer'], [data-testid='stCaptionContainer']"
        found = page.locator(f":is({markdown}) :is(img, a, h1, h2, .katex, .stMarkdownColoredText)")
        made = "els => els.filter(e => !e.closest(\"[data-testid='stHeading']\")).map(e => e.outerHTML)"
        assert found.evaluate_all(made) == []  # the page's own headings (and their anchors) aside
        assert page.locator("[data-testid='stException']").count() == 0
        shoot(page, "alerts-hostile")
