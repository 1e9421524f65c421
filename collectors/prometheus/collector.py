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
   (sorted "k=v,...", ``__name__`` dropped) when the query returns several series. NaN and
   infinite values are not stored.
3. Back-fill, per series: on first start and whenever the series' last evaluation
   (``details["series"][name]["last_ts"]``) is more than 2 intervals old, range queries at
   step = interval over the missed window (capped at ``backfill``), each sample stored with its
   own time (``Point.ts``), strictly after the last evaluation and before the cycle's time, so no
   timestamp is written twice.
4. ``GET /api/v1/alerts`` (firing and pending alerts) and ``GET /api/v1/targets?state=active``:
   counts as gauges ``prom.alerts {state=firing|pending}`` and ``prom.targets {health=up|down}``
   (and ``health=unknown`` when some target has not been scraped yet); the lists, firing alerts
   and down targets first, capped at ``LIST_CAP`` entries, in ``details["alerts"]`` and
   ``details["targets"]``. A server without these endpoints (404) only gets a hint.

Per-series problems never stop the other series: bad PromQL (400), an execution error (422), a
query timeout (Prometheus' own, or no answer within the target's timeout) or an empty result
("no data": the metric may not exist) go to ``details["series"][name] = {state, error, ...}``,
make the target "degraded" and add a hint naming the series. Every series in ``details["series"]``
also carries its unit, target and expression, for the Services page. Passwords and tokens are
redacted from every message.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from collectors.base import StateSource, TargetCollector
from dashboard.core import metrics
from dashboard.core.config import PrometheusTarget, Series
from dashboard.core.prometheus_preset import PRESET_KEYS, series_for, unknown_keys
from dashboard.core.records import Cycle, Point
from dashboard.core.redaction import SecretError, env_values, redact, secret_from_env

LIST_CAP = 200  # alerts and scrape targets kept in the status details
MAX_RESULT_SERIES = 50  # series kept per expression and cycle: more is a label explosion
RANGE_STEPS = 1440  # steps per range query (Prometheus refuses more than 11,000)
NO_DATA = "no data: the metric may not exist (check the name)"
UNDEFINED = "no value: the expression is NaN now (e.g. 0/0: no requests in the window)"
_STATUS = re.compile(r"^HTTP Status Code (\d+) \((.*)\)$", re.S)


class _Down(Exception):
    """The server cannot be used this cycle: the target is down."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


class _QueryFailed(Exception):
    """One query failed; the others go on. `timeout`: no answer at all within the target's timeout
    (when every query of a cycle has none, the server is down)."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.message, self.timeout = message, timeout


@dataclass
class _Outcome:
    points: list[Point] = field(default_factory=list)
    state: str = "ok"  # ok | no data | undefined | error
    error: str | None = None
    hints: list[str] = field(default_factory=list)  # advice that does not degrade the target
    timed_out: bool = False
    evaluated: bool = False  # the instant query answered (last_ts moves on)


class _FormSession(requests.Session):
    """Sends a POST's parameters as a form body: prometheus-api-client puts them in the URL even
    for POST, where a long expression can exceed a proxy's or the server's URL limit."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if str(method).upper() == "POST" and kwargs.get("params") and kwargs.get("data") is None:
            kwargs["data"], kwargs["params"] = kwargs["params"], None
        return super().request(method, url, *args, **kwargs)


# -- the collector ----------------------------------------------------------------------------------
class PrometheusCollector(TargetCollector):
    kind: ClassVar[str] = "prometheus"
    failures = (_Down, requests.RequestException, OSError, ValueError)

    def __init__(self, target: PrometheusTarget, state_source: StateSource) -> None:
        super().__init__(target, state_source)
        self.series: dict[str, Series] = series_for(target)
        self._session: _FormSession | None = None
        self._prom: PrometheusConnect | None = None
        self._details: dict[str, Any] | None = None
        url_password = urlsplit(target.url).password
        self._secrets: list[str] = [s for s in (url_password, unquote(url_password or "")) if s]
        self._secrets += env_values(target.password_env, target.bearer_token_env)  # whatever they hold
        self._url = target.url.rstrip("/")

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = self._prom = None

    def forget_state(self) -> None:
        self._details = None

    def _load_details(self) -> dict[str, Any]:
        if self._details is None:
            self._details = self._source.status_details(self.kind, self.name)
        return self._details

    def _connect(self) -> PrometheusConnect:
        if self._prom is not None:
            return self._prom
        t = self.target
        headers: dict[str, str] = {}
        if t.bearer_token_env:
            token = self._env(t.bearer_token_env, "bearer_token_env", ascii_only=True)
            headers["Authorization"] = f"Bearer {token}"
        auth = None
        if t.password_env and not t.username:
            raise _Down("password_env is set but username is not", "basic auth needs both: set username")
        if t.username:
            password = self._env(t.password_env, "password_env") if t.password_env else ""
            auth = (t.username.encode(), password.encode())  # UTF-8, as servers read it (not latin-1)
        if t.ca_file and not os.path.isfile(t.ca_file):
            raise _Down(f"ca_file {t.ca_file} does not exist", "point ca_file at the CA's PEM file")
        session = _FormSession()
        session.verify = (t.ca_file or True) if t.verify_tls else False
        # One immediate reconnect (a pooled connection the server closed); nothing else is retried:
        # the scheduler's backoff paces a slow or dead server.
        retry = Retry(total=1, connect=1, read=False, status=False, other=0, backoff_factor=0)
        self._session = session
        self._prom = PrometheusConnect(
            url=self._url,
            headers=headers or None,
            disable_ssl=not t.verify_tls,
            retry=retry,
            auth=auth,
            session=session,
            timeout=t.timeout,  # type: ignore[arg-type]  # an int in its hints; requests takes floats
            method="POST",
        )
        return self._prom

    def _env(self, variable: str, key: str, ascii_only: bool = False) -> str:
        """The secret in `variable`, stripped; the target is down when it is unset or unusable
        (the message names the variable, never the value)."""
        self._remember(*env_values(variable))
        try:
            value = secret_from_env(variable, key, ascii_only=ascii_only)
        except SecretError as err:
            raise _Down(str(err), err.hint) from None
        self._remember(value)
        return value

    def _remember(self, *secrets: str) -> None:
        self._secrets += [s for s in secrets if s and s not in self._secrets]

    # -- the cycle --------------------------------------------------------------------------
    def _explain(self, err: BaseException) -> tuple[str, str]:
        if isinstance(err, _Down):
            return err.message, err.hint
        return explain_connection_error(
            err,
            self._url,
            self.target.timeout,  # type: ignore[arg-type]
            clean=self._redact,
        )

    def _collect(self, prom: PrometheusConnect, cycle: Cycle) -> None:
        old = self._load_details()
        status, now = cycle.status, cycle.ts
        version = self._build_version()
        if version:
            status.server_version = f"Prometheus {version}"
        details: dict[str, Any] = {"series": {}}
        problems: list[tuple[str, str]] = []  # (series, message): these degrade the target
        outcomes: dict[str, _Outcome] = {}
        for name, spec in self.series.items():
            previous = (old.get("series") or {}).get(name) or {}
            outcome = self._series(prom, name, spec, previous.get("last_ts"), now)
            outcomes[name] = outcome
            cycle.points += outcome.points
            details["series"][name] = {
                "state": outcome.state,
                "error": outcome.error,
                "last_ts": now if outcome.evaluated else previous.get("last_ts"),
                "unit": spec.unit,
                "target": spec.target,
                "expr": spec.expr,
            }
            if outcome.state in ("no data", "error"):
                problems.append((name, outcome.error or outcome.state))
            status.hints += outcome.hints
        if outcomes and all(o.timed_out for o in outcomes.values()):
            raise _Down(
                f"Prometheus answered none of {len(outcomes)} queries within {self.target.timeout:g}s",
                "the server is overloaded or hung: check it, or raise the target's timeout",
            )
        cycle.points += self._alerts(details, status.hints)
        cycle.points += self._targets(details, status.hints)
        if old.get("last_success") == now:  # a second cycle within one second (two quick --once)
            cycle.points = []  # the first one's values stand: roll-ups must not count them twice
        status.hints += self._config_hints()
        if problems:
            status.state = "degraded"
            first, message = problems[0]
            status.error = f"series {first}: {message}" + (
                f" (and {len(problems) - 1} more series)" if len(problems) > 1 else ""
            )
            status.hints = [self._series_hint(n, m) for n, m in problems] + status.hints
        details["last_success"] = now
        status.error = self._redact(status.error) if status.error else None
        status.hints = list(dict.fromkeys(self._redact(h) for h in status.hints))
        status.details = details
        self._details = details

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
    def _series(
        self, prom: PrometheusConnect, name: str, spec: Series, last_ts: int | None, now: int
    ) -> _Outcome:
        out = _Outcome()
        try:
            result = self._call(lambda: prom.custom_query(spec.expr, params={"time": now}))
        except _QueryFailed as failed:
            out.state, out.error, out.timed_out = "error", self._redact(failed.message), failed.timeout
            return out
        out.evaluated = True
        samples = [(r.get("metric") or {}, _number((r.get("value") or [None, None])[1])) for r in result]
        kept = _keep(samples, name, out.hints)
        out.points = [
            Point(metrics.PROM_SERIES, value, "gauge", labels)
            for labels, value in _labelled(name, kept)
            if value is not None and math.isfinite(value)
        ]
        if not result:
            out.state, out.error = "no data", NO_DATA
        elif not out.points:
            out.state, out.error = "undefined", UNDEFINED
        if last_ts is None or now - last_ts > 2 * self.interval:
            filled, error = self._backfill(prom, name, spec.expr, last_ts, now)
            out.points = filled + out.points
            if error:
                out.hints.append(f"series {name}: back-fill stopped, the gap stays: {self._redact(error)}")
        return out

    def _backfill(
        self, prom: PrometheusConnect, name: str, expr: str, last_ts: int | None, now: int
    ) -> tuple[list[Point], str | None]:
        """Samples at step = interval, strictly between the last evaluation and now."""
        step = self.interval
        earliest = now - int(self.target.backfill)
        start = earliest if last_ts is None else max(last_ts + 1, earliest)
        if step.is_integer():  # samples on multiples of the step: stable across restarts
            start = math.ceil(start / step) * int(step)
        end = now - 1
        points: dict[tuple[str, int], Point] = {}
        error = None
        chunk_start = start
        while chunk_start <= end:
            chunk_end = min(int(chunk_start + step * (RANGE_STEPS - 1)), end)
            try:
                result = self._call(
                    lambda a=chunk_start, b=chunk_end: prom.custom_query_range(
                        expr, _utc(a), _utc(b), step=f"{step:g}"
                    )
                )
            except _QueryFailed as failed:
                error = failed.message
                break
            by_time: dict[int, list[tuple[dict, float | None]]] = {}
            for r in result:
                for ts, raw in r.get("values") or []:
                    by_time.setdefault(round(float(ts)), []).append((r.get("metric") or {}, _number(raw)))
            for ts, samples in sorted(by_time.items()):
                if (last_ts is not None and ts <= last_ts) or ts >= now:
                    continue
                for labels, value in _labelled(name, _keep(samples, name, [])):
                    if value is not None and math.isfinite(value):
                        points[(labels, ts)] = Point(metrics.PROM_SERIES, value, "gauge", labels, ts=ts)
            chunk_start = chunk_end + int(max(step, 1))
        return list(points.values()), error

    # -- HTTP -------------------------------------------------------------------------------
    def _call(self, request):
        """Run one API call of prometheus-api-client; classify its failures."""
        try:
            return request()
        except PrometheusApiClientException as err:
            code, body = _parse_status(str(err))
            api_error = _api_error(body)
            if code in (401, 403):
                raise _Down(f"HTTP {code}: {api_error or self._excerpt(body)}", HINT_AUTH) from None
            if api_error is not None:  # Prometheus' own message: bad PromQL, execution error, timeout
                raise _QueryFailed(f"HTTP {code}: {self._redact(api_error)}") from None
            if code == 404 or code is None or code >= 500:
                raise _Down(f"HTTP {code}: {self._excerpt(body)}", hint_for_status(code)) from None
            raise _QueryFailed(f"HTTP {code}: {self._excerpt(body)}") from None
        except requests.ReadTimeout:
            raise _QueryFailed(f"timeout: no answer within {self.target.timeout:g}s", timeout=True) from None
        except (requests.JSONDecodeError, KeyError, TypeError) as err:  # a 200 that is not the API's JSON
            raise _Down(
                f"the answer from {self._url} is not Prometheus API JSON ({type(err).__name__})",
                HINT_NOT_PROMETHEUS,
            ) from None

    def _get(self, path: str, params: dict[str, str] | None = None) -> requests.Response:
        assert self._session is not None and self._prom is not None
        return self._session.get(
            f"{self._url}{path}",
            params=params,
            headers=self._prom.headers,
            auth=self._prom.auth,
            timeout=self.target.timeout,
        )

    def _build_version(self) -> str | None:
        """The server's version; raises _Down when it cannot be used at all."""
        try:
            resp = self._get("/api/v1/status/buildinfo")
        except requests.ReadTimeout:
            raise _Down(
                f"Prometheus did not answer within {self.target.timeout:g}s",
                "the server is overloaded or hung, or a firewall drops packets: check it, or raise timeout",
            ) from None
        if resp.status_code in (401, 403):
            raise _Down(f"HTTP {resp.status_code}: {self._excerpt(resp.content)}", HINT_AUTH)
        if resp.status_code == 404:  # not every compatible server has it; the queries will tell
            return None
        if resp.status_code != 200:
            raise _Down(
                f"HTTP {resp.status_code}: {self._excerpt(resp.content)}", hint_for_status(resp.status_code)
            )
        try:
            return str(resp.json()["data"]["version"]) or None
        except (ValueError, KeyError, TypeError):
            raise _Down(
                f"the answer from {self._url} is not Prometheus API JSON", HINT_NOT_PROMETHEUS
            ) from None

    def _api_list(self, path: str, what: str, params: dict[str, str] | None, hints: list[str]) -> Any:
        """data of a GET endpoint, or None with a hint (never degrades the target)."""
        try:
            resp = self._get(path, params)
        except requests.ReadTimeout:
            hints.append(f"{path}: no answer within {self.target.timeout:g}s: {what} not read")
            return None
        if resp.status_code == 404:
            hints.append(
                f"this server has no {path}: {what} not read (VictoriaMetrics keeps them in vmalert)"
            )
            return None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code != 200 or not isinstance(body, dict) or "data" not in body:
            error = self._redact(_api_error(resp.content) or "") or self._excerpt(resp.content)
            hints.append(f"{path}: HTTP {resp.status_code}: {error}: {what} not read")
            return None
        return body["data"]

    # -- alerts and scrape targets ----------------------------------------------------------
    def _alerts(self, details: dict[str, Any], hints: list[str]) -> list[Point]:
        data = self._api_list("/api/v1/alerts", "alerts", None, hints)
        if data is None:
            return []
        alerts = []
        for a in data.get("alerts") or []:
            labels = dict(a.get("labels") or {})
            entry = {
                "name": labels.pop("alertname", ""),
                "state": a.get("state"),
                "labels": labels,
                "activeAt": a.get("activeAt"),
                "value": a.get("value"),
            }
            summary = (a.get("annotations") or {}).get("summary")
            if summary:
                entry["summary"] = summary
            alerts.append(entry)
        order = {"firing": 0, "pending": 1}
        alerts.sort(key=lambda e: (order.get(str(e["state"]), 2), str(e["name"]), json.dumps(e["labels"])))
        details["alerts"] = alerts[:LIST_CAP]
        details["alerts_total"] = len(alerts)
        return [
            Point(
                metrics.PROM_ALERTS,
                float(sum(a["state"] == state for a in alerts)),
                "gauge",
                metrics.encode({"state": state}),
            )
            for state in ("firing", "pending")
        ]

    def _targets(self, details: dict[str, Any], hints: list[str]) -> list[Point]:
        data = self._api_list("/api/v1/targets", "scrape targets", {"state": "active"}, hints)
        if data is None:
            return []
        found = []
        for t in data.get("activeTargets") or []:
            labels = t.get("labels") or {}
            found.append(
                {
                    "job": labels.get("job", t.get("scrapePool")),
                    "instance": labels.get("instance"),
                    "health": t.get("health"),
                    "lastError": self._redact(str(t["lastError"])) if t.get("lastError") else None,
                    "lastScrape": t.get("lastScrape"),
                }
            )
        order = {"down": 0, "unknown": 1, "up": 2}
        found.sort(key=lambda e: (order.get(str(e["health"]), 1), str(e["job"]), str(e["instance"])))
        details["targets"] = found[:LIST_CAP]
        details["targets_total"] = len(found)
        healths = ["up", "down"] + (["unknown"] if any(t["health"] == "unknown" for t in found) else [])
        return [
            Point(
                metrics.PROM_TARGETS,
                float(sum(t["health"] == h for t in found)),
                "gauge",
                metrics.encode({"health": h}),
            )
            for h in healths
        ]

    def _redact(self, text: str) -> str:
        return redact(text, *self._secrets)

    def _excerpt(self, body: bytes | str) -> str:
        """An answer's start, secrets taken out before it is cut (a cut secret is no longer found)."""
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return _excerpt(self._redact(text))


# -- results ----------------------------------------------------------------------------------------
def _number(raw: Any) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _canonical(metric: dict[str, Any]) -> str:
    """The result's labels, sorted, as "k=v,...": without __name__, `name` renamed exported_name."""
    items = {("exported_name" if k == "name" else k): v for k, v in metric.items() if k != "__name__"}
    return metrics.encode(dict(sorted(items.items())))


def _keep(
    samples: list[tuple[dict[str, Any], float | None]], name: str, hints: list[str]
) -> list[tuple[dict[str, Any], float | None]]:
    """At most MAX_RESULT_SERIES result series (by labels, for a stable choice)."""
    if len(samples) <= MAX_RESULT_SERIES:
        return samples
    hints.append(
        f"series {name}: the query returned {len(samples)} series, {MAX_RESULT_SERIES} kept: "
        "aggregate it (sum by (...)) to the few labels worth charting"
    )
    return sorted(samples, key=lambda s: _canonical(s[0]))[:MAX_RESULT_SERIES]


def _labelled(
    name: str, samples: list[tuple[dict[str, Any], float | None]]
) -> list[tuple[str, float | None]]:
    """(labels, value) per sample: `name=<series>`, plus the result's labels when there are several."""
    if len(samples) == 1:
        return [(metrics.encode({"name": name}), samples[0][1])]
    out: dict[str, float | None] = {}
    for metric, value in samples:
        labels = _canonical(metric)
        if labels in out or not labels:  # series told apart only by __name__
            labels = _canonical({**metric, "metric": metric.get("__name__", "")})
        out[metrics.encode({"name": name}) + (f",{labels}" if labels else "")] = value
    return list(out.items())


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# -- errors -----------------------------------------------------------------------------------------
HINT_AUTH = (
    "the server refused the credentials: check username and password_env (basic auth) or bearer_token_env"
)
HINT_NOT_PROMETHEUS = (
    "no Prometheus HTTP API at this url: give the base url the API lives under "
    "(e.g. http://host:9090, or http://host/prometheus for Mimir and Cortex)"
)


def hint_for_status(code: int | None) -> str:
    if code == 404:
        return HINT_NOT_PROMETHEUS
    if code == 503:
        return "the server is unavailable (starting, replaying its WAL, or overloaded): it answers once ready"
    if code in (502, 504):
        return "a proxy in front of the server answered: is Prometheus running behind it?"
    return "see the server's log for details"


def _parse_status(text: str) -> tuple[int | None, bytes]:
    """prometheus-api-client's "HTTP Status Code 400 (b'...')" -> (400, body)."""
    match = _STATUS.match(text)
    if not match:
        return None, text.encode()
    try:
        body = ast.literal_eval(match.group(2))
    except (ValueError, SyntaxError):
        body = match.group(2)
    return int(match.group(1)), body if isinstance(body, bytes) else str(body).encode()


def _api_error(body: bytes) -> str | None:
    """'errorType: error' from the API's error JSON, or None when the body is something else."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or parsed.get("status") != "error":
        return None
    return f"{parsed.get('errorType', 'error')}: {parsed.get('error', '')}".strip()


def _excerpt(body: bytes | str, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    text = " ".join(text.split())
    return (text[:limit] + "...") if len(text) > limit else (text or "(empty answer)")


def explain_connection_error(
    err: Exception, url: str, timeout: float, clean: Callable[[str], str] = redact
) -> tuple[str, str]:
    """A short message and what to do, for an error that makes the target unusable. `clean` takes
    the secrets out of the error's text before any of it is cut."""
    if isinstance(err, SecretError):
        return str(err), err.hint
    text = " ".join(clean(str(err)).split()) or type(err).__name__
    errno = re.search(r"\[Errno -?\d+\] ([^'\"()\]]+)", text)
    lowered = text.lower()
    if isinstance(err, requests.exceptions.SSLError) or "certificate" in lowered or "ssl" in lowered:
        found = re.search(
            r"(certificate verify failed[^'\"()]*|wrong version number|[^'\"(]*SSL[^'\"()]*)", text
        )
        return f"{url}: TLS failed: {found.group(1).strip() if found else text[:200]}", (
            "check the server's certificate: set ca_file to its CA, or verify_tls: false for a "
            "self-signed one (and https:// only if the server speaks TLS)"
        )
    if isinstance(err, requests.exceptions.ConnectTimeout) or "timed out" in lowered:
        return f"{url}: no connection within {timeout:g}s", (
            "check host, port and firewall (or raise the target's timeout)"
        )
    if "refused" in lowered:
        return f"{url}: connection refused", "is Prometheus running and listening on that host and port?"
    if "name or service not known" in lowered or "failed to resolve" in lowered or "nodename" in lowered:
        return f"{url}: the host name does not resolve", "check the host name in the url"
    if isinstance(err, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return f"{url}: {text[:200]}", "the url is not valid: write it as http://host:9090"
    if isinstance(err, OSError) and not isinstance(err, requests.RequestException):
        return f"{url}: {text[:200]}", "check ca_file (a readable PEM file) and the url"
    return f"{url}: {errno.group(1).strip() if errno else text[:200]}", "see the server's log for details"
