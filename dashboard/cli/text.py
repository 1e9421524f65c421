"""Text from servers and people, made safe for a terminal."""

from __future__ import annotations


def printable(text: object) -> str:
    """On one terminal line: control characters (escape sequences that could move the cursor,
    retitle the window or hide what follows) shown as \\x.. escapes."""
    flat = " ".join(str(text).split())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
