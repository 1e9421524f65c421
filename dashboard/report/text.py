"""Figures written for people, and texts from people made safe for Markdown.

Statement texts, labels, alert summaries and index names come from whoever wrote them: in Markdown
they must show as written, never as markup (the HTML template escapes them by autoescaping).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

# CommonMark lets a backslash escape any ASCII punctuation. Escaped anywhere: what makes inline
# markup in GitHub's, GitLab's or a tracker's Markdown (emphasis, code, links, images, HTML, entities,
# table cells, strikethrough, LaTeX, superscript, attributes, mentions, issue references). Escaped
# at the start only: what opens a block there (list, rule). Left alone: . , ; : ' " % / ? = ( ) and
# - + within a line, so SQL stays readable where it is pasted.
_INLINE = re.compile(r"""([\\`*_\[\]<>!|~$&{}^@#])""")
_BLOCK_START = re.compile(r"^(?:[-+=](?=[-+=\s]|$)|(\d{1,9})([.)])(?=\s|$))")
# Found in the text after the escapes are undone (GFM autolinks: http://x, www.x, a@b.c; mentions
# @name; issue references #12): a word joiner (U+2060, invisible) after the run's first character
# breaks them, the idea of dashboard.ui.frame.md_escape (this package cannot import Streamlit's).
WORD_JOINER = "\u2060"
_PLUGIN_RUNS = re.compile(r"(?ai)https?:(?=//)|w(?=ww\.)|@(?=\w)|#(?=\d)|:(?=[\w+-]+:)")
_SPARKS = "▁▂▃▄▅▆▇█"


def md(text: object) -> str:
    """`text` on one line, every character that could be Markdown markup escaped: safe in a table
    cell (a pipe cannot split it), a list item or a paragraph, shown as written."""
    line = " ".join(str(text).split())
    line = _INLINE.sub(r"\\\1", _PLUGIN_RUNS.sub(rf"\g<0>{WORD_JOINER}", line))
    return _BLOCK_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[0]}", line)


def md_finalize(value: object) -> str:
    """Jinja's `finalize` for the Markdown template: every {{ value }} escaped, None as a dash."""
    return "–" if value is None else md(value)


def spark_text(values: tuple[float | None, ...]) -> str:
    """A sparkline in block characters (Markdown has no charts); a day without calls is a dot."""
    found = [v for v in values if v is not None and math.isfinite(v)]
    if not found:
        return ""
    low, high = min(found), max(found)
    steps = len(_SPARKS) - 1
    return "".join(
        "·" if v is None or not math.isfinite(v)
        else _SPARKS[round((v - low) / (high - low) * steps) if high > low else steps // 2]
        for v in values
    )  # fmt: skip


def number(v: float | None) -> str:
    """A figure with as many digits as it deserves: 0.123, 1.23, 12.3, 1,234."""
    if v is None or not math.isfinite(v):
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1 or a == 0:
        return f"{v:.2f}"
    return f"{v:.3g}"


def ms(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{number(v)} ms"


def count(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:,.0f}"


RATIO_UNITS = {"ratio", "fraction", "0..1"}  # dashboard.analysis.slo.RATIO_UNITS: shown in %


def shown(v: float | None, unit: str) -> tuple[float | None, str]:
    """`v` in the unit it is shown in: a ratio as a percentage (its target is written in %)."""
    if unit.lower() in RATIO_UNITS:
        return (None if v is None else v * 100.0), "%"
    return v, unit


def with_unit(v: float | None, unit: str, digits: int = 0) -> str:
    """`v` and its unit, a ratio in % ("96.82 %", "0.045 %") and bytes in binary units; with
    `digits`, that many significant digits (99.95 % is not 100.0 %)."""
    v, unit = shown(v, unit)
    if v is None or not math.isfinite(v):
        return "–"
    if unit == "bytes":
        return size(v)
    if digits:
        return f"{v:,.{digits}g} {unit}".strip()
    if unit == "%":  # as the page and the SLO scorecard write them (dashboard.analysis.slo.fmt_value)
        return f"{v:.{3 if abs(v) < 1 else 2}f} %"
    return f"{number(v)} {unit}".strip()


def pair(before: str, after: str) -> str:
    return f"{before} → {after}"


def change_pct(ratio: float) -> str:
    """A ratio of two means as a change: 1.45 is +45 %, 0.7 is −30 %."""
    if not math.isfinite(ratio):
        return "–"
    pct = (ratio - 1) * 100
    return f"{'+' if pct >= 0 else '−'}{abs(pct):,.0f} %"


def size(n: float | None) -> str:
    """Bytes in binary units."""
    if n is None or not math.isfinite(n):
        return "–"
    sign = "−" if n < 0 else ""
    for unit, step in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= step:
            return f"{sign}{abs(n) / step:.1f} {unit}"
    return f"{sign}{abs(n):.0f} B"


def duration(seconds: float) -> str:
    """45 s, 12 min, 3 h 05 min, 2 d 4 h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def when(ts: float | None) -> str:
    """A Unix time in UTC, to the minute."""
    if ts is None:
        return "–"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
