"""The review as a document: `html` (one self-contained file: styles, uPlot, charts.js and the data
inline, so it opens offline), `markdown` (for a ticket) and `pdf` (the HTML printed by a headless
Chromium through Playwright, when both are installed).

Jinja2 templates in templates/: the HTML environment autoescapes every value, the Markdown one
escapes every value through text.md_finalize; neither lets a text from the store become markup.
"""

from __future__ import annotations

import os
import shutil
import threading
from functools import cache

import jinja2

from dashboard.analysis.review.model import Review
from dashboard.report import figures, sections
from dashboard.report.text import md_finalize

PDF_VIEWPORT = {"width": 1040, "height": 1400}  # A4 landscape less 10 mm margins is ~1047 px wide
PDF_TIMEOUT_MS = 30_000
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]


class ReportError(Exception):
    """What stops a report from being made (PDF without Chromium), in one line for the user."""


@cache
def _environment(kind: str) -> jinja2.Environment:
    loader = jinja2.PackageLoader("dashboard.report", "templates")
    if kind == "html":
        return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    return jinja2.Environment(
        loader=loader,
        autoescape=False,
        finalize=md_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def html(review: Review) -> str:
    """The review as one HTML file that needs no network: its charts are drawn by the uPlot and
    charts.js it embeds."""
    r = sections.report(review)
    return (
        _environment("html")
        .get_template("review.html.j2")
        .render(
            r=r,
            css="\n".join(figures.asset(n) for n in ("uPlot.min.css", "charts.css", "report.css")),
            spec=figures.script_json(figures.chart_spec(r.charts, r.window)),
            sparks=figures.script_json(r.sparks),
            uplot=figures.asset("uPlot.iife.min.js"),
            charts_js=figures.asset("charts.js"),
            sparklines_js=figures.asset("sparklines.js"),
        )
    )


def markdown(review: Review) -> str:
    """The review in Markdown: headings, tables and lists; the sparklines in block characters."""
    text = _environment("markdown").get_template("review.md.j2").render(r=sections.report(review))
    return "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"


def chromium_path() -> str | None:
    """The Chromium to print with: $OBSERVATORY_CHROMIUM, else Debian's `chromium` on the PATH;
    None: Playwright's own download, if there is one."""
    found = os.environ.get("OBSERVATORY_CHROMIUM") or shutil.which("chromium")
    return found or shutil.which("chromium-browser")


def pdf(review: Review) -> bytes:
    """The HTML report printed to PDF (A4 landscape) by a headless Chromium, its charts drawn first.
    Raises ReportError when Playwright or Chromium is missing.

    In a thread of its own: Playwright's sync API refuses to run in a thread with an event loop
    running (a notebook, an async caller, another Playwright session)."""
    try:
        import playwright.sync_api  # noqa: F401 (only to say what is missing)
    except ImportError:
        raise ReportError(
            "PDF needs Playwright (pip install playwright) and Chromium; or use --format html"
        ) from None
    document = html(review)
    done: dict[str, bytes | BaseException] = {}

    def work() -> None:
        try:
            done["pdf"] = _print(document)
        except BaseException as err:  # handed to the caller's thread
            done["error"] = err

    worker = threading.Thread(target=work, name="report-pdf", daemon=True)
    worker.start()
    worker.join()
    if "error" in done:
        raise done["error"]  # type: ignore[misc]
    return done["pdf"]  # type: ignore[return-value]


def _print(document: str) -> bytes:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=PDF_VIEWPORT)
                # Nothing is fetched: the document holds everything it shows.
                page.route("**/*", lambda route: route.abort())
                page.set_content(document, wait_until="load", timeout=PDF_TIMEOUT_MS)
                page.wait_for_function(_DRAWN_JS, timeout=PDF_TIMEOUT_MS)
                return page.pdf(
                    format="A4",
                    landscape=True,
                    print_background=True,
                    margin={"top": "10mm", "bottom": "10mm", "left": "10mm", "right": "10mm"},
                )
            finally:
                browser.close()
    except PlaywrightError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReportError(
            f"PDF needs a Chromium that Playwright can start ({first}): install Debian's chromium or set "
            "OBSERVATORY_CHROMIUM; or use --format html"
        ) from None


# Drawn: charts.js and sparklines.js mark the body once they have (when there is anything to draw).
_DRAWN_JS = """() => (!document.getElementById('spec') || document.body.dataset.ready === '1')
  && (!document.getElementById('sparks') || document.body.dataset.sparks === '1')"""
