"""The Streamlit entrypoint (`observatory serve` runs `streamlit run dashboard/app.py`).

The configuration comes from $OBSERVATORY_CONFIG (set by `observatory serve`), else
./observatory.yaml, else the defaults. The entrypoint lives in dashboard/, away from the top-level
pages/ folder, so Streamlit's legacy pages/ discovery never kicks in; st.navigation lists the pages.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

from dashboard.core.config import ConfigError
from dashboard.core.redaction import redact
from dashboard.ui import access, cached, heap
from dashboard.ui import frame as ui

# `streamlit run` puts this file's folder first on sys.path, where the packages core/, store/, ui/
# and the rest would shadow same-named top-level modules for any later import. Everything here is
# imported as `dashboard.*`, so the folder is not needed.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _HERE]

st.set_page_config(layout="wide", page_title="Performance observatory", page_icon=":material/monitoring:")


def _open_store() -> bool:
    """Load the config, let in whoever may look (with login: only a logged-in user), and open the
    store; on failure explain it on the page and return False."""
    try:
        if not access.gate(cached.config()):  # before the store: a visitor sees nothing of it
            return False
        cached.open_store()
    except ConfigError as err:
        st.error("The configuration cannot be used:")
        st.code(str(err), language="text")  # a code block renders no markup, whatever the file holds
        return False
    except Exception as err:  # any driver error: the store is unreachable or not a store
        first = (redact(str(err)).splitlines() or [type(err).__name__])[0]
        st.error(f"The store cannot be opened: {ui.md_escape(first)}")
        st.caption("Check `store:` in the configuration and that the database is reachable.")
        return False
    return True


if _open_store():
    ui.sidebar(cached.reader().targets())
    st.navigation(ui.navigation()).run()
    heap.freeze_new_modules()  # after the run: its page's modules are loaded too
