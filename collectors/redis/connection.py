"""The Redis client of a target, and what to say when the server cannot be used or refuses a command.

One client per target (client name ``observatory``, socket and connect timeouts = the target's
timeout, one reconnect and no other retries: the scheduler backs off). A password from password_env
wins over the URL's. Messages are redacted before they are cut (`clean`).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dashboard.core.config import RedisTarget
from dashboard.core.redaction import SecretError, redact, secret_from_env

CLIENT_NAME = "observatory"
HINT_PASSWORD = "set the password in the URL or password_env"
AUTH_WORDS = (
    "noauth",
    "wrongpass",
    "authentication required",
    "invalid password",
    "invalid username-password",
)
WHAT = {  # what a refused command costs, for hints
    "INFO": "server metrics",
    "SLOWLOG": "the slow log",
    "LATENCY": "latency events",
    "CONFIG": "maxclients",
    "CLUSTER": "the cluster state",
}


def make_client(target: RedisTarget) -> tuple[redis.Redis, str | None]:
    """The target's client and the password taken from password_env (None: from the URL, if any)."""
    url, password = target.url, None
    if target.password_env:
        password = secret_from_env(target.password_env, "password_env")  # stripped; SecretError
        url = _without_password(url)  # redis-py lets the URL's password win over the argument
    client = redis.Redis.from_url(
        url,
        socket_timeout=target.timeout,
        socket_connect_timeout=target.timeout,
        client_name=CLIENT_NAME,
        # One immediate reconnect (a pooled connection the server closed, e.g. after a restart);
        # timeouts are not retried: the scheduler's backoff paces a slow or dead server.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        **({"password": password} if password is not None else {}),
    )
    return client, password


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def refusal(command: str, err: Exception, what: str, user: str) -> tuple[str, str]:
    """(message, hint) for a command the server refused; the rest of the cycle goes on."""
    message = f"{command}: {str(err).strip() or type(err).__name__}"
    if isinstance(err, redis.exceptions.NoPermissionError):
        return message, (
            f"the Redis user {user} may not run {command}: ACL SETUSER {user} +{command.lower()} "
            f"lets the collector read {what}"
        )
    if "unknown command" in str(err).lower():
        return (
            message,
            f"{command} is renamed or disabled on this server (rename-command): {what} not collected",
        )
    return message, f"{command} failed: {what} not collected (see the Redis server log)"


def explain_connection_error(
    err: Exception, timeout: float, clean: Callable[[str], str] = redact
) -> tuple[str, str]:
    """The driver's message (first line) and what to do about it. `clean` takes the secrets out
    of the error's text before it is cut to its first line."""
    if isinstance(err, SecretError):
        return str(err), err.hint
    text = clean(str(err)).strip()
    message = text.splitlines()[0] if text else type(err).__name__
    lowered = text.lower()
    if "without any password configured" in lowered or "no password is set" in lowered:
        return message, "this server has no password: remove it from the URL and password_env"
    if isinstance(err, redis.AuthenticationError) or any(s in lowered for s in AUTH_WORDS):
        return message, HINT_PASSWORD
    if "environment variable" in lowered:
        return message, "export the variable before starting the collector"
    if isinstance(err, redis.TimeoutError) or "timed out" in lowered or "timeout" in lowered:
        return message, f"Redis did not answer within {timeout:g}s: check host, port, firewall and timeout"
    if "connection refused" in lowered or "no such file or directory" in lowered:
        return message, "is Redis running and listening on that host and port (or socket)?"
    if "name or service not known" in lowered or "name resolution" in lowered or "nodename" in lowered:
        return message, "the host name in the URL does not resolve"
    if "ssl" in lowered or "certificate" in lowered:
        return message, (
            "TLS failed: check that the server speaks TLS (rediss://) and its certificate "
            "(add ?ssl_cert_reqs=none to the URL for a self-signed one)"
        )
    if "max number of clients" in lowered:
        return message, "the server refuses new clients (maxclients reached)"
    if "loading" in lowered:
        return message, "Redis is loading its dataset into memory: it answers once loaded"
    if isinstance(err, ValueError):
        return message, "the url is not valid: write it as redis://[user:password@]host:6379/0"
    return message, "see the Redis server log for details"
