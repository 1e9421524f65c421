"""The index advisor as a daemon job: each database a target's statements ran in, every hour.

It connects read-only to each database (the target's DSN with the database swapped), advises on
that database's recorded workload, checks its index health and stores the report, so the pages
show suggestions without connecting to the monitored servers themselves. It keeps each statement's
plan too, a new row when its shape changed (dashboard.store.plan_history), for Investigate.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import select

from dashboard.advisor.advise import Options
from dashboard.advisor.database import AdviseError, Workload, advise_database
from dashboard.core.advice import AdviceReport
from dashboard.core.config import AdvisorSettings, PostgresTarget
from dashboard.core.redaction import password_of, redact
from dashboard.store import Store
from dashboard.store.schema import statements

log = logging.getLogger("observatory.advise")
KIND = "postgres"


def databases(store: Store, target: PostgresTarget) -> list[str]:
    """The target's own database plus every database its recorded statements ran in."""
    first = conninfo_to_dict(target.dsn).get("dbname")
    tid = store.target_id(KIND, target.name)
    with store.engine.connect() as conn:
        seen = conn.execute(
            select(statements.c.datname)
            .where(statements.c.target_id == tid, statements.c.datname.is_not(None))
            .distinct()
        ).scalars()
        names = sorted(set(seen))
    return ([first] if first else []) + [n for n in names if n != first]


def advise_target(
    store: Store, target: PostgresTarget, settings: AdvisorSettings | None = None, now: int | None = None
) -> dict[str, str | None]:
    """Advise on every database of the target; returns database -> error (None when it worked)."""
    settings = settings or AdvisorSettings()
    workload = Workload(settings.min_calls, settings.min_mean_ms, settings.limit)
    options = Options(min_table_rows=settings.min_table_rows, min_reduction=settings.min_reduction)
    outcome: dict[str, str | None] = {}
    for datname in databases(store, target):
        started = time.perf_counter()
        plans: dict[str, Any] = {}
        try:
            report, plans = advise_database(
                make_conninfo(target.dsn, dbname=datname),
                password_env=target.password_env,
                options=options,
                workload=workload,
                allow_privileged=target.advise_privileged,
            )
            outcome[datname] = None
        except AdviseError as err:
            report = AdviceReport.failed(str(err))
            outcome[datname] = str(err)
        except Exception as err:  # a bug or an odd catalog must not stop the daemon
            message = redact(f"{type(err).__name__}: {err}", password_of(target.dsn))
            log.exception("%s/%s: advising %s failed", KIND, target.name, datname)
            report = AdviceReport.failed(message)
            outcome[datname] = message
        duration_ms = (time.perf_counter() - started) * 1000
        at = now or int(time.time())
        store.write_advice(KIND, target.name, datname, at, report, duration_ms)
        _keep_plans(store, target, datname, at, plans)
    return outcome


def _keep_plans(store: Store, target: PostgresTarget, datname: str, now: int, plans: dict[str, Any]) -> None:
    """Add the plans to the statements' plan history. A failure is logged: the report stands."""
    try:
        changed = store.write_plans(KIND, target.name, datname, now, plans)
    except Exception:
        log.exception("%s/%s: keeping the plans of %s failed", KIND, target.name, datname)
        return
    if changed:
        log.info("%s/%s: %d new plan shapes in %s", KIND, target.name, changed, datname)
