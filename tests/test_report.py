"""The report export (dashboard/report, `observatory report`): a Review built from the model's
records, with texts nobody should trust, rendered to HTML (opened offline in headless Chromium),
Markdown and PDF; the CLI's errors and its empty-store report; the review posted to a real local
webhook and Slack-like receiver."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from playwright.sync_api import Page

from dashboard.alerts.dispatch import Retry
from dashboard.analysis.review.model import (
    AlertFired,
    IndexEffect,
    IndexOutcome,
    Objective,
    OpenSuggestion,
    Period,
    Review,
    SeriesChange,
    Settings,
    StatementChange,
    StatementTotal,
    TableGrowth,
    UnusedIndex,
)
from dashboard.core import config as config_mod
from dashboard.report import render, sections, send
from dashboard.report.text import md
from tests.support.cli import observatory

HOSTILE = "<img src=x onerror=alert(1)> **bold** | pipe | `tick` [link](http://evil.example) @admin #7"
LONG = "SELECT " + ", ".join(f"col_{i}" for i in range(700)) + " FROM wide"  # > 5,000 characters
PERIOD = Period.iso_week("2026-W47")
WEEKS = [f"2026-W{w}" for w in range(40, 48)]
DAILY = (2.0, 2.1, None, 2.0, 1.9, 2.0, 2.1, 3.0, 3.2, 3.1, 3.3, 3.0, 3.4, 3.2)  # baseline 7 days, period 7


def objectives() -> tuple[Objective, ...]:
    at_least = lambda v: v >= 99.9  # noqa: E731
    table = [
        ("API p95", "< 200 ms", "ms", [150, 160, 170, 220, 180, 190, 210, 175], lambda v: v < 200),
        ("availability", ">= 99.9 %", "%", [99.95, 99.99, 99.5, 99.92, None, 99.97, 99.99, 100], at_least),
        ("memory", "< 80 %", "%", [None] * 8, None),  # never measured: a row, no chart
    ]  # fmt: skip
    return tuple(
        Objective(name, target, week, v, None if v is None else ok(v), unit)
        for name, target, unit, values, ok in table
        for week, v in zip(WEEKS, values, strict=True)
    )


def hostile_review() -> Review:
    regression = StatementChange(
        11, "pg-main", "shop", f"SELECT * FROM orders WHERE note = '{HOSTILE}'", (1000, 1200), (2.0, 3.1),
        (1.0, 1.0), (5.0, 9.0), 3720.0, 1.55, 7.2, DAILY,
    )  # fmt: skip
    improvement = regression._replace(statement_id=12, query=LONG, mean_ms=(3.0, 1.0), change=1 / 3, z=-9.0)
    return Review(
        period=PERIOD,
        baseline=PERIOD.before(),
        settings=Settings(),
        generated=PERIOD.end + 3600,
        objectives=objectives(),
        regressions=(regression,),
        improvements=(improvement,),
        new=(StatementTotal(13, "pg-main", None, HOSTILE, 500, 40.0, 20000.0),),
        gone=(),
        series=(SeriesChange("redis", "cache", "hit rate", "%", 95.0, 90.0, False),),
        indexes=(
            IndexOutcome(
                "pg-main",
                "shop",
                f"idx_{HOSTILE}",
                "orders",
                PERIOD.start + 3600,
                "CREATE INDEX",
                True,
                (IndexEffect(11, HOSTILE, (5.0, 1.0), (100.0, 2.0)),),
                (1.0, 1.2),
                "helped",
            ),
        ),
        alerts=(AlertFired("HighLatency", "warning", HOSTILE, PERIOD.start, PERIOD.start + 5400, 5400),),
        suggestions=(
            OpenSuggestion("pg-main", "shop", "CREATE INDEX ON orders (note)", "cost 12,219 -> 608"),
        ),
        unused=(UnusedIndex("pg-main", "idx_old", "orders", 50e6, "never scanned"),),
        growth=(TableGrowth("pg-main", "public.orders", (1e9, 1.2e9), 2e8),),
        notes=(f"Redis: not measured {HOSTILE}",),
    )


def empty_review() -> Review:
    no = ()
    weeks = tuple(Objective("API p95", "< 200 ms", w, None, None, "ms") for w in WEEKS)
    return Review(
        PERIOD, PERIOD.before(), Settings(), PERIOD.end, weeks, no, no, no, no, no, no, no, no, no, no
    )


DRAWN = "() => document.body.dataset.ready === '1' && document.body.dataset.sparks === '1'"


# -- HTML in the browser ----------------------------------------------------------------------------
def open_offline(page: Page, path: Path) -> tuple[list[str], list[str]]:
    """Open `path` with every request but file:// aborted; the requests tried and the errors seen."""
    tried: list[str] = []
    errors: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            tried.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    return tried, errors


def test_html_opens_offline_draws_its_charts_and_shows_hostile_text_as_text(
    page: Page, tmp_path: Path
) -> None:
    path = tmp_path / "review.html"
    path.write_text(render.html(hostile_review()), encoding="utf-8")
    tried, errors = open_offline(page, path)
    page.wait_for_function(
        "() => document.body.dataset.ready === '1' && document.body.dataset.sparks === '1'"
    )
    # Two objectives measured (memory never was) and two changed statements with a sparkline each.
    assert page.locator("#grid .cell").count() == 2
    assert page.locator("#grid canvas").count() == 2
    assert page.locator("[data-spark] canvas").count() == 2
    assert page.locator("canvas").count() == 4
    assert page.locator("img").count() == 0  # the hostile text made no element
    assert page.evaluate("typeof window.alert") == "function" and not errors, errors
    assert tried == []
    body = page.inner_text("body")
    assert body.count(HOSTILE) >= 5  # statement, new statement, index, alert, note: shown literally
    titles = page.locator("#grid .title").all_inner_texts()
    assert titles == ["API p95 (target < 200 ms)", "availability (target >= 99.9 %)"]
    # The scorecard: met, missed and not measured per week, as the records say.
    row = page.locator("table.scorecard tbody tr").nth(1).locator("td").all_inner_texts()
    assert row[:5] == ["availability", ">= 99.9 %", "met 99.95 %", "met 99.99 %", "missed 99.5 %"]
    assert row[6] == "not measured"
    # The 5,000-character statement: cut in the table, whole behind its summary.
    assert len(LONG) > 5000
    assert page.locator("details pre").first.text_content() == LONG
    # The charts' data is the objectives': the API p95 chart's line and its target line.
    data = page.evaluate("window.uplots[0].data.map((s) => Array.from(s))")
    assert data[1] == [150, 160, 170, 220, 180, 190, 210, 175] and set(data[2]) == {200}


def test_sections_come_in_order_and_empty_ones_say_so(page: Page, tmp_path: Path) -> None:
    path = tmp_path / "empty.html"
    path.write_text(render.html(empty_review()), encoding="utf-8")
    tried, errors = open_offline(page, path)
    assert tried == [] and errors == []
    headings = page.locator("h2").all_inner_texts()
    assert headings == [
        "SLO scorecard", "Top regressions", "Top improvements", "New heavy statements", "Gone statements",
        "Service & Redis changes", "Did the index help?", "Alerts fired", "Open index suggestions",
        "Unused indexes", "Growth of the largest tables", "Notes",
    ]  # fmt: skip
    assert page.locator(".no-data").inner_text() == "There is no data for this period in the store."
    assert page.locator("section .empty").count() == 11  # every section but the scorecard (it has a row)
    assert page.locator("canvas").count() == 0 and page.locator("script#spec").count() == 0


# -- Markdown ---------------------------------------------------------------------------------------
def unescaped_pipes(line: str) -> int:
    return line.replace("\\\\", "").replace("\\|", "").count("|")


def test_markdown_escapes_every_text_and_keeps_its_tables() -> None:
    text = render.markdown(hostile_review())
    assert "<img" not in text.replace("\\<img", "")  # never raw HTML
    assert "**bold**" not in text and "\\*\\*bold\\*\\*" in text
    assert "[link](" not in text and "`tick`" not in text
    assert "@admin" not in text and "#7" not in text  # no mention, no issue reference
    tables = 0
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| --- |"):
            tables += 1
            columns = line.count("---")
            header, j = lines[i - 1], i + 1
            assert unescaped_pipes(header) == columns + 1, header
            while j < len(lines) and lines[j].startswith("|"):
                assert unescaped_pipes(lines[j]) == columns + 1, lines[j]
                j += 1
    assert tables == 10  # the scorecard and the nine sections with rows (gone statements has none)
    assert "_No statement vanished._" in text
    row = next(line for line in text.splitlines() if line.startswith("| SELECT \\* FROM orders"))
    assert "+55 %" in row and "2.00 ms → 3.10 ms" in row and "▁" in row  # figures and sparkline
    assert max(len(line) for line in lines) < 1000  # the long statement is cut in its table
    assert md("1. item") == "1\\. item" and md("- x") == "\\- x" and md("a - b.c") == "a - b.c"


def test_markdown_of_an_empty_review_says_there_is_no_data() -> None:
    text = render.markdown(empty_review())
    assert "There is no data for this period in the store." in text
    assert "| API p95 | \\< 200 ms | not measured |" in text
    assert "_No regression found._" in text and "_Everything above was measured._" in text


# -- PDF --------------------------------------------------------------------------------------------
@pytest.mark.browser
def test_pdf_is_a_pdf_with_pages() -> None:
    document = render.pdf(hostile_review())
    assert document.startswith(b"%PDF-")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", document))
    assert pages >= 1, pages


# -- CLI --------------------------------------------------------------------------------------------
def test_cli_refuses_a_week_that_does_not_exist(tmp_path: Path) -> None:
    config = tmp_path / "observatory.yaml"
    config.write_text(json.dumps({"store": f"sqlite:///{tmp_path / 'store.db'}"}))
    done = observatory("report", "--week", "2026-W99", config=config)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("observatory report: '2026-W99' is not an ISO week")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    both = observatory("report", "--week", "2026-W47", "--from", "2026-11-16", config=config)
    assert both.returncode == 2 and len(both.stderr.strip().splitlines()) == 1
    pdf_out = observatory("report", "--format", "pdf", config=config)
    assert pdf_out.returncode == 2 and "a PDF needs --out PATH" in pdf_out.stderr


def test_cli_writes_a_report_of_an_empty_store_that_says_so(tmp_path: Path) -> None:
    config = tmp_path / "observatory.yaml"
    config.write_text(json.dumps({"store": f"sqlite:///{tmp_path / 'store.db'}"}))
    done = observatory("report", "--week", "2026-W47", config=config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Weekly performance review: 2026-W47\n")
    assert "There is no data for this period in the store." in done.stdout
    out = tmp_path / "review.html"
    done = observatory("report", "--week", "2026-W47", "--baseline-week", "2026-W40", "--out", str(out),
                       config=config)  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "2026-W47 compared with 2026-W40" in html
    assert "There is no data for this period in the store." in html


# -- Sending ----------------------------------------------------------------------------------------
class Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[tuple[str, dict]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Receiver.bodies.append((self.path, json.loads(self.rfile.read(length))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_review_reaches_a_webhook_and_slack(receiver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVIEW_SLACK_URL", f"{receiver}/slack")
    config = config_mod.from_dict(
        {
            "alerts": {
                "external_url": "http://observatory.example",
                "receivers": [
                    {"webhook": f"{receiver}/hook"},
                    {"slack": {"url_env": "REVIEW_SLACK_URL"}},
                    {"alertmanager": "http://127.0.0.1:1"},
                ],
            }
        }
    )
    review = hostile_review()
    started = time.monotonic()
    done = send.send(review, config.alerts.receivers, config)
    assert time.monotonic() - started < 10
    assert [d.delivered for d in done] == [False, True, True]  # Alertmanager takes no report
    assert done[0].reason == "Alertmanager takes alerts, not reports"
    bodies = dict(Receiver.bodies)
    hook = bodies["/hook"]
    assert hook["kind"] == "observatory.review" and hook["url"] == "http://observatory.example"
    assert hook["period"] == {
        "label": "2026-W47",
        "start": "2026-11-16T00:00:00Z",
        "end": "2026-11-23T00:00:00Z",
    }
    assert hook["baseline"]["label"] == "2026-W46"
    assert hook["markdown"] == render.markdown(send.clipped(review)[0])
    assert hook["cut"] == {"statements": 1, "markdown": False, "html": False}  # LONG, 5,000+ characters
    assert hook["html"].startswith("<!doctype html>") and "&lt;img src=x onerror=alert(1)&gt;" in hook["html"]
    assert hook["summary"].splitlines()[:3] == [
        "Weekly performance review 2026-W47 (vs 2026-W46)",
        "1 regressions, 1 improvements, 1 new heavy statements, 0 gone; 1 alerts fired; 1 new indexes, "
        "1 open suggestions, 1 unused indexes",
        "SLOs: 2 met, 0 missed, 1 not measured",
    ]
    assert bodies["/slack"]["mrkdwn"] is False  # SQL's * _ ~ ` shown as written, not as formatting
    slack = bodies["/slack"]["text"]
    assert slack.startswith("Weekly performance review 2026-W47") and "&lt;img src=x" in slack
    assert "<img" not in slack


# -- After review: the settings, ratios, periods, Slack, sizes -------------------------------------
def test_cli_applies_the_review_settings_of_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "observatory.yaml"
    store = f"sqlite:///{tmp_path / 'store.db'}"
    config.write_text(json.dumps({"store": store, "review": {"min_change": 0.05, "min_calls": 10, "z": 2}}))
    done = observatory("report", "--week", "2026-W47", config=config)
    assert done.returncode == 0, done.stderr
    assert (
        "mean time changed by 5% or more, with at least 10 calls in each period and 2 standard errors"
        in done.stdout
    )


def ratio_review() -> Review:
    weeks = ("2026-W46", "2026-W47")
    values = zip(weeks, (0.9682, 0.94), strict=True)
    hit = [Objective("cache hit rate", "> 95 %", w, v, v > 0.95, "ratio") for w, v in values]
    errors = [Objective("error rate", "< 0.1 %", w, 0.00045, True, "ratio") for w in weeks]
    series = (SeriesChange("redis", "cache", "hit rate", "ratio", 0.9682, 0.00045, False),)
    return empty_review()._replace(objectives=(*hit, *errors), series=series)


def test_ratios_show_as_percentages_like_their_targets() -> None:
    review = ratio_review()
    text = render.markdown(review)
    card = next(line for line in text.splitlines() if line.startswith("| cache hit rate"))
    assert card == "| cache hit rate | \\> 95 % | met 96.82 % | missed 94 % |"  # > escaped: Markdown
    assert "| error rate | \\< 0.1 % | met 0.045 % | met 0.045 % |" in text
    assert "| redis | cache | hit rate | 96.82 % | 0.045 % | worse |" in text
    page = render.html(review)
    for shown in ("met 96.82 %", "missed 94 %", "met 0.045 %", '<td class="num">96.82 %</td>'):
        assert shown in page, shown
    assert "0.9682" not in page.replace(".96820", "")  # no raw fraction beside a target in %
    # The trend charts: values in % and the unit %, so the target line (95) is on the same scale.
    charts = sections.report(review).charts
    hit_chart = next(c for c in charts if c.title.startswith("cache hit rate"))
    assert hit_chart.unit == "%"
    measured = [v for s in hit_chart.series if not s.dash for v in s.values]
    target = {v for s in hit_chart.series if s.dash for v in s.values}
    assert measured == pytest.approx([96.82, 94.0]) and target == {95.0}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--week", "0001-W01"), "'0001-W01' is out of range: the years 1970 to 9998 only"),
        (("--week", "9999-W52"), "'9999-W52' is out of range: the years 1970 to 9998 only"),
        (("--from", "0001-01-01", "--to", "0001-01-02"), "0001-01-01 is out of range"),
        (("--week", "2026-W47", "--baseline-week", "2026-W47"), "the baseline must end before the period"),
        (("--week", "2026-W47", "--baseline-week", "2026-W48"), "the baseline must end before the period"),
        (("--from", "2026-11-16", "--to", "2026-11-23", "--baseline-from", "2026-11-10", "--baseline-to",
          "2026-11-17"), "the baseline must end before the period starts"),
        (("--week", "1970-W03"), "1970-W03 is too early to review"),
        (("--from", "2026-11-16T10:15", "--to", "2026-11-16T10:45"), "rounded down to the hour"),
    ],
)  # fmt: skip
def test_cli_refuses_periods_out_of_range_and_baselines_not_before(
    args: tuple[str, ...], says: str, tmp_path: Path
) -> None:
    config = tmp_path / "observatory.yaml"
    config.write_text(json.dumps({"store": f"sqlite:///{tmp_path / 'store.db'}"}))
    done = observatory("report", *args, config=config)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("observatory report: ") and says in lines[0], lines


def test_cli_rounds_a_window_down_to_the_hour_and_says_so(tmp_path: Path) -> None:
    config = tmp_path / "observatory.yaml"
    config.write_text(json.dumps({"store": f"sqlite:///{tmp_path / 'store.db'}"}))
    done = observatory("report", "--from", "2026-11-16T10:45", "--to", "2026-11-16T12:59", config=config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Weekly performance review: 2026-11-16 10:00 to 2026-11-16 12:00\n")
    assert "compared with 2026-11-16 08:00 to 2026-11-16 10:00" in done.stdout
    helped = observatory("report", "--help", config=config)
    assert "--from/--to are rounded down to the hour" in " ".join(helped.stdout.split())


def test_webhook_body_cuts_long_statements_and_a_huge_markdown() -> None:
    config = config_mod.from_dict({})
    huge = "SELECT '" + "x" * 10_000 + "'"
    one = hostile_review().regressions[0]
    many = tuple(one._replace(statement_id=i, query=f"{huge} -- {i}") for i in range(200))
    alert = AlertFired("Long", "warning", "y" * 2_000, PERIOD.start, None, 60)  # not a statement: kept
    review = hostile_review()._replace(regressions=many, improvements=(), alerts=(alert,) * 200)
    body = send.webhook_body(review, config)
    assert body["cut"] == {"statements": 200, "markdown": True, "html": False}
    markdown = body["markdown"]
    assert len(markdown.encode("utf-8")) <= send.MARKDOWN_MAX
    assert markdown.endswith(
        "_Cut here: the review is longer than 256 KiB; `observatory report` writes all of it._\n"
    )
    assert "y" * 2_000 in markdown  # an alert's summary is not cut: the whole document is
    html = body["html"]  # each statement's whole text is in the HTML: cut at 2,000 characters
    assert "x" * 2_000 not in html and f"{'x' * 1_990}…" in html
    assert len(json.dumps(body)) < 8 * 2**20  # 200 statements of 10 KB each: 2 MB of text sent whole


def test_a_failed_review_is_logged_as_the_reviews(caplog: pytest.LogCaptureFixture) -> None:
    config = config_mod.from_dict({"alerts": {"receivers": [{"webhook": "http://127.0.0.1:1/hook"}]}})
    with caplog.at_level("WARNING"):
        (done,) = send.send(empty_review(), config.alerts.receivers, config, retry=Retry(1, 0.01, 0.01, 1.0))
    assert not done.delivered and done.receiver == "webhook (http://127.0.0.1:1)"
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failed and all("weekly review: webhook (http://127.0.0.1:1)" in m for m in failed), failed
