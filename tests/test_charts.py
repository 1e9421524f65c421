"""Chart records (dashboard/ui/charts.py) built from frames, and the frame that draws them
(dashboard/ui/plots.py): values, gaps, axes, and text that stays text."""

from __future__ import annotations

import html
import json
import math

import pandas as pd
from streamlit.testing.v1 import AppTest

from dashboard.core import metrics
from dashboard.store.reads import Window
from dashboard.ui import charts, plots, sql_block
from tests.support.apptest import SPEC

HOSTILE = "</script><img src=x onerror=alert(1)><!-- \u2028 & </SCRIPT >"


def long(rows: list[tuple[int, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["ts", "series", "value"])


def test_each_series_keeps_its_own_times_and_a_missing_value_is_a_gap() -> None:
    """Two targets read seconds apart are two whole lines (charts.js joins them), not lines broken at
    every other point; a NaN, and only a NaN, is a gap (None), never a zero."""
    rows = [(60, "a", 1.0), (120, "a", math.nan), (180, "a", 2.0), (67, "b", 5.0), (127, "b", 6.0)]
    chart = charts.lines(long(rows), "t", "u")
    assert chart.x == [60, 67, 120, 127, 180]
    assert [(s.label, s.x, s.values) for s in chart.series] == [
        ("a", [60, 120, 180], [1.0, None, 2.0]),
        ("b", [67, 127], [5.0, 6.0]),
    ]


def test_hit_rate_gaps_stay_gaps_and_the_axis_ignores_them() -> None:
    chart = charts.hit_rate_line(long([(0, "hit", 0.99), (60, "hit", math.nan), (120, "hit", 0.98)]))
    assert chart.series[0].values == [99.0, None, 98.0]
    assert chart.y_min == 88  # from the lowest reading (and the 90 % target), not from a zero


def test_mean_time_is_a_gap_where_nothing_ran() -> None:
    frame = pd.DataFrame({"ts": [0, 60, 120], "calls": [2, 0, 4], "exec_ms": [10.0, 0.0, 2.0]})
    assert charts.statement_mean(frame).series[0].values == [5.0, None, 0.5]


def test_limits_are_dashed_and_targets_are_lines_at_their_value() -> None:
    memory = charts.lines(
        long([(0, "used", 10.0), (0, "maxmemory", 50.0)]), "Memory", "MiB", dashed=("maxmemory",)
    )
    assert [s.dash for s in memory.series] == [False, True]
    hit = charts.hit_rate_line(long([(0, "hit", 0.8), (60, "hit", 0.99)]), target=0.9)
    assert hit.series[-1].values == [90.0, 90.0] and hit.series[-1].dash
    assert hit.y_min == 78 and hit.y_max == 100.5  # from below the lowest reading, not from zero


def test_slo_axes_keep_the_target_in_view() -> None:
    upper = charts.slo_lines(long([(0, "p95", 120.0), (60, "p95", 150.0)]), "api", "ms", ("<", 200.0))
    assert upper.y_min == 0 and upper.y_max > 200
    lower = charts.slo_lines(long([(0, "up", 99.95), (60, "up", 100.0)]), "avail", "%", (">=", 99.9))
    assert 99.8 < lower.y_min < 99.9 and lower.y_max > 100


def test_overlay_puts_each_frame_on_its_axis_on_one_time_line() -> None:
    chart = charts.overlay(
        long([(0, "api p95", 120.0), (60, "api p95", 130.0)]), "ms",
        long([(60, "query #3 mean", 4.0), (120, "query #3 mean", 5.0)]), "query mean (ms)",
        target=("<", 200.0),
    )  # fmt: skip
    assert chart.x == [0, 60, 120] and chart.right_unit == "query mean (ms)"
    left, right, target = chart.series
    assert (left.right, left.x, left.values) == (False, [0, 60], [120.0, 130.0])
    assert (right.right, right.x, right.values) == (True, [60, 120], [4.0, 5.0])
    assert target.dash and target.x == [0, 60, 120] and target.values == [200.0] * 3


def test_connections_stack_in_a_fixed_state_order() -> None:
    rows = [
        ("pg.connections", metrics.encode({"state": state}), 60, total, 2.0, 60)
        for state, total in (("idle", 8.0), ("mystery", 2.0), ("active", 4.0))
    ]
    frame = pd.DataFrame(rows, columns=["name", "labels", "ts", "sum", "count", "width"])
    chart = charts.connections_area(frame.assign(name=metrics.PG_CONNECTIONS))
    assert chart.kind == "area"
    assert [(s.label, s.values) for s in chart.series] == [
        ("active", [2.0]),
        ("idle", [4.0]),
        ("mystery", [1.0]),
    ]


def test_top_queries_are_bars_named_by_id_and_text() -> None:
    frame = pd.DataFrame(
        {
            "statement_id": [7],
            "query": ["SELECT  1\n FROM t"],
            "exec_ms": [2500.0],
            "calls": [10],
            "mean_ms": [250.0],
        }
    )
    chart = charts.top_queries_bar(frame)
    assert chart.kind == "bars" and chart.labels == ("#7 SELECT 1 FROM t",)
    assert chart.series[0].values == [2.5] and chart.notes == ("10 calls · 250.00 ms mean",)


def test_the_spec_cannot_end_its_script_element() -> None:
    text = plots.script_json({"label": HOSTILE})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"label": HOSTILE}


def _draw_hostile() -> None:
    from dashboard.store.reads import Window
    from dashboard.ui import charts, plots
    from dashboard.ui import frame as ui

    hostile = "</script><img src=x onerror=alert(1)><!-- \u2028 & </SCRIPT >"
    series = [charts.Series(hostile, [0, 60], [1.0, None])]
    plots.show([charts.Chart(hostile, hostile, [0, 60], series)], Window(0, 3600))
    ui.preformatted(f"Seq Scan on t {hostile}")


def test_a_page_draws_hostile_text_as_text() -> None:
    at = AppTest.from_function(_draw_hostile).run()
    assert not at.exception
    srcdoc = at.get("iframe")[0].proto.srcdoc
    assert srcdoc.count("<script") == 2 and srcdoc.count("</script>") == 2  # ours, and nothing else
    spec = json.loads(SPEC.search(srcdoc).group(1))
    assert spec["window"] == [0, 3600]
    assert spec["charts"][0]["title"] == HOSTILE and spec["charts"][0]["series"][0]["label"] == HOSTILE
    body = at.get("html")[0].proto.body
    assert "<img" not in body and "&lt;img" in body
    assert html.unescape(body).endswith(f"Seq Scan on t {HOSTILE}</pre>")


def test_every_chart_spans_the_window_it_is_given() -> None:
    chart = charts.Chart("one point", "ms", [1_000], [charts.Series("a", [1_000], [1.0])])
    spec = plots.spec([chart], Window(0, 86_400), columns=2)
    assert spec["window"] == [0, 86_400] and spec["charts"][0]["series"][0]["x"] == [1_000]
    assert "x" not in spec["charts"][0]  # the union is charts.js's to make (uPlot.join)


def test_infinite_readings_never_reach_the_frame() -> None:
    """json.dumps(allow_nan=False) would fail the page: an overflowed reading is a gap, and an axis
    bound made of one is left automatic."""
    chart = charts.slo_lines(long([(0, "p95", math.inf), (60, "p95", 120.0)]), "api", "ms", ("<", 200.0))
    assert chart.series[0].values == [None, 120.0]
    spec = plots.spec([chart._replace(y_max=math.inf)], None, columns=1)
    assert spec["charts"][0]["y_max"] is None
    assert json.loads(plots.script_json(spec))["charts"][0]["series"][0]["values"] == [None, 120.0]


def test_charts_js_draws_odd_data_in_chromium(page) -> None:
    """The frame's own script in a real browser: every chart below is drawn (a canvas, or its bars,
    or "no data"), none fails, and the frame reports it finished. uPlot loops on its ticks when an
    axis range is empty, so y_min == y_max must be widened, not passed on."""
    odd = [
        charts.Chart("flat", "ms", [0], [charts.Series("a", [0], [5.0])], y_min=5.0, y_max=5.0),
        charts.Chart("all gaps", "ms", [0, 60], [charts.Series("a", [0, 60], [None, None])]),
        charts.Chart("right only", "ms", [0], [charts.Series("q", [0], [1.0], right=True)], right_unit="x"),
        charts.stacked_area(
            long([(0, "wait", math.nan), (60, "wait", 2.0), (0, "active", 1.0)]), "jobs", "n"
        ),
        charts.top_queries_bar(
            pd.DataFrame(
                {"statement_id": [1], "query": [HOSTILE], "exec_ms": [0.0], "calls": [0], "mean_ms": [0.0]}
            )
        ),
        charts.Chart("empty", "ms", [], []),
        charts.lines(long([(60, "a", 1.0), (180, "a", 2.0), (67, "b", 5.0), (127, "b", 6.0)]), "offset", "u"),
        charts.hit_rate_line(long([(0, "hit", 0.95), (60, "hit", 0.97)])),  # the target line: same times
    ]
    page.set_content(plots.html(odd, Window(0, 3600)))
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=10_000)
    cells = page.locator(".cell")
    assert cells.count() == len(odd)
    assert page.get_by_text("could not be drawn").count() == 0
    drawn = [cells.nth(i).locator("canvas").count() > 0 for i in range(len(odd))]
    assert drawn == [True, True, True, True, False, False, True, True]
    assert plots.spec(odd[-1:], None, 1)["charts"][0]["series"][1]["x"] is None  # sent once
    assert page.locator(".bar-label").all_text_contents() == list(odd[4].labels)  # as written, not markup
    assert "<img" in odd[4].labels[0]
    assert page.locator(".empty").all_text_contents() == ["no data in this window"]
    assert page.locator("img, a, i").count() == 0
    page.wait_for_timeout(100)  # uPlot draws in a microtask: an error there would show by now
    assert page.get_by_text("could not be drawn").count() == 0
    data = page.evaluate(
        "() => uplots.map((u) => u.data.map((row) => row.map((v) => v === undefined ? 'hole' : v)))"
    )
    jobs, offset = data[3], data[4]  # the canvases: flat, all gaps, right only, jobs, offset
    assert jobs == [[0, 60], [None, 2.0], [1.0, 3.0]]  # wait: a gap, then 2; active held at 1 below it
    assert offset == [[60, 67, 127, 180], [1.0, "hole", "hole", 2.0], ["hole", 5.0, 6.0, "hole"]]
    assert data[5] == [[0, 60], [95.0, 97.0], [90.0, 90.0]]
    # A drag on one chart zooms every chart of the frame; a double-click gives them the window back.
    over = page.locator(".u-over").nth(4).bounding_box()
    page.mouse.move(over["x"] + 50, over["y"] + 20)
    page.mouse.down()
    page.mouse.move(over["x"] + 150, over["y"] + 20, steps=5)
    page.mouse.up()
    ranges = page.evaluate("() => uplots.map((u) => [u.scales.x.min, u.scales.x.max])")
    assert all(r != [0, 3600] for r in ranges), ranges
    page.evaluate("() => uplots[0].over.dispatchEvent(new MouseEvent('dblclick', {bubbles: true}))")
    ranges = page.evaluate("() => uplots.map((u) => [u.scales.x.min, u.scales.x.max])")
    assert ranges == [[0, 3600]] * len(ranges), ranges


def test_a_sql_block_is_as_tall_as_its_lines_and_holds_the_text_escaped() -> None:
    one, three = sql_block.height("SELECT 1"), sql_block.height("SELECT\n  1\nFROM t")
    assert three - one == 2 * sql_block.LINE_PX and one < 150  # not a frame's default 150 px
    assert sql_block.height("x" * (sql_block.WIDE + 1)) == one + sql_block.SCROLLBAR_PX
    page = sql_block.page(f"SELECT 1 -- {HOSTILE}")
    assert "<img" not in page and "&lt;img src=x" in page and page.count("</script>") == 1
