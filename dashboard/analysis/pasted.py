"""Advising on a statement someone pastes, in a database of a configured PostgreSQL target.

This is the one analysis that connects to a monitored server. The statement is checked before
anything connects (one statement, of a kind the planner may cost); then it goes through the guarded
session like the daemon's advisor: read-only, rolled back, a hypothetical index living only in that
session.
"""

from __future__ import annotations

from collections.abc import Callable

from dashboard.core.advice import AdviceReport
from dashboard.core.config import Config
from dashboard.core.guarded import Refused, check

Advise = Callable[[Config, str, str, str], AdviceReport]


def advise_pasted(
    config: Config, target: str, datname: str, statement: str, *, advise: Advise | None = None
) -> AdviceReport:
    """The advisor's report on `statement` in `datname` of the configured target `target` (without
    index health), or a failed one saying why not. `advise` runs a checked statement (default
    `advise_checked`; the app passes a cached one)."""
    try:
        check(statement)
    except Refused as err:
        return AdviceReport.failed(f"Not advised: {err}")
    return (advise or advise_checked)(config, target, datname, statement.strip())


def advise_checked(config: Config, target: str, datname: str, statement: str) -> AdviceReport:
    """Advise on a statement `check` has passed: only through `advise_pasted`."""
    from psycopg.conninfo import make_conninfo

    from dashboard.advisor.database import AdviseError, advice_report

    configured = {t.name: t for t in config.targets.postgres}
    if target not in configured:
        return AdviceReport.failed(f"{target} is not a PostgreSQL target of the configuration")
    t = configured[target]
    try:
        dsn = make_conninfo(t.dsn, dbname=datname)
        return advice_report(
            dsn,
            queries=[statement],
            password_env=t.password_env,
            health=False,
            allow_privileged=t.advise_privileged,
        )
    except (AdviseError, ValueError) as err:
        return AdviceReport.failed(str(err))


def target_database(config: Config, target: str) -> str | None:
    """The database a configured PostgreSQL target's DSN names."""
    from psycopg.conninfo import conninfo_to_dict

    configured = {t.name: t for t in config.targets.postgres}
    return conninfo_to_dict(configured[target].dsn).get("dbname") if target in configured else None
