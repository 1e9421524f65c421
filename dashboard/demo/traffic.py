"""The demo's live service: request latency and status codes that change over time, for Prometheus.

`python -m dashboard.demo.traffic --port N` serves `/metrics` (prometheus_client) on 127.0.0.1 with
the same metrics as `dashboard.demo.service` (whose values are constant, for the tests):

- `http_request_duration_seconds` (histogram, buckets fine enough around the 200 ms SLO) and
- `http_requests_total{code}` (counter, 200 / 404 / 500 / 503),

for simulated traffic of about `rate` requests per second. Latency is mostly 20-120 ms and drifts
slowly; every `spell_every` seconds comes a slow spell (a backend struggling) in which most
requests take 150-400 ms, so the p95 target (< 200 ms) is broken now and then. 5xx replies are
rare (about 0.05 %) except for short error bursts. Nothing real is served: the requests are
observations, so the exporter costs next to no CPU.

`LiveService` and `NodeExporter` run it and Debian's node_exporter as child processes (the demo
uses them); each leaves nothing behind when stopped, and the service also exits by itself when the
process that started it is gone.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from dashboard.servers.throwaway import ProcessServer, http_ok

# Fine around the SLO (200 ms) so histogram_quantile interpolates within a narrow bucket.
BUCKETS = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0,
           2.5, 5.0)  # fmt: skip
TICK = 0.25  # seconds between batches of simulated requests
HANDLERS = ("/api/orders", "/api/customers", "/api/products")
CODES = ("200", "404", "500", "503")


@dataclass(frozen=True)
class Profile:
    """How the simulated traffic behaves; times are seconds since the service started."""

    rate: float = 40.0  # requests per second
    median_ms: float = 55.0  # normal regime; drifts +-30 % over `drift_every`
    drift_every: float = 420.0
    spell_every: float = 480.0  # a slow spell starts this often ...
    spell_first: float = 150.0  # ... the first one this long after the start ...
    spell_seconds: float = 100.0  # ... and lasts this long
    spell_median_ms: float = 230.0
    error_ratio: float = 0.0005  # share of 5xx replies outside bursts
    burst_every: float = 660.0
    burst_first: float = 330.0
    burst_seconds: float = 45.0
    burst_error_ratio: float = 0.01
    not_found_ratio: float = 0.01  # 404s: client errors, not counted against the service

    @staticmethod
    def _within(t: float, first: float, every: float, seconds: float) -> bool:
        return t >= first and (t - first) % every < seconds

    def slow(self, t: float) -> bool:
        return self._within(t, self.spell_first, self.spell_every, self.spell_seconds)

    def bursting(self, t: float) -> bool:
        return self._within(t, self.burst_first, self.burst_every, self.burst_seconds)

    def median(self, t: float) -> float:
        """The median latency in ms at time t."""
        if self.slow(t):
            return self.spell_median_ms
        return self.median_ms * (1 + 0.3 * math.sin(2 * math.pi * t / self.drift_every))

    def errors(self, t: float) -> float:
        return self.burst_error_ratio if self.bursting(t) else self.error_ratio


class Simulation:
    """The service's metrics in their own registry, fed by a thread of simulated requests."""

    def __init__(self, profile: Profile | None = None, seed: int | None = None) -> None:
        self.profile = profile or Profile()
        self.registry = CollectorRegistry()
        self.duration = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request.", ["handler"],
            buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.requests = Counter(
            "http_requests_total", "HTTP requests answered, by status code.", ["handler", "code"],
            registry=self.registry,
        )  # fmt: skip
        for handler in HANDLERS:  # every series exists from the start: a 5xx rate is 0, not absent
            self.duration.labels(handler)
            for code in CODES:
                self.requests.labels(handler, code)
        self._rng = np.random.default_rng(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._started = time.monotonic()

    def step(self, t: float, seconds: float) -> int:
        """Simulate `seconds` of traffic at time t; returns the number of requests."""
        p, rng = self.profile, self._rng
        n = int(rng.poisson(p.rate * seconds))
        if not n:
            return 0
        latencies = rng.lognormal(math.log(p.median(t) / 1000), 0.35, n)
        handlers = rng.choice(HANDLERS, n, p=[0.5, 0.3, 0.2])
        draws = rng.random(n)
        codes = np.where(draws < p.errors(t), "500", np.where(draws > 1 - p.not_found_ratio, "404", "200"))
        codes = np.where((codes == "500") & (rng.random(n) < 0.3), "503", codes)
        for latency, handler, code in zip(latencies, handlers, codes, strict=True):
            self.duration.labels(str(handler)).observe(float(latency))
            self.requests.labels(str(handler), str(code)).inc()
        return n

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            self.step(time.monotonic() - self._started, TICK)

    def start(self) -> Simulation:
        self.step(0.0, TICK)  # something to scrape at once
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def serve(port: int, profile: Profile, seed: int | None = None) -> None:
    """Serve /metrics until SIGTERM/SIGINT, or until the parent process is gone."""
    simulation = Simulation(profile, seed).start()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=simulation.registry)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    parent = os.getppid()
    while not done.wait(1.0):
        if os.getppid() != parent:  # the demo died without stopping us: do not linger
            break
    server.shutdown()
    simulation.stop()


# -- child processes ----------------------------------------------------------------------------
class LiveService(ProcessServer):
    """This module's service as a child process on a free port."""

    prefix = "obs-service-"

    def __init__(self, port: int | None = None, *, options: tuple[str, ...] = ()) -> None:
        super().__init__(port)
        self.options = options  # extra command-line flags, e.g. ("--spell-first", "0")

    @property
    def address(self) -> str:
        """host:port, as a Prometheus scrape target."""
        return f"127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "dashboard.demo.traffic", "--port", str(self.port), *self.options]

    def _ready(self) -> bool:
        return http_ok(f"http://{self.address}/metrics")


def main(argv: list[str] | None = None) -> int:
    d = Profile()
    p = argparse.ArgumentParser(prog="python -m dashboard.demo.traffic", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--rate", type=float, default=d.rate, help="requests per second")
    p.add_argument("--median-ms", type=float, default=d.median_ms)
    p.add_argument(
        "--spell-first", type=float, default=d.spell_first, help="seconds until the first slow spell"
    )
    p.add_argument("--spell-every", type=float, default=d.spell_every)
    p.add_argument("--spell-seconds", type=float, default=d.spell_seconds)
    p.add_argument("--error-ratio", type=float, default=d.error_ratio)
    a = p.parse_args(argv)
    profile = Profile(
        rate=a.rate,
        median_ms=a.median_ms,
        spell_first=a.spell_first,
        spell_every=a.spell_every,
        spell_seconds=a.spell_seconds,
        error_ratio=a.error_ratio,
    )
    serve(a.port, profile, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
