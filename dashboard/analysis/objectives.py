"""The seed's targets, as ratios (0..1), defined once: the charts and pages show them in %."""

from __future__ import annotations

BUFFER_HIT_RATIO = 0.90  # PostgreSQL's buffer cache, for frequently read data
CACHE_HIT_RATE = 0.90  # a Redis cache's keyspace hit rate
