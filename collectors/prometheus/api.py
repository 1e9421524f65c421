"""One target's Prometheus HTTP API: the session, prometheus-api-client over it, and the calls a cycle
makes, their failures classified as `Down` (the server cannot be used) or `QueryFailed` (one query).

Queries go through prometheus-api-client, POSTed as form bodies (`FormSession`), so long expressions
never hit URL length limits; the status endpoints (buildinfo, alerts, targets) are plain GETs on the
same session, with the same headers and auth. Every message is redacted (`clean`) before it is cut.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from collectors.prometheus.errors import (
    HINT_AUTH,
    HINT_NOT_PROMETHEUS,
    Down,
    QueryFailed,
    api_error,
    excerpt,
    hint_for_status,
    parse_status,
)


class FormSession(requests.Session):
    """Sends a POST's parameters as a form body: prometheus-api-client puts them in the URL even
    for POST, where a long expression can exceed a proxy's or the server's URL limit."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if str(method).upper() == "POST" and kwargs.get("params") and kwargs.get("data") is None:
            kwargs["data"], kwargs["params"] = kwargs["params"], None
        return super().request(method, url, *args, **kwargs)


class PrometheusApi:
    """The API under `url` (no trailing slash). `verify`: requests' verify (False, True or a CA file)."""

    def __init__(
        self,
        url: str,
        timeout: float,
        *,
        headers: dict[str, str],
        auth: tuple[bytes, bytes] | None,
        verify: bool | str,
        clean: Callable[[str], str],
    ) -> None:
        self.url, self.timeout, self.clean = url, timeout, clean
        self.headers, self.auth = headers or None, auth
        self.session = FormSession()
        self.session.verify = verify
        # One immediate reconnect (a pooled connection the server closed); nothing else is retried:
        # the scheduler's backoff paces a slow or dead server.
        retry = Retry(total=1, connect=1, read=False, status=False, other=0, backoff_factor=0)
        self._client = PrometheusConnect(
            url=url,
            headers=self.headers,
            disable_ssl=verify is False,
            retry=retry,
            auth=auth,
            session=self.session,
            timeout=timeout,  # type: ignore[arg-type]  # an int in its hints; requests takes floats
            method="POST",
        )

    def close(self) -> None:
        self.session.close()

    # -- queries ----------------------------------------------------------------------------
    def query(self, expr: str, ts: int) -> list[dict[str, Any]]:
        """An instant query at `ts`."""
        return self._call(lambda: self._client.custom_query(expr, params={"time": ts}))

    def query_range(self, expr: str, start: int, end: int, step: float) -> list[dict[str, Any]]:
        return self._call(
            lambda: self._client.custom_query_range(expr, _utc(start), _utc(end), step=f"{step:g}")
        )

    def _call(self, request: Callable[[], Any]) -> Any:
        """Run one API call of prometheus-api-client; classify its failures."""
        try:
            return request()
        except PrometheusApiClientException as err:
            code, body = parse_status(str(err))
            error = api_error(body)
            if code in (401, 403):
                raise Down(f"HTTP {code}: {error or self.excerpt(body)}", HINT_AUTH) from None
            if error is not None:  # Prometheus' own message: bad PromQL, execution error, timeout
                raise QueryFailed(f"HTTP {code}: {self.clean(error)}") from None
            if code == 404 or code is None or code >= 500:
                raise Down(f"HTTP {code}: {self.excerpt(body)}", hint_for_status(code)) from None
            raise QueryFailed(f"HTTP {code}: {self.excerpt(body)}") from None
        except requests.ReadTimeout:
            raise QueryFailed(f"timeout: no answer within {self.timeout:g}s", timeout=True) from None
        except (requests.JSONDecodeError, KeyError, TypeError) as err:  # a 200 that is not the API's JSON
            raise Down(
                f"the answer from {self.url} is not Prometheus API JSON ({type(err).__name__})",
                HINT_NOT_PROMETHEUS,
            ) from None

    # -- status endpoints -------------------------------------------------------------------
    def build_version(self) -> str | None:
        """The server's version; raises Down when it cannot be used at all."""
        try:
            resp = self._get("/api/v1/status/buildinfo")
        except requests.ReadTimeout:
            raise Down(
                f"Prometheus did not answer within {self.timeout:g}s",
                "the server is overloaded or hung, or a firewall drops packets: check it, or raise timeout",
            ) from None
        if resp.status_code in (401, 403):
            raise Down(f"HTTP {resp.status_code}: {self.excerpt(resp.content)}", HINT_AUTH)
        if resp.status_code == 404:  # not every compatible server has it; the queries will tell
            return None
        if resp.status_code != 200:
            raise Down(
                f"HTTP {resp.status_code}: {self.excerpt(resp.content)}", hint_for_status(resp.status_code)
            )
        try:
            return str(resp.json()["data"]["version"]) or None
        except (ValueError, KeyError, TypeError):
            raise Down(
                f"the answer from {self.url} is not Prometheus API JSON", HINT_NOT_PROMETHEUS
            ) from None

    def data(self, path: str, what: str, params: dict[str, str] | None, hints: list[str]) -> Any:
        """data of a GET endpoint, or None with a hint (never degrades the target)."""
        try:
            resp = self._get(path, params)
        except requests.ReadTimeout:
            hints.append(f"{path}: no answer within {self.timeout:g}s: {what} not read")
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
            error = self.clean(api_error(resp.content) or "") or self.excerpt(resp.content)
            hints.append(f"{path}: HTTP {resp.status_code}: {error}: {what} not read")
            return None
        return body["data"]

    def _get(self, path: str, params: dict[str, str] | None = None) -> requests.Response:
        return self.session.get(
            f"{self.url}{path}", params=params, headers=self.headers, auth=self.auth, timeout=self.timeout
        )

    def excerpt(self, body: bytes | str) -> str:
        """An answer's start, secrets taken out before it is cut (a cut secret is no longer found)."""
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return excerpt(self.clean(text))


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
