"""Looking for a secret in what the observatory wrote: in any of the forms text may give it."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote


def escaped_forms(secret: str) -> set[str]:
    """The secret as it may appear in text: raw, stripped, repr- and JSON-escaped, URL-quoted,
    and each line of it on its own."""
    forms = set()
    for s in (secret, secret.strip()):
        forms |= {s, repr(s)[1:-1], json.dumps(s)[1:-1], quote(s, safe="")}
    return forms | {line for line in secret.splitlines() if line.strip()}


def leaks(text: str | bytes, *secrets: str) -> list[str]:
    """The forms of the secrets found in `text`."""
    found = []
    for secret in secrets:
        for form in escaped_forms(secret):
            needle = form.encode() if isinstance(text, bytes) else form
            if needle in text:
                found.append(form)
    return found


def store_bytes(path: Path) -> bytes:
    """The SQLite store as it sits on disk: the database file and its write-ahead log."""
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


# -- redact() and secrets from the environment -------------------------------------------------------
