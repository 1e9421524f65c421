"""Check the peer cases against PostgreSQL and record what the planner says.

Starts a throwaway PostgreSQL, loads schema.sql, then for every case in
pghero_cases.yaml and dexter_cases.yaml:

* checks the statement: EXPLAIN must succeed (with a generic plan when it has $n
  placeholders), or fail with the expected error class for `expect_error` cases;
  `explainable: false` statements are run inside a rolled-back transaction;
* for `expected` (and, when it is a different B-tree index, `peer_expected`, plus
  `probe` and each B-tree in `also_acceptable`) creates the index with hypopg and
  records the planner's total cost before and after, and whether the plan uses it;
* for cases with `measure_without`, repeats the `expected` (or `probe`) measurement
  with those existing indexes dropped inside a rolled-back transaction.

Usage (from the repository root):
    .venv/bin/python tests/peers/measure.py            # check and print
    .venv/bin/python tests/peers/measure.py --write    # also store `measured*` in the YAML files
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import psycopg
import yaml
from psycopg import sql

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from dashboard.servers.throwaway import ThrowawayPostgres  # noqa: E402

CASE_FILES = ("pghero_cases.yaml", "dexter_cases.yaml")
ERROR_CLASSES = {"syntax": "42601", "undefined_table": "42P01"}
HEADERS = {
    "pghero_cases.yaml": (
        "# PgHero peer cases, restated from ankane/pghero test/best_index_test.rb (plus three\n"
        "# existing-index cases from test/suggested_indexes_test.rb). Schema: schema.sql.\n"
        "# Field meanings: README.md. `measured*` fields are written by measure.py --write.\n"
    ),
    "dexter_cases.yaml": (
        "# Dexter peer cases, restated from ankane/dexter test/statement_test.rb, plus the\n"
        "# statements with index expectations in test/create_test.rb and test/batching_test.rb.\n"
        "# Schema: schema.sql. Field meanings: README.md. `measured*` fields are written by\n"
        "# measure.py --write.\n"
    ),
}


def qualified(table: str) -> sql.Composed:
    schema, _, name = table.partition(".")
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def index_ddl(conn: psycopg.Connection, index: dict[str, Any], table: str | None = None) -> str:
    directions = index.get("directions") or ["asc"] * len(index["columns"])
    cols = sql.SQL(", ").join(
        sql.SQL("{}{}").format(sql.Identifier(c), sql.SQL(" DESC" if d == "desc" else ""))
        for c, d in zip(index["columns"], directions, strict=True)
    )
    ddl = sql.SQL("CREATE INDEX ON {} ({})").format(qualified(table or index["table"]), cols)
    return ddl.as_string(conn)


def is_btree(index: dict[str, Any] | None) -> bool:
    return bool(index) and "using" not in index and "opclasses" not in index


class Runner:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def plan(self, case: dict[str, Any], mode: str) -> dict[str, Any]:
        stmt = case["statement"]
        params = case.get("params")
        self.conn.execute(sql.SQL("SET plan_cache_mode = {}").format(sql.Literal(mode)))
        if params is None:
            row = self.conn.execute("EXPLAIN (FORMAT JSON) " + stmt).fetchone()
        else:
            self.conn.execute("PREPARE p AS " + stmt)
            try:
                args = sql.SQL(", ").join(sql.Literal(v) for v in params)
                explain = sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE p({})").format(args)
                row = self.conn.execute(explain).fetchone()
            finally:
                self.conn.execute("DEALLOCATE p")
        assert row is not None
        return row[0][0]["Plan"]

    def cost(self, case: dict[str, Any]) -> tuple[float, str]:
        plan = self.plan(case, "force_custom_plan")
        return round(float(plan["Total Cost"]), 2), json.dumps(plan)

    def hypo(self, ddl: str) -> str:
        row = self.conn.execute("SELECT indexname FROM hypopg_create_index(%s)", (ddl,)).fetchone()
        assert row is not None
        return str(row[0])

    def measure(self, case: dict[str, Any], index: dict[str, Any]) -> dict[str, Any]:
        before, _ = self.cost(case)
        names: list[str] = []
        via = None
        try:
            names.append(self.hypo(index_ddl(self.conn, index)))
        except psycopg.Error:
            # hypopg cannot index a partitioned parent: index every leaf partition instead,
            # which is what CREATE INDEX on the parent does.
            leaves = self.conn.execute(
                "SELECT n.nspname || '.' || c.relname FROM pg_partition_tree(%s::regclass) t"
                " JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE t.isleaf ORDER BY 1",
                (qualified(index["table"]).as_string(self.conn),),
            ).fetchall()
            if not leaves:
                raise
            for (leaf,) in leaves:
                names.append(self.hypo(index_ddl(self.conn, index, leaf)))
            via = "hypothetical index on each partition: " + ", ".join(leaf for (leaf,) in leaves)
        try:
            after, plan = self.cost(case)
        finally:
            self.conn.execute("SELECT hypopg_reset()")
        used = any(n in plan for n in names)
        result: dict[str, Any] = {"before": before, "after": after, "index_used": used}
        if via:
            result["via"] = via
        return result

    def check(self, case: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Returns (status line, fields to store)."""
        out: dict[str, Any] = {}
        if case.get("expect_error"):
            want = ERROR_CLASSES[case["expect_error"]]
            try:
                self.plan(case, "force_generic_plan")
            except psycopg.Error as exc:
                got = exc.sqlstate
                ok = got == want
                return (f"{'ok ' if ok else 'BAD'} error {got} (want {want})", out)
            return (f"BAD statement unexpectedly valid (want error {want})", out)
        if case.get("explainable") is False:
            with self.conn.transaction(force_rollback=True):
                self.conn.execute(case["statement"])
            return ("ok  runs (not explainable)", out)
        # validity with a generic plan (placeholders stay placeholders)
        self.plan(case, "force_generic_plan")
        parts = ["ok  explain"]
        expected, peer = case.get("expected"), case.get("peer_expected")
        if is_btree(expected):  # HypoPG builds B-trees only: a trigram answer stays unmeasured
            out["measured"] = m = self.measure(case, expected)
            parts.append(f"expected {m['before']} -> {m['after']} used={m['index_used']}")
        if is_btree(peer) and peer != expected and not peer.get("covered_by_existing"):
            out["measured_peer"] = m = self.measure(case, peer)
            parts.append(f"peer {m['before']} -> {m['after']} used={m['index_used']}")
        if case.get("probe"):
            out["measured_probe"] = m = self.measure(case, case["probe"])
            parts.append(f"probe {m['before']} -> {m['after']} used={m['index_used']}")
        for alt in case.get("also_acceptable") or []:
            if is_btree(alt):
                m = self.measure(case, alt)
                out.setdefault("measured_also", []).append(m)
                parts.append(f"also {m['before']} -> {m['after']} used={m['index_used']}")
        target = expected if is_btree(expected) else case.get("probe")
        if case.get("measure_without") and target:
            # The same measurement with some existing indexes dropped (rolled back afterwards),
            # to show what the case means on a schema without them.
            with self.conn.transaction(force_rollback=True):
                for name in case["measure_without"]:
                    self.conn.execute(sql.SQL("DROP INDEX {}").format(qualified(name)))
                m = self.measure(case, target)
            out["measured_without_existing"] = m
            parts.append(f"without {m['before']} -> {m['after']} used={m['index_used']}")
        if not (is_btree(expected) or case.get("probe")):
            before, _ = self.cost(case)
            parts.append(f"cost {before}")
        return ("  ".join(parts), out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="store measured* fields in the YAML files")
    args = parser.parse_args()

    failures = 0
    with ThrowawayPostgres() as pg:
        started = time.monotonic()
        psql = os.path.join(pg.bindir, "psql")
        load = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", os.path.join(HERE, "schema.sql"), pg.dsn()],
            capture_output=True,
            text=True,
        )
        elapsed = time.monotonic() - started
        if load.returncode:
            print(load.stdout, load.stderr)
            return 1
        print(f"schema.sql loaded in {elapsed:.1f}s on PostgreSQL {pg.version_num}")
        with psycopg.connect(pg.dsn(), autocommit=True, prepare_threshold=None) as conn:
            runner = Runner(conn)
            for name in CASE_FILES:
                path = os.path.join(HERE, name)
                with open(path) as fh:
                    cases = yaml.safe_load(fh)
                print(f"\n{name}: {len(cases)} cases")
                for case in cases:
                    for key in (
                        "measured",
                        "measured_peer",
                        "measured_probe",
                        "measured_also",
                        "measured_without_existing",
                    ):
                        case.pop(key, None)
                    try:
                        status, fields = runner.check(case)
                    except psycopg.Error as exc:
                        status, fields = f"BAD {type(exc).__name__}: {exc}".replace("\n", " "), {}
                    if status.startswith("BAD"):
                        failures += 1
                    case.update(fields)
                    print(f"  {case['id']:<36} {status}")
                if args.write:
                    with open(path, "w") as fh:
                        fh.write(HEADERS[name])
                        yaml.safe_dump(
                            cases,
                            fh,
                            sort_keys=False,
                            width=1000,
                            default_flow_style=None,
                            allow_unicode=True,
                        )
    print(f"\n{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
