"""SLOWLOG GET entries as records: the command as typed, cut to what is worth showing.

Arguments are cut to ARG_CHARS each and to MAX_ARGS in all (keys and values can be huge, and the
slow log is shown in a table); the client address and name are kept.
"""

from __future__ import annotations

import re
from typing import Any

from collectors.redis.batch import reply_text
from dashboard.core.records import SlowlogEntry

SLOWLOG_FETCH = 128  # entries read per cycle (SLOWLOG GET 128)
ARG_CHARS = 64  # per slow-log argument
MAX_ARGS = 10  # slow-log arguments shown
_MORE_ARGS = re.compile(r"^\.\.\. \((\d+) more arguments\)$")  # Redis's own cut at 32 arguments


def slowlog_entry(raw: list[Any]) -> SlowlogEntry:
    """One SLOWLOG GET entry: [id, unix time, microseconds, args, client addr, client name]."""
    entry_id, ts, duration_us, args = raw[:4]
    addr, name = (reply_text(raw[4]) if len(raw) > 4 else ""), (reply_text(raw[5]) if len(raw) > 5 else "")
    client = f"{addr} ({name})" if addr and name else addr or None
    return SlowlogEntry(int(entry_id), int(ts), int(duration_us), command_text(args), client and client[:200])


def command_text(args: list[Any]) -> str:
    """The command as typed, each argument cut to ARG_CHARS, at most MAX_ARGS arguments."""
    texts = [reply_text(a) for a in args]
    total = len(texts)
    more = _MORE_ARGS.match(texts[-1]) if texts else None
    if more:  # Redis already cut the list: its last "argument" says how many it dropped
        texts, total = texts[:-1], len(texts) - 1 + int(more.group(1))
    shown = " ".join(_quote(t[:ARG_CHARS] + ("..." if len(t) > ARG_CHARS else "")) for t in texts[:MAX_ARGS])
    hidden = total - min(len(texts), MAX_ARGS)
    return f"{shown} ... (+{hidden} more arguments)" if hidden > 0 else shown


def _quote(arg: str) -> str:
    return f'"{arg}"' if not arg or any(c.isspace() for c in arg) else arg
