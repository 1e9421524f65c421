"""SQL shown as code, coloured, with a copy button, in a small frame of its own.

Not st.code (issue 11): its syntax highlighter is 1.5 MB of JavaScript that a page using it loads
and evaluates before it settles, 0.2-0.3 s even from the browser's cache, which put Indexes and
Query detail past 2x the one-line page. `static/sql.js` colours keywords, strings, numbers and
comments in a few lines. The statement reaches the frame HTML-escaped and is put back as text.
"""

from __future__ import annotations

import html
from functools import cache

import streamlit as st

from dashboard.ui.plots import STATIC


@cache
def _assets() -> tuple[str, str]:
    return (STATIC / "sql.css").read_text(encoding="utf-8"), (STATIC / "sql.js").read_text(encoding="utf-8")


def page(sql: str) -> str:
    """The frame's document: the statement escaped in <pre id="sql">, a copy button, sql.js."""
    css, js = _assets()
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{css}</style></head><body>"
        f"<div class='block'><pre id='sql'>{html.escape(sql, quote=False)}</pre>"
        f"<button id='copy' type='button'>Copy</button></div><script>{js}</script></body></html>"
    )


def show(sql: str) -> None:
    st.iframe(page(sql), height="content")
