"""SQL shown as code, coloured, with a copy button, in a small frame of its own.

Not st.code (issue 11): its syntax highlighter is 1.5 MB of JavaScript that a page using it loads
and evaluates before it settles, 0.2-0.3 s even from the browser's cache, which put Indexes and
Query detail past 2x the one-line page. `static/sql.js` colours keywords, strings, numbers and
comments in a few lines. The statement reaches the frame HTML-escaped and is put back as text.
"""

from __future__ import annotations

import html

import streamlit as st

from dashboard.ui.plots import static


def page(sql: str) -> str:
    """The frame's document: the statement escaped in <pre id="sql">, a copy button, sql.js."""
    css, js = static("sql.css"), static("sql.js")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{css}</style></head><body>"
        f"<div class='block'><pre id='sql'>{html.escape(sql, quote=False)}</pre>"
        f"<button id='copy' type='button'>Copy</button></div><script>{js}</script></body></html>"
    )


LINE_PX = 19  # sql.css: 13 px at line-height 1.45
PADDING_PX = 28  # 0.75 rem above and below, and the borders
SCROLLBAR_PX = 14  # lines do not wrap: a long one scrolls sideways
WIDE = 100  # characters beyond which a line may need the scrollbar


def height(sql: str) -> int:
    """The frame's height from its lines. Not height="content": a frame's document is never measured
    shorter than its viewport, so a one-line statement kept the 150 px a frame starts with."""
    lines = sql.split("\n")
    return PADDING_PX + LINE_PX * len(lines) + (SCROLLBAR_PX if max(map(len, lines)) > WIDE else 0)


def show(sql: str) -> None:
    st.iframe(page(sql), height=height(sql))
