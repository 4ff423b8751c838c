"""The calls recordQuery has listed, by the seconds they started and ended."""

from __future__ import annotations

from exporter.api.records import CallRecord
from exporter.calls.known import END, START, KnownCalls


def record(call_id: str, start: float | None, end: float | None) -> CallRecord:
    return CallRecord(
        call_id, "APP", "", "", 0, 0, None, "", "", start_seconds=start, end_seconds=end
    )


def test_counts_include_both_ends_of_a_window() -> None:
    known = KnownCalls(100)
    known.add([record("1", 10, 20), record("2", 15, 25), record("3", 20, 30)])
    assert known.count(START, 10, 15) == 2
    assert known.count(END, 20, 25) == 2
    assert known.count(END, 21, 24) == 0


def test_a_call_listed_twice_counts_once() -> None:
    known = KnownCalls(100)
    known.add([record("1", 10, 20), record("1", 10, 20)])
    assert known.count(END, 0, 100) == 1


def test_a_call_without_readable_times_is_not_known() -> None:
    known = KnownCalls(100)
    known.add([record("1", None, 20), record("2", 10, None)])
    assert len(known) == 0


def test_calls_that_ended_before_a_second_are_forgotten() -> None:
    known = KnownCalls(1000)
    known.add([record(str(n), n, n + 5) for n in range(200)])
    known.forget_before(150)
    assert known.count(END, 0, 149) == 0 and known.count(END, 150, 300) == 55


def test_a_full_index_takes_no_more_calls() -> None:
    known = KnownCalls(2)
    known.add([record(str(n), n, n) for n in range(5)])
    assert len(known) == 2 and known.overflowed


def test_the_middle_splits_the_known_calls_of_a_window() -> None:
    known = KnownCalls(100)
    known.add([record(str(n), n, n) for n in range(10, 20)])
    middle = known.middle(END, 0, 100)
    assert known.count(END, 0, middle) in (5, 6)
