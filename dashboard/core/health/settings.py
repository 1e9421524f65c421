"""The server's settings that its sizing and maintenance depend on, as pg_settings gives them
(collectors/postgres/health/settings.py), and the one parser of sizes: PostgreSQL's units and the
`ram:` of a target's configuration."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from dashboard.core.health.snapshot import Snapshot

KB = 1024
# PostgreSQL's memory units are powers of 1024 ("1GB" is 2^30 bytes); so are those of `ram:`.
_BYTES = {"b": 1, "kb": KB, "mb": KB**2, "gb": KB**3, "tb": KB**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b)?\s*$", re.I)
_TIME_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "min": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0}


def parse_size(value: object) -> int:
    """'16GB', '512MB', '16GiB', '8kB' or a bare number of bytes -> bytes (units of 1024)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 16GB or 512MB")
    if isinstance(value, int | float):
        size = float(value)
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a size: write e.g. 16GB or 512MB")
        unit = (match.group(2) or "b").lower().replace("ib", "b")
        size = float(match.group(1)) * _BYTES[unit]
    if not 0 < size < float(2**63):
        raise ValueError("a size must be greater than zero")
    return int(size)


def unit_bytes(unit: str | None) -> int | None:
    """The bytes in one of a setting's units ('8kB' -> 8192); None when it is not a memory unit."""
    if not unit:
        return None
    match = _SIZE.match(unit if unit[0].isdigit() else f"1{unit}")
    return parse_size(match.group(0)) if match else None


class Setting(BaseModel):
    """A row of pg_settings."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    setting: str | None
    unit: str | None = None  # "8kB", "kB", "MB", "ms", "s", "min" or none
    vartype: str | None = None  # bool, integer, real, string, enum
    source: str | None = None  # default, configuration file, command line, ...
    boot_val: str | None = None
    reset_val: str | None = None
    pending_restart: bool = False

    @property
    def bytes(self) -> int | None:
        """A memory setting in bytes (None for -1 "use another setting", or another kind)."""
        per = unit_bytes(self.unit)
        number = self.number
        return None if per is None or number is None or number < 0 else int(number * per)

    @property
    def ms(self) -> float | None:
        """A time setting in milliseconds (None for -1 "disabled", or another kind)."""
        per = _TIME_MS.get(self.unit or "")
        number = self.number
        return None if per is None or number is None or number < 0 else number * per

    @property
    def number(self) -> float | None:
        try:
            return float(self.setting) if self.vartype in ("integer", "real") else None
        except (TypeError, ValueError):
            return None

    @property
    def is_default(self) -> bool:
        return self.source == "default"


class SettingsNow(Snapshot):
    """The server's settings that its sizing and maintenance depend on."""

    settings: tuple[Setting, ...] = ()

    def get(self, name: str) -> Setting | None:
        return next((s for s in self.settings if s.name == name), None)

    @property
    def pending_restart(self) -> tuple[Setting, ...]:
        return tuple(s for s in self.settings if s.pending_restart)
