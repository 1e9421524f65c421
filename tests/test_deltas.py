"""Delta rules: no negatives, no spikes, evictions and resets start from zero."""

from __future__ import annotations

from collectors.deltas import counter_delta, statement_deltas, vanished_keys
from dashboard.redaction import describe_dsn, redact
from dashboard.store.records import StatementEntry, StatementKey

A = StatementKey(1, 10, 100, True)
B = StatementKey(2, 10, 100, True)


def entry(key: StatementKey, calls: float, ms: float) -> StatementEntry:
    return StatementEntry(key, (calls, ms))


def test_counter_delta() -> None:
    assert counter_delta(None, 5) is None  # no baseline: no spike on the first reading
    assert counter_delta(5, 8) == 3
    assert counter_delta(8, 2) == 2  # went down: reset, everything since is new
    assert counter_delta(5, 9, reset=True) == 9


def test_first_snapshot_is_only_a_baseline() -> None:
    deltas, changed = statement_deltas({}, [entry(A, 5, 1.0)], has_baseline=False)
    assert deltas == [] and [e.key for e in changed] == [A]


def test_moved_unmoved_new_and_vanished() -> None:
    previous = {A: ((5, 1.0), True), B: ((7, 2.0), True)}
    new = StatementKey(3, 10, 100, True)
    deltas, changed = statement_deltas(previous, [entry(A, 9, 1.5), entry(new, 2, 0.4)], has_baseline=True)
    assert {d.key: d.deltas for d in deltas} == {A: (4, 0.5), new: (2, 0.4)}
    assert {e.key for e in changed} == {A, new}
    assert vanished_keys(previous, {A, new}) == [B]
    assert vanished_keys({A: ((5, 1.0), False)}, set()) == []  # gone already: not again
    assert vanished_keys(previous, {A}, among=[A, new]) == []  # only where told to look


def test_unmoved_entry_is_not_rewritten() -> None:
    deltas, changed = statement_deltas({A: ((5, 1.0), True)}, [entry(A, 5, 1.0)], has_baseline=True)
    assert deltas == [] and changed == []


def test_entry_reset_alone_counts_from_zero() -> None:
    deltas, _ = statement_deltas({A: ((50, 9.0), True)}, [entry(A, 3, 0.3)], has_baseline=True)
    assert deltas[0].deltas == (3, 0.3)


def test_evicted_entry_that_returns_counts_from_zero() -> None:
    # It vanished (present=False); its counters restarted, even if now above the old ones.
    deltas, changed = statement_deltas({A: ((5, 1.0), False)}, [entry(A, 8, 2.0)], has_baseline=True)
    assert deltas[0].deltas == (8, 2.0) and changed[0].key == A


def test_global_reset_counts_everything_from_zero() -> None:
    deltas, _ = statement_deltas({A: ((5, 1.0), True)}, [entry(A, 9, 3.0)], has_baseline=True, reset_all=True)
    assert deltas[0].deltas == (9, 3.0)


def test_passwords_are_redacted() -> None:
    assert redact("postgresql://monitor:s3cr3t@db1/erp failed") == "postgresql://monitor:***@db1/erp failed"
    assert redact("host=db1 password='a b' user=x") == "host=db1 password=*** user=x"
    assert redact("auth failed for hunter2", "hunter2") == "auth failed for ***"
    assert describe_dsn("postgresql://monitor:s3cr3t@db1:5433/erp") == "monitor@db1:5433/erp"
