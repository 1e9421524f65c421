"""The alert tables: what is pending or firing now, each change of state, the notifier's journal.

The daemon's evaluation writes (through `Store`); the pages and `observatory alerts` read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Connection, Engine, case, func, select

from dashboard.core.alerts import Alert
from dashboard.store.schema import alert_events, alert_journal, alerts_now


def replace_now(conn: Connection, active: Sequence[Alert], changes: Sequence[Alert], now: int) -> None:
    """`active` becomes the whole of alerts_now; each of `changes` is an event at `now`."""
    conn.execute(alerts_now.delete())
    if active:
        conn.execute(alerts_now.insert(), [_now_row(a) for a in active])
    if changes:
        conn.execute(
            alert_events.insert(),
            [
                {
                    "fingerprint": a.fingerprint,
                    "rule": a.name,
                    "labels": json.dumps(a.labels, sort_keys=True),
                    "ts": now,
                    "state": a.state,
                    "value": a.value,
                }
                for a in changes
            ],
        )


def _now_row(a: Alert) -> dict:
    return {
        "fingerprint": a.fingerprint,
        "rule": a.name,
        "labels": json.dumps(a.labels, sort_keys=True),
        "annotations": json.dumps(a.annotations, sort_keys=True),
        "state": a.state,
        "value": a.value,
        "active_at": a.active_at,
        "fired_at": a.fired_at,
        "held_at": a.held_at,
        "source_url": a.source_url,
    }


def active(engine_or_conn: Engine | Connection) -> list[Alert]:
    """Every alert pending or firing as of the last evaluation, firing first, then by name."""
    firing_first = case((alerts_now.c.state == "firing", 0), else_=1)
    query = select(alerts_now).order_by(firing_first, alerts_now.c.rule, alerts_now.c.active_at)
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            rows = conn.execute(query).mappings().all()
    else:
        rows = engine_or_conn.execute(query).mappings().all()
    return [
        Alert(
            labels=json.loads(r["labels"]),
            annotations=json.loads(r["annotations"]),
            state=r["state"],
            value=r["value"] if r["value"] is not None else float("nan"),
            active_at=r["active_at"],
            fired_at=r["fired_at"],
            held_at=r["held_at"],
            source_url=r["source_url"],
        )
        for r in rows
    ]


def history(engine: Engine, since: int, until: int, fingerprint: str | None = None) -> pd.DataFrame:
    """Changes of state in [since, until] (of one alert, given its fingerprint): fingerprint, rule,
    labels (JSON), ts, state, value."""
    query = select(alert_events).where(alert_events.c.ts >= since, alert_events.c.ts <= until)
    if fingerprint is not None:
        query = query.where(alert_events.c.fingerprint == fingerprint)
    query = query.order_by(alert_events.c.ts, alert_events.c.id)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in alert_events.c])


def journal(conn: Connection, key: str) -> str | None:
    return conn.execute(select(alert_journal.c.value).where(alert_journal.c.key == key)).scalar()


def save_journal(conn: Connection, key: str, value: str) -> None:
    conn.execute(alert_journal.delete().where(alert_journal.c.key == key))
    conn.execute(alert_journal.insert().values(key=key, value=value))


def last_events(engine: Engine, before: int) -> pd.DataFrame:
    """Each alert's last change of state before `before` (ts < before), the state it was in then:
    the same columns as `history`. Events are written in time order, so an alert's highest id is
    its latest event (two of one evaluation, pending then firing, share a ts)."""
    latest = (
        select(func.max(alert_events.c.id))
        .where(alert_events.c.ts < before)
        .group_by(alert_events.c.fingerprint)
    )
    query = select(alert_events).where(alert_events.c.id.in_(latest)).order_by(alert_events.c.id)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in alert_events.c])
