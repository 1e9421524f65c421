"""Prometheus collector: named PromQL series with SLO targets, active alerts and scrape targets.

Works against any server speaking the Prometheus HTTP API (Prometheus, Thanos, Mimir,
VictoriaMetrics) through ``prometheus-api-client``: one ``requests`` session per target (basic
auth from username + password_env, a bearer token from bearer_token_env, verify_tls / ca_file,
the target's timeout, one immediate reconnect and no other retries: the scheduler backs off).
Queries are POSTed as form bodies, so long expressions never hit URL length limits.

A cycle:

1. ``GET /api/v1/status/buildinfo``: the server's version; a server that does not answer, refuses
   the credentials or is no Prometheus API makes the target "down" (nothing else is tried).
2. Per series (the seed preset's when ``preset: seed``, merged with the target's ``series:``, see
   ``dashboard.core.prometheus_preset``): an instant query at the cycle's time. Each result series
   becomes a gauge point ``prom.series`` labelled ``name=<series>``, plus the result's own labels
   (sorted "k=v,...", ``__name__`` dropped, or kept as ``metric=`` when it alone tells series apart)
   when the query returns several series. NaN and infinite values are not stored.
3. Back-fill, per series: on first start and whenever the series' last evaluation
   (``details.series[name].last_ts``) is more than 2 intervals old, range queries at
   step = interval over the missed window (capped at ``backfill``), each sample stored with its
   own time (``Point.ts``), strictly after the last evaluation and before the cycle's time, so no
   timestamp is written twice.
4. ``GET /api/v1/alerts`` (firing and pending alerts) and ``GET /api/v1/targets?state=active``:
   counts as gauges ``prom.alerts {state=firing|pending}`` and ``prom.targets {health=up|down}``
   (and ``health=unknown`` when some target has not been scraped yet); the lists, firing alerts
   and down targets first, capped at ``LIST_CAP`` entries, in ``details.alerts`` and
   ``details.targets``. A server without these endpoints (404) only gets a hint.

Per-series problems never stop the other series: bad PromQL (400), an execution error (422), a
query timeout (Prometheus' own, or no answer within the target's timeout) or an empty result
("no data": the metric may not exist) go to ``details.series[name]`` (state, error, ...),
make the target "degraded" and add a hint naming the series. Every series in ``details.series``
also carries its unit, target and expression, for the Services page. Passwords and tokens are
redacted from every message.

The HTTP calls and their errors are in ``api.py`` and ``errors.py``; shaping answers into points and
details in ``samples.py``; the details (``Status.details``) are a
``dashboard.core.prometheus_details.PrometheusDetails``. This module keeps the cycle.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import requests

from collectors.base import StateSource, TargetCollector
from collectors.prometheus.api import PrometheusApi
from collectors.prometheus.errors import Down, QueryFailed, explain_connection_error
from collectors.prometheus.samples import (
    LIST_CAP,
    alert_list,
    alert_points,
    instant_points,
    range_points,
    target_list,
    target_points,
)
from dashboard.core.config import PrometheusTarget, Series
from dashboard.core.prometheus_details import PrometheusDetails, SeriesDetail
from dashboard.core.prometheus_preset import PRESET_KEYS, series_for, unknown_keys
from dashboard.core.records import Cycle, Point
from dashboard.core.redaction import SecretError, env_values, redact, secret_from_env

RANGE_STEPS = 1440  # steps per range query (Prometheus refuses more than 11,000)
NO_DATA = "no data: the metric may not exist (check the name)"
UNDEFINED = "no value: the expression is NaN now (e.g. 0/0: no requests in the window)"


@dataclass
class _Outcome:
    points: list[Point] = field(default_factory=list)
    state: str = "ok"  # ok | no data | undefined | error
    error: str | None = None
    hints: list[str] = field(default_factory=list)  # advice that does not degrade the target
    timed_out: bool = False
    evaluated: bool = False  # the instant query answered (last_ts moves on)


class PrometheusCollector(TargetCollector):
    kind: ClassVar[str] = "prometheus"
    failures = (Down, requests.RequestException, OSError, ValueError)

    def __init__(self, target: PrometheusTarget, state_source: StateSource) -> None:
        super().__init__(target, state_source)
        self.series: dict[str, Series] = series_for(target)
        self._api: PrometheusApi | None = None
        self._details: PrometheusDetails | None = None
        url_password = urlsplit(target.url).password
        self._secrets: list[str] = [s for s in (url_password, unquote(url_password or "")) if s]
        self._secrets += env_values(target.password_env, target.bearer_token_env)  # whatever they hold
        self._url = target.url.rstrip("/")

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if self._api is not None:
            self._api.close()
        self._api = None

    def forget_state(self) -> None:
        self._details = None

    def _load_details(self) -> PrometheusDetails:
        """The last successful cycle's details; unreadable ones count as none (back-fill again)."""
        if self._details is None:
            self._details = self._stored_details(PrometheusDetails)
        return self._details

    def query(self, expr: str, ts: int) -> list[dict[str, Any]]:
        """An instant query of this target's Prometheus (for alerting rules with `source: prometheus`)."""
        return self._connect().query(expr, ts)

    def _connect(self) -> PrometheusApi:
        if self._api is None:
            t = self.target
            headers, auth = self._credentials()
            if t.ca_file and not os.path.isfile(t.ca_file):
                raise Down(f"ca_file {t.ca_file} does not exist", "point ca_file at the CA's PEM file")
            verify = (t.ca_file or True) if t.verify_tls else False
            self._api = PrometheusApi(
                self._url, t.timeout, headers=headers, auth=auth, verify=verify, clean=self._redact
            )
        return self._api

    def _credentials(self) -> tuple[dict[str, str], tuple[bytes, bytes] | None]:
        """The bearer token header and the basic auth pair the target configures."""
        t = self.target
        headers: dict[str, str] = {}
        if t.bearer_token_env:
            token = self._env(t.bearer_token_env, "bearer_token_env", ascii_only=True)
            headers["Authorization"] = f"Bearer {token}"
        if t.password_env and not t.username:
            raise Down("password_env is set but username is not", "basic auth needs both: set username")
        if not t.username:
            return headers, None
        password = self._env(t.password_env, "password_env") if t.password_env else ""
        return headers, (t.username.encode(), password.encode())  # UTF-8, as servers read it (not latin-1)

    def _env(self, variable: str, key: str, ascii_only: bool = False) -> str:
        """The secret in `variable`, stripped; the target is down when it is unset or unusable
        (the message names the variable, never the value)."""
        self._remember(*env_values(variable))
        try:
            value = secret_from_env(variable, key, ascii_only=ascii_only)
        except SecretError as err:
            raise Down(str(err), err.hint) from None
        self._remember(value)
        return value

    def _remember(self, *secrets: str) -> None:
        self._secrets += [s for s in secrets if s and s not in self._secrets]

    # -- the cycle --------------------------------------------------------------------------
    def _explain(self, err: BaseException) -> tuple[str, str]:
        if isinstance(err, Down):
            return err.message, err.hint
        return explain_connection_error(
            err,  # type: ignore[arg-type]
            self._url,
            self.target.timeout,
            clean=self._redact,
        )

    def _redact(self, text: str) -> str:
        return redact(text, *self._secrets)

    def _collect(self, api: PrometheusApi, cycle: Cycle) -> None:
        old = self._load_details()
        status, now = cycle.status, cycle.ts
        version = api.build_version()
        if version:
            status.server_version = f"Prometheus {version}"
        series: dict[str, SeriesDetail] = {}
        problems: list[tuple[str, str]] = []  # (series, message): these degrade the target
        outcomes: dict[str, _Outcome] = {}
        for name, spec in self.series.items():
            previous = old.series.get(name) or SeriesDetail()
            outcome = self._series(api, name, spec, previous.last_ts, now)
            outcomes[name] = outcome
            cycle.points += outcome.points
            series[name] = SeriesDetail(
                state=outcome.state,
                error=outcome.error,
                last_ts=now if outcome.evaluated else previous.last_ts,
                unit=spec.unit,
                target=spec.target,
                expr=spec.expr,
            )
            if outcome.state in ("no data", "error"):
                problems.append((name, outcome.error or outcome.state))
            status.hints += outcome.hints
        if outcomes and all(o.timed_out for o in outcomes.values()):
            raise Down(
                f"Prometheus answered none of {len(outcomes)} queries within {self.target.timeout:g}s",
                "the server is overloaded or hung: check it, or raise the target's timeout",
            )
        listed: dict[str, Any] = {}  # alerts and targets, when the server answered their endpoints
        cycle.points += self._alerts(api, listed, status.hints)
        cycle.points += self._targets(api, listed, status.hints)
        if old.last_success == now:  # a second cycle within one second (two quick --once)
            cycle.points = []  # the first one's values stand: roll-ups must not count them twice
        status.hints += self._config_hints()
        if problems:
            status.state = "degraded"
            first, message = problems[0]
            status.error = f"series {first}: {message}" + (
                f" (and {len(problems) - 1} more series)" if len(problems) > 1 else ""
            )
            status.hints = [self._series_hint(n, m) for n, m in problems] + status.hints
        status.error = self._redact(status.error) if status.error else None
        status.hints = list(dict.fromkeys(self._redact(h) for h in status.hints))
        status.details = self._details = PrometheusDetails(series=series, **listed, last_success=now)

    def _config_hints(self) -> list[str]:
        t, hints = self.target, []
        if not self.series:
            hints.append(
                "no series configured: set preset: seed or add series: (only alerts and targets read)"
            )
        if t.metrics and t.preset != "seed":
            hints.append("metrics: only fills the placeholders of preset: seed, which is not set")
        elif t.metrics:
            hints += [
                f"metrics.{key} is not a placeholder of the seed preset: check its spelling"
                for key in unknown_keys(t.metrics)
            ]
        return hints

    def _series_hint(self, name: str, message: str) -> str:
        hint = f"series {name}: {message}"
        keys = (
            PRESET_KEYS.get(name) if self.target.preset == "seed" and name not in self.target.series else None
        )
        if message == NO_DATA and keys:
            hint += f" (the seed preset reads {' and '.join(keys)}: set them under metrics:)"
        return hint

    # -- one series -------------------------------------------------------------------------
    def _series(self, api: PrometheusApi, name: str, spec: Series, last_ts: int | None, now: int) -> _Outcome:
        out = _Outcome()
        try:
            result = api.query(spec.expr, now)
        except QueryFailed as failed:
            out.state, out.error, out.timed_out = "error", self._redact(failed.message), failed.timeout
            return out
        out.evaluated = True
        out.points = instant_points(name, result, out.hints)
        if not result:
            out.state, out.error = "no data", NO_DATA
        elif not out.points:
            out.state, out.error = "undefined", UNDEFINED
        if last_ts is None or now - last_ts > 2 * self.interval:
            filled, error = self._backfill(api, name, spec.expr, last_ts, now)
            out.points = filled + out.points
            if error:
                out.hints.append(f"series {name}: back-fill stopped, the gap stays: {self._redact(error)}")
        return out

    def _backfill(
        self, api: PrometheusApi, name: str, expr: str, last_ts: int | None, now: int
    ) -> tuple[list[Point], str | None]:
        """Samples at step = interval, strictly between the last evaluation and now, in chunks of
        RANGE_STEPS; the error that stopped it, if any."""
        step = self.interval
        earliest = now - int(self.target.backfill)
        start = earliest if last_ts is None else max(last_ts + 1, earliest)
        if step.is_integer():  # samples on multiples of the step: stable across restarts
            start = math.ceil(start / step) * int(step)
        end = now - 1
        points: dict[tuple[str, int], Point] = {}
        chunk_start = start
        while chunk_start <= end:
            chunk_end = min(int(chunk_start + step * (RANGE_STEPS - 1)), end)
            try:
                result = api.query_range(expr, chunk_start, chunk_end, step)
            except QueryFailed as failed:
                return list(points.values()), failed.message
            points.update(range_points(name, result, last_ts, now))
            chunk_start = chunk_end + int(max(step, 1))
        return list(points.values()), None

    # -- alerts and scrape targets ----------------------------------------------------------
    def _alerts(self, api: PrometheusApi, listed: dict[str, Any], hints: list[str]) -> list[Point]:
        """The alert counts; the list and its length go in `listed` (PrometheusDetails' fields)."""
        data = api.data("/api/v1/alerts", "alerts", None, hints)
        if data is None:
            return []
        alerts = alert_list(data)
        listed.update(alerts=alerts[:LIST_CAP], alerts_total=len(alerts))
        return alert_points(alerts)

    def _targets(self, api: PrometheusApi, listed: dict[str, Any], hints: list[str]) -> list[Point]:
        """The scrape-target counts; the list and its length go in `listed`."""
        data = api.data("/api/v1/targets", "scrape targets", {"state": "active"}, hints)
        if data is None:
            return []
        found = target_list(data, self._redact)
        listed.update(targets=found[:LIST_CAP], targets_total=len(found))
        return target_points(found)
