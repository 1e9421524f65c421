"""What can go wrong talking to a Prometheus API, and what to tell the user about it.

`Down` (the server cannot be used this cycle) and `QueryFailed` (one query failed, the others go
on) are raised by the API client (`collectors.prometheus.api`); the rest turns HTTP answers and
connection errors into a one-line message and a hint, secrets taken out first.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable

import requests

from dashboard.core.redaction import SecretError, redact

HINT_AUTH = (
    "the server refused the credentials: check username and password_env (basic auth) or bearer_token_env"
)
HINT_NOT_PROMETHEUS = (
    "no Prometheus HTTP API at this url: give the base url the API lives under "
    "(e.g. http://host:9090, or http://host/prometheus for Mimir and Cortex)"
)
_STATUS = re.compile(r"^HTTP Status Code (\d+) \((.*)\)$", re.S)


class Down(Exception):
    """The server cannot be used this cycle: the target is down."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


class QueryFailed(Exception):
    """One query failed; the others go on. `timeout`: no answer at all within the target's timeout
    (when every query of a cycle has none, the server is down)."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.message, self.timeout = message, timeout


def hint_for_status(code: int | None) -> str:
    if code == 404:
        return HINT_NOT_PROMETHEUS
    if code == 503:
        return "the server is unavailable (starting, replaying its WAL, or overloaded): it answers once ready"
    if code in (502, 504):
        return "a proxy in front of the server answered: is Prometheus running behind it?"
    return "see the server's log for details"


def parse_status(text: str) -> tuple[int | None, bytes]:
    """prometheus-api-client's "HTTP Status Code 400 (b'...')" -> (400, body)."""
    match = _STATUS.match(text)
    if not match:
        return None, text.encode()
    try:
        body = ast.literal_eval(match.group(2))
    except (ValueError, SyntaxError):
        body = match.group(2)
    return int(match.group(1)), body if isinstance(body, bytes) else str(body).encode()


def api_error(body: bytes) -> str | None:
    """'errorType: error' from the API's error JSON, or None when the body is something else."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or parsed.get("status") != "error":
        return None
    return f"{parsed.get('errorType', 'error')}: {parsed.get('error', '')}".strip()


def excerpt(body: bytes | str, limit: int = 200) -> str:
    """An answer's start on one line; redact it before: a secret cut in two is no longer found."""
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
