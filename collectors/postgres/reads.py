"""The PostgreSQL collector's queries: sql/*.sql for the server's version, sent together in one
pipeline and read back by name.

The texts are loaded by `SqlFiles` (which marks them as the observatory's own, so they are never
counted as workload); ``{pgss}`` names the schema pg_stat_statements is installed in, and any other
``{name}`` is replaced by sql/name.*.sql for the server's version: a query whose only difference
between versions is one part keeps that part in its own files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from collectors.postgres.arrays import Int8Array
from dashboard.core.records import StatementKey
from dashboard.core.sqlfiles import SqlFiles

SQL = SqlFiles(Path(__file__).with_name("sql"))


class _Reads:
    """The cycle's queries (sql/*.sql for this server version), sent together in one
    pipeline and read back by name; `query` runs one more on its own."""

    def __init__(self, conn: psycopg.Connection, version: int, schema: str | None) -> None:
        self.conn, self.version, self.schema = conn, version, schema
        self._cursors: dict[str, psycopg.Cursor[Any]] = {}
        self.sigs_sent = False  # whether the statements read left out the unchanged entries

    def _sql(self, name: str) -> sql.Composed | sql.SQL:
        return _compose(SQL.get(name, self.version), self.schema, self.version)

    def send(self, *names: str) -> None:
        for name in names:
            self._cursors[name] = self.conn.cursor()
            self._cursors[name].execute(self._sql(name))

    def send_statements(self, sigs: dict[StatementKey, int]) -> None:
        """statements_info (14+), then the entries whose signature is not among `sigs`: moved,
        new, or back. Sending last cycle's signatures lets PostgreSQL drop the ~90 % of entries
        that did not run since, before they are transferred and decoded (binary, as tuples)."""
        if self.version >= 140000:
            self.send("statements_info")
        cur = self._cursors["statements"] = self.conn.cursor(row_factory=tuple_row, binary=True)
        cur.execute(self._sql("statements"), {"sigs": Int8Array.of(sigs.values())})
        self.sigs_sent = bool(sigs)

    def sent(self, name: str) -> bool:
        return name in self._cursors

    def rows(self, name: str) -> list[Any]:
        return self._cursors[name].fetchall()

    def fetch(self, name: str) -> list[dict[str, Any]]:
        """One query on its own, rows as dicts (text results, as the pipeline's)."""
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._sql(name))
            return cur.fetchall()

    def query(self, name: str, params: dict[str, Any] | None = None, *, row_factory=dict_row) -> list[Any]:
        with self.conn.cursor(row_factory=row_factory, binary=True) as cur:
            cur.execute(self._sql(name), params)
            return cur.fetchall()


def _compose(text: str | None, schema: str | None, version: int) -> sql.Composed | sql.SQL:
    if text is None:
        raise ValueError("no SQL for this server version")
    names = set(_PLACEHOLDER.findall(text))
    if not names:
        return sql.SQL(text)
    parts: dict[str, sql.Composable] = {
        name: sql.SQL(SQL.fragment(name, version)) for name in names if name != "pgss"
    }
    if "pgss" in names:
        parts["pgss"] = sql.Identifier(schema or "public")
    return sql.SQL(text).format(**parts)


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
