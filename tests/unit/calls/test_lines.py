"""Calls by line: counted once with the app's, bounded, named from channelList when due."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from exporter.api.lines import LineList
from exporter.api.records import CallRecord
from exporter.calls.counts import RESULT_STATUSES, AppCalls
from exporter.calls.ledger import CallLedger
from exporter.calls.lines import OTHER, UNLISTED_RETRY_SECONDS
from exporter.config.model import Account, CallsConfig, Config, PushConfig
from tests.support.clock import FakeClock

APP = "APP1"
REFRESH = 600.0


def config(*, polled: bool = True, max_lines: int = 100) -> Config:
    return Config(
        accounts=(Account("key", "secret", (APP,)),),
        calls=CallsConfig(
            enabled=polled,
            lookback_seconds=900.0,
            lines_refresh_seconds=REFRESH,
            max_lines=max_lines,
        ),
        push=PushConfig(listen_address="127.0.0.1:0", token="t" * 16),
    )


def record(call_id: str, line_id: str = "11", result: str = "ANSWERED") -> CallRecord:
    return CallRecord(call_id, APP, "20", result, 42.0, 60.0, None, "REMOTE_HANGUP", "", line_id)


def push_body(call_id: str, line: Any, result: str = "ANSWERED", pay: str = "0.05") -> bytes:
    document = {
        "callId": call_id,
        "appId": APP,
        "resultStatus": result,
        "tenantPhoneNumberId": line,
        "pay": pay,
    }
    return json.dumps(document).encode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


def primed(clock: FakeClock, **options: Any) -> CallLedger:
    ledger = CallLedger(config(**options), clock=clock)
    ledger.read_succeeded(APP, clock(), [])  # The first read only remembers.
    return ledger


def app(ledger: CallLedger) -> AppCalls:
    (calls,) = ledger.snapshot().apps
    return calls


def per_line(calls: AppCalls) -> dict[str, dict[str, int]]:
    """The lines with calls, and their results with calls."""
    results = calls.lines.results.items()
    return {line: {r: n for r, n in c.items() if n} for line, c in results if any(c.values())}


def summed(calls: AppCalls) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in calls.lines.results.values():
        for result, count in counts.items():
            total[result] = total.get(result, 0) + count
    return total


def test_each_call_counts_once_under_its_line_from_both_sources(clock: FakeClock) -> None:
    ledger = primed(clock)
    ledger.read_succeeded(APP, clock(), [record("1", "11"), record("2", "12", "BUSY")])
    ledger.receive_push(push_body("1", 11))  # the same call, pushed too: counted once
    ledger.receive_push(push_body("3", "12", "NO_ANSWER"))
    ledger.read_succeeded(APP, clock(), [record("3", "12", "NO_ANSWER")])
    assert per_line(app(ledger)) == {"11": {"ANSWERED": 1}, "12": {"BUSY": 1, "NO_ANSWER": 1}}


def test_a_line_id_as_number_and_as_string_is_one_line(clock: FakeClock) -> None:
    ledger = primed(clock)
    ledger.receive_push(push_body("1", 7301))
    ledger.receive_push(push_body("2", "7301"))
    assert per_line(app(ledger)) == {"7301": {"ANSWERED": 2}}


def test_the_sums_over_lines_are_the_app_counts(clock: FakeClock) -> None:
    ledger = primed(clock, max_lines=3)
    results = ("ANSWERED", "BUSY", "FROM_PHONE_ERROR", "ODD_NEW_RESULT")
    records = [record(str(i), str(i % 7), results[i % 4]) for i in range(200)]
    ledger.read_succeeded(APP, clock(), records[:120])
    for i in range(100, 200):
        ledger.receive_push(push_body(str(i), i % 7, results[i % 4]))
    calls = app(ledger)
    assert summed(calls) == dict(calls.results)
    assert sum(calls.results.values()) == 200


def test_a_new_line_starts_every_documented_result_at_zero(clock: FakeClock) -> None:
    ledger = primed(clock)
    ledger.receive_push(push_body("1", 11))
    assert dict(app(ledger).lines.results["11"]) == {
        **dict.fromkeys(RESULT_STATUSES, 0),
        "ANSWERED": 1,
    }


def test_lines_beyond_the_cap_count_as_other(clock: FakeClock) -> None:
    ledger = primed(clock, max_lines=2)
    for i in range(6):
        ledger.receive_push(push_body(str(i), 100 + i))
    ledger.receive_push(push_body("6", 100))  # a line with a slot keeps it
    assert per_line(app(ledger)) == {
        "100": {"ANSWERED": 2},
        "101": {"ANSWERED": 1},
        OTHER: {"ANSWERED": 4},
    }


def test_a_call_with_no_readable_line_counts_as_other(clock: FakeClock) -> None:
    ledger = primed(clock)
    ledger.receive_push(push_body("1", None))
    ledger.receive_push(push_body("2", "9" * 500))
    assert per_line(app(ledger)) == {OTHER: {"ANSWERED": 2}}


def test_each_line_gets_the_cost_of_its_calls(clock: FakeClock) -> None:
    ledger = primed(clock)
    ledger.read_succeeded(APP, clock(), [record("1", "11")])
    ledger.receive_push(push_body("1", 11, pay="0.10"))  # the cost comes with the push only
    ledger.receive_push(push_body("2", 12, pay="0.05"))
    ledger.receive_push(push_body("2", 12, pay="0.05"))  # a duplicate pays nothing more
    cost = app(ledger).lines.cost
    assert {line: dict(c) for line, c in cost.items()} == {"11": {"USD": 0.1}, "12": {"USD": 0.05}}


def test_a_restart_from_the_stored_state_counts_no_line_call_twice(clock: FakeClock) -> None:
    before = primed(clock)
    before.read_succeeded(APP, clock(), [record("1", "11"), record("2", "12")])
    state = before.export(APP)
    assert state is not None
    after = CallLedger(config(), clock=clock)
    after.restore([state])
    clock.now += 60
    after.read_succeeded(APP, clock(), [record("1", "11"), record("2", "12"), record("3", "12")])
    assert per_line(app(after)) == {"12": {"ANSWERED": 1}}


# ---- when channelList is due


def test_lines_are_due_once_the_calls_are_first_read(clock: FakeClock) -> None:
    ledger = CallLedger(config(), clock=clock)
    assert not ledger.lines_due(APP)
    ledger.read_succeeded(APP, clock(), [])
    assert ledger.lines_due(APP)


def test_without_record_reads_lines_are_due_once_a_push_is_counted(clock: FakeClock) -> None:
    ledger = CallLedger(config(polled=False), clock=clock)
    assert not ledger.lines_due(APP)
    ledger.receive_push(push_body("1", 11))
    assert ledger.lines_due(APP)


def test_lines_are_due_again_after_the_refresh_interval(clock: FakeClock) -> None:
    ledger = primed(clock)
    ledger.lines_read(APP, LineList((("11", "+1 555 0100"),)))
    clock.now += REFRESH - 1
    assert not ledger.lines_due(APP)
    clock.now += 1
    assert ledger.lines_due(APP)


def test_an_unlisted_line_makes_them_due_at_most_once_a_minute(clock: FakeClock) -> None:
    ledger = primed(clock)
    ledger.lines_read(APP, LineList((("11", "+1 555 0100"),)))
    ledger.receive_push(push_body("1", 11))
    clock.now += UNLISTED_RETRY_SECONDS
    assert not ledger.lines_due(APP)  # every line named is listed
    ledger.receive_push(push_body("2", 99))
    assert ledger.lines_due(APP)
    ledger.lines_read(APP, LineList((("11", "+1 555 0100"),)))  # still not listed
    ledger.receive_push(push_body("3", 99))
    clock.now += UNLISTED_RETRY_SECONDS - 1
    assert not ledger.lines_due(APP)
    clock.now += 1
    assert ledger.lines_due(APP)


def test_a_failed_read_keeps_the_names_and_the_counts(clock: FakeClock) -> None:
    ledger = primed(clock)
    ledger.receive_push(push_body("1", 11))
    ledger.lines_read(APP, LineList((("11", "+1 555 0100"),)))
    before = app(ledger)
    assert ledger.lines_failed(APP, "-5") is None
    assert ledger.lines_failed(APP, "-5") == "-5"
    after = app(ledger)
    assert dict(after.lines.names) == {"11": "+1 555 0100"}
    assert (after.up, dict(after.results), per_line(after)) == (
        before.up,
        dict(before.results),
        per_line(before),
    )


def test_a_listed_line_starts_every_documented_result_at_zero_before_its_first_call(
    clock: FakeClock,
) -> None:
    ledger = primed(clock)
    ledger.lines_read(APP, LineList((("11", "+1 555 0100"),)))
    assert dict(app(ledger).lines.results["11"]) == dict.fromkeys(RESULT_STATUSES, 0)


def test_listed_lines_take_their_slots_before_calls_on_others(clock: FakeClock) -> None:
    ledger = primed(clock, max_lines=2)
    ledger.lines_read(APP, LineList((("11", "a"), ("12", "b"))))
    ledger.receive_push(push_body("1", 13))
    ledger.receive_push(push_body("2", 12))
    assert per_line(app(ledger)) == {"12": {"ANSWERED": 1}, OTHER: {"ANSWERED": 1}}


def test_names_beyond_the_cap_are_not_kept(clock: FakeClock) -> None:
    ledger = primed(clock, max_lines=2)
    listed = tuple((str(i), f"line {i}") for i in range(5))
    ledger.lines_read(APP, LineList(listed))
    assert dict(app(ledger).lines.names) == {"0": "line 0", "1": "line 1"}


def test_a_line_not_listed_counts_under_its_id_with_no_name(clock: FakeClock) -> None:
    ledger = primed(clock)
    ledger.lines_read(APP, LineList((("11", "+1 555 0100"),)))
    ledger.receive_push(push_body("1", 12))
    calls = app(ledger)
    assert (per_line(calls), dict(calls.lines.names)) == (
        {"12": {"ANSWERED": 1}},
        {"11": "+1 555 0100"},
    )


def test_a_read_replaces_the_names(clock: FakeClock) -> None:
    ledger = primed(clock)
    ledger.lines_read(APP, LineList((("11", "old"), ("12", "gone"))))
    ledger.lines_read(APP, replace(LineList((("11", "new"),)), skipped=1))
    assert dict(app(ledger).lines.names) == {"11": "new"}
