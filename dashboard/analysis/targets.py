"""The targets: what the store holds of each, merged with what the configuration names.

One status merge for the pages and `observatory status`: every target of every registered source
(dashboard.core.sources), collected or not yet. A Reader applies it to its store and configuration
(`Reader.statuses`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from dashboard.core import sources
from dashboard.core.config import Config

STALE_CYCLES = 3  # a target not scraped for this many intervals is flagged: is the collector running?
DEFAULT_INTERVAL = 60.0
START_COLLECTING = "run `observatory collect` (or `observatory up`) to start collecting"


@dataclass(frozen=True)
class Target:
    id: int
    name: str
    kind: str = "postgres"


def merge_statuses(
    stored: pd.DataFrame, config: Config, kind: str | None = None, now: float | None = None
) -> pd.DataFrame:
    """Every target of `kind` (None: of every kind): the store's rows (reads.target_statuses), then
    the configured targets never collected (state NaN, no samples, a hint to start collecting).
    Adds `configured` (the configuration names it) and `stale` (last tried longer ago than
    STALE_CYCLES of its intervals)."""
    now = time.time() if now is None else now
    if kind is not None:
        return _of_kind(stored, config, kind, now)
    kinds = dict.fromkeys([*stored["kind"], *(source.kind for source in sources.SOURCES)])
    parts = [_of_kind(stored, config, k, now) for k in kinds]
    found = [part for part in parts if len(part)]
    return pd.concat(found, ignore_index=True) if found else parts[0]


def _of_kind(stored: pd.DataFrame, config: Config, kind: str, now: float) -> pd.DataFrame:
    frame = stored[stored["kind"] == kind]
    targets = sources.configured(config, kind) if kind in sources.BY_KIND else []
    configured = [t.name for t in targets]
    missing = [n for n in configured if n not in set(frame["name"])]
    extra = pd.DataFrame({"name": missing, "kind": kind, "samples": 0, "failures": 0})
    extra["hints"] = [[START_COLLECTING]] * len(extra)
    frame = pd.concat([frame, extra], ignore_index=True) if missing else frame.reset_index(drop=True)
    frame["configured"] = frame["name"].isin(configured)
    intervals = {t.name: t.interval for t in targets}
    limit = frame["name"].map(intervals).fillna(DEFAULT_INTERVAL) * STALE_CYCLES
    frame["stale"] = (now - frame["last_attempt"]) > limit
    return frame
