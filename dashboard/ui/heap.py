"""The app server's heap: what the first script run loaded moves out of the garbage collector's way.

Streamlit runs a full collection after every script run (`runner.postScriptGC`, on by default, to
keep memory down between runs). Over this app's heap (pandas, SQLAlchemy, pydantic, pglast and their
modules) one took about 95 ms on the benchmark machine, and it holds the GIL while the page's last
messages wait to be sent: every page settled that much later (issue 11, measured with py-spy).
`gc.freeze()` after a run that imported modules puts those long-lived objects in the permanent
generation, which collections skip; what later runs create is still collected as before. Whatever
else was alive at that moment (a session's state) stays too: a bounded leak, once per page whose
modules were new, not per run.
"""

from __future__ import annotations

import gc
import sys
import threading

_lock = threading.Lock()
_modules = 0  # len(sys.modules) at the last freeze


def freeze_new_modules() -> None:
    """Collect, then freeze what survives, when a run imported modules since the last freeze (the
    first run, and the first of each page with modules of its own); otherwise do nothing."""
    global _modules
    with _lock:
        if len(sys.modules) <= _modules:
            return
        gc.collect()
        gc.freeze()
        _modules = len(sys.modules)
