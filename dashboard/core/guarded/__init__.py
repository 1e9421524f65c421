"""The only door through which SQL the project did not write reaches a server.

`check()` reads a foreign statement with PostgreSQL's own parser; `GuardedSession` plans it, read-only,
through the extended protocol, under limits the statement cannot lift.
"""

from dashboard.core.guarded.reading import reading_form
from dashboard.core.guarded.session import GuardedSession, Limits, Run, SessionRefused, Unsafe, first_line
from dashboard.core.guarded.statement import ForeignStatement, Refused, analysable, check, check_text

__all__ = [
    "ForeignStatement",
    "GuardedSession",
    "Limits",
    "Refused",
    "Run",
    "SessionRefused",
    "Unsafe",
    "analysable",
    "check",
    "check_text",
    "first_line",
    "reading_form",
]
