"""What a PostgreSQL connection error means, and what to do about it."""

from __future__ import annotations

import re

import psycopg

from dashboard.advisor.database import PGSS_OVERLOAD
from dashboard.core.redaction import SecretError

_CONNINFO_WORD = re.compile(r'(missing "=" after )"[^"]*"')


def explain_connection_error(err: Exception) -> tuple[str, str]:
    """The driver's message (first line) and what to do about it."""
    if isinstance(err, SecretError):
        return str(err), err.hint
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    # libpq quotes the word it choked on, which may be (part of) a password in the dsn
    message = _CONNINFO_WORD.sub(r'\1"***"', message)
    lowered = str(err).lower()
    if isinstance(err, psycopg.errors.AmbiguousFunction):
        return message, PGSS_OVERLOAD
    if (
        isinstance(err, psycopg.ProgrammingError)
        or "invalid connection option" in lowered
        or ('missing "="' in lowered)
    ):
        return message, "the dsn is not valid: write it as postgresql://user@host:5432/dbname"
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return message, "check the password: PGPASSWORD, ~/.pgpass, or password_env naming a variable"
    if "does not exist" in lowered and "database" in lowered:
        return message, "the database named in the dsn does not exist on that server"
    if "does not exist" in lowered and "role" in lowered:
        return message, "the user named in the dsn does not exist: create it or fix the dsn"
    if "timeout" in lowered or "timed out" in lowered:
        return message, "the server did not answer in time: check host, firewall and connect_timeout"
    if "connection refused" in lowered or "could not connect" in lowered or "connection failed" in lowered:
        return message, "is PostgreSQL running and listening on that host and port?"
    if "environment variable" in lowered:
        return message, "export the variable before starting the collector"
    return message, "see the PostgreSQL server log for details"
