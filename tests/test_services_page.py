"""The Services page through AppTest, and its SLO figures (dashboard.analysis.slo) on real stored data.

The page's store is built the way the daemon builds it: a throwaway `prometheus` scraping the
exporter of known values (dashboard.demo.service: p95 175 ms, 0.05 % errors), a scrape target
that is down, an always-firing and an always-pending alert rule, a PostgreSQL target with a real
workload beside it, and three collector cycles of both.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dashboard.analysis import services as service_views
from dashboard.analysis import slo
from dashboard.core import config as config_mod
from dashboard.core import metrics
from dashboard.core.config import Series
from dashboard.core.records import Cycle, Point, Status
from dashboard.demo.service import Traffic, expected_error_ratio, expected_quantile
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.reads import Window, series_frame, target_details
from dashboard.ui import frame as ui
from tests.support.apptest import charts, empty_store_config, no_exception, open_page, texts
from tests.support.services import TARGET

EVERYTHING = Window(0, 4_000_000_000)


@pytest.fixture(scope="module")
def stored(services_populated: dict):
    """The service target's stored readings (raw level) and its status details."""
    engine = make_engine(services_populated["url"], readonly=True)
    try:
        tid = int(
            engine.connect().exec_driver_sql(f"SELECT id FROM targets WHERE name = '{TARGET}'").scalar_one()
        )
        frame = series_frame(
            engine, [tid], [metrics.PROM_SERIES, metrics.PROM_ALERTS, metrics.PROM_TARGETS], EVERYTHING, "raw"
        )
        return frame, target_details(engine, tid)
    finally:
        engine.dispose()


# -- the page -------------------------------------------------------------------------------------
def test_empty_store_explains_how_to_configure_prometheus(monkeypatch, tmp_path) -> None:
    at = open_page(monkeypatch, empty_store_config(tmp_path), "services")
    no_exception(at)
    message = texts(at.info)
    assert "No Prometheus target" in message
    assert "targets:\n  prometheus:" in message and "preset: seed" in message
    # The example in the message is a valid configuration.
    example = message.split("```yaml\n")[1].split("```")[0]
    parsed = config_mod.from_dict({"targets": __import__("yaml").safe_load(example)["targets"]})
    assert parsed.targets.prometheus[0].preset == "seed"
    assert not at.dataframe


def test_configured_but_never_collected(monkeypatch, tmp_path) -> None:
    config_file = tmp_path / "observatory.yaml"
    config_file.write_text(
        f"store: sqlite:///{tmp_path / 'fresh.db'}\n"
        "targets:\n  prometheus:\n    - {name: prod, url: 'http://127.0.0.1:9', preset: seed}\n"
    )
    at = open_page(monkeypatch, config_file, "services")
    no_exception(at)
    assert "No service data yet" in texts(at.info)
    assert "prod" in texts(at.markdown)  # its health card


def test_scorecard_charts_alerts_and_down_targets(monkeypatch, services_populated, stored) -> None:
    frame, _ = stored
    at = open_page(monkeypatch, services_populated["config"], "services")
    no_exception(at)
    card = at.dataframe[0].value
    rows = card.set_index("objective")
    # The verdict follows the stored readings: their mean against the preset's '< 200'.
    p95 = slo.readings(frame).query("series == 'api_p95_ms'")["value"]
    assert len(p95) >= 3
    assert p95.to_numpy() == pytest.approx(expected_quantile(0.95) * 1000, rel=1e-6)
    verdict = "pass" if p95.mean() < 200 else "fail"
    assert rows.loc["api_p95_ms", "verdict"] == verdict == "pass"
    assert rows.loc["api_p95_ms", "window"] == slo.fmt_value(p95.mean(), "ms") == "175.0 ms"
    assert rows.loc["api_p95_ms", "target"] == "< 200 ms"
    assert rows.loc["error_ratio", "window"] == "0.050 %"
    assert rows.loc["error_ratio", "verdict"] == "pass"
    # One of the two scrape targets is down: availability is about 50 %, far below 99.9 %.
    assert rows.loc["availability", "verdict"] == "fail"
    assert rows.loc["cpu_utilisation", "verdict"] == "no data"  # no node_exporter here
    assert len(charts(at)) == 5  # the five series (the overlay is drawn once opened)
    alerts = at.dataframe[1].value
    assert alerts[["name", "state"]].values.tolist() == [
        ["AlwaysFiring", "firing"],
        ["AlwaysPending", "pending"],
    ]
    assert "severity=critical" in alerts["labels"].iloc[0]
    down = at.dataframe[2].value
    assert len(down) == 1 and "refused" in down["last_error"].iloc[0]
    assert "1 alert firing, 1 pending" in texts(at.error)
    assert "1 of 2 scrape targets down" in texts(at.error)
    assert ui.md_escape("series cpu_utilisation") in texts(
        at.warning
    )  # the collector's hint, from the health banner


def test_overlay_puts_a_query_beside_a_service_series(monkeypatch, services_populated) -> None:
    at = open_page(monkeypatch, services_populated["config"], "services")
    assert not at.selectbox  # the timeline is drawn once its expander is opened
    at.session_state["overlay_open"] = True
    at.run()
    service, beside = at.selectbox(key="overlay_service"), at.selectbox(key="overlay_other")
    assert "api_p95_ms" in service.options
    assert any(o.startswith("Query #") for o in beside.options), beside.options
    service.select("error_ratio").run()
    no_exception(at)
    chart = charts(at)[-1]
    sides = {s["label"]: s["right"] for s in chart["series"]}
    assert sides["error_ratio"] is False and any(sides.values()), sides  # the query on the right axis
    assert chart["right_unit"] == "query mean (ms)"


# -- dashboard.analysis.slo and .services on real stored data ---------------------------------------
HOUR = 3600


def _stored(tmp_path: Path, readings: dict[str, list[tuple[int, float]]]):
    """Write the readings as a collector would (prom.series points), read them back at raw and
    hourly level as the analyses' Reader does (reads.series_frame)."""
    url = f"sqlite:///{tmp_path / 'slo.db'}"
    store = Store(url)
    for name, points in readings.items():
        for ts, value in points:
            labels = name if "=" in name else f"name={name}"
            cycle = Cycle(
                "prometheus", "svc", ts, Status(), points=[Point(metrics.PROM_SERIES, value, "gauge", labels)]
            )
            store.write_cycle(cycle)
    store.close()
    engine = make_engine(url, readonly=True)
    try:
        raw = series_frame(engine, [1], [metrics.PROM_SERIES], EVERYTHING, "raw")
        hourly = series_frame(engine, [1], [metrics.PROM_SERIES], EVERYTHING, "hourly")
    finally:
        engine.dispose()
    return raw, hourly


def test_worst_hour_window_mean_and_current(tmp_path) -> None:
    base = 1_700_000_000 - 1_700_000_000 % HOUR
    p95 = [(base + 60, 100.0), (base + 120, 120.0), (base + HOUR + 60, 250.0), (base + HOUR + 90, 300.0),
           (base + 2 * HOUR + 10, 150.0)]  # fmt: skip
    raw, hourly = _stored(tmp_path, {"api_p95_ms": p95})
    config = {"api_p95_ms": Series(expr="x", unit="ms", target="< 200")}
    row = slo.scorecard(raw, hourly, raw, config).iloc[0]
    assert row["value"] == pytest.approx((100 + 120 + 250 + 300 + 150) / 5)  # 184: passes < 200
    assert row["passed"] is True
    assert (row["worst"], row["worst_ts"], row["worst_passed"]) == (275.0, base + HOUR, False)
    assert (row["current"], row["current_ts"]) == (150.0, base + 2 * HOUR + 10)
    assert row["readings"] == 5
    stricter = {"api_p95_ms": Series(expr="x", unit="ms", target="< 150")}
    assert slo.scorecard(raw, hourly, raw, stricter).iloc[0]["passed"] is False
    # Hours that end before the window starts are not the window's worst.
    later = slo.scorecard(raw, hourly, raw, config, window_start=base + 2 * HOUR).iloc[0]
    assert (later["worst"], later["worst_ts"]) == (150.0, base + 2 * HOUR)


def test_availability_is_the_fraction_of_time_up_and_its_worst_hour_the_lowest(tmp_path) -> None:
    base = 1_700_000_000 - 1_700_000_000 % HOUR
    up = [(base + i * 60, 1.0) for i in range(60)] + [
        (base + HOUR + i * 60, 0.0 if i < 6 else 1.0) for i in range(60)
    ]
    raw, hourly = _stored(tmp_path, {"availability": up})
    config = {"availability": Series(expr="x", unit="ratio", target=">= 0.999")}
    row = slo.scorecard(raw, hourly, raw, config).iloc[0]
    assert row["value"] == pytest.approx(114 / 120)  # down 6 of 120 minutes
    assert row["passed"] is False
    assert (row["worst"], row["worst_ts"]) == (pytest.approx(0.9), base + HOUR)
    assert slo.fmt_value(row["value"], "ratio") == "95.00 %"
    assert slo.fmt_target(">=", 0.999, "ratio") == ">= 99.9 %"
    assert slo.fmt_target("<", 0.001, "ratio") == "< 0.1 %"


def test_each_label_set_is_scored_and_series_without_target_are_not(tmp_path) -> None:
    base = 1_700_000_000 - 1_700_000_000 % HOUR
    raw, hourly = _stored(
        tmp_path,
        {
            "instance=a:9100,name=cpu": [(base + 10, 0.5), (base + 20, 0.6)],
            "instance=b:9100,name=cpu": [(base + 10, 0.9), (base + 20, 0.8)],
            "name=load": [(base + 10, 3.0)],
        },
    )
    config = {"cpu": Series(expr="x", unit="ratio", target="< 0.7"), "load": Series(expr="y")}
    card = slo.scorecard(raw, hourly, raw, config).set_index("labels")
    assert list(card["series"]) == ["cpu", "cpu"]
    assert card.loc["instance=a:9100", "passed"] is True and card.loc["instance=b:9100", "passed"] is False
    assert card.loc["instance=b:9100", "value"] == pytest.approx(0.85)
    empty = slo.scorecard(
        raw.iloc[0:0], hourly.iloc[0:0], raw.iloc[0:0], {"gone": Series(expr="z", target="> 1")}
    )
    assert empty.iloc[0]["passed"] is None and math.isnan(empty.iloc[0]["value"])


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [("<", 199.9, True), ("<", 200.0, False), ("<=", 200.0, True), ("<=", 200.1, False),
     (">", 200.1, True), (">", 200.0, False), (">=", 200.0, True), (">=", 199.9, False)],
)  # fmt: skip
def test_pass_or_fail_for_each_operator(op: str, value: float, expected: bool) -> None:
    assert slo.passes(value, op, 200.0) is expected
    assert slo.passes(math.nan, op, 200.0) is None
    series = Series(expr="x", unit="ms", target=f"{op} 200")
    assert series.slo == (op, 200.0)


def test_prometheus_state_from_the_stored_details(stored) -> None:
    frame, details = stored
    counts = service_views.state_counts(details)
    assert counts == {"firing": 1, "pending": 1, "targets": 2, "targets_up": 1, "targets_down": 1}
    assert slo.counts(frame, metrics.PROM_ALERTS, "state") == {"firing": 1.0, "pending": 1.0}
    assert slo.counts(frame, metrics.PROM_TARGETS, "health") == {"up": 1.0, "down": 1.0}
    alerts = service_views.alerts_table(details)
    assert alerts["summary"].iloc[0] == "fires from the first evaluation on"
    assert alerts["since"].notna().all()
    down = service_views.down_targets(details)
    assert down["last_scrape"].notna().all() and down["job"].iloc[0] == "demo"
    errors = service_views.series_errors(details)
    assert set(errors) == {"cpu_utilisation", "memory_utilisation"}
    assert expected_error_ratio(Traffic()) == 0.0005
