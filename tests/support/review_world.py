"""Two ISO weeks of hourly cycles in which chosen statements regress, improve, appear and vanish
among noise that must not be reported: the weekly review's statements test and its page's test
write them through the real store."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from dashboard.analysis.review.model import Period
from dashboard.core.records import Cycle, StatementDelta, StatementEntry, StatementKey, Status
from dashboard.store import schema

BASELINE = Period.iso_week("2026-W45")
PERIOD = Period.iso_week("2026-W46")
HOUR = 3600
DAY = 86400
WEEK_HOURS = 168
HOSTILE = "SELECT '<script>alert(1)</script>' /* </td></tr> {{ x }} {% raw %} */ FROM t WHERE id = $1"
LONG = "SELECT " + ", ".join(f'col_{i} AS "<b>{i}</b>"' for i in range(6000)) + " FROM wide"


@dataclass
class Statement:
    """What one statement did: (hour start, calls, mean ms) runs, its text and the server's stddev."""

    n: int
    text: str | None
    stddev_ms: float
    runs: list[tuple[int, int, float]] = field(default_factory=list)
    target: str = "erp"

    @property
    def key(self) -> StatementKey:
        return StatementKey(queryid=self.n * 7_919 - 2**61, dbid=5, userid=10, toplevel=True)

    def ran(self, period: Period, hours=range(WEEK_HOURS), calls: int = 0, mean=lambda h: 0.0) -> None:
        for h in hours:
            self.runs.append((period.start + h * HOUR, calls, mean(h)))

    def calls(self, period: Period) -> int:
        return sum(c for ts, c, _ in self.runs if period.start <= ts < period.end)

    def exec_ms(self, period: Period) -> float:
        return sum(c * m for ts, c, m in self.runs if period.start <= ts < period.end)

    def mean(self, period: Period) -> float:
        return self.exec_ms(period) / self.calls(period)

    def daily(self) -> list[float | None]:
        days = range(BASELINE.start, PERIOD.end, DAY)
        sums = [[(c, c * m) for ts, c, m in self.runs if d <= ts < d + DAY] for d in days]
        return [sum(e for _, e in s) / sum(c for c, _ in s) if s else None for s in sums]


def jitter(rng: np.random.Generator, base: float, spread: float):
    draws = base * (1 + rng.uniform(-spread, spread, size=WEEK_HOURS))
    return lambda h: float(draws[h])


def scenario() -> dict[str, Statement]:
    rng = np.random.default_rng(16)
    s = {
        "regress": Statement(1, HOSTILE, 4.0),
        "regress_big": Statement(2, "UPDATE orders SET state = $1 WHERE id = $2", 15.0),
        "improve": Statement(3, "SELECT * FROM items WHERE sku = $1", 8.0),
        "improve_small": Statement(4, "SELECT count(*) FROM carts", 1.0),
        "new": Statement(5, LONG, 1.0),
        "new_big": Statement(6, "INSERT INTO audit VALUES ($1, $2)", 1.0),
        "gone": Statement(7, None, 2.0),
        "jitter": Statement(8, "SELECT * FROM sessions WHERE token = $1", 3.0),
        "batch": Statement(9, "DELETE FROM queue WHERE done", 10.0),
        "rare": Statement(10, "SELECT * FROM reports WHERE id = $1", 1.0),
        "tiny": Statement(11, "SELECT 1", 0.5),
        "returning": Statement(12, "VACUUM ANALYZE t", 1.0),
        "elsewhere": Statement(13, "SELECT * FROM other", 1.0, target="other"),
    }
    # Chosen changes, each hour's mean jittering 5 % (seeded).
    s["regress"].ran(BASELINE, calls=500, mean=jitter(rng, 10.0, 0.05))
    s["regress"].ran(PERIOD, calls=500, mean=jitter(rng, 16.0, 0.05))  # +60 %
    s["regress_big"].ran(BASELINE, calls=200, mean=jitter(rng, 40.0, 0.05))
    s["regress_big"].ran(PERIOD, calls=200, mean=jitter(rng, 80.0, 0.05))  # +100 %, costs the most
    s["improve"].ran(BASELINE, calls=300, mean=jitter(rng, 20.0, 0.05))
    s["improve"].ran(PERIOD, calls=300, mean=jitter(rng, 10.0, 0.05))  # -50 %
    not_day_3 = [h for h in range(WEEK_HOURS) if h // 24 != 3]  # a day without calls: None in the sparkline
    s["improve_small"].ran(BASELINE, hours=not_day_3, calls=100, mean=jitter(rng, 5.0, 0.05))
    s["improve_small"].ran(PERIOD, calls=100, mean=jitter(rng, 2.0, 0.05))  # -60 %, saves less
    s["new"].ran(PERIOD, calls=50, mean=lambda h: 3.0)
    s["new_big"].ran(PERIOD, hours=range(48, WEEK_HOURS), calls=400, mean=lambda h: 4.0)
    s["gone"].ran(BASELINE, calls=80, mean=lambda h: 7.0)
    # Noise. (1) Many calls, the hourly mean jittering +-25 % around the same level.
    s["jitter"].ran(BASELINE, calls=2000, mean=jitter(rng, 10.0, 0.25))
    s["jitter"].ran(PERIOD, calls=2000, mean=jitter(rng, 10.0, 0.25))
    # (1') A nightly batch: three hours a week of 20,000 calls each, its hourly mean jittering +-25 %:
    # its weekly means differ by more than 30 %, which three jittery hours cannot tell from chance.
    nights = [2, 74, 122]
    s["batch"].ran(BASELINE, hours=nights, calls=20_000, mean=jitter(rng, 50.0, 0.25))
    s["batch"].ran(PERIOD, hours=nights, calls=20_000, mean=jitter(rng, 1.35 * 50.0, 0.25))
    # (2) +50 % on too few calls; (3) +10 % on a huge count: significant, too small a change.
    s["rare"].ran(BASELINE, hours=range(0, 160, 2), calls=1, mean=lambda h: 30.0)
    s["rare"].ran(PERIOD, hours=range(0, 160, 2), calls=1, mean=lambda h: 45.0)
    s["tiny"].ran(BASELINE, calls=50_000, mean=lambda h: 1.0)
    s["tiny"].ran(PERIOD, calls=50_000, mean=lambda h: 1.1)
    # Ran before the baseline and again in the period: neither new nor gone.
    s["returning"].ran(Period.iso_week("2026-W44"), hours=[5], calls=100, mean=lambda h: 9.0)
    s["returning"].ran(PERIOD, hours=[5], calls=100, mean=lambda h: 9.0)
    # Another PostgreSQL target, not asked about: never reported.
    s["elsewhere"].ran(BASELINE, calls=100, mean=lambda h: 1.0)
    s["elsewhere"].ran(PERIOD, calls=100, mean=lambda h: 5.0)
    return s


def cycles(statements: dict[str, Statement]) -> Iterator[Cycle]:
    """One cycle per target and hour with calls, half past the hour."""
    hours: dict[tuple[str, int], list[tuple[Statement, int, float]]] = defaultdict(list)
    for st in statements.values():
        for ts, calls, mean in st.runs:
            hours[(st.target, ts)].append((st, calls, mean))
    for (target, ts), ran in sorted(hours.items(), key=lambda item: item[0][1]):
        entries, deltas, texts = [], [], {}
        for st, calls, mean in ran:
            d = [0.0] * len(schema.STATEMENT_COUNTERS)
            d[0], d[1], d[3], d[5] = calls, calls * mean, calls * 2, calls * 3
            entries.append(
                StatementEntry(st.key, tuple(d), datname="shop", rolname="app", stddev_ms=st.stddev_ms)
            )
            deltas.append(StatementDelta(st.key, tuple(d)))
            if st.text is not None:
                texts[st.key] = st.text
        yield Cycle("postgres", target, ts + 1800, Status(), entries=entries, deltas=deltas, texts=texts)
