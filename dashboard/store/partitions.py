"""Time partitions of the raw and hourly tables on a PostgreSQL store (a SQLite store keeps one table each).

`points_raw` and `stmt_raw` are partitioned by day, `points_hourly` and `stmt_hourly` by week
(Monday 00:00 UTC), all `PARTITION BY RANGE (ts)`. With the default retention (raw 2 days, hourly
90 days) that is 3-4 raw partitions and ~14 hourly ones per table: a day is the smallest span
retention can drop whole without keeping much extra raw detail, and a week keeps the hourly tables'
partitions few while a 1-day window still reads one partition. The daily tables (5 years, ~1 row
per series a day) and the slow log (a server's last 128 entries) stay plain: too small to matter.

- The writer makes sure a cycle's partitions exist before its transaction (`ensure`), from a cache of
  those known, so it costs nothing once a day's partition is there; the retention job creates the
  next few ahead (`ahead`), so the writer seldom creates one.
- A partition is created as a plain table and then ATTACHed: ATTACH takes only a SHARE UPDATE
  EXCLUSIVE lock on the parent, which lets readers and the other daemons' writes go on, where
  `CREATE TABLE ... PARTITION OF` would take an ACCESS EXCLUSIVE one.
- Retention drops the partitions entirely older than the horizon (`drop_before`), then deletes what
  is older than the horizon in the one partition that straddles it (the contract is the same on both
  backends: nothing older than the horizon stays); whole days of DELETE and the vacuum after them go.
  DROP takes an ACCESS EXCLUSIVE lock on the parent table, so it waits behind a long read (a month's
  chart) and every write to the table waits behind it: each partition is dropped in a transaction of
  its own that gives up after DROP_LOCK_TIMEOUT, leaving that table's old partitions to the next prune
  (the DELETE after empties them meanwhile). Writes wait that long at most, and the prune goes on.
- The horizon is reckoned by the store's clock (`store_clock`): daemons on several machines share the
  store, and one whose clock runs ahead must not delete what the others wrote a minute ago.
- No DEFAULT partition: a row without a partition would land there silently, and every later
  partition creation would have to scan it (failing when it holds rows of the new range). The writer
  creates partitions first, so a missing one is a loud error that the writer retries.
- pg_partman is not used: it must be installed by a superuser in the store's database and its
  maintenance run by a background worker or cron, and it pre-makes partitions around now only, while
  back-filled points and imported history need partitions on demand anyway. These ~150 lines need only
  the store role owning its tables.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from dashboard.core.records import Cycle

DAY, WEEK = 86400, 7 * 86400
MONDAY = 4 * DAY  # 1970-01-01 was a Thursday: weeks start on the Monday after, 1970-01-05
SPANS = {"points_raw": DAY, "stmt_raw": DAY, "points_hourly": WEEK, "stmt_hourly": WEEK}
AHEAD_DAYS = 3  # partitions the retention job keeps ready past now
LOCK_TIMEOUT = "5s"  # a partition change queued behind a long read must not stall the store longer
DROP_LOCK_TIMEOUT = "200ms"  # what a DROP waiting behind a long read may hold the writes up
CLOCK_SKEW = 300  # seconds: a daemon's clock further off the store's is wrong, not drifting
LOCK_NOT_AVAILABLE = "55P03"  # the SQLSTATE of a lock_timeout
BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")
log = logging.getLogger("observatory.collect")  # retention runs in the daemon: its log


def span(table: str, ts: int) -> tuple[int, int]:
    """The [start, end) of the partition of `table` that holds `ts`."""
    width = SPANS[table]
    offset = MONDAY if width == WEEK else 0
    start = ts - (ts - offset) % width
    return start, start + width


def partition_name(table: str, start: int) -> str:
    return f"{table}_p{datetime.fromtimestamp(start, UTC):%Y%m%d}"


def cycle_times(cycles: Iterable[Cycle]) -> set[int]:
    """Every ts a batch of cycles writes at (back-filled points carry their own)."""
    found: set[int] = set()
    for cycle in cycles:
        found.add(cycle.ts)
        found.update(p.ts for p in cycle.points if p.ts)
    return found


class Partitions:
    """The partitions of one PostgreSQL store, created on demand; inert on SQLite."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.enabled = engine.dialect.name == "postgresql"
        self._known: dict[str, list[tuple[int, int]]] | None = None  # table -> [start, end) spans
        self._mutex = threading.Lock()

    def forget(self) -> None:
        """Read the catalog again next time (another daemon may have dropped or made partitions)."""
        with self._mutex:
            self._known = None

    def ensure(self, times: Iterable[int]) -> None:
        """Make sure every partitioned table has a partition for each of `times`."""
        if not self.enabled:
            return
        with self._mutex:
            known, times = self._load(), set(times)
            missing = {(t, span(t, ts)) for t in SPANS for ts in times if not _covered(known[t], ts)}
            for table, (start, end) in sorted(missing):
                self._create(table, start, end)
                known[table].append((start, end))

    def ahead(self, now: int, days: int = AHEAD_DAYS) -> None:
        self.ensure(range(now, now + (days + 1) * DAY, DAY))

    def _load(self) -> dict[str, list[tuple[int, int]]]:
        if self._known is None:
            with self.engine.connect() as conn:
                self._known = {table: [(s, e) for _, s, e in existing(conn, table)] for table in SPANS}
        return self._known

    def _create(self, table: str, start: int, end: int) -> None:
        name = partition_name(table, start)
        try:
            with self.engine.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                create_partition(conn, table, name, start, end)
        except Exception:
            with self.engine.connect() as conn:  # another daemon made it a moment ago?
                if any(s <= start < e for _, s, e in existing(conn, table)):
                    return
            raise


def create_partition(conn: Connection, table: str, name: str, start: int, end: int) -> None:
    """A plain table shaped like `table`, attached as its partition for [start, end)."""
    conn.execute(text(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS)'))
    bounds = f"FOR VALUES FROM ({start}) TO ({end})"
    conn.execute(text(f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" {bounds}'))


def existing(conn: Connection, table: str) -> list[tuple[str, int, int]]:
    """The partitions of `table`: (name, start, end), by start."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": f'"{table}"'},
    )
    found = []
    for name, bound in rows:
        match = BOUND.search(bound or "")
        if match:  # a DEFAULT partition (made by hand) has no range
            found.append((name, int(match[1]), int(match[2])))
    return sorted(found, key=lambda p: p[1])


def is_partitioned(conn: Connection, table: str) -> bool:
    kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": f'"{table}"'})
    return kind.scalar() == "p"


def drop_before(engine: Engine, table: str, horizon: int) -> int:
    """Drop the partitions of `table` entirely older than `horizon`, each in a short transaction of its
    own; returns the rows they held. One that waits DROP_LOCK_TIMEOUT for a read to end is left, with
    the table's older ones, to the next prune (logged)."""
    with engine.connect() as conn:
        old = [name for name, _start, end in existing(conn, table) if end <= horizon]
    rows = 0
    for name in old:
        try:
            with engine.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
                held = conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
                conn.execute(text(f'DROP TABLE "{name}"'))
        except OperationalError as err:
            if getattr(err.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            log.warning("retention: %s kept until the next prune: a read holds %s (waited %s)",
                        name, table, DROP_LOCK_TIMEOUT)  # fmt: skip
            break
        rows += held
    return rows


def store_clock(engine: Engine) -> int:
    """The store's time: PostgreSQL's clock, the one every daemon sharing the store agrees on; on SQLite
    (one machine) this machine's."""
    if engine.dialect.name != "postgresql":
        return int(time.time())
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT extract(epoch FROM now())")).scalar_one())


@contextmanager
def exclusive(engine: Engine, key: int) -> Iterator[bool]:
    """Whether this process holds the advisory lock `key` on a PostgreSQL store (always on SQLite):
    a session lock, on a connection of its own kept for the block, so it spans the transactions in it."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        mine = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        try:
            yield mine
        finally:
            if mine:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


def _covered(spans: list[tuple[int, int]], ts: int) -> bool:
    return any(start <= ts < end for start, end in spans)


# -- schema 6: an unpartitioned PostgreSQL store becomes partitioned, keeping its rows ----------------
def partition_existing(conn: Connection, tables: dict[str, object]) -> None:
    """Rename each plain table aside (with its constraints and indexes), create the partitioned one
    (`tables`: name -> its sqlalchemy Table), make a partition for each span holding rows, copy the
    rows and drop the old table. In the migration's transaction: all of it or nothing."""
    for name, table in tables.items():
        if is_partitioned(conn, name):
            continue
        old = f"{name}_v5"
        conn.execute(text(f'ALTER TABLE "{name}" RENAME TO "{old}"'))
        indexes = conn.execute(
            text(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE i.indrelid = to_regclass(:t)"
            ),
            {"t": f'"{old}"'},
        ).scalars()
        for index in list(indexes):
            conn.execute(text(f'ALTER INDEX "{index}" RENAME TO "{index}_v5"'))  # the PK's too
        table.create(conn)  # type: ignore[attr-defined]
        width, offset = SPANS[name], MONDAY if SPANS[name] == WEEK else 0
        # span()'s floor modulo: PostgreSQL's % truncates toward zero (wrong before the offset)
        floor = f"((ts - {offset}) % {width} + {width}) % {width}"
        starts = conn.execute(text(f'SELECT DISTINCT ts - {floor} FROM "{old}"')).scalars()
        for start in sorted(starts):
            create_partition(conn, name, partition_name(name, start), start, start + width)
        columns = ", ".join(f'"{c.name}"' for c in table.columns)  # type: ignore[attr-defined]
        conn.execute(text(f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM "{old}"'))
        conn.execute(text(f'DROP TABLE "{old}"'))
