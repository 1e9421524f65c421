"""The Settings page's analysis: a PostgreSQL server's settings against the usual sizing for its RAM,
autovacuum and checkpoints with reasons, and its server statistics over time. No Streamlit.

The rules are the seed's sizing (shared_buffers 25 % of RAM, effective_cache_size 75 %, work_mem
16 MB, maintenance_work_mem 512 MB, max_connections 200) with the reasons behind them. The RAM
comes from node_exporter (`node_memory_MemTotal_bytes` recorded by a Prometheus target of the
configuration, for this server's host), else from `ram:` in the target's configuration, else it is
unknown and the settings are shown without ratios.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import pandas as pd
from psycopg.conninfo import conninfo_to_dict

from dashboard.analysis.reader import Reader
from dashboard.analysis.redis import by_label, rates, total
from dashboard.analysis.targets import Target
from dashboard.core import metrics
from dashboard.core.details import PostgresDetails
from dashboard.core.health import ServerNow, SettingsNow
from dashboard.core.health.server import WRAPAROUND_WARN_LEFT
from dashboard.core.health.settings import KB, Setting
from dashboard.core.prometheus_preset import series_for
from dashboard.store.reads import Window

MB, GB = KB**2, KB**3
SHARED_BUFFERS_SHARE = 0.25
EFFECTIVE_CACHE_SHARE = 0.75
WORK_MEM = 16 * MB
MAINTENANCE_WORK_MEM = 512 * MB
MAX_CONNECTIONS = 200
SORTS_PER_QUERY = 3  # sorts and hashes one query may run at once, each up to work_mem
REQUESTED_SHARE = 0.1  # more requested checkpoints than this share: max_wal_size is too small
RAM_LOOKBACK = 7 * 86400  # how far back a node_exporter reading of the RAM is looked for
HOUR = 3600.0

Status = Literal["ok", "raise", "lower", "consider", "unknown"]
MEMORY = ("shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem", "max_connections")
MEM_TOTAL = re.compile(r"^\s*node_memory_MemTotal_bytes\s*(\{(?P<matchers>[^}]*)\})?\s*$")
INSTANCE = re.compile(r"""instance\s*=\s*["'](?P<instance>[^"']*)["']""")
LOCAL = {"", "localhost", "127.0.0.1", "::1"}


class Advice(NamedTuple):
    """One setting: its value now, the value it should have (None: keep it) and why."""

    setting: str
    now: str
    advised: str | None
    status: Status
    reason: str
    source: str | None = None  # where it was set: default, configuration file, ...


class Ram(NamedTuple):
    bytes: int | None
    source: str  # where it came from, or why it is unknown (and what to do)


# -- values as PostgreSQL writes them ------------------------------------------------------------
def pg_size(n: float) -> str:
    """Bytes as a postgresql.conf value: whole GB, else whole MB (256 MB steps from 1 GB), else kB."""
    if n >= GB:
        n = max(GB, round(n / (256 * MB)) * 256 * MB)
        return f"{n // GB:.0f}GB" if n % GB == 0 else f"{n // MB:.0f}MB"
    if n >= MB:
        return f"{round(n / MB):.0f}MB"
    return f"{max(64, round(n / KB)):.0f}kB"


def shown(s: Setting | None) -> str:
    """A setting as postgresql.conf would say it (sizes in their best unit)."""
    if s is None:
        return "–"
    if s.bytes is not None:
        return pg_size(s.bytes) if s.bytes % MB == 0 or s.bytes >= GB else f"{s.bytes // KB}kB"
    return f"{s.setting}{s.unit or ''}" if s.unit in ("ms", "s", "min") else str(s.setting)


def _pct(part: float, whole: float) -> str:
    return f"{part / whole * 100:.0f} % of RAM"


# -- memory ---------------------------------------------------------------------------------------
def memory_advice(settings: SettingsNow, ram: int | None, temp_bytes: float = math.nan) -> list[Advice]:
    """The memory settings against the usual sizing for `ram` bytes (None: unknown, no ratios)."""
    rules = (_shared_buffers, _effective_cache_size, _work_mem, _maintenance_work_mem, _max_connections)
    return [rule(settings, ram, temp_bytes) for rule in rules]


def _advice(s: Setting | None, name: str, advised: float | str | None, status: Status, reason: str) -> Advice:
    value = pg_size(advised) if isinstance(advised, int | float) else advised
    return Advice(name, shown(s), value, status, reason, s.source if s else None)


def _unknown(s: Setting | None, name: str, what: str) -> Advice:
    return _advice(s, name, None, "unknown", f"RAM unknown: {what}")


def _shared_buffers(settings: SettingsNow, ram: int | None, _temp: float) -> Advice:
    s, name = settings.get("shared_buffers"), "shared_buffers"
    if s is None or s.bytes is None:
        return _advice(s, name, None, "unknown", "not read yet")
    if ram is None:
        return _unknown(s, name, "the usual size is 25 % of the server's RAM")
    target, share = ram * SHARED_BUFFERS_SHARE, s.bytes / ram
    why = (
        f"PostgreSQL's own cache: 25 % of RAM is the usual size, the rest is left to the OS page "
        f"cache, which PostgreSQL reads through too; now {_pct(s.bytes, ram)}. Needs a restart."
    )
    if share < 0.15:
        return _advice(s, name, target, "raise", why)
    if share > 0.4:
        return _advice(s, name, target, "lower", why + " Beyond 40 % the same pages sit in both caches.")
    return _advice(s, name, None, "ok", why)


def _effective_cache_size(settings: SettingsNow, ram: int | None, _temp: float) -> Advice:
    s, name = settings.get("effective_cache_size"), "effective_cache_size"
    if s is None or s.bytes is None:
        return _advice(s, name, None, "unknown", "not read yet")
    if ram is None:
        return _unknown(s, name, "the usual value is 75 % of the server's RAM")
    target, share = ram * EFFECTIVE_CACHE_SHARE, s.bytes / ram
    why = (
        "The planner's guess of the memory caching data (shared_buffers + OS cache); it allocates "
        f"nothing. About 75 % of RAM; now {_pct(s.bytes, ram)}."
    )
    if share < 0.5:
        return _advice(s, name, target, "raise", why + " Too low, index scans look dearer than they are.")
    if share > 0.9:
        return _advice(
            s, name, target, "lower", why + " Above the RAM there is, plans assume a cache that is not."
        )
    return _advice(s, name, None, "ok", why)


def _work_mem(settings: SettingsNow, ram: int | None, temp_bytes: float) -> Advice:
    s, name = settings.get("work_mem"), "work_mem"
    conns = settings.get("max_connections")
    if s is None or s.bytes is None or conns is None or conns.number is None:
        return _advice(s, name, None, "unknown", "not read yet")
    n = int(conns.number)
    spilled = f" {_bytes(temp_bytes)} went to temp files in this window." if temp_bytes > 0 else ""
    worst = s.bytes * n * SORTS_PER_QUERY
    why = (
        f"Each sort or hash of each query may use work_mem: with {n} connections and "
        f"{SORTS_PER_QUERY} at once, {_bytes(worst)} at worst."
    )
    if ram is None:
        return _unknown(s, name, why + " Compare that with the RAM." + spilled)
    shared = (settings.get("shared_buffers") or s).bytes or 0
    budget = max(ram - shared, 0)  # what shared_buffers leaves
    fits = budget / (n * SORTS_PER_QUERY)
    why += f" That is {_pct(worst, ram)}, against {_pct(budget, ram)} left beside shared_buffers."
    if worst > budget:
        return _advice(
            s, name, _floor_mb(fits), "lower", why + " Lower it, or max_connections (a pooler)." + spilled
        )
    if s.bytes < WORK_MEM and fits >= WORK_MEM:
        return _advice(
            s, name, WORK_MEM, "raise", why + " 16MB fits, and fewer sorts spill to disk." + spilled
        )
    return _advice(s, name, None, "ok", why + spilled)


def _floor_mb(n: float) -> float:
    return max(MB, n // MB * MB)


def _maintenance_work_mem(settings: SettingsNow, ram: int | None, _temp: float) -> Advice:
    s, name = settings.get("maintenance_work_mem"), "maintenance_work_mem"
    if s is None or s.bytes is None:
        return _advice(s, name, None, "unknown", "not read yet")
    workers = (settings.get("autovacuum_max_workers") or Setting(name="", setting="3")).number or 3
    own = settings.get("autovacuum_work_mem")
    per_worker = own.bytes if own is not None and own.bytes is not None else s.bytes
    why = (
        "Memory for VACUUM, CREATE INDEX and ALTER TABLE ADD FOREIGN KEY; each of the "
        f"{workers:.0f} autovacuum workers may take {_bytes(per_worker)} (autovacuum_work_mem, else this)."
    )
    if ram is None:
        return _unknown(s, name, why + " 512MB is usual from 8 GB of RAM.")
    target = MAINTENANCE_WORK_MEM if ram >= 8 * GB else max(64 * MB, ram / 16)
    if per_worker * workers > ram * 0.25:
        return _advice(
            s,
            name,
            min(target, ram * 0.25 / workers),
            "lower",
            why + f" Together over {_pct(ram * 0.25, ram)}.",
        )
    if s.bytes < target / 2:
        return _advice(
            s,
            name,
            target,
            "raise",
            why + f" {pg_size(target)} suits {_bytes(ram)} of RAM: faster index builds and vacuums.",
        )
    return _advice(s, name, None, "ok", why)


def _max_connections(settings: SettingsNow, _ram: int | None, _temp: float) -> Advice:
    s, name = settings.get("max_connections"), "max_connections"
    if s is None or s.number is None:
        return _advice(s, name, None, "unknown", "not read yet")
    why = (
        "Each connection is a server process with its own memory (work_mem per sort); past a few "
        "times the CPU cores they mostly wait for each other."
    )
    if s.number > MAX_CONNECTIONS:
        more = " Put a pooler (PgBouncer, transaction mode) in front and keep 200 or fewer."
        return _advice(s, name, str(MAX_CONNECTIONS), "lower", why + more)
    return _advice(s, name, None, "ok", why + " 200 or fewer; more clients belong behind a pooler.")


def _bytes(n: float) -> str:
    for unit, size in (("TiB", KB**4), ("GiB", GB), ("MiB", MB), ("KiB", KB)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


# -- autovacuum -----------------------------------------------------------------------------------
class _Rule(NamedTuple):
    wrong: Callable[[Setting], bool]  # whether the value is one to change
    advised: str
    status: Status
    why: str  # what the setting does
    fix: str  # why the advised value is better


def _number(test: Callable[[float], bool]) -> Callable[[Setting], bool]:
    return lambda s: s.number is not None and test(s.number)


def _ms(test: Callable[[float], bool]) -> Callable[[Setting], bool]:
    return lambda s: s.ms is not None and test(s.ms)


AUTOVACUUM_RULES: dict[str, _Rule] = {
    "autovacuum": _Rule(
        lambda s: s.setting != "on", "on", "raise",
        "Vacuums and analyzes tables as they change.",
        "Off, dead rows pile up, tables and indexes bloat, and only the anti-wraparound vacuum runs.",
    ),
    "autovacuum_max_workers": _Rule(
        lambda s: False, "", "ok",
        "Tables vacuumed at once, one per worker; the workers share one cost limit: raise both together.", "",
    ),
    "autovacuum_naptime": _Rule(
        _ms(lambda v: v > 60_000), "1min", "lower",
        "How often each database is checked for tables to vacuum.",
        "Longer than a minute lets dead rows pile up between checks.",
    ),
    "autovacuum_vacuum_scale_factor": _Rule(
        _number(lambda v: v > 0.1), "0.05", "lower",
        "The share of a table's rows that must be dead (+ the threshold) before it is vacuumed; at "
        "0.2, 2 million dead rows in a 10-million-row table.",
        "0.05 (or per-table settings on the largest tables) keeps bloat lower.",
    ),
    "autovacuum_vacuum_threshold": _Rule(
        lambda s: False, "", "ok", "Dead rows added to the scale factor's share.", ""
    ),
    "autovacuum_analyze_scale_factor": _Rule(
        _number(lambda v: v > 0.05), "0.05", "consider",
        "The share of a table's rows that must change before its statistics are refreshed; stale "
        "statistics mislead the planner.",
        "0.05 keeps large tables' statistics fresher.",
    ),
    "autovacuum_vacuum_insert_scale_factor": _Rule(
        lambda s: False, "", "ok",
        "Insert-only tables are vacuumed (frozen, visibility map set) after this share of new rows.", "",
    ),
    "autovacuum_vacuum_cost_limit": _Rule(
        _number(lambda v: v <= 200), "1000", "consider",
        "Cost units autovacuum spends before it sleeps, shared by all its workers (-1: "
        "vacuum_cost_limit, 200): at 200 and 2ms it reads at most ~390 MB/s and dirties ~39 MB/s.",
        "On SSDs, 1000 or more lets it keep up with busy tables.",
    ),
    "autovacuum_vacuum_cost_delay": _Rule(
        _ms(lambda v: v > 2), "2ms", "lower",
        "How long autovacuum sleeps once it spent its cost limit.",
        "2ms is the default since PostgreSQL 12; 20ms throttles it tenfold.",
    ),
    "autovacuum_work_mem": _Rule(
        lambda s: False, "", "ok", "Memory per autovacuum worker; -1 uses maintenance_work_mem.", ""
    ),
    "autovacuum_freeze_max_age": _Rule(
        _number(lambda v: v > 1_000_000_000), "200000000", "lower",
        "The transaction age at which a table is vacuumed against wraparound, even with autovacuum off.",
        "Above a billion leaves little room before wraparound.",
    ),
    "log_autovacuum_min_duration": _Rule(
        lambda s: s.number is not None and s.number < 0, "10s", "consider",
        "Autovacuum runs longer than this are logged (-1: none).",
        "Logging them says which tables autovacuum works on, and for how long.",
    ),
}  # fmt: skip
OTHER_RULES: dict[str, _Rule] = {
    "checkpoint_completion_target": _Rule(
        _number(lambda v: v < 0.9), "0.9", "raise",
        "The share of checkpoint_timeout a checkpoint spreads its writes over.",
        "0.9 (the default since 14) smooths the I/O.",
    ),
    "random_page_cost": _Rule(
        _number(lambda v: v >= 4), "1.1", "consider",
        "The planner's cost of a random page read against a sequential one (seq_page_cost).",
        "4 assumes spinning disks; on SSDs 1.1 lets it choose index scans more often.",
    ),
    "effective_io_concurrency": _Rule(
        _number(lambda v: v <= 1), "200", "consider",
        "Reads a bitmap heap scan keeps in flight.", "On SSDs, 200 prefetches in parallel.",
    ),
    "jit": _Rule(
        lambda s: False, "", "ok",
        "Compiles queries costing over jit_above_cost; for short OLTP queries compiling can cost "
        "more than it saves: watch the JIT times of EXPLAIN ANALYZE.", "",
    ),
    "track_io_timing": _Rule(
        lambda s: s.setting == "off", "on", "consider",
        "Times reads and writes for pg_stat_statements and EXPLAIN (BUFFERS).",
        "Cheap on most systems (check with pg_test_timing).",
    ),
}  # fmt: skip


def autovacuum_advice(settings: SettingsNow) -> list[Advice]:
    """The autovacuum settings, each with what it does and whether it usually needs changing."""
    return _by_rules(settings, AUTOVACUUM_RULES)


def _by_rules(settings: SettingsNow, rules: dict[str, _Rule]) -> list[Advice]:
    out = []
    for name, rule in rules.items():
        s = settings.get(name)
        if s is None:
            continue
        if rule.wrong(s):
            out.append(_advice(s, name, rule.advised, rule.status, f"{rule.why} {rule.fix}"))
        else:
            out.append(_advice(s, name, None, "ok", rule.why))
    return out


# -- checkpoints, WAL, planner --------------------------------------------------------------------
def checkpoint_advice(settings: SettingsNow, timed: float, requested: float) -> list[Advice]:
    """max_wal_size against the window's checkpoints, then the settings around checkpoints and the
    planner's view of the storage."""
    s = settings.get("max_wal_size")
    out = []
    if s is not None and s.bytes is not None:
        done = timed + requested
        seen = f"{requested:.0f} of {done:.0f} checkpoints in this window were requested, not timed."
        if done > 0 and requested >= 2 and requested / done > REQUESTED_SHARE:
            why = (
                f"{seen} WAL reached max_wal_size before checkpoint_timeout (or a CHECKPOINT, a "
                "backup): each one writes every dirty buffer early, and each page's first change "
                "after it writes the whole page to WAL."
            )
            out.append(_advice(s, "max_wal_size", s.bytes * 2, "raise", why))
        else:
            why = (seen if done else "No checkpoint in this window.") + " Most should be timed."
            out.append(_advice(s, "max_wal_size", None, "ok", why))
    return out + _by_rules(settings, OTHER_RULES)


# -- where the RAM comes from ---------------------------------------------------------------------
def ram_of(reader: Reader, target: Target) -> Ram:
    """The server's RAM: node_exporter's MemTotal for its host, else `ram:`, else unknown (why)."""
    configured = [t for t in reader.configured("postgres") if t.name == target.name]
    pg = configured[0] if configured else None
    found = _node_exporter(reader, _host(pg.dsn) if pg else None)
    if found.bytes is not None:
        return found
    if pg is not None and pg.ram is not None:
        return Ram(pg.ram, "ram: in the target's configuration")
    return Ram(
        None, f"RAM unknown: {found.source}; or give ram: (e.g. ram: 16GB) in the target's configuration"
    )


def _host(dsn: str) -> str | None:
    try:
        return _local((conninfo_to_dict(dsn).get("host") or "").split(",")[0])
    except Exception:  # an unparsable dsn names no host; the collector reports it
        return None


def _local(host: str) -> str:
    host = host.strip().strip("[]").lower()
    return "localhost" if host in LOCAL or host.startswith("/") else host


def _instance_host(instance: str) -> str:
    """'db1:9100' -> 'db1', '[::1]:9100' -> 'localhost'."""
    host = instance.rsplit(":", 1)[0] if instance.count(":") == 1 or instance.startswith("[") else instance
    return _local(host)


def _node_exporter(reader: Reader, host: str | None) -> Ram:
    """MemTotal as a Prometheus target of the configuration records it, for `host`."""
    stored = {t.name: t for t in reader.targets("prometheus")}
    candidates = [
        (stored[prom.name], name, MEM_TOTAL.match(s.expr))
        for prom in reader.configured("prometheus")
        for name, s in series_for(prom).items()
        if MEM_TOTAL.match(s.expr) and prom.name in stored
    ]
    if not candidates:
        return Ram(None, "no Prometheus series records node_memory_MemTotal_bytes (series: "
                   "{mem_total: {expr: node_memory_MemTotal_bytes}} on a Prometheus target)")  # fmt: skip
    now = int(reader.now())
    readings: list[tuple[str | None, float, str]] = []  # (host, bytes, where)
    for prom, name, match in candidates:
        frame = reader.series([prom], (metrics.PROM_SERIES,), Window(now - RAM_LOOKBACK, now))
        pinned = INSTANCE.search(match.group("matchers") or "")
        for labels, value in _latest(frame, name):
            instance = labels.get("instance") or (pinned.group("instance") if pinned else None)
            where = f"node_exporter, series {name} of {prom.name}"
            readings.append((_instance_host(instance) if instance else None, value, where))
    mine = [r for r in readings if r[0] is not None and r[0] == host]
    if len({r[1] for r in mine}) == 1:
        return Ram(int(mine[0][1]), f"{mine[0][2]}, instance {host}")
    if not mine and len(readings) == 1 and readings[0][0] is None:
        return Ram(int(readings[0][1]), f"{readings[0][2]} (its only reading, of no instance)")
    if not readings:
        return Ram(None, "no node_memory_MemTotal_bytes reading recorded yet")
    hosts = ", ".join(sorted({r[0] or "?" for r in readings}))
    why = f"node_memory_MemTotal_bytes is recorded for {hosts}, not for this server's host {host or '?'}"
    return Ram(None, why)


def _latest(frame: pd.DataFrame, name: str) -> list[tuple[dict[str, str], float]]:
    """The last value of each label set of the recorded series `name`, with its labels."""
    out = []
    for labels, points in frame[frame["name"] == metrics.PROM_SERIES].groupby("labels"):
        decoded = metrics.decode(str(labels))
        last = points[points["ts"] == points["ts"].max()]
        count = float(last["count"].sum())
        value = float(last["sum"].sum()) / count if count else math.nan
        if decoded.get("name") == name and math.isfinite(value) and value > 0:
            out.append((decoded, value))
    return out


# -- the server section ---------------------------------------------------------------------------
SERVER_SERIES = (
    metrics.PG_CHECKPOINTS_TIMED,
    metrics.PG_CHECKPOINTS_REQUESTED,
    metrics.PG_CHECKPOINTS_WRITE_MS,
    metrics.PG_CHECKPOINTS_SYNC_MS,
    metrics.PG_WAL_BYTES,
    metrics.PG_XID_HEADROOM,
)


class ServerView(NamedTuple):
    """What the Server section draws and says, made from the stored series of a window."""

    checkpoints: pd.DataFrame  # long: timed / requested per hour
    wal: pd.DataFrame  # long: MiB of WAL per hour
    headroom: pd.DataFrame  # long: billions of transactions left per database
    timed: float  # checkpoints in the window
    requested: float
    wal_bytes: float  # WAL written in the window


def server_view(reader: Reader, target: Target, window: Window) -> ServerView:
    frame = reader.series([target], SERVER_SERIES, window)
    names = {metrics.PG_CHECKPOINTS_TIMED: "timed", metrics.PG_CHECKPOINTS_REQUESTED: "requested"}
    return ServerView(
        checkpoints=rates(frame, names, HOUR),
        wal=rates(frame, {metrics.PG_WAL_BYTES: "WAL"}, HOUR).assign(value=lambda f: f["value"] / MB),
        headroom=by_label(frame, metrics.PG_XID_HEADROOM, "datname", 1e-9),
        timed=_total(frame, metrics.PG_CHECKPOINTS_TIMED),
        requested=_total(frame, metrics.PG_CHECKPOINTS_REQUESTED),
        wal_bytes=_total(frame, metrics.PG_WAL_BYTES),
    )


def _total(frame: pd.DataFrame, name: str) -> float:
    found = total(frame, name)
    return 0.0 if math.isnan(found) else found


def temp_bytes(reader: Reader, target: Target, window: Window) -> float:
    """Bytes written to temp files in the window, over every database (pg_stat_database)."""
    return total(
        reader.series([target], (metrics.PG_DB + "temp_bytes",), window), metrics.PG_DB + "temp_bytes"
    )


def snapshots(reader: Reader, target: Target) -> tuple[SettingsNow | None, ServerNow | None]:
    """The last settings and server_stats readings the collector kept (None before the first)."""
    details = reader.store.details(int(target.id))
    if not isinstance(details, PostgresDetails):
        return None, None
    return details.settings, details.server_stats


def wraparound_warnings(server: ServerNow) -> list[str]:
    """The databases with fewer transactions left than PgHero warns at (1.5 billion)."""
    return [
        f"{d.datname}: {d.headroom / 1e9:.2f} billion transactions left before wraparound"
        for d in server.databases
        if d.headroom < WRAPAROUND_WARN_LEFT
    ]


WARNED: tuple[Status, ...] = ("raise", "lower")  # a value the rules say is wrong; "consider" is a hint


def to_review(advice: Sequence[Advice]) -> list[Advice]:
    """The settings the rules would change (raise, lower or consider), in the order given."""
    return [a for a in advice if a.advised is not None]


def warned(advice: Sequence[Advice]) -> list[Advice]:
    """The settings whose value the rules say is wrong (raise or lower): the page warns of them
    even while their table is folded away."""
    return [a for a in advice if a.advised is not None and a.status in WARNED]


def advice_frame(advice: Sequence[Advice]) -> pd.DataFrame:
    """The advice as a table, in the order given."""
    return pd.DataFrame(advice, columns=list(Advice._fields))
