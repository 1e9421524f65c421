"""The app server's heap: what the first script run loaded moves out of the garbage collector's way.

Streamlit runs a full collection after every script run (`runner.postScriptGC`, on by default, to
keep memory down between runs). Over this app's heap (pandas, SQLAlchemy, pydantic, pglast and their
modules) one took about 95 ms on the benchmark machine, and it holds the GIL while the page's last
messages wait to be sent: every page settled that much later (issue 11, measured with py-spy).
`gc.freeze()` after the first run's imports puts those long-lived objects in the permanent
generation, which collections skip; what later runs create is still collected as before.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_frozen = False


def freeze_once() -> None:
    """Collect once, then freeze what survives; later calls do nothing (one per server process)."""
    global _frozen
    with _lock:
        if _frozen:
            return
        gc.collect()
        gc.freeze()
        _frozen = True
