"""What the advisor knows about the tables a statement touches: size, statistics, indexes.

Read lazily, one relation at a time, from the database the statements ran in; cached for one
advising run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.rows import dict_row

from dashboard.core.guarded import GuardedSession, Refused
from dashboard.core.sqlfiles import SqlFiles

sql = SqlFiles(Path(__file__).with_name("sql"))  # the advisor's own queries
NEARLY_UNIQUE = 0.95  # distinct values per row from which a column is as good as unique


@dataclass(frozen=True)
class ColumnStats:
    type: str
    null_frac: float | None = None
    n_distinct: float | None = None
    correlation: float | None = None
    top_freq: float | None = None  # frequency of the most common value
    mcv: dict[str, float] = field(default_factory=dict)  # most common values -> frequency


@dataclass(frozen=True)
class Index:
    name: str
    method: str
    keys: tuple[str, ...]  # column names or expressions, in index order, as pg_get_indexdef shows
    unique: bool
    primary: bool
    valid: bool
    predicate: str | None
    definition: str
    opclasses: tuple[str, ...] = ()  # one per key: 'text_ops', 'gin_trgm_ops', ...

    def unique_on(self, column: str) -> bool:
        """A valid unique index on exactly this column: one row per value, for every row."""
        one_key = len(self.keys) == 1 and self.keys[0].strip('"') == column
        return self.unique and self.valid and not self.predicate and one_key


@dataclass
class Relation:
    oid: int
    schema: str
    name: str
    kind: str  # r table, p partitioned, v view, m materialized view, f foreign, ...
    reltuples: int
    viewdef: str | None
    system: bool
    writes: int  # rows inserted, updated, deleted since stats_since
    hot_updates: int
    stats_since: int
    columns: dict[str, ColumnStats] = field(default_factory=dict)
    indexes: list[Index] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def quoted(self) -> str:
        return f"{_quote(self.schema)}.{_quote(self.name)}"

    @property
    def indexable(self) -> bool:
        return self.kind in ("r", "m", "p") and not self.system

    def nearly_unique(self, column: str) -> bool:
        """At most about one row per value: a unique index on it alone, or pg_stats' distinct
        count within 5 % of the rows (n_distinct -1 means 'as many values as rows')."""
        if any(index.unique_on(column) for index in self.indexes):
            return True
        stats = self.columns.get(column)
        distinct = stats.n_distinct if stats else None
        if not distinct:
            return False
        if distinct < 0:
            return -distinct >= NEARLY_UNIQUE
        return self.reltuples > 0 and distinct >= NEARLY_UNIQUE * self.reltuples


def _quote(identifier: str) -> str:
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", identifier):
        return identifier
    return '"' + identifier.replace('"', '""') + '"'


class Catalog:
    """Relations of one database, looked up by the name a statement writes ('users', '"Bar"."Foo"')
    along the statement's search_path (the session's own is pg_catalog alone)."""

    def __init__(self, session: GuardedSession) -> None:
        self.session = session
        self.conn = session.conn
        self._relations: dict[str, Relation | None] = {}
        self._extensions: dict[str, str] | None = None

    @property
    def extensions(self) -> dict[str, str]:
        """The extensions installed in this database, by name: their schemas, quoted if need be
        (read once)."""
        if self._extensions is None:
            rows = self.conn.execute(sql("catalog_extensions")).fetchall()
            self._extensions = {name: schema for name, schema in rows}
        return self._extensions

    def relation(self, written: str) -> Relation | None:
        if written not in self._relations:
            self._relations[written] = self._load(written)
        return self._relations[written]

    def _load(self, written: str) -> Relation | None:
        try:
            oid = self.session.relation_oids([written])[written]
        except Refused:  # not a name at all
            return None
        if oid is None:
            return None
        with self.conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(sql("catalog_relation"), {"oid": oid}).fetchone()
            if row is None:
                return None
            rel = Relation(**row)
            for c in cur.execute(
                sql("catalog_columns"), {"schema": rel.schema, "name": rel.name, "oid": rel.oid}
            ):
                rel.columns[c["column"]] = ColumnStats(
                    type=c["type"],
                    null_frac=c["null_frac"],
                    n_distinct=c["n_distinct"],
                    correlation=c["correlation"],
                    top_freq=c["top_freq"],
                    mcv=_mcv(c["mcv"], c["mcf"]),
                )
            rel.indexes = [
                Index(
                    name=i["name"],
                    method=i["method"],
                    keys=tuple(i["keys"]),
                    unique=i["unique"],
                    primary=i["primary"],
                    valid=i["valid"],
                    predicate=i["predicate"],
                    definition=i["definition"],
                    opclasses=tuple(i["opclasses"]),
                )
                for i in cur.execute(sql("catalog_indexes"), {"oid": rel.oid})
            ]
        return rel


def _mcv(values: str | None, freqs: list[float] | None) -> dict[str, float]:
    """pg_stats' most common values arrive as an array literal of text: '{a,b,"c d"}'."""
    if not values or not freqs:
        return {}
    items = re.findall(r'"((?:[^"\\]|\\.)*)"|([^,{}]+)', values)
    texts = [quoted.replace('\\"', '"') if quoted else bare for quoted, bare in items]
    return dict(zip(texts, freqs, strict=False))
