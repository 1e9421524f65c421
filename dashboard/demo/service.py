"""A small service exporter with known request latencies and errors, for the tests and the demo.

It serves ``/metrics`` (``prometheus_client``) on loopback with

- ``http_request_duration_seconds`` (histogram, buckets ``BUCKETS``) and
- ``http_requests_total{code="200"|"500"}`` (counter),

whose values follow the clock exactly: every ``tick`` seconds a batch of ``requests`` requests is
added, ``slow`` of them taking ``slow_seconds`` and the rest ``fast_seconds``, ``errors`` of them
answered with 500. Every exposed value is (batches so far) x (a constant), computed at scrape time,
so all buckets and codes move in step: ``rate()`` of any two of them has the exact ratio of their
constants whatever the scrape timing, and `expected_quantile` / `expected_error_ratio` give what
PromQL returns.

Run it as a process (``python -m dashboard.demo.service --port 9300``) or start one with
`DemoService` (a context manager, like the throwaway servers); `ThrowawayNodeExporter` runs
Debian's node_exporter beside it for the CPU and memory targets.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from dashboard.servers.throwaway import ProcessServer, http_ok

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0)  # upper bounds in seconds; +Inf is added


@dataclass(frozen=True)
class Traffic:
    """The known request pattern (the defaults: 2000 req/s, p95 175 ms, 0.05 % errors)."""

    tick: float = 1.0  # seconds between batches
    requests: int = 2000  # per batch
    slow: int = 200  # of which take slow_seconds; the others fast_seconds
    errors: int = 1  # of which answer 500
    fast_seconds: float = 0.08
    slow_seconds: float = 0.2

    def bucket_counts(self) -> list[tuple[float, int]]:
        """Cumulative (le, count) of one batch, +Inf last."""
        out = []
        for le in (*BUCKETS, math.inf):
            count = (self.requests - self.slow) * (self.fast_seconds <= le) + self.slow * (
                self.slow_seconds <= le
            )
            out.append((le, count))
        return out


def expected_quantile(q: float, traffic: Traffic = Traffic()) -> float:
    """What `histogram_quantile(q, sum by (le) (rate(..._bucket[w])))` returns for this traffic (s).

    Prometheus' interpolation: rank = q x total; the first bucket whose cumulative count reaches
    the rank holds it, and the value is linear between the bucket's bounds (0 below the first).
    """
    buckets = traffic.bucket_counts()
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower  # Prometheus returns the highest finite bound
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def expected_error_ratio(traffic: Traffic = Traffic()) -> float:
    """What `sum(rate(..{code=~"5.."}[w])) / sum(rate(..[w]))` returns for this traffic."""
    return traffic.errors / traffic.requests


class _Metrics:
    """A prometheus_client collector computing every value from the batches served so far."""

    def __init__(self, traffic: Traffic, started: float) -> None:
        self.traffic = traffic
        self.started = started

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        t = self.traffic
        batches = math.floor((time.time() - self.started) / t.tick)
        fast = t.requests - t.slow
        total_seconds = batches * (fast * t.fast_seconds + t.slow * t.slow_seconds)
        histogram = HistogramMetricFamily(
            "http_request_duration_seconds", "Time to answer a request.", labels=["handler"]
        )
        histogram.add_metric(
            ["/api"],
            [("+Inf" if math.isinf(le) else repr(le), batches * n) for le, n in t.bucket_counts()],
            total_seconds,
        )
        yield histogram
        requests = CounterMetricFamily("http_requests", "Requests answered.", labels=["handler", "code"])
        requests.add_metric(["/api", "200"], batches * (t.requests - t.errors))
        requests.add_metric(["/api", "500"], batches * t.errors)
        yield requests


def serve(port: int, traffic: Traffic = Traffic(), host: str = "127.0.0.1") -> None:
    """Serve /metrics until killed."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(_Metrics(traffic, time.time()))
    start_http_server(port, addr=host, registry=registry)
    while True:
        time.sleep(3600)


class DemoService(ProcessServer):
    """The exporter as a child process on a free port (a context manager, like the throwaway
    servers: stop() or the with-block ends it)."""

    prefix = "obs-svc-"

    def __init__(self, port: int | None = None, traffic: Traffic = Traffic()) -> None:
        self.traffic = traffic
        super().__init__(port)

    @property
    def address(self) -> str:
        """host:port, as a Prometheus scrape target."""
        return f"127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        t = self.traffic
        return [
            # -c with the repo on sys.path: the child imports this package from any directory.
            sys.executable, "-c", f"import sys; sys.path.insert(0, {REPO!r}); "
            "from dashboard.demo.service import main; main()", "--port", str(self.port),
            "--tick", str(t.tick), "--requests", str(t.requests), "--slow", str(t.slow),
            "--errors", str(t.errors), "--fast-seconds", str(t.fast_seconds),
            "--slow-seconds", str(t.slow_seconds),
        ]  # fmt: skip

    def _ready(self) -> bool:
        return http_ok(f"http://{self.address}/metrics")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Traffic()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tick", type=float, default=defaults.tick)
    parser.add_argument("--requests", type=int, default=defaults.requests)
    parser.add_argument("--slow", type=int, default=defaults.slow)
    parser.add_argument("--errors", type=int, default=defaults.errors)
    parser.add_argument("--fast-seconds", type=float, default=defaults.fast_seconds)
    parser.add_argument("--slow-seconds", type=float, default=defaults.slow_seconds)
    a = parser.parse_args(argv)
    traffic = Traffic(a.tick, a.requests, a.slow, a.errors, a.fast_seconds, a.slow_seconds)
    with contextlib.suppress(KeyboardInterrupt):
        serve(a.port, traffic, a.host)


if __name__ == "__main__":
    main()
