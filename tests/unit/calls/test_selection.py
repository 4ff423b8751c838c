"""What the records show of recordQuery's windows: the time they select by, and their ends."""

from __future__ import annotations

from exporter.api.records import CallRecord
from exporter.calls.known import END, START
from exporter.calls.selection import EDGE_READS, NEITHER, UNKNOWN, Selection


def record(call_id: str, start: int, end: int) -> CallRecord:
    return CallRecord(
        call_id, "APP", "", "", 0, 0, None, "", "", start_seconds=start, end_seconds=end
    )


def nothing_known(field: str, second: int) -> set[str]:
    return set()


def test_nothing_is_known_before_any_read() -> None:
    selection = Selection()
    assert (selection.selects_by, selection.trusted()) == (UNKNOWN, None)


def test_a_record_that_started_before_the_window_rules_out_start_time() -> None:
    selection = Selection()
    selection.learn(100, 200, [record("1", 90, 150)], nothing_known)
    assert selection.selects_by == END


def test_a_record_that_ended_after_the_window_rules_out_end_time() -> None:
    selection = Selection()
    selection.learn(100, 200, [record("1", 150, 210)], nothing_known)
    assert selection.selects_by == START


def test_records_outside_by_both_times_rule_out_both() -> None:
    selection = Selection()
    selection.learn(100, 200, [record("1", 90, 150), record("2", 150, 210)], nothing_known)
    assert (selection.selects_by, selection.trusted()) == (NEITHER, None)


def test_the_time_is_trusted_once_reads_show_both_ends_whole_seconds() -> None:
    selection = Selection()
    selection.learn(100, 200, [record("0", 90, 150)], nothing_known)
    known = {100: {"a", "b"}, 200: {"c"}}

    def at(field: str, second: int) -> set[str]:
        return known.get(second, set()) if field == END else set()

    shown = [record("a", 95, 100), record("b", 99, 100), record("c", 190, 200)]
    for _ in range(EDGE_READS):
        assert selection.trusted() is None
        selection.learn(100, 200, shown, at)
    assert selection.trusted() == END


def test_a_read_that_leaves_out_a_known_call_of_its_last_second_shows_nothing() -> None:
    selection = Selection()
    selection.learn(100, 200, [record("0", 90, 150)], nothing_known)

    def at(field: str, second: int) -> set[str]:
        return {"a", "c"} if second == 200 else {"b"}

    # "c" ended in the window's last second but the API left it out: an end not included,
    # or finer times than seconds. Windows must then be read whole.
    for _ in range(2 * EDGE_READS):
        selection.learn(100, 200, [record("a", 95, 200), record("b", 95, 100)], at)
    assert selection.trusted() is None
