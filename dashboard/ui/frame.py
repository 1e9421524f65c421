"""What every page shares: the sidebar (time window, targets), the page paths, collector health and tables.

The window and the targets are widgets bound to URL query parameters (`?window=7d&targets=a`), so a
copied link opens on the same view; pages read them through `current_window()` and
`current_targets(kind)` after the entrypoint has drawn the sidebar. The sidebar lists the targets of
every kind; each page keeps those of its own kind (PostgreSQL or Redis).
"""

from __future__ import annotations

import html
import math
import re
import time
import urllib.parse
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard.analysis.targets import Target
from dashboard.core import sources
from dashboard.store.reads import Window

# Page scripts, relative to the entrypoint (dashboard/app.py), as the sources registered them:
# st.Page, st.switch_page and st.page_link take the same path.
OVERVIEW_PAGE = sources.page("overview").script
QUERIES_PAGE = sources.page("queries").script
QUERY_PAGE = sources.page("query").script
INDEXES_PAGE = sources.page("indexes").script
INVESTIGATE_PAGE = sources.page("investigate").script
ALERTS_PAGE = sources.page("alerts").script
SERVICES_PAGE = sources.page("services").script

WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
WINDOW_NAMES = {"1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days"}
CUSTOM = "custom"
DEFAULT_WINDOW = "24h"
# Relative windows end on a multiple of this many seconds, so reruns within it hit the data cache.
QUANTUM = 30
_TARGETS_KEY = "ui.known_targets"
STATE_COLORS = {"ok": "green", "degraded": "orange", "down": "red"}

NO_DATA = """**No data yet.** The observatory shows what its collector has stored, and nothing has been
collected so far.

1. Name the PostgreSQL servers to watch in `observatory.yaml` (or the file `$OBSERVATORY_CONFIG`
   names); keep passwords out of it with `~/.pgpass` or `password_env`. For example:
   ```yaml
   targets:
     postgres:
       - name: erp-primary
         dsn: postgresql://monitor@db1:5432/erp
   ```
2. Run `observatory collect` (or `observatory up` for the collector and this app together).

Data shows here after the second collection cycle (counters are differences between two cycles)."""


def navigation() -> list:
    """Every registered page, in navigation order; the first is the default."""
    pages = sources.pages()
    return [
        st.Page(p.script, title=p.title, icon=p.icon, url_path=p.url_path or None, default=i == 0)
        for i, p in enumerate(pages)
    ]


PILLS_UP_TO = 8  # targets the sidebar shows as chips; beyond, a select box with search
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")  # nothing Markdown reads: no '.', '_' or ':'


def chips(names: list[str]) -> bool:
    """Whether the sidebar shows the targets as chips. A chip's label is Markdown, and a label made
    safe by md_escape would also be the value in the URL (`?targets=pg\\-main`): so only up to
    PILLS_UP_TO plain names; otherwise the select box, which shows any name as written."""
    return len(names) <= PILLS_UP_TO and all(PLAIN_NAME.fullmatch(n) for n in names)


def sidebar(targets: list[Target]) -> None:
    """Draw the window and target pickers; call once per run, before the page runs."""
    st.session_state[_TARGETS_KEY] = targets
    with st.sidebar:
        st.segmented_control(
            "Time window",
            [*WINDOWS, CUSTOM],
            default=DEFAULT_WINDOW,
            required=True,
            key="window",
            bind="query-params",
        )
        if st.session_state.get("window") == CUSTOM:
            today = _today()
            st.date_input(
                "Dates (UTC)",
                value=(today - timedelta(days=6), today),
                max_value=today,
                key="range",
                bind="query-params",
            )
        # Names are unique per kind: a PostgreSQL and a Redis target of the same name are one choice.
        names = list(dict.fromkeys(t.name for t in targets))
        kinds = [sources.title(k) for k in dict.fromkeys(t.kind for t in targets)]
        shown = {
            "help": f"{', '.join(kinds[:-1])} and {kinds[-1]} targets: each page shows its kind"
            if len(kinds) > 1
            else None
        }
        if not names:  # an empty picker would be a heading over nothing
            st.caption("Targets: none has data yet")
        elif chips(names):  # a chip each: no 0.1 s of select-box JavaScript to load first
            st.pills("Targets", names, selection_mode="multi", default=names, key="targets",
                     bind="query-params", **shown)  # fmt: skip
        else:
            st.multiselect("Targets", names, default=names, key="targets", bind="query-params",
                           placeholder="no target selected", **shown)  # fmt: skip


def current_window(now: float | None = None) -> Window:
    now = time.time() if now is None else now
    end = math.ceil(now / QUANTUM) * QUANTUM
    choice = st.session_state.get("window") or DEFAULT_WINDOW
    if choice != CUSTOM:
        return Window(end - WINDOWS.get(choice, WINDOWS[DEFAULT_WINDOW]), end)
    first, last = _custom_dates()
    start = datetime.combine(first, datetime.min.time(), UTC)
    stop = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    return Window(int(start.timestamp()), min(int(stop.timestamp()), end))


def window_label() -> str:
    choice = st.session_state.get("window") or DEFAULT_WINDOW
    if choice != CUSTOM:
        return WINDOW_NAMES.get(choice, WINDOW_NAMES[DEFAULT_WINDOW])
    first, last = _custom_dates()
    return f"{first:%Y-%m-%d} to {last:%Y-%m-%d} (UTC)"


def known_targets(kind: str | None = None) -> list[Target]:
    """The targets the sidebar offers (of one kind, or all), picked or not."""
    known: list[Target] = st.session_state.get(_TARGETS_KEY, [])
    return [t for t in known if kind is None or t.kind == kind]


def current_targets(kind: str | None = None) -> list[Target]:
    """The targets of `kind` (None: every kind) picked in the sidebar (all of them until the user
    narrows the choice)."""
    known = known_targets(kind)
    picked = st.session_state.get("targets")
    if picked is None:
        return known
    return [t for t in known if t.name in picked]


def page_of(url: str | None) -> tuple[str, dict[str, list[str]]] | None:
    """A link relative to the app ("query?id=12", as an alert's source_url) as st.page_link takes
    it: the registered page's script and its query parameters; None when no page has that path."""
    if not url:
        return None
    path, _, query = url.partition("?")
    for page in sources.pages():
        if path == (page.url_path or page.script.rsplit("/", 1)[-1].removesuffix(".py")):
            return page.script, urllib.parse.parse_qs(query)
    return None


def window_query() -> str:
    """The window's URL parameters, for links that open in a new tab (LinkColumn)."""
    choice = st.session_state.get("window") or DEFAULT_WINDOW
    if choice == DEFAULT_WINDOW:
        return ""
    if choice != CUSTOM:
        return f"&window={choice}"
    first, last = _custom_dates()
    return f"&window={CUSTOM}&range={first:%Y-%m-%d}&range={last:%Y-%m-%d}"


def ago(ts: float | None, now: float | None = None) -> str:
    """'3 min ago' for a Unix time; 'never' for None/NaN."""
    if ts is None or ts != ts:
        return "never"
    seconds = max(0, int((time.time() if now is None else now) - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def utc(ts: float | None) -> str:
    if ts is None or ts != ts:
        return "unknown"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _custom_dates() -> tuple[date, date]:
    # While the user picks a range the widget holds one date; a missing value means the default.
    picked = st.session_state.get("range") or ()
    dates = [d for d in picked if d is not None] if isinstance(picked, tuple | list) else [picked]
    if not dates:
        today = _today()
        return today - timedelta(days=6), today
    return dates[0], dates[-1]


def _today() -> date:
    return datetime.now(UTC).date()


# -- collector health (every page that shows targets) -------------------------------------------
def problems(statuses: pd.DataFrame) -> None:
    """Banners for targets that need attention, at the top where they cannot be missed."""
    for r in statuses.itertuples():
        name = md_escape(r.name)
        if r.state == "down":
            error = md_escape(r.last_error) if _text(r.last_error) else "no answer"
            st.error(f"**{name}** is down: {error}", icon=":material/error:")
        elif r.stale:
            st.warning(
                f"**{name}** was last scraped {ago(r.last_attempt)}: is `observatory collect` running?",
                icon=":material/schedule:",
            )
        elif r.state == "degraded":
            st.warning(f"**{name}** is degraded: {md_escape(r.last_error)}", icon=":material/warning:")
        else:
            continue
        for hint in r.hints:
            st.warning(f"To fix: {md_escape(hint)}", icon=":material/build:")


def health(statuses: pd.DataFrame, title: str = "Collector health") -> None:
    """One card per target: state, last scrape and success, samples, server version, the daemon
    collecting it, error, hints."""
    st.subheader(title)
    cols = st.columns(min(3, max(1, len(statuses))))
    for i, r in enumerate(statuses.itertuples()):
        with cols[i % len(cols)].container(border=True):
            state = r.state if isinstance(r.state, str) else "never collected"
            color = STATE_COLORS.get(state, "gray")
            st.markdown(f"**{md_escape(r.name)}** :{color}-badge[{md_escape(state)}]")
            st.caption(
                f"last scrape {ago(r.last_attempt)} · last success {ago(r.last_success)}"
                f" · {int(r.samples):,} samples"
            )
            if _text(r.server_version):
                st.caption(md_escape(r.server_version))
            if _text(r.collected_by):  # which daemon of the fleet to look at
                st.caption(f"last collected by {md_escape(r.collected_by)}")
            if _text(r.last_error):
                st.error(md_escape(r.last_error))
            for hint in r.hints:
                st.warning(md_escape(hint))


def _text(value: object) -> bool:
    """A non-empty string (a missing value in a frame is None or NaN)."""
    return isinstance(value, str) and bool(value)


# -- tables -------------------------------------------------------------------------------------
TABLE_HEADER_PX = 38  # the header row and the borders
TABLE_ROW_PX = 35


def table(frame, column_config: dict | None = None, *, max_height: int | None = None, **options):
    """`frame` (a DataFrame, or its Styler without `max_height`) as every page draws a table: full
    width, no index. With `max_height`, as tall as its rows up to that many pixels (it scrolls
    beyond); without, Streamlit's own height. `options` go to st.dataframe (a selection, a key);
    returns what it returns (the selection event)."""
    if max_height is not None:
        options["height"] = min(TABLE_HEADER_PX + TABLE_ROW_PX * len(frame), max_height)
    return st.dataframe(frame, column_config=column_config, hide_index=True, width="stretch", **options)


def preformatted(text: str) -> None:
    """`text` in a fixed-width font, as written, without st.code: its syntax highlighter is 1.5 MB of
    JavaScript the browser loads before the page settles (issue 11), worth it only where a copy
    button is (a CREATE INDEX). Escaped, so a plan or a query's text never turns into markup."""
    st.html(f"<pre style='{PRE_STYLE}'>{html.escape(text)}</pre>")


PRE_STYLE = (
    "margin:0;padding:0.75rem 1rem;background:#f0f2f6;border-radius:0.5rem;font-size:0.8rem;"
    "line-height:1.4;white-space:pre;overflow-x:auto"
)


# -- formatting ---------------------------------------------------------------------------------
def fmt_ms(ms: float | None) -> str:
    """A duration given in milliseconds, in the unit that reads best."""
    if ms is None or ms != ms:
        return "–"
    for unit, size in (("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if abs(ms) >= size:
            return f"{ms / size:.2f} {unit}"
    return f"{ms:.2f} ms" if abs(ms) < 100 else f"{ms:.0f} ms"


def fmt_count(n: float | None, digits: int = 1) -> str:
    if n is None or n != n:
        return "–"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.{digits}f}{unit}"
    return f"{n:.{digits}f}" if n != int(n) else f"{int(n)}"


def fmt_cost_change(before: float, after: float) -> str:
    """A planner cost with and without an index: "5,761 → 8 (-99.9%)"."""
    change = f" ({(after - before) / before:+.1%})" if before else ""
    return f"{before:,.0f} → {after:,.0f}{change}"


def fmt_pct(ratio: float | None) -> str:
    return "–" if ratio is None or ratio != ratio else f"{ratio * 100:.2f} %"


def fmt_bytes(n: float | None) -> str:
    """A size in bytes in binary units (Redis reports memory in bytes; maxmemory 8mb is 8 MiB)."""
    if n is None or n != n:
        return "–"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


# Every ASCII punctuation character: CommonMark lets a backslash escape any of them, and Streamlit
# gives meaning to many (`:red[...]` directives, `:material/...:` icons, `$...$` LaTeX, GFM tables).
_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
# Some of Streamlit's Markdown plugins search the text *after* it has been parsed, where an escaped
# character is plain again: GFM autolinks (http://x, www.x, a@b.c), emoji shortcodes (:smile:), its
# logo (:streamlit:), icons (:material_x:) and arrows (" -> " becomes " → "). A word joiner (U+2060:
# invisible, no line break) after the first character of each such run keeps them from matching;
# text that matches none of them (127.0.0.1:5432, user@host) gets none and is copied as written.
WORD_JOINER = "\u2060"
_PLUGIN_RUNS = re.compile(
    r"(?ai)https?:(?=//)"  # autolinks: http://x
    r"|w(?=ww\.)"  # www.x
    r"|@(?=[-\w]+(?:\.[-\w]+)+)"  # a@b.c
    r"|:(?=[\w+-]+:)"  # :smile:, :+1:, :streamlit:, :material_warning:
    r"|(?<!\S)(?:<(?=->(?!\S))|<(?=[-=](?!\S))|-(?=[->](?!\S))|[>~](?==(?!\S)))"  # <-> <- <= -> -- >= ~=
)


def md_escape(text: object) -> str:
    """`text` shown through Markdown (st.markdown, captions, alerts, labels, st.table cells) exactly
    as written, never as markup: no image, link, HTML, emphasis, heading, list, code, LaTeX, color
    directive, icon or emoji comes out of it, whoever wrote it (role, database, key and target
    names, query texts, error messages). Escape each piece of text on its own, never a template.

    Each line is trimmed (four leading spaces would start a code block) and lines are joined by
    hard line breaks, so no line can start a block or end the paragraph around it; blank lines are
    dropped.
    """
    lines = (line.strip() for line in str(text).splitlines())
    return "\\\n".join(
        _PUNCTUATION.sub(r"\\\1", _PLUGIN_RUNS.sub(rf"\g<0>{WORD_JOINER}", line)) for line in lines if line
    )
