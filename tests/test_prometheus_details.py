"""The Prometheus collector's details as they cross the store (dashboard.core.prometheus_details).

`prometheus_stored_details.json` is a `target_status.details` row written by the collector before
the details were a typed record (seed preset, a series with bad PromQL and one that is NaN, against
a real Prometheus with a firing and a pending alert and a scrape target that is down): it still
loads, reads as it did, and the records write it back byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.prometheus.samples import alert_list, target_list
from dashboard.analysis import services as service_views
from dashboard.core.prometheus_details import PrometheusDetails, SeriesDetail
from dashboard.core.records import Cycle, Status
from dashboard.store import Store
from dashboard.store.engine import make_engine
from dashboard.store.reads import target_details
from tests.support.stores import stored_details

CAPTURED = Path(__file__).with_name("prometheus_stored_details.json").read_text().rstrip("\n")


def stored(tmp_path: Path, details: str | PrometheusDetails) -> tuple[Store, PrometheusDetails]:
    """Write a successful cycle with these details (records, or the JSON of a row an earlier version
    wrote, kept as it is); read them back as the Services page does."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    if isinstance(details, str):
        stored_details(store, "prometheus", "svc", details)
    else:
        store.write_cycle(Cycle("prometheus", "svc", 1_000, Status(details=details)))
    engine = make_engine(url, readonly=True)
    try:
        found = target_details(engine, store.target_id("prometheus", "svc"))
    finally:
        engine.dispose()
    assert found is not None
    return store, found


def test_details_stored_before_the_records_still_load(tmp_path: Path) -> None:
    store, details = stored(tmp_path, CAPTURED)  # as the dict-building collector wrote it
    try:
        assert details.to_stored() == CAPTURED  # same keys, same order, same values
        # The collector reads its own last details back the same way (StateSource.status_details).
        assert store.status_details("prometheus", "svc") == details
    finally:
        store.close()
    assert details.last_success == 1796026450 and (details.alerts_total, details.targets_total) == (2, 2)
    assert details.series["api_p95_ms"] == SeriesDetail(
        state="ok",
        error=None,
        last_ts=1796026450,
        unit="ms",
        target="< 200",
        expr=details.series["api_p95_ms"].expr,
    )
    assert details.series["broken"].last_ts is None and details.series["broken"].state == "error"
    firing, pending = details.alerts
    assert (firing.name, firing.state, firing.labels) == ("AlwaysFiring", "firing", {"severity": "critical"})
    assert firing.active_at == "2026-11-30T08:14:01.963831661Z" and firing.value == "1e+00"
    assert firing.summary == "fires from the first evaluation on" and pending.summary is None
    down = details.targets[0]
    assert down.health == "down" and "connection refused" in (down.last_error or "")
    assert details.targets[1].last_error is None and details.targets[1].last_scrape
    # What the Services page makes of them.
    assert service_views.state_counts(details) == {
        "firing": 1, "pending": 1, "targets": 2, "targets_up": 1, "targets_down": 1
    }  # fmt: skip
    assert set(service_views.series_errors(details)) == {
        "cpu_utilisation",
        "memory_utilisation",
        "broken",
        "zero",
    }
    assert service_views.alerts_table(details)["summary"].tolist() == [
        "fires from the first evaluation on",
        "",
    ]
    assert service_views.down_targets(details)["job"].tolist() == ["demo"]


def test_the_collector_builds_the_same_json(tmp_path: Path) -> None:
    """Records built from Prometheus' answers (as the collector builds them) store the old JSON."""
    old = json.loads(CAPTURED)
    answer = {
        "alerts": [
            {"labels": {"alertname": a["name"], **a["labels"]}, "state": a["state"],
             "activeAt": a["activeAt"], "value": a["value"],
             "annotations": {"summary": a["summary"]} if "summary" in a else {}}
            for a in old["alerts"]
        ]
    }  # fmt: skip
    scrape = {
        "activeTargets": [
            {"labels": {"job": t["job"], "instance": t["instance"]}, "scrapePool": t["job"],
             "health": t["health"], "lastError": t["lastError"] or "", "lastScrape": t["lastScrape"]}
            for t in old["targets"]
        ]
    }  # fmt: skip
    alerts, targets = alert_list(answer), target_list(scrape, lambda text: text)
    built = PrometheusDetails(
        series={name: SeriesDetail(**s) for name, s in old["series"].items()},
        alerts=alerts,
        alerts_total=len(alerts),
        targets=targets,
        targets_total=len(targets),
        last_success=old["last_success"],
    )
    assert built.to_stored() == CAPTURED
    store, details = stored(tmp_path, built)
    store.close()
    assert details == built


@pytest.mark.parametrize(
    "text",
    [
        # A server without the alerts and targets endpoints: the collector leaves both out.
        '{"series": {"p95": {"state": "ok", "error": null, "last_ts": 5, "unit": "ms", "target": null, '
        '"expr": "x"}}, "last_success": 5}',
        # Keys missing everywhere take their defaults, as the readers' .get(...) did.
        '{"series": {"p95": {"state": "no data"}}, "alerts": [{"state": "firing"}], "targets": [{}]}',
    ],
)
def test_missing_keys_take_defaults_and_stay_missing(tmp_path: Path, text: str) -> None:
    store, details = stored(tmp_path, text)
    store.close()
    assert details.to_stored() == text
    errors = service_views.series_errors(details)
    counts = service_views.state_counts(details)
    if details.alerts:
        assert details.series["p95"].unit == "" and details.series["p95"].expr is None
        assert errors == {"p95": "no data"}
        assert counts == {"firing": 1, "pending": 0, "targets": 1, "targets_up": 0, "targets_down": 1}
        assert service_views.alerts_table(details)["name"].tolist() == ["(unnamed)"]
        assert service_views.scrape_targets(details)["health"].tolist() == ["unknown"]
    else:
        assert errors == {} and details.last_success == 5
        assert counts == {"firing": 0, "pending": 0, "targets": 0, "targets_up": 0, "targets_down": 0}


def test_no_details_stored_reads_as_none(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.write_cycle(Cycle("prometheus", "svc", 1_000, Status(state="down", error="refused")))
    store.write_cycle(Cycle("prometheus", "none", 1_000, Status()))  # no details: as none
    stored_details(store, "prometheus", "empty", "{}")  # empty ones: as none
    engine = make_engine(url, readonly=True)
    try:
        assert target_details(engine, store.target_id("prometheus", "svc")) is None
        assert target_details(engine, store.target_id("prometheus", "none")) is None
        assert target_details(engine, store.target_id("prometheus", "empty")) is None
    finally:
        engine.dispose()
        store.close()
