"""A store of real Prometheus cycles: a throwaway `prometheus` scraping the exporter of known values
(dashboard.demo.service: p95 175 ms, 0.05 % errors), a scrape target that is down, an always-firing
and an always-pending alert rule, a PostgreSQL target with a real workload beside it, and three
collector cycles of both.

Built once a session by the `services_populated` fixture (tests/conftest.py), for the Services
page's tests and the browser tests.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

from dashboard.core import config as config_mod
from dashboard.demo.service import DemoService
from dashboard.servers.throwaway import ThrowawayPostgres, ThrowawayPrometheus, free_port
from dashboard.store import Store
from tests.support.postgres import new_database, run_workload
from tests.support.stores import collect_once

TARGET = "svc"
RULES = """groups:
  - name: tests
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels: {severity: critical}
        annotations: {summary: fires from the first evaluation on}
      - alert: AlwaysPending
        expr: vector(1)
        for: 1h
        labels: {severity: warning}
"""


def _wait_for_scrapes(prom: ThrowawayPrometheus, timeout: float = 20.0) -> None:
    """Until rate() over the exporter's histogram has two samples to work with, and the rules have
    been evaluated (on a loaded machine the first evaluation can come after the third scrape)."""

    def query(expr: str) -> list[dict]:
        encoded = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{prom.url}/api/v1/query?{encoded}", timeout=2) as resp:
            return json.loads(resp.read())["data"]["result"]

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scrapes = query("count_over_time(http_requests_total[1m])")
        firing = query('ALERTS{alertname="AlwaysFiring",alertstate="firing"}')
        if scrapes and min(float(r["value"][1]) for r in scrapes) >= 3 and firing:
            return
        time.sleep(0.3)
    raise AssertionError("in 20 s prometheus scraped the exporter fewer than 3 times or fired no alert")


def services_store(pg: ThrowawayPostgres, folder: Path) -> dict:
    """The store (in `folder`) and its config: {url, config}."""
    url = f"sqlite:///{folder / 'store.db'}"
    dbname = new_database(pg, "services")
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there: a scrape target that is down
    with DemoService() as exporter, ThrowawayPrometheus([exporter.address, nowhere], rules=RULES) as prom:
        targets = {
            "postgres": [{"name": "erp", "dsn": pg.dsn(dbname=dbname), "interval": "60s"}],
            "prometheus": [
                {"name": TARGET, "url": prom.url, "interval": "2s", "preset": "seed", "backfill": "1m"}
            ],
        }
        config = config_mod.from_dict({"store": url, "targets": targets})
        store = Store(url)
        _wait_for_scrapes(prom)
        for i in range(3):
            cycles = collect_once(config, store)
            assert {c.kind: c.status.state for c in cycles}["postgres"] == "ok"
            if i < 2:
                run_workload(pg.dsn(dbname=dbname))
                time.sleep(1.1)  # cycles in distinct seconds
        store.close()
    config_file = folder / "observatory.yaml"
    config_file.write_text(json.dumps({"store": url, "targets": targets}))  # JSON is YAML
    return {"url": url, "config": str(config_file)}
