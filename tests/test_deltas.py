"""Delta rules: no negatives, no spikes, evictions and resets start from zero."""

from __future__ import annotations

import numpy as np

from collectors.deltas import LastCounters, counter_delta
from dashboard.core.records import StatementDelta, StatementEntry, StatementKey
from dashboard.core.redaction import describe_dsn, redact

A = StatementKey(1, 10, 100, True)
B = StatementKey(2, 10, 100, True)


def entry(key: StatementKey, calls: float, ms: float) -> StatementEntry:
    return StatementEntry(key, (calls, ms))


def advance(last: LastCounters, entries: list[StatementEntry], **kwargs) -> tuple[list, list]:
    """(the deltas of the entries that moved, the entries to save), as records."""
    keys = [e.key for e in entries]
    before = {k for k in keys if k in last}
    change = last.advance(keys, np.array([e.counters for e in entries], dtype=float), **kwargs)
    assert change.new.tolist() == [k not in before for k in keys]
    return (
        [StatementDelta(keys[i], tuple(change.deltas[i].tolist())) for i in np.flatnonzero(change.moved)],
        [entries[i] for i in np.flatnonzero(change.save)],
    )


def test_counter_delta() -> None:
    assert counter_delta(None, 5) is None  # no baseline: no spike on the first reading
    assert counter_delta(5, 8) == 3
    assert counter_delta(8, 2) == 2  # went down: reset, everything since is new
    assert counter_delta(5, 9, reset=True) == 9


def table(saved: dict) -> LastCounters:
    return LastCounters(2, saved)


def test_first_snapshot_is_only_a_baseline() -> None:
    last = table({})
    deltas, changed = advance(last, [entry(A, 5, 1.0)], has_baseline=False)
    assert deltas == [] and [e.key for e in changed] == [A]
    assert last.get(A) == ((5.0, 1.0), True)  # remembered for the next cycle


def test_moved_unmoved_new_and_vanished() -> None:
    last = table({A: ((5, 1.0), True), B: ((7, 2.0), True)})
    new = StatementKey(3, 10, 100, True)
    deltas, changed = advance(last, [entry(A, 9, 1.5), entry(new, 2, 0.4)], has_baseline=True)
    assert {d.key: d.deltas for d in deltas} == {A: (4, 0.5), new: (2, 0.4)}
    assert {e.key for e in changed} == {A, new}
    assert last.vanished({A, new}) == [B]
    assert last.get(B) == ((7.0, 2.0), False)
    assert last.vanished(set()) == [A, new]  # B is gone already: not again
    deltas, _ = advance(last, [entry(A, 10, 1.5)], has_baseline=True)  # the next cycle
    assert deltas[0].deltas == (10, 1.5)  # A vanished in between: it counts from zero


def test_unmoved_entry_is_not_rewritten() -> None:
    deltas, changed = advance(table({A: ((5, 1.0), True)}), [entry(A, 5, 1.0)], has_baseline=True)
    assert deltas == [] and changed == []


def test_entry_reset_alone_counts_from_zero() -> None:
    deltas, _ = advance(table({A: ((50, 9.0), True)}), [entry(A, 3, 0.3)], has_baseline=True)
    assert deltas[0].deltas == (3, 0.3)


def test_evicted_entry_that_returns_counts_from_zero() -> None:
    # It vanished (present=False); its counters restarted, even if now above the old ones.
    deltas, changed = advance(table({A: ((5, 1.0), False)}), [entry(A, 8, 2.0)], has_baseline=True)
    assert deltas[0].deltas == (8, 2.0) and changed[0].key == A


def test_global_reset_counts_everything_from_zero() -> None:
    last = table({A: ((5, 1.0), True)})
    deltas, _ = advance(last, [entry(A, 9, 3.0)], has_baseline=True, reset_all=True)
    assert deltas[0].deltas == (9, 3.0)


def test_state_saved_with_other_counters_is_not_a_baseline() -> None:
    # A store written by a version that kept 3 counters: those rows are unknown, not garbage.
    last = LastCounters(2, {A: ((5, 1.0, 7), True), B: ((1, 1.0), True)})
    assert A not in last and B in last
    assert last.present_keys() == [B]


def test_many_entries_grow_the_table() -> None:
    keys = [StatementKey(i, 1, 1, True) for i in range(1000)]
    last = table({})
    advance(last, [entry(k, 1, 0.5) for k in keys], has_baseline=False)
    deltas, _ = advance(last, [entry(k, 3, 0.5) for k in keys[::2]], has_baseline=True)
    assert len(deltas) == 500 and {d.deltas for d in deltas} == {(2, 0.0)}
    assert last.get(keys[999]) == ((1.0, 0.5), True)


def test_passwords_are_redacted() -> None:
    assert redact("postgresql://monitor:s3cr3t@db1/erp failed") == "postgresql://monitor:***@db1/erp failed"
    assert redact("host=db1 password='a b' user=x") == "host=db1 password=*** user=x"
    assert redact("auth failed for hunter2", "hunter2") == "auth failed for ***"
    assert describe_dsn("postgresql://monitor:s3cr3t@db1:5433/erp") == "monitor@db1:5433/erp"


def test_reset_times_are_compared_to_the_microsecond_and_across_versions() -> None:
    from collectors.postgres.collector import _reset_since

    assert not _reset_since(None, 1795776877.25)  # no earlier reading
    assert not _reset_since(1795776877.25, 1795776877.25)
    assert _reset_since(1795776877.25, 1795776877.75)  # two resets in one second
    assert not _reset_since(1795776877, 1795776877.4)  # saved to the second by an older version
    assert _reset_since(1795776877, 1795776878.1)
