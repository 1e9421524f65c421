"""The one loader of the SQL the project keeps as .sql files (the pg_activity way).

Every text it returns starts with `OWN_MARKER`, so the observatory's own queries are never counted as
the workload of the server they read. In a folder, `statements.14.sql` serves servers from major
version 14 until a higher-numbered file exists; `server.sql`, with no number, serves every version.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from dashboard.core.records import OWN_MARKER

_VERSIONED = re.compile(r"^(?P<name>.+)\.(?P<major>\d+)\.sql$")


class SqlFiles:
    """The .sql files of one folder, read once each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, name: str, version_num: int | None = None) -> str:
        """The marked text of `name`: its newest variant the server (e.g. 150018) supports."""
        text = self.get(name, version_num)
        if text is None:
            raise FileNotFoundError(f"no {name}.sql for server version {version_num} in {self.folder}")
        return text

    def fragment(self, name: str, version_num: int | None = None) -> str:
        """The unmarked text of `name` (its variant for the server's version), to embed in another
        query."""
        return self(name, version_num)[len(OWN_MARKER) :]

    def get(self, name: str, version_num: int | None = None) -> str | None:
        """Like calling it, but None when no variant serves that version."""
        major = version_num // 10000 if version_num else 999
        usable = [text for minimum, text in _variants(self.folder, name) if minimum <= major]
        return OWN_MARKER + usable[-1] if usable else None


@cache
def _variants(folder: Path, name: str) -> list[tuple[int, str]]:
    found = []
    for path in folder.glob(f"{name}*.sql"):
        match = _VERSIONED.match(path.name)
        if path.name == f"{name}.sql":
            found.append((0, path.read_text()))
        elif match and match["name"] == name:
            found.append((int(match["major"]), path.read_text()))
    return sorted(found)
