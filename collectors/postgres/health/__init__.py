"""The PostgreSQL collector's health parts, one module each (collectors/postgres/parts.py)."""

from collectors.postgres.health import indexes, replication, server_stats, sessions, settings, tables
from collectors.postgres.parts import Part

PARTS: tuple[Part, ...] = (
    sessions.PART,
    replication.PART,
    server_stats.PART,
    settings.PART,
    tables.PART,
    indexes.PART,
)
