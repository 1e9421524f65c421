"""Delivering notifications without ever holding up the evaluation: one worker thread per receiver,
fed through a bounded queue, retrying with exponential backoff.

`Sender.submit` never blocks (a full queue refuses the job at once). A worker retries connection
errors, timeouts, 429 and 5xx answers (1, 2, 4 ... s, at most `cap`, `attempts` tries in all) and
gives up on any other answer. Whatever happens is reported as an `Outcome` on a queue the notifier
drains in its own thread, so the journal is only ever written from the caller's thread.

Log lines name the receiver (kind and host) and the reason, both passed through `redact` with the
URL's secrets: a Slack URL (the whole of it is the secret) or a webhook URL's password never reach
a log, an error or an exception message.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

from dashboard.core.redaction import SecretError, password_of, redact

log = logging.getLogger("observatory.alerts")
QUEUE_SIZE = 64  # notifications waiting per receiver; beyond that a receiver is hopelessly behind


class Retry(NamedTuple):
    """How a worker retries: `attempts` tries, waiting base, 2 x base ... at most `cap` seconds
    between them, each request given `timeout` seconds."""

    attempts: int = 6
    base: float = 1.0
    cap: float = 60.0
    timeout: float = 5.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.base * 2 ** (attempt - 1))


class Job(NamedTuple):
    key: str  # what the notifier sent (a group), handed back in the outcome
    body: Any  # JSON-encoded on the worker's side
    token: Any = None  # the notifier's bookkeeping for this job, handed back in the outcome


class Outcome(NamedTuple):
    receiver: str
    key: str
    delivered: bool
    token: Any


class Undeliverable(Exception):
    """A failure that retrying will not fix (4xx, a bad URL, a missing secret)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST becomes a GET without its body: fail loudly instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def post_json(url: str, body: Any, timeout: float) -> int:
    """POST `body` as JSON; the status. Raises Undeliverable or a retryable OSError."""
    data = json.dumps(body).encode("ascii")  # \u escapes: no string can fail to encode
    headers = {"Content-Type": "application/json", "User-Agent": "observatory-alerts"}
    url, auth = _without_userinfo(url)
    if auth:
        headers["Authorization"] = auth
    try:
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        with _OPENER.open(request, timeout=timeout) as resp:
            resp.read(65536)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise OSError(f"HTTP {exc.code}") from None
        raise Undeliverable(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:  # refused, timed out, no such host: may pass; else not
        if isinstance(exc.reason, OSError):
            raise OSError(str(exc.reason)) from None
        raise Undeliverable(str(exc.reason)) from None
    except http.client.HTTPException as exc:  # a garbled answer: the receiver may recover
        raise OSError(f"bad HTTP answer ({type(exc).__name__})") from None
    except ValueError as exc:  # an unknown URL type, a malformed URL
        raise Undeliverable(str(exc)) from None


def _without_userinfo(url: str) -> tuple[str, str | None]:
    """`http://user:pw@host/x` as urllib needs it: the URL without `user:pw@`, and the Basic
    Authorization header they stand for (urllib would read them as part of the host name)."""
    parts = urlsplit(url) if "://" in url else None
    if parts is None or "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=host)), f"Basic {token}"


def url_secrets(url: str) -> list[str]:
    """What to take out of any message about `url`: its password, and for a Slack-like URL the
    whole URL and its path (the token is the path)."""
    parts = urlsplit(url) if "://" in url else None
    found = [url, unquote(url), password_of(url) or ""]
    if parts is not None:
        found += [parts.path, unquote(parts.path), parts.query]
    return [s for s in found if s and s != "/"]


class Sender:
    """One receiver's worker: a thread, a bounded queue, retries."""

    def __init__(
        self,
        name: str,
        label: str,
        url: Callable[[], str],
        outcomes: queue.SimpleQueue[Outcome],
        retry: Retry,
        secrets: list[str],
    ) -> None:
        self.name = name  # the receiver's id, in outcomes
        self.label = label  # how logs name it: its kind and host, never a secret
        self._url = url  # read at send time: a Slack URL comes from the environment
        self._outcomes = outcomes
        self._retry = retry
        self._secrets = secrets
        self._jobs: queue.Queue[Job | None] = queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._busy = 0  # jobs queued or in progress
        self._deadline = float("inf")  # set by close()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"alerts-{name}"[:60], daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> bool:
        """Queue a job; False (and a failed outcome) when the queue is full or the sender closed."""
        if not self._stop.is_set():
            try:
                with self._lock:
                    self._jobs.put_nowait(job)
                    self._busy += 1
                return True
            except queue.Full:
                log.warning("alert notifications to %s: queue full, dropping one", self.label)
        self._outcomes.put(Outcome(self.name, job.key, False, job.token))
        return False

    def close(self, timeout: float) -> None:
        """Deliver what is queued within `timeout`, one try each (no more backoff waits); what is
        left then is reported undelivered."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        with contextlib.suppress(queue.Full):  # full: the worker sees the stop event instead
            self._jobs.put_nowait(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=0.5)
            except queue.Empty:  # a close() whose sentinel did not fit in a full queue
                if self._stop.is_set():
                    return
                continue
            if job is None:
                return
            late = self._stop.is_set() and time.monotonic() >= self._deadline
            try:
                delivered = not late and self._deliver(job)
            except Exception as exc:  # a bug must not kill the worker: the next job still goes out
                log.error("alert notification to %s failed: %s", self.label, self._safe(repr(exc)))
                delivered = False
            self._outcomes.put(Outcome(self.name, job.key, delivered, job.token))
            with self._lock:
                self._busy -= 1

    @property
    def idle(self) -> bool:
        """No job queued or in progress (every outcome reported)."""
        with self._lock:
            return self._busy == 0

    def _deliver(self, job: Job) -> bool:
        for attempt in range(1, self._retry.attempts + 1):
            try:
                post_json(self._url(), job.body, self._retry.timeout)
                return True
            except (Undeliverable, SecretError) as exc:
                log.error("alert notification to %s failed, not retried: %s", self.label, self._safe(exc))
                return False
            except OSError as exc:  # refused, reset, timed out, 5xx
                reason = self._safe(exc)
            if attempt < self._retry.attempts:
                log.warning("alert notification to %s failed (%s), retrying", self.label, reason)
                if self._stop.wait(self._retry.delay(attempt)):
                    break
        log.error(
            "alert notification to %s failed: %s; giving up after %d tries", self.label, reason, attempt
        )
        return False

    def _safe(self, what: object) -> str:
        text = str(what) or type(what).__name__
        return redact(text, *self._secrets, *url_secrets(self._safe_url()))

    def _safe_url(self) -> str:
        try:
            return self._url()
        except (SecretError, OSError):
            return ""
