"""The frame every per-target page shares: checks, caption, problems, one tab per target, health.

A page gives its kind, its messages and a function that draws one target; the frame stops the page
with a clear message when there is no such target, no data yet, or nothing selected.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from dashboard.analysis.reader import Reader
from dashboard.analysis.targets import Target
from dashboard.core import sources
from dashboard.store.reads import Window
from dashboard.ui import frame as ui


def per_target(
    reader: Reader,
    kind: str,
    *,
    none: str,
    no_data: str,
    caption: str,
    draw: Callable[[Reader, Target, Window], None],
) -> tuple[list[Target], Window, pd.DataFrame]:
    """Draw every selected target of `kind` (a tab each); returns the targets, window and statuses.

    `caption` may name `{window}`, the window's label.
    """
    statuses = reader.statuses(kind)
    if statuses.empty:
        st.info(none, icon=":material/info:")
        st.stop()
    if not reader.has_data(kind):
        st.info(no_data, icon=":material/info:")
        ui.health(statuses)
        st.stop()
    targets = ui.current_targets(kind)
    window = ui.current_window()
    st.caption(caption.format(window=ui.window_label()))
    ui.problems(statuses[statuses["name"].isin([t.name for t in targets])])
    if not targets:
        name = sources.title(kind)
        st.info(f"Pick at least one target in the sidebar: no {name} target is selected.")
        st.stop()
    tabs = st.tabs([ui.md_escape(t.name) for t in targets]) if len(targets) > 1 else [st.container()]
    for tab, target in zip(tabs, targets, strict=True):
        with tab:
            if len(targets) == 1:
                st.subheader(ui.md_escape(target.name))
            draw(reader, target, window)
    return targets, window, statuses
