"""The Weekly review page, drawn from a store of two weeks in which chosen statements regress,
improve, appear and vanish among noise (tests/test_review_statements.py's scenario), through
AppTest and in Chromium; and `observatory report` on the same store shows the same statements."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from dashboard.analysis.reader import Reader
from dashboard.analysis.review import Period, build
from dashboard.core import config as config_mod
from dashboard.core import metrics
from dashboard.core.records import Cycle, Point, Status
from dashboard.store import Store
from tests.support.apptest import no_exception, open_page
from tests.support.browser import CELLS, serve, settle, shoot
from tests.support.cli import observatory
from tests.support.review_world import BASELINE, HOSTILE, PERIOD, cycles, scenario


@pytest.fixture(scope="module")
def review_store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = Path(tmp_path_factory.mktemp("review-page"))
    url = f"sqlite:///{folder / 'store.db'}"
    statements = scenario()
    store = Store(url)
    try:
        store.write_cycles(list(cycles(statements)))
        ids = {name: store.target_id("postgres", s.target) for name, s in statements.items()}
    finally:
        store.close()
    config = folder / "observatory.yaml"
    config.write_text(f"store: {url}\n")
    return {"url": url, "config": str(config), "statements": statements, "ids": ids}


def _pick(at, week: str):
    at.selectbox[0].set_value(week).run()
    return at


def test_page_reports_the_chosen_statements(monkeypatch, review_store) -> None:
    at = _pick(open_page(monkeypatch, review_store["config"], "review"), PERIOD.label)
    no_exception(at)
    assert at.selectbox[1].value == BASELINE.label  # the week before, by default
    captions = "\n".join(c.value for c in at.caption)
    assert f"{PERIOD.label} against {BASELINE.label}" in captions
    tables = [d.value for d in at.dataframe]
    regressed, improved, new, gone = (t for t in tables if "query" in t.columns)
    # The page's lists are build()'s, in its order: the costliest regression first.
    reader = Reader.open(config_mod.load(review_store["config"]))
    try:
        review = build(reader, PERIOD, BASELINE)
    finally:
        reader.store.close()

    def ids(table) -> list[int]:
        return [int(link.removeprefix("query?id=")) for link in table["link"]]

    assert ids(regressed) == [c.statement_id for c in review.regressions]
    assert ids(improved) == [c.statement_id for c in review.improvements]
    assert ids(new) == [s.statement_id for s in review.new]
    assert ids(gone) == [s.statement_id for s in review.gone]
    # Every target: the "other" target's statement regressed too (+400 %).
    assert sorted(regressed["target"]) == ["erp", "erp", "other"] and len(improved) == 2 and len(gone) == 1
    assert regressed["link"].str.fullmatch(r"query\?id=\d+").all()
    assert HOSTILE in regressed["query"].tolist()  # shown as text by the grid, never as markup
    assert [round(v, 2) for v in regressed["change"]] == [round(c.change - 1, 2) for c in review.regressions]


def test_an_empty_week_says_so(monkeypatch, review_store) -> None:
    at = _pick(open_page(monkeypatch, review_store["config"], "review"), "2026-W40")
    no_exception(at)
    text = "\n".join(c.value for c in at.caption)
    assert "No statement got significantly slower." in text and "No alert fired this week." in text


def test_period_labels_and_baselines() -> None:
    week = Period.iso_week("2026-W01")
    assert week.before().label == "2025-W52"  # across the year
    assert Period.week_of(week.start + 3 * 86400) == week
    with pytest.raises(ValueError, match="not an ISO week"):
        Period.iso_week("2026-W54")
    # Years the store's Unix times and a datetime can hold: one line, never OverflowError.
    for text in ("0001-W01", "9999-W52", "1969-W52"):
        with pytest.raises(ValueError, match="out of range: the years 1970 to 9998 only"):
            Period.iso_week(text)
    for start, end in ((-62135596800, -62135510400), (10**18, 10**18 + 3600)):
        with pytest.raises(ValueError, match="out of range: the years 1970 to 9998 only"):
            Period.between(start, end)
    with pytest.raises(ValueError, match="out of range"):
        Period.week_of(10**18)
    with pytest.raises(ValueError, match="out of range"):
        Period.iso_week("1970-W01").before()
    # A window is whole hours: two windows cut at 10:45 must not both count the 10:00 hour.
    ten = week.start + 10 * 3600
    morning, later = Period.between(ten - 3600, ten + 2700), Period.between(ten + 2700, ten + 3 * 3600)
    assert (morning.end, later.start) == (ten, ten) and later.label == "2025-12-29 10:00 to 2025-12-29 13:00"
    with pytest.raises(ValueError, match="rounded down to the hour"):
        Period.between(ten + 60, ten + 3000)


@pytest.mark.browser
def test_page_in_chromium(page: Page, review_store, tmp_path_factory) -> None:
    with serve(review_store["config"], tmp_path_factory) as url:
        page.set_viewport_size({"width": 1440, "height": 3000})
        started = time.monotonic()
        page.goto(f"{url}/review?week={PERIOD.label}")
        page.get_by_role("heading", name="Weekly review").first.wait_for()
        settle(page)
        page.get_by_text("Against").first.wait_for()
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_role("button", name="Report (HTML)").count() == 1
        page.locator(CELLS).first.wait_for(state="attached")
        cells = page.locator(CELLS).all_text_contents()
        assert "UPDATE orders SET state = $1 WHERE id = $2" in cells, cells[:30]
        assert any(c.startswith("SELECT '<script>alert(1)</script>'") for c in cells)  # as text
        assert page.locator("script:has-text('alert(1)')").count() == 0
        assert page.get_by_text("DeltaGenerator").count() == 0  # no stray expression drawn by magic
        print(f"\nWeekly review settled in {time.monotonic() - started:.2f} s")
        shoot(page, "review")


def test_report_command_lists_the_same_regressions(review_store, tmp_path: Path) -> None:
    out = tmp_path / "review.md"
    done = observatory(
        "report", "--week", PERIOD.label, "--format", "markdown", "--out", str(out),
        config=Path(review_store["config"]),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert PERIOD.label in text and BASELINE.label in text
    assert "UPDATE orders SET state" in text  # the costliest regression


def test_a_new_installation_reviews_its_first_days(monkeypatch, tmp_path: Path) -> None:
    """With nothing stored of last week, the page opens on this week so far, not on an empty week."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    try:
        now = int(time.time())
        for ts in (now - 120, now - 60):
            points = [
                Point(metrics.REDIS_KEYSPACE_HITS, None, "counter", delta=90.0),
                Point(metrics.REDIS_KEYSPACE_MISSES, None, "counter", delta=10.0),
            ]
            store.write_cycle(Cycle("redis", "cache", ts, Status(), points=points))
    finally:
        store.close()
    config = tmp_path / "observatory.yaml"
    config.write_text(f"store: {url}\n")
    at = open_page(monkeypatch, str(config), "review")
    no_exception(at)
    this = Period.week_of(time.time())
    assert at.selectbox[0].value == this.label
    assert at.selectbox[1].value == this.before().label


def test_the_scorecard_writes_ratios_in_percent_as_the_report_does() -> None:
    from dashboard.analysis.review import frames
    from dashboard.analysis.review.model import Objective

    card = frames.scorecard(
        [
            Objective("cache hit rate", "> 90 %", "2026-W46", 0.9682, True, "ratio"),
            Objective("error rate", "< 0.1 %", "2026-W46", 0.00045, True, "ratio"),
            Objective("API p95", "< 200 ms", "2026-W46", 250.0, False, "ms"),
            Objective("CPU", "< 70 %", "2026-W46", None, None, "ratio"),
        ]
    )
    assert card["2026-W46"].tolist() == ["✓ 96.82 %", "✓ 0.045 %", "✗ 250.0 ms", "–"]
