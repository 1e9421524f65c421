"""The index advisor against a real PostgreSQL with HypoPG, on a schema big enough to matter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from dashboard.advisor.advise import Advisor, StatementInput
from dashboard.advisor.candidates import propose
from dashboard.advisor.catalog import ColumnStats, Index, Relation
from dashboard.advisor.database import AdviseError, Workload, advice_report, connect, workload_statements
from dashboard.advisor.shapes import shape
from dashboard.cli.advise import print_report
from dashboard.core.advice import AdviceReport
from dashboard.core.guarded import GuardedSession
from dashboard.core.records import OWN_MARKER, OWN_UNMARKED, is_own
from dashboard.servers.throwaway import ThrowawayPostgres
from dashboard.store import Store
from dashboard.store.reads import Window, statement_totals
from dashboard.store.schema import advice
from tests.support.postgres import ADVISOR_ROLE, advisor_dsn, new_database, shop_dsn
from tests.support.stores import collect_once, make_config

SCHEMA = Path(__file__).with_name("advisor_schema.sql").read_text()


@pytest.fixture(scope="module")
def shop(pg: ThrowawayPostgres) -> str:
    """The DSN of a database with the shop schema, pg_stat_statements and HypoPG."""
    return shop_dsn(pg, "shop")


@pytest.fixture
def advisor(shop: str) -> Iterator[Advisor]:
    with GuardedSession.connect(shop) as session:
        yield Advisor(session)


def suggest(advisor: Advisor, *statements: str):
    advice = advisor.advise([StatementInput(s, calls_per_day=1000, mean_ms=5) for s in statements])
    found = {(s.candidate.table, tuple(s.candidate.columns)) for s in advice.suggestions}
    return found, advice


def skipped_reason(advisor: Advisor, statement: str) -> str:
    found, advice = suggest(advisor, statement)
    assert found == set(), found
    return advice.skipped[0].reason


def test_equality_columns_most_selective_first(advisor: Advisor) -> None:
    found, advice = suggest(advisor, "SELECT * FROM orders WHERE channel = $1 AND region = $2")
    assert found == {("public.orders", ("region", "channel"))}  # region: 200 values, channel: 50
    (s,) = advice.suggestions
    assert s.proven and s.to_record().cost_after < s.to_record().cost_before / 2
    assert s.to_record().create_sql == "CREATE INDEX CONCURRENTLY ON public.orders (region, channel);"
    assert s.reason().startswith(
        "equality on region, then equality on channel; equality columns most selective first, "
        "from pg_stats (region ~200 values, channel ~50 values)"
    )


# email is unique in fact (n_distinct -1) but not declared so: every key after it is dead weight.
UNIQUE_LOOKUP = "SELECT * FROM customers WHERE country = $1 AND email = $2 ORDER BY created_at DESC LIMIT 10"


def test_a_nearly_unique_column_is_suggested_alone(advisor: Advisor) -> None:
    found, advice = suggest(advisor, UNIQUE_LOOKUP)
    assert found == {("public.customers", ("email",))}
    assert advice.suggestions[0].proven
    assert (
        "equality on email (about one row per value: no more columns needed)"
        in advice.suggestions[0].reason()
    )
    parsed, relations = shape(UNIQUE_LOOKUP, advisor.catalog)
    proposed = propose(parsed.tables["public.customers"], relations["public.customers"])
    assert proposed[0].keys == ("email",)  # what is taken without HypoPG
    assert [c.keys for c in proposed if c.keys[0] == "email"] == [("email",)]  # nothing after it


def test_the_shortest_index_near_the_best_cost_wins(advisor: Advisor) -> None:
    """customer_id has ~1.6 rows per value (not unique): (customer_id, created_at) is proposed first
    and proven, but the planner costs it the same as (customer_id) alone, which wins (Options.near_best)."""
    text = "SELECT * FROM orders WHERE customer_id = $1 ORDER BY created_at LIMIT 5"
    parsed, relations = shape(text, advisor.catalog)
    proposed = propose(parsed.tables["public.orders"], relations["public.orders"])
    assert [c.keys for c in proposed][:2] == [("customer_id", "created_at"), ("customer_id",)]
    found, _ = suggest(advisor, text)
    assert found == {("public.orders", ("customer_id",))}


def test_nearly_unique_from_a_unique_index_alone() -> None:
    def index(keys: tuple[str, ...], predicate: str | None = None) -> Index:
        return Index("i", "btree", keys, True, False, True, predicate, "CREATE UNIQUE INDEX ...")

    def relation(*indexes: Index) -> Relation:
        rel = Relation(1, "public", "t", "r", 10_000, None, False, 0, 0, 0, indexes=list(indexes))
        rel.columns["code"] = ColumnStats("text", n_distinct=-0.5)  # stale statistics
        return rel

    assert relation(index(("code",))).nearly_unique("code")
    assert not relation(index(("code", "day"))).nearly_unique("code")  # unique only with day
    assert not relation(index(("code",), "deleted_at IS NULL")).nearly_unique("code")  # partial
    assert not relation().nearly_unique("code")


def test_join_keys_on_both_sides(advisor: Advisor) -> None:
    found, _ = suggest(
        advisor, "SELECT o.total FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.email = $1"
    )
    assert found == {("public.customers", ("email",)), ("public.orders", ("customer_id",))}


def test_order_by_limit_uses_the_sort_column(advisor: Advisor) -> None:
    found, advice = suggest(
        advisor, "SELECT * FROM orders WHERE region = $1 ORDER BY created_at DESC LIMIT 10"
    )
    assert found == {("public.orders", ("region", "created_at"))}
    assert "ORDER BY ... LIMIT" in advice.suggestions[0].reason()


def test_expression_index(advisor: Advisor) -> None:
    found, advice = suggest(advisor, "SELECT * FROM customers WHERE lower(email) = lower($1)")
    assert found == {("public.customers", ("lower(email)",))}
    assert (
        advice.suggestions[0].candidate.create_sql()
        == "CREATE INDEX CONCURRENTLY ON public.customers ((lower(email)))"
    )


def test_update_and_delete_count(advisor: Advisor) -> None:
    found, advice = suggest(
        advisor, "UPDATE orders SET total = $1 WHERE ref = $2", "DELETE FROM orders WHERE ref = $1"
    )
    assert found == {("public.orders", ("ref",))}
    assert len(advice.suggestions[0].proposals) == 2  # one index serving both


def test_no_suggestion_for_a_primary_key_lookup(advisor: Advisor) -> None:
    assert "orders_pkey" in skipped_reason(advisor, "SELECT * FROM orders WHERE id = $1")


def test_no_suggestion_for_a_small_table(advisor: Advisor) -> None:
    assert (
        skipped_reason(advisor, "SELECT * FROM tiny WHERE name = $1")
        == "public.tiny is too small to matter (50 rows)"
    )


def test_no_suggestion_for_an_unselective_column(advisor: Advisor) -> None:
    reason = skipped_reason(advisor, "SELECT * FROM customers WHERE segment = $1")
    assert "no index on public.customers cuts its cost" in reason


def test_no_suggestion_when_already_indexed(advisor: Advisor) -> None:
    reason = skipped_reason(advisor, "SELECT * FROM events WHERE kind = $1 AND created_at > $2")
    assert "events_kind_created_at_idx" in reason


def test_unparseable_statements_are_reported(advisor: Advisor) -> None:
    # PostgreSQL's own parser (pglast) judges the text before sqlglot or the server sees it.
    assert skipped_reason(advisor, "SELECT * FROM orders WHERE (") == (
        "refused: not valid SQL for PostgreSQL: syntax error at end of input"
    )
    assert "syntax error" in skipped_reason(advisor, "SELEC * FRM orders")
    assert "does not exist" in skipped_reason(advisor, "SELECT * FROM no_such_table WHERE id = $1")
    assert skipped_reason(advisor, "SET work_mem = '64MB'").startswith("refused: SET is not planned")


def test_workload_merges_prefixes_and_ranks_by_time_saved(advisor: Advisor) -> None:
    advice = advisor.advise(
        [
            StatementInput("SELECT * FROM orders WHERE region = $1", calls_per_day=100, mean_ms=20),
            StatementInput(
                "SELECT * FROM orders WHERE region = $1 AND channel = $2", calls_per_day=50, mean_ms=20
            ),
            StatementInput("SELECT * FROM orders WHERE ref = $1", calls_per_day=100_000, mean_ms=30),
        ]
    )
    found = [(s.candidate.table, tuple(s.candidate.columns)) for s in advice.suggestions]
    assert found == [
        ("public.orders", ("ref",)),
        ("public.orders", ("region", "channel")),
    ]  # no (region) alone
    merged = advice.suggestions[1]
    assert len(merged.proposals) == 2 and merged.proven
    assert advice.suggestions[0].saved_ms_per_day > merged.saved_ms_per_day > 0


def test_without_hypopg_suggestions_are_unproven(pg: ThrowawayPostgres) -> None:
    name = new_database(pg, "nohypo")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(SCHEMA)
    report = advice_report(
        advisor_dsn(pg, name), queries=["SELECT * FROM orders WHERE ref = $1"], health=False
    )
    (s,) = report.suggestions
    assert s.columns == ["ref"] and s.proven is False and s.cost_after is None
    assert "unproven" in s.reason and "CREATE EXTENSION hypopg" in report.hint


SEARCHES = [
    "SELECT * FROM customers WHERE email ILIKE $1",  # as pg_stat_statements records any pattern
    "SELECT id FROM customers WHERE email LIKE '%ample.org%'",
    "SELECT * FROM customers WHERE email ~~* $1 AND segment = $2",  # segment: 3 values, no B-tree key
]


def test_infix_search_gets_an_estimated_trigram_index(shop: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = advice_report(shop, queries=SEARCHES, health=False)
    (s,) = report.suggestions
    assert (s.table, s.columns, s.statements) == ("public.customers", ["email gin_trgm_ops"], SEARCHES)
    assert s.create_sql == (
        "CREATE EXTENSION IF NOT EXISTS pg_trgm;\n"  # the shop database has no pg_trgm
        "CREATE INDEX CONCURRENTLY ON public.customers USING gin (email gin_trgm_ops);"
    )
    assert s.proven is False and s.cost_after is None and s.plan_after is None and report.hypopg
    assert "estimated: HypoPG cannot create GIN indexes" in s.reason
    assert s.reason.startswith("LIKE/ILIKE search (trigram) on email; serves 3 statements")
    assert AdviceReport.from_stored(report.to_stored()) == report
    print_report(report)
    assert "USING gin (email gin_trgm_ops);" in capsys.readouterr().out


def test_searches_no_trigram_index_serves(advisor: Advisor) -> None:
    nothing = "no filter, join or sort that an index could serve"
    assert skipped_reason(advisor, "SELECT * FROM customers WHERE email LIKE '%ab%'") == nothing
    assert skipped_reason(advisor, "SELECT * FROM customers WHERE email NOT ILIKE $1") == nothing
    assert skipped_reason(advisor, "SELECT * FROM customers WHERE email !~~* $1") == nothing
    # An existing index finds the rows (events_kind_created_at_idx, 1,000 of them): the search only
    # filters those, and a trigram index, which cannot be proven, is not suggested beside it.
    served = skipped_reason(advisor, "SELECT * FROM events WHERE kind = $1 AND kind ILIKE $2")
    assert served == "already served by events_kind_created_at_idx on public.events"


def test_a_proven_btree_wins_over_a_trigram_index(advisor: Advisor) -> None:
    found, advice = suggest(advisor, "SELECT * FROM orders WHERE customer_id = $1 AND ref ILIKE $2")
    assert found == {("public.orders", ("customer_id",))} and advice.suggestions[0].proven


def test_trigram_index_with_pg_trgm_and_when_one_exists(pg: ThrowawayPostgres) -> None:
    """pg_trgm in a schema off the search_path: the suggested index names its operator class there,
    and runs as suggested; a character(n) column gets none (gin_trgm_ops does not accept it)."""
    name = new_database(pg, "trgm")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA extensions")
        conn.execute("CREATE EXTENSION pg_trgm SCHEMA extensions")
        conn.execute("CREATE EXTENSION hypopg")
        conn.execute(
            "CREATE TABLE notes (id int PRIMARY KEY, body varchar(200) NOT NULL, code character(40) NOT NULL)"
        )
        conn.execute(
            "INSERT INTO notes SELECT g, 'note ' || md5(g::text), md5(g::text)"
            " FROM generate_series(1, 20000) g"
        )
        conn.execute("ANALYZE notes")
    dsn, search = advisor_dsn(pg, name), "SELECT * FROM notes WHERE body ILIKE $1"
    (s,) = advice_report(dsn, queries=[search], health=False).suggestions
    assert (
        s.create_sql == "CREATE INDEX CONCURRENTLY ON public.notes USING gin (body extensions.gin_trgm_ops);"
    )
    padded = advice_report(dsn, queries=["SELECT * FROM notes WHERE code LIKE '%abc%'"], health=False)
    assert padded.suggestions == [], padded.suggestions
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(s.create_sql)  # as suggested, by a user whose search_path lacks the schema
        conn.execute("DROP INDEX notes_body_idx")
        conn.execute("CREATE INDEX notes_body_trgm ON notes USING gist (body extensions.gist_trgm_ops)")
    report = advice_report(dsn, queries=[search], health=False)
    assert report.suggestions == []
    assert report.skipped[0].reason == "already indexed by public.notes_body_trgm"


def test_without_hypopg_the_minimal_index_and_the_trigram_one(pg: ThrowawayPostgres) -> None:
    """Without HypoPG nothing is proven: the first candidate is taken, so it must be the short one."""
    name = new_database(pg, "nohypo_min")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(SCHEMA)
    report = advice_report(advisor_dsn(pg, name), queries=[UNIQUE_LOOKUP, SEARCHES[0]], health=False)
    found = {(s.table, tuple(s.columns)): s for s in report.suggestions}
    assert set(found) == {("public.customers", ("email",)), ("public.customers", ("email gin_trgm_ops",))}
    assert not any(s.proven for s in report.suggestions)
    assert "unproven: HypoPG is not installed" in found["public.customers", ("email",)].reason
    assert "HypoPG cannot create GIN indexes" in found["public.customers", ("email gin_trgm_ops",)].reason


def test_advising_creates_nothing(shop: str) -> None:
    with psycopg.connect(shop, autocommit=True) as conn:
        before = conn.execute("SELECT count(*) FROM pg_indexes").fetchone()[0]
    report = advice_report(shop, queries=["SELECT * FROM orders WHERE ref = $1"], health=False)
    assert report.suggestions
    with psycopg.connect(shop, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_indexes").fetchone()[0] == before
        assert conn.execute("SELECT count(*) FROM hypopg_list_indexes").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0


def shop_with_hypopg(pg: ThrowawayPostgres, stem: str) -> str:
    """A new database with the shop's schema, HypoPG and 30 recorded lookups by ref; its name."""
    name = new_database(pg, stem)
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("CREATE EXTENSION hypopg")
        for i in range(30):
            conn.execute("SELECT * FROM orders WHERE ref = %s", (f"R-{i}",))
    return name


def test_the_advisors_own_statements_never_join_the_workload(pg: ThrowawayPostgres) -> None:
    """Twice, as the daemon does every hour: every statement the advisor and the index health send
    (BEGIN and COMMIT, HypoPG's calls, catalog reads) carries the marker, so no later run advises on
    them; HypoPG's own lookup, which it runs inside a marked call, is left out by its text."""
    name = shop_with_hypopg(pg, "own")
    dsn, workload = advisor_dsn(pg, name), Workload(min_calls=1, min_mean_ms=0.0)
    first = advice_report(dsn, workload=workload)
    second = advice_report(dsn, workload=workload)
    assert first.hypopg and first.health is not None  # HypoPG's calls and index health ran
    with psycopg.connect(pg.dsn(dbname=name)) as conn:  # the advisor role's entries: all its own
        own = conn.execute(
            "SELECT query, toplevel FROM pg_stat_statements WHERE userid = %s::regrole"
            " AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (ADVISOR_ROLE,),
        ).fetchall()
    sent = [text for text, toplevel in own if toplevel]
    assert [text for text in sent if not text.startswith(OWN_MARKER)] == []
    # Nested ones too (track = all): HypoPG's lookup is the one the collector knows by its text.
    assert [text for text, _ in own if not is_own(text)] == []
    assert any(text in OWN_UNMARKED for text, toplevel in own if not toplevel)
    assert any(text.startswith(OWN_MARKER + "BEGIN") for text in sent)  # the health's transaction
    calls = "\n".join(sent)
    assert "hypopg_create_index" in calls and "hypopg_reset" in calls
    with connect(dsn) as session:
        advised = {s.text for s in workload_statements(session.conn, workload)}
    assert "SELECT * FROM orders WHERE ref = $1" in advised
    assert advised & {text for text, _ in own} == set()
    analysed = [
        {s.statement for s in r.skipped} | {t for s in r.suggestions for t in s.statements}
        for r in (first, second)
    ]
    assert analysed[0] == analysed[1]  # the second run found nothing of the first


def test_the_collector_never_counts_what_the_advisor_ran(pg: ThrowawayPostgres, store: Store) -> None:
    """The collector and the advisor agree on what is the observatory's own (records.is_own): after
    an advisor run, none of its statements, HypoPG's unmarkable lookup included, counts as workload."""
    name = shop_with_hypopg(pg, "owncollect")
    config = make_config(store.url, [{"name": "t", "dsn": pg.dsn(dbname=name)}])
    collect_once(config, store)  # the baseline
    advice_report(advisor_dsn(pg, name), workload=Workload(min_calls=1, min_mean_ms=0.0))
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM orders")  # some workload beside it
    collect_once(config, store)
    window = Window(0, int(time.time()) + 86400)
    counted = statement_totals(store.engine, [store.target_id("postgres", "t")], window, "raw", limit=10_000)
    assert "SELECT count(*) FROM orders" in set(counted["query"])
    assert [q for q in counted["query"] if is_own(q)] == []


def test_cli_advises_on_the_recorded_workload(shop: str) -> None:
    with psycopg.connect(shop, autocommit=True) as conn:
        for i in range(30):
            conn.execute("SELECT * FROM orders WHERE ref = %s", (f"R-{i}",))
            conn.execute(
                "SELECT * FROM customers WHERE lower(email) = lower(%s)", (f"customer{i}@example.org",)
            )
    env = {k: v for k, v in os.environ.items() if k != "OBSERVATORY_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-m", "dashboard", "advise", "--dsn", shop, "--json", "--min-mean-ms", "0"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= {"suggestions", "skipped", "health", "hypopg"}
    by_columns = {tuple(s["columns"]): s for s in report["suggestions"]}
    assert ("ref",) in by_columns and ("lower(email)",) in by_columns
    ref = by_columns[("ref",)]
    assert ref["table"] == "public.orders" and ref["proven"] is True
    assert set(ref) >= {"create_sql", "statements", "cost_before", "cost_after", "reason"}
    assert ref["statements"] == ["SELECT * FROM orders WHERE ref = $1"]


def test_cli_bad_dsn_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AdviseError, match="Connection refused"):
        advice_report("postgresql://x:Pw-1234@127.0.0.1:1/x")
    result = subprocess.run(
        [sys.executable, "-m", "dashboard", "advise", "--dsn", "postgresql://x:Pw-1234@127.0.0.1:1/x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "observatory advise:" in result.stderr
    assert "Pw-1234" not in result.stderr


def test_advisor_benchmark_runs_and_the_workload_gets_faster(pg: ThrowawayPostgres) -> None:
    """bench/advisor_workload.py at a tiny scale, on its own database (it creates the indexes)."""
    from bench.advisor_workload import MIX, measure

    name = new_database(pg, "bench_shop")
    with psycopg.connect(pg.dsn(dbname=name), autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("CREATE EXTENSION hypopg")
    result = measure(pg.dsn(dbname=name), rounds=2)
    assert "CREATE INDEX CONCURRENTLY ON public.orders (ref);" in result["suggestions"]
    assert result["after_s"] < result["before_s"]  # seq scans of 300,000 rows against index lookups
    assert result["statements"] == 2 * len(MIX) and result["advise_s"] > 0


# -- the report as the store keeps it ---------------------------------------------------------------
# Stored by the code before the typed records (commit 92e089f), one `advice.report` text per line:
# the advisor as a superuser with HypoPG (every kind of health finding), as a pg_monitor role (notes),
# the daemon's report without HypoPG (the hint), its error report, and its branch for index health
# that could not be read (assembled by hand from the line before: it needs a failing catalog query).
STORED = Path(__file__).with_name("advisor_stored_reports.jsonl").read_text().splitlines()


def same_json(text: str) -> str:
    """Keys, their order and values: not the spacing."""
    return json.dumps(json.loads(text))


@pytest.mark.parametrize("stored", STORED, ids=["hypopg", "monitor", "no_hypopg", "error", "no_health"])
def test_reports_stored_before_the_records_load_unchanged(
    stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = AdviceReport.from_stored(stored)
    assert same_json(report.to_stored()) == same_json(stored)
    print_report(report, as_json=True)  # `observatory advise --json` printed the dict this way
    assert capsys.readouterr().out == json.dumps(json.loads(stored), indent=2, default=str) + "\n"


def test_stored_findings_load_typed() -> None:
    health = AdviceReport.from_stored(STORED[0]).health
    assert health is not None and health.unused[0].unused_since is not None
    assert health.unused[0].unused_since.tzinfo is not None
    assert health.missing_fk_indexes[0].columns == ("parent_id",)
    assert health.bloat and health.redundant and health.invalid
    assert AdviceReport.from_stored(STORED[1]).health.notes


def test_a_report_another_version_stored_says_why_it_cannot_be_read() -> None:
    """Never shown as complete without what this version could not read: a key it does not know
    (a misspelled "error" would hide the error) or a key it needs."""
    newer = json.loads(STORED[0])
    newer["health"]["unused"][0]["seen_by"] = "a newer version"  # nested too
    why = "this stored report cannot be read: health.unused.0.seen_by: Extra inputs are not permitted"
    assert AdviceReport.from_stored(json.dumps(newer)) == AdviceReport.failed(why)
    misspelled = json.loads(STORED[3]) | {"errror": "could not connect"}
    assert "errror: Extra inputs are not permitted" in AdviceReport.from_stored(json.dumps(misspelled)).error
    older = {k: v for k, v in json.loads(STORED[0]).items() if k != "skipped"}
    why = "this stored report cannot be read: skipped: Field required"
    assert AdviceReport.from_stored(json.dumps(older)) == AdviceReport.failed(why)
    with pytest.raises(ValueError, match="surprise"):  # built in code, an unknown key is still refused
        AdviceReport(suggestions=[], skipped=[], surprise=1)


def test_the_report_round_trips_through_the_store(shop: str, tmp_path: Path) -> None:
    report = advice_report(
        shop, queries=["SELECT * FROM orders WHERE ref = $1", "SELECT * FROM tiny WHERE name = $1"]
    )
    assert report.suggestions and report.skipped and report.health and report.health.unused
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    failed = AdviceReport.failed("no such database")
    store.write_advice("postgres", "shop", "shop", 1_700_000_000, report, 120.0)
    store.write_advice("postgres", "shop", "gone", 1_700_000_000, failed, 1.0)
    with store.engine.connect() as conn:
        stored = {name: text for name, text in conn.execute(select(advice.c.datname, advice.c.report))}
    store.close()
    assert AdviceReport.from_stored(stored["shop"]) == report
    assert list(json.loads(stored["shop"])) == ["suggestions", "skipped", "hypopg", "database", "health"]
    assert json.loads(stored["gone"]) == {
        "error": "no such database", "suggestions": [], "skipped": [], "health": {}
    }  # fmt: skip
