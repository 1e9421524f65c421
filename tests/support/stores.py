"""Configurations and collector cycles, as `observatory collect` makes them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import pandas as pd
import psycopg
from sqlalchemy import update

from collectors.scheduler import Scheduler
from dashboard.core import config as config_mod
from dashboard.core.metrics import REDIS_OPS
from dashboard.core.records import Cycle, Status
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.reads import target_statuses
from dashboard.store.schema import target_status


def make_config(
    store: str, targets: Sequence[dict] = (), kind: str = "postgres", **extra
) -> config_mod.Config:
    """The configuration of the store at URL `store` and `targets` of one kind (postgres, redis,
    prometheus), as observatory.yaml gives it; `extra` are other top-level keys."""
    return config_mod.from_dict({"store": store, "targets": {kind: list(targets)}, **extra})


def status_row(store: Store, kind: str, name: str) -> pd.Series:
    """The target's row of reads.target_statuses."""
    frame = target_statuses(store.engine)
    return frame[(frame["kind"] == kind) & (frame["name"] == name)].iloc[0]


def only_value(points: pd.DataFrame, ts: int, what: str) -> float:
    """The one value (`sum`) stored among `points` at `ts`: a counter's delta, a gauge's reading."""
    values = points.loc[points["ts"] == ts, "sum"].tolist()
    assert len(values) == 1, f"{what} at {ts}: {values}"
    return values[0]


def collect_once(config: config_mod.Config, store: Store, now: int | None = None):
    """One cycle of every target, as `observatory collect --once` runs it."""
    clock = (lambda: float(now)) if now is not None else time.time
    return Scheduler(config, store, clock=clock).run_once()


def stored_details(store: Store, kind: str, name: str, text: str, ts: int = 1_000) -> int:
    """A target whose last successful cycle left `text` in target_status.details, as it is (a row
    written by another version of the collector); returns the target's id."""
    store.write_cycle(Cycle(kind, name, ts, Status()))
    tid = store.target_id(kind, name)
    with store.engine.begin() as conn:
        conn.execute(update(target_status).where(target_status.c.target_id == tid).values(details=text))
    return tid


def new_store_dsn(pg: ThrowawayPostgres) -> str:
    """A new, empty database on the session cluster, for a store."""
    name = f"store_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg.dsn(dbname=name)


def ops_stored(dsn: str, target: str) -> float:
    """The sum of the stored per-interval deltas of REDIS_OPS (commands run) of one Redis target."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(p.value), 0) FROM series s JOIN targets t ON t.id = s.target_id"
            " LEFT JOIN points_raw p ON p.series_id = s.id WHERE s.name = %s AND t.name = %s",
            (REDIS_OPS, target),
        ).fetchone()
    return float(row[0])
