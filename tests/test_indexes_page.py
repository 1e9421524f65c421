"""The Indexes page and Query detail's index advice, through AppTest, on a store of real advice.

The advice comes the way the daemon makes it: a database with the shop schema and HypoPG on the
session server, a workload, two real collector cycles, then `advise_target`; an error report (what the
daemon stores for a database it cannot read) is written directly.
"""

from __future__ import annotations

import html
import json

from sqlalchemy import update

from dashboard.core.advice import AdviceReport, IndexHealthReport, SkippedStatement
from dashboard.store import Store
from dashboard.store.schema import advice
from dashboard.ui import frame as ui
from tests.support.advised import FK_INDEX, REF, REF_INDEX, SEGMENT, TARGET, statement_id
from tests.support.apptest import empty_store_config, no_exception, open_page, sql_blocks, texts


def test_no_report_yet(monkeypatch, tmp_path, populated_store) -> None:
    empty = empty_store_config(tmp_path)
    for config in (empty, populated_store[1]):  # no store at all; collected but never advised
        at = open_page(monkeypatch, config, "indexes")
        no_exception(at)
        message = texts(at.info)
        assert "No index advice yet" in message
        assert "observatory collect" in message and "advise_interval" in message
        assert "observatory advise --dsn" in message
        assert not sql_blocks(at)


def test_an_error_report_stops_at_its_header(monkeypatch, tmp_path) -> None:
    """A database the advisor could not read: when, and the error; no suggestions, skipped
    statements or health below it."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.write_advice(
        "postgres", TARGET, "gone", 1_700_000_000, AdviceReport.failed("no such database"), 1.0
    )
    store.close()
    config = tmp_path / "observatory.yaml"
    config.write_text(f"store: {url}\ntargets:\n  postgres:\n    - name: {TARGET}\n      dsn: dbname=gone\n")
    at = open_page(monkeypatch, config, "indexes")
    no_exception(at)
    assert [e.value for e in at.error] == ["The advisor could not read this database: no such database"]
    assert "report made" in texts(at.caption)
    assert [h.value for h in at.subheader] == [] and not sql_blocks(at)


def test_an_unreadable_stored_report_is_that_databases_error(monkeypatch, tmp_path) -> None:
    """A row another version wrote (a key this one does not know) or a row that cannot be read at all
    is an error under its own database's header, never a report shown without what it could not
    read; the page goes on."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    skipped = [SkippedStatement(statement="SELECT 1", reason="nothing to index")]
    report = AdviceReport(suggestions=[], skipped=skipped, hypopg=True, health=IndexHealthReport())
    for datname in ("newer", "garbled"):
        store.write_advice("postgres", TARGET, datname, 1_700_000_000, report, 1.0)
    newer = json.loads(report.to_stored()) | {"from_a_newer_version": 1}
    newer["skipped"][0]["cost"] = 12.5
    with store.engine.begin() as conn:
        conn.execute(update(advice).where(advice.c.datname == "newer").values(report=json.dumps(newer)))
        conn.execute(update(advice).where(advice.c.datname == "garbled").values(report="{not json"))
    store.close()
    config = tmp_path / "observatory.yaml"
    config.write_text(f"store: {url}\ntargets:\n  postgres:\n    - name: {TARGET}\n      dsn: dbname=x\n")

    at = open_page(monkeypatch, config, "indexes", db=f"{TARGET}/garbled")
    no_exception(at)
    (error,) = [e.value for e in at.error]
    said = ui.md_escape("this stored report cannot be read: Invalid JSON")
    assert error.startswith(f"The advisor could not read this database: {said}"), error
    assert "report made" in texts(at.caption)
    assert not at.dataframe  # every database's report: a table drawn once its expander is opened
    at.session_state["reports_open"] = True
    at.run()
    statuses = dict(at.dataframe[0].value[["database", "status"]].itertuples(index=False))
    assert "cannot be read" in statuses["garbled"], statuses
    assert "cannot be read" in statuses["newer"] and "Extra inputs" in statuses["newer"], statuses

    at = open_page(monkeypatch, config, "indexes", db=f"{TARGET}/newer")
    no_exception(at)
    (error,) = [e.value for e in at.error]
    assert ui.md_escape("Extra inputs are not permitted") in error, error


def test_indexes_page_shows_the_report(monkeypatch, advised) -> None:
    at = open_page(monkeypatch, advised["config"], "indexes", db=f"{TARGET}/{advised['datname']}")
    no_exception(at)
    codes = sql_blocks(at)
    assert REF_INDEX in codes
    assert "CREATE INDEX CONCURRENTLY ON public.customers ((lower(email)));" in codes
    tables = len(at.dataframe)
    assert not at.get("html")  # the plans and the skipped statements are drawn once opened
    assert not at.text_area and "paste_open" in at.session_state  # and the paste box's form
    db = f"{TARGET}/{advised['datname']}"  # the expanders' keys name the report: another keeps its own
    at.session_state[f"plans:{db}:1"] = at.session_state[f"plans:{db}:2"] = True
    at.session_state[f"skipped_open:{db}"] = True
    at.run()
    plans = [html.unescape(e.proto.body) for e in at.get("html")]  # ui.preformatted: escaped text
    assert len(plans) == 4 and any(">Index Scan using" in p for p in plans), plans  # with the index
    assert len(at.dataframe) == tables + 1
    assert not at.warning  # HypoPG is installed: no hint
    assert "proven by the planner with HypoPG" in texts(at.markdown)
    # Each card's figures on one line: the time saved is measured with HypoPG, the cost falls.
    facts = [m for m in texts(at.markdown).splitlines() if m.startswith("Time saved per day **")]
    assert len(facts) == 2 and not at.metric, facts
    assert all("planner cost **" in f and " → " in f and "(-" in f and "table rows **" in f for f in facts)
    assert not any(f.startswith("Time saved per day **–**") for f in facts), facts
    links = {e.proto.label: e.proto.page for e in at.get("page_link")}
    ref_link = f"#{statement_id(advised, REF)} {ui.md_escape('SELECT * FROM orders WHERE ref = $1')}"
    assert ref_link in links, links
    skipped = at.dataframe[-1].value
    assert SEGMENT in skipped["statement"].tolist()
    assert skipped["link"].str.match(r"query\?id=\d+").all()
    assert "Index health" in texts(at.subheader)
    assert FK_INDEX in codes and "DROP INDEX CONCURRENTLY public.events_kind_created_at_idx;" in codes
    findings = texts(at.markdown)
    assert (
        "**orders\\_customer\\_id\\_fkey** on " in findings
        and "**events\\_kind\\_created\\_at\\_idx** on " in findings
    )
    # The kinds without a finding share one line, in HEALTH's order (no invalid index here).
    none = "None found: duplicate and redundant indexes, invalid indexes, bloated indexes (estimate)."
    assert none in texts(at.caption)
    assert "**Invalid indexes**" not in findings
    # Every database of the target has a report; `?db=` picks one (Query detail links that way).
    other = at.selectbox[0].options[-1]
    at = open_page(monkeypatch, advised["config"], "indexes", db=other)
    no_exception(at)
    assert f"**{other.split('/', 1)[1].replace('_', chr(92) + '_')}** on **{TARGET}**" in texts(at.caption)


def test_query_detail_shows_the_suggested_index(monkeypatch, advised) -> None:
    at = open_page(monkeypatch, advised["config"], "query", id=str(statement_id(advised, REF)))
    no_exception(at)
    assert "Suggested index" in texts(at.subheader)
    assert REF_INDEX in sql_blocks(at)
    assert "→" in texts(at.markdown) and "proven with HypoPG" in texts(at.markdown)
    links = [e.proto for e in at.get("page_link")]
    assert any(link.label == "All index suggestions for this database" for link in links)


def test_query_detail_says_why_no_index(monkeypatch, advised) -> None:
    at = open_page(monkeypatch, advised["config"], "query", id=str(statement_id(advised, SEGMENT)))
    no_exception(at)
    assert "Suggested index" not in texts(at.subheader)
    assert "No index suggested: " in texts(at.caption)


def test_a_pasted_statement_is_advised_on_now(monkeypatch, advised) -> None:
    at = open_page(monkeypatch, advised["config"], "indexes", db=f"{TARGET}/{advised['datname']}")
    no_exception(at)
    assert not at.text_area  # the form is drawn once its expander is opened
    at.session_state["paste_open"] = True
    at.run()
    assert at.selectbox[-1].value.startswith(f"{TARGET}/")  # the form's database: a report's
    at.text_area[0].input("SELECT * FROM orders WHERE region = $1 AND channel = $2")
    (submit,) = [b for b in at.button if b.label == "Advise"]
    submit.click().run()
    no_exception(at)
    assert "CREATE INDEX CONCURRENTLY ON public.orders (region, channel);" in sql_blocks(at)
    plans = [html.unescape(e.proto.body) for e in at.get("html")]  # drawn with the card: a form's
    assert any(">Index Scan" in p or ">Bitmap" in p for p in plans), plans  # result lasts one run


def test_a_missing_grant_is_named_above_the_suggestions(monkeypatch, tmp_path) -> None:
    """What the advisor's role lacks in a database (privileges.access) is a warning per grant, and the
    status in every database's report; markup in a relation's name is shown as text."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    need = (
        'monitor cannot read 2 relations in schema public (orders, "**bold**"), so statements on them '
        "cannot be planned: GRANT pg_read_all_data TO monitor;"
    )
    report = AdviceReport(suggestions=[], skipped=[], hypopg=True, needs=[need], health=IndexHealthReport())
    store.write_advice("postgres", TARGET, "erp", 1_700_000_000, report, 1.0)
    fine = AdviceReport(suggestions=[], skipped=[], hypopg=True, health=IndexHealthReport())
    store.write_advice("postgres", TARGET, "analytics", 1_700_000_000, fine, 1.0)
    store.close()
    config = tmp_path / "observatory.yaml"
    config.write_text(f"store: {url}\ntargets:\n  postgres:\n    - name: {TARGET}\n      dsn: dbname=x\n")
    at = open_page(monkeypatch, config, "indexes", db=f"{TARGET}/erp")
    no_exception(at)
    assert [w.value for w in at.warning] == [f"Not everything could be planned. {ui.md_escape(need)}"]
    at.session_state["reports_open"] = True
    at.run()
    statuses = dict(zip(*(at.dataframe[0].value[c] for c in ("database", "status")), strict=True))
    assert statuses == {"erp": f"needs 1 grant: {need}", "analytics": "ok"}
