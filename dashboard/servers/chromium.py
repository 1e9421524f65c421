"""Serving a Streamlit app and driving it in Debian's Chromium: the constants and helpers the browser
tests (tests/support/browser.py) and the page benchmark (bench/pages.py) share. No pytest import."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Streamlit's own marks: the script has run ("initial" before its first run) and is not running.
READY = "[data-testid='stApp'][data-test-script-state='notRunning']"
SKELETON = "[data-testid='stSkeleton']"  # a placeholder still waiting for its element's code
CHART_FRAME = "iframe[data-testid='stIFrame']"  # dashboard/ui/plots.py draws a page's charts in these
# A function for page.wait_for_function: the number of charts drawn in the page's chart frames, or
# false while a frame has not drawn the document its element holds now (charts.js sets drawnFor).
CHARTS_DRAWN_JS = f"""() => {{
  let charts = 0;
  for (const frame of document.querySelectorAll("{CHART_FRAME}")) {{
    const win = frame.contentWindow;
    if (!win || win.drawnFor !== frame.getAttribute("srcdoc")) return false;
    charts += win.document.querySelectorAll(".cell").length;
  }}
  return charts;
}}"""


def healthy(url: str) -> bool:
    """Whether the Streamlit server at `url` answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop_session(proc: subprocess.Popen) -> None:
    """Stop a process started with start_new_session=True and everything in its session
    (`observatory serve` runs streamlit as a child): SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
