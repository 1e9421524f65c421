"""What the Prometheus collector keeps of a target's last successful cycle (`Status.details`).

The collector builds it (collectors.prometheus) and reads its own last one back after a restart
(series' last evaluations, the last cycle's time); the Services page reads it (alerts, scrape
targets, series errors). The JSON is the shape the dicts had, key for key and in the same order
(`to_stored`), so details stored before these records existed still load (`from_stored`); a key
that is missing takes its default. It is the Prometheus source's `Details` (dashboard.core.details:
how every source's details are stored and read back).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dashboard.core.details import Details

Scalar = str | int | float | None  # as Prometheus sent it: RFC 3339 times and values are strings


class _Record(BaseModel):
    # populate_by_name: built with the Python names, loaded with the JSON (camelCase) ones.
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class SeriesDetail(_Record):
    """The last evaluation of one configured series, with what the Services page charts it by."""

    state: str | None = None  # ok | no data | undefined | error
    error: str | None = None
    last_ts: int | None = None  # the last cycle its instant query answered (back-fill starts there)
    unit: str = ""
    target: str | None = None  # the SLO, e.g. "< 200"
    expr: str | None = None


class Alert(_Record):
    """A firing or pending alert (/api/v1/alerts); labels without alertname."""

    name: str = ""
    state: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    active_at: Scalar = Field(default=None, alias="activeAt")
    value: Scalar = None
    summary: str | None = None  # its summary annotation; stored only when it has one


class ScrapeTarget(_Record):
    """An active scrape target (/api/v1/targets)."""

    job: str | None = None
    instance: str | None = None
    health: str | None = None  # up | down | unknown
    last_error: str | None = Field(default=None, alias="lastError")  # redacted
    last_scrape: Scalar = Field(default=None, alias="lastScrape")


class PrometheusDetails(Details):
    """Series by name; alerts and scrape targets worst first, capped (their counts before the cap).

    `to_stored` writes the keys it was built with (alerts only when read, an alert's summary only
    when it has one), the JSON names, in the dicts' order: `alerts` and `targets` are left out of
    the JSON when the server did not answer their endpoint.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    series: dict[str, SeriesDetail] = Field(default_factory=dict)
    alerts: list[Alert] = Field(default_factory=list)
    alerts_total: int = 0
    targets: list[ScrapeTarget] = Field(default_factory=list)
    targets_total: int = 0
    last_success: int | None = None
