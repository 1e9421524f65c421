"""SQL kept as readable .sql files, picked by server version (the pg_activity way).

`statements.14.sql` serves servers from major version 14 until a higher-numbered file exists;
`server.sql`, with no number, serves every version.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from dashboard.store.records import OWN_MARKER

SQL_DIR = Path(__file__).parent / "sql"
_VERSIONED = re.compile(r"^(?P<name>.+)\.(?P<major>\d+)\.sql$")


@cache
def _variants(source: str, name: str) -> list[tuple[int, str]]:
    found = []
    for path in (SQL_DIR / source).glob(f"{name}*.sql"):
        match = _VERSIONED.match(path.name)
        if path.name == f"{name}.sql":
            found.append((0, path.read_text()))
        elif match and match["name"] == name:
            found.append((int(match["major"]), path.read_text()))
    return sorted(found)


def sql_for(source: str, name: str, version_num: int | None = None) -> str | None:
    """The text of the newest variant of `name` that the server (e.g. 150018) supports, or None."""
    major = (version_num or 0) // 10000 if version_num else 999
    usable = [text for minimum, text in _variants(source, name) if minimum <= major]
    return OWN_MARKER + usable[-1] if usable else None
