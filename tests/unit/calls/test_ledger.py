"""The call ledger: each call counted once across both sources, bounded in every dimension."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import pytest

from exporter.api.records import CallRecord
from exporter.calls import counts
from exporter.calls import ledger as ledger_module
from exporter.calls.counts import (
    CLOCK_SLACK_SECONDS,
    COUNTED,
    DUPLICATE,
    MAX_HANGUPS,
    MAX_INTENTS,
    MAX_WINDOW_SECONDS,
    POLL,
    PUSH,
    REJECTED,
    RESULT_STATUSES,
    AppCalls,
)
from exporter.calls.ledger import CallLedger
from exporter.config.model import Account, CallsConfig, Config, PushConfig
from tests.support.clock import FakeClock

APP, OTHER_APP = "APP1", "APP2"
LOOKBACK = 900.0


def config(
    apps: tuple[str, ...] = (APP, OTHER_APP),
    *,
    polled: bool = True,
    pushed: bool = True,
    per_task: bool = True,
) -> Config:
    return Config(
        accounts=(Account("key", "secret", apps),),
        calls=CallsConfig(enabled=polled, lookback_seconds=LOOKBACK, per_task=per_task),
        push=PushConfig(listen_address="127.0.0.1:0", token="t" * 16) if pushed else PushConfig(),
    )


def record(call_id: str = "1", **changes: Any) -> CallRecord:
    base = CallRecord(
        call_id=call_id,
        app_id=APP,
        job_id="20",
        result="ANSWERED",
        talk_seconds=42.0,
        billed_seconds=60.0,
        cost=None,
        hangup_by="REMOTE_HANGUP",
        intent="A",
    )
    return replace(base, **changes)


def push_body(call_id: str = "1", **fields: Any) -> bytes:
    document = {
        "callId": call_id,
        "appId": APP,
        "robotCallJobId": 20,
        "resultStatus": "ANSWERED",
        "chatDuration": 42,
        "billingTime": 60,
        "pay": "0.05",
        "hangupBy": "REMOTE_HANGUP",
        "intentLevelDetailName": "A",
        **fields,
    }
    return json.dumps(document).encode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def ledger(clock: FakeClock) -> CallLedger:
    ledger = CallLedger(config(), clock=clock)
    ledger.read_succeeded(APP, clock(), [])  # Primed: later reads count.
    ledger.read_succeeded(OTHER_APP, clock(), [])
    return ledger


def app(ledger: CallLedger, app_id: str = APP) -> AppCalls:
    return next(calls for calls in ledger.snapshot().apps if calls.app_id == app_id)


def test_documented_results_start_at_zero() -> None:
    fresh = app(CallLedger(config()))
    assert dict(fresh.results) == dict.fromkeys(RESULT_STATUSES, 0)


def test_a_call_counts_in_every_family(ledger: CallLedger) -> None:
    ledger.read_succeeded(APP, 0, [record()])
    counted = app(ledger)
    assert counted.results["ANSWERED"] == 1
    assert counted.talk_buckets[-1] == 1 and counted.talk_sum == 42.0
    assert counted.billed_seconds == 60.0
    assert dict(counted.hangups) == {"REMOTE_HANGUP": 1}
    assert dict(counted.intents) == {"none": 0, "A": 1}
    assert dict(counted.task_results) == {"20": {"ANSWERED": 1}}
    assert counted.records[(POLL, COUNTED)] == 1


def test_talk_time_counts_answered_calls_only(ledger: CallLedger) -> None:
    ledger.read_succeeded(APP, 0, [record("1", result="BUSY", talk_seconds=9.0)])
    ledger.read_succeeded(APP, 0, [record("2", result="TRANSFER_ARTIFICIAL", talk_seconds=7.0)])
    counted = app(ledger)
    assert counted.talk_buckets[-1] == 1 and counted.talk_sum == 7.0


def test_talk_time_lands_in_its_bucket(ledger: CallLedger) -> None:
    ledger.read_succeeded(APP, 0, [record(talk_seconds=45.0)])
    buckets = dict(zip(counts.TALK_BUCKETS, app(ledger).talk_buckets, strict=False))
    assert (buckets[30.0], buckets[45.0]) == (0, 1)


def test_a_call_pushed_then_polled_counts_once(ledger: CallLedger) -> None:
    assert ledger.receive_push(push_body("7")) == 200
    ledger.read_succeeded(APP, 0, [record("7")])
    counted = app(ledger)
    assert counted.results["ANSWERED"] == 1
    assert (counted.records[(PUSH, COUNTED)], counted.records[(POLL, DUPLICATE)]) == (1, 1)


def test_a_call_pushed_twice_counts_once(ledger: CallLedger) -> None:
    ledger.receive_push(push_body("7"))
    assert ledger.receive_push(push_body("7")) == 200
    counted = app(ledger)
    assert counted.results["ANSWERED"] == 1
    assert counted.records[(PUSH, DUPLICATE)] == 1


def test_a_polled_call_gets_its_cost_from_its_push_once(ledger: CallLedger) -> None:
    ledger.read_succeeded(APP, 0, [record("7")])
    ledger.receive_push(push_body("7", pay="0.25"))
    ledger.receive_push(push_body("7", pay="0.25"))
    counted = app(ledger)
    assert dict(counted.cost) == {"USD": 0.25}
    assert (counted.results["ANSWERED"], counted.billed_seconds) == (1, 60.0)


def test_the_first_read_only_remembers(clock: FakeClock) -> None:
    ledger = CallLedger(config(), clock=clock)
    ledger.read_succeeded(APP, clock(), [record("1"), record("2")])
    first = app(ledger)
    assert sum(first.results.values()) == 0
    assert first.records[(POLL, DUPLICATE)] == 2
    ledger.read_succeeded(APP, clock(), [record("2"), record("3")])
    assert sum(app(ledger).results.values()) == 1


def test_a_push_of_a_call_the_first_read_remembered_is_a_duplicate(clock: FakeClock) -> None:
    ledger = CallLedger(config(), clock=clock)
    ledger.read_succeeded(APP, clock(), [record("1")])
    ledger.receive_push(push_body("1"))
    counted = app(ledger)
    assert sum(counted.results.values()) == 0 and dict(counted.cost) == {"USD": 0.0}
    assert counted.records[(PUSH, DUPLICATE)] == 1


def test_pushes_count_before_the_first_read(clock: FakeClock) -> None:
    ledger = CallLedger(config(), clock=clock)
    ledger.receive_push(push_body("1"))
    ledger.read_succeeded(APP, clock(), [record("1"), record("2")])
    assert app(ledger).results["ANSWERED"] == 1


def test_a_reload_keeps_kept_apps_and_primes_added_ones(clock: FakeClock) -> None:
    ledger = CallLedger(config((APP,)), clock=clock)
    ledger.read_succeeded(APP, clock(), [])
    ledger.read_succeeded(APP, clock(), [record("1")])
    ledger.configure(config((APP, "APP3")))
    ledger.read_succeeded("APP3", clock(), [record("9", app_id="APP3")])
    ledger.read_succeeded(APP, clock(), [record("1"), record("2")])
    assert app(ledger).results["ANSWERED"] == 2
    assert sum(app(ledger, "APP3").results.values()) == 0


def test_a_reload_drops_removed_apps(ledger: CallLedger) -> None:
    ledger.configure(config((OTHER_APP,)))
    assert [calls.app_id for calls in ledger.snapshot().apps] == [OTHER_APP]


def test_a_push_for_an_app_not_in_the_config_is_answered_and_rejected(
    ledger: CallLedger,
) -> None:
    assert ledger.receive_push(push_body("1", appId="STRANGER")) == 200
    snapshot = ledger.snapshot()
    assert dict(snapshot.unattributed) == {(PUSH, REJECTED): 1}
    assert all(sum(calls.results.values()) == 0 for calls in snapshot.apps)


def test_an_unreadable_push_is_refused_and_rejected(ledger: CallLedger) -> None:
    assert ledger.receive_push(b"{not json") == 400
    assert dict(ledger.snapshot().unattributed) == {(PUSH, REJECTED): 1}


def test_each_kind_of_rejection_is_logged_once(
    ledger: CallLedger, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="exporter.calls"):
        for _ in range(3):
            ledger.receive_push(b"[]")
            ledger.reject(POLL, APP, "callId is missing")
    assert len([r for r in caplog.records if "rejected" in r.getMessage()]) == 2
    assert app(ledger).records[(POLL, REJECTED)] == 3


def test_undocumented_results_are_bounded(ledger: CallLedger) -> None:
    strange = [record(str(i), result=f"ODD_{i}") for i in range(counts.MAX_EXTRA_RESULTS + 5)]
    ledger.read_succeeded(APP, 0, strange)
    results = app(ledger).results
    assert len(results) == len(RESULT_STATUSES) + counts.MAX_EXTRA_RESULTS + 1
    assert results[counts.OTHER] == 5


def test_hang_up_parties_are_bounded(ledger: CallLedger) -> None:
    ledger.read_succeeded(APP, 0, [record(str(i), hangup_by=f"H{i}") for i in range(30)])
    hangups = app(ledger).hangups
    assert len(hangups) == MAX_HANGUPS + 1 and hangups[counts.OTHER] == 10


def test_intents_are_bounded_and_empty_is_none(ledger: CallLedger) -> None:
    many = [record(str(i), intent=f"I{i}") for i in range(MAX_INTENTS + 3)]
    ledger.read_succeeded(APP, 0, [*many, record("x", intent="")])
    intents = app(ledger).intents
    assert intents[counts.NO_INTENT] == 1
    assert len(intents) == 1 + MAX_INTENTS + 1 and intents[counts.OTHER] == 3


def test_the_first_window_reaches_the_lookback_back(ledger: CallLedger, clock: FakeClock) -> None:
    fresh = CallLedger(config(), clock=clock)
    assert fresh.window(APP) == (int(clock() - LOOKBACK), int(clock()))


def test_windows_overlap_the_last_window_read_whole(ledger: CallLedger, clock: FakeClock) -> None:
    _, end = ledger.window(APP)
    ledger.read_succeeded(APP, end, [])
    clock.now += 3 * LOOKBACK  # Reads failed meanwhile.
    start, _ = ledger.window(APP)
    assert start == end - LOOKBACK


def test_a_window_never_spans_more_than_a_day(ledger: CallLedger, clock: FakeClock) -> None:
    clock.now += 3 * MAX_WINDOW_SECONDS
    start, end = ledger.window(APP)
    assert end - start == MAX_WINDOW_SECONDS


def test_ids_are_remembered_while_a_window_can_bring_them(
    ledger: CallLedger, clock: FakeClock
) -> None:
    ledger.read_succeeded(APP, clock(), [record("1")])
    clock.now += LOOKBACK
    ledger.read_succeeded(APP, clock(), [record("1")])
    assert app(ledger).results["ANSWERED"] == 1


def test_ids_are_forgotten_once_no_window_can_bring_them(
    ledger: CallLedger, clock: FakeClock
) -> None:
    ledger.read_succeeded(APP, clock(), [record("1")])
    clock.now += LOOKBACK + CLOCK_SLACK_SECONDS + 1
    ledger.read_succeeded(APP, clock(), [])  # Forgets.
    ledger.read_succeeded(APP, clock(), [record("1")])
    assert app(ledger).results["ANSWERED"] == 2


def test_a_full_ledger_forgets_its_oldest_and_says_so(
    ledger: CallLedger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ledger_module, "MAX_REMEMBERED_CALLS", 3)
    with caplog.at_level(logging.WARNING, logger="exporter.calls"):
        ledger.read_succeeded(APP, 0, [record(str(i)) for i in range(5)])
        ledger.read_succeeded(APP, 0, [record("4"), record("0")])
    assert app(ledger).results["ANSWERED"] == 6  # "0" was forgotten, "4" was not.
    assert len([r for r in caplog.records if "Too many calls" in r.getMessage()]) == 1


def test_calls_up_follows_the_latest_read(ledger: CallLedger) -> None:
    ledger.read_failed(APP)
    assert app(ledger).up is False
    ledger.read_succeeded(APP, 0, [])
    assert app(ledger).up is True


def test_calls_up_is_absent_when_record_query_is_not_polled() -> None:
    assert app(CallLedger(config(polled=False))).up is None


def test_per_task_counts_are_dropped_with_their_task(ledger: CallLedger) -> None:
    ledger.read_succeeded(APP, 0, [record("1", job_id="20"), record("2", job_id="21")])
    ledger.keep_tasks(APP, {"21"})
    assert set(app(ledger).task_results) == {"21"}
    ledger.keep_tasks(APP, None)
    assert dict(app(ledger).task_results) == {}


def test_per_task_counts_are_off_with_calls_per_task_false(clock: FakeClock) -> None:
    ledger = CallLedger(config(per_task=False), clock=clock)
    ledger.receive_push(push_body("1"))
    counted = app(ledger)
    assert counted.results["ANSWERED"] == 1 and dict(counted.task_results) == {}


def test_the_vendors_push_answers_start_at_zero_and_are_bounded(ledger: CallLedger) -> None:
    expected = {(counts.VENDOR, code): 0 for code in counts.PUSH_CODES}
    assert dict(ledger.snapshot().push_requests or {}) == expected
    for status in range(500, 540):
        ledger.push_answered(status)
    codes = ledger.snapshot().push_requests or {}
    assert len(codes) == counts.MAX_PUSH_CODES + 1 and codes[(counts.VENDOR, counts.OTHER)] > 0


def test_with_peers_503_to_the_vendor_and_every_answer_to_a_peer_start_at_zero() -> None:
    peers = ("http://a:1", "http://b:1")
    ledger = CallLedger(replace(config(), push=replace(config().push, peers=peers)))
    answers = dict(ledger.snapshot().push_requests or {})
    assert answers == {
        **{(counts.VENDOR, code): 0 for code in (*counts.PUSH_CODES, "503")},
        **{(counts.PEER, code): 0 for code in (*counts.PUSH_CODES, "421")},
    }


def test_an_answer_to_a_forwarded_push_is_counted_apart_from_the_vendors(
    ledger: CallLedger,
) -> None:
    ledger.push_answered(200)
    ledger.push_answered(200, forwarded=True)
    ledger.push_answered(200, forwarded=True)
    answers = ledger.snapshot().push_requests or {}
    assert (answers[(counts.VENDOR, "200")], answers[(counts.PEER, "200")]) == (1, 2)


def test_push_answers_are_absent_when_the_push_is_off() -> None:
    assert CallLedger(config(pushed=False)).snapshot().push_requests is None


def test_no_source_no_apps() -> None:
    assert CallLedger(config(polled=False, pushed=False)).snapshot().apps == ()


def test_an_unchanged_app_keeps_its_snapshot(ledger: CallLedger) -> None:
    before = app(ledger, OTHER_APP)
    ledger.receive_push(push_body("1"))
    assert app(ledger, OTHER_APP) is before
    assert ledger.snapshot() is ledger.snapshot()


def test_costs_add_up_exactly(ledger: CallLedger) -> None:
    for call_id in ("1", "2", "3"):
        ledger.receive_push(push_body(call_id, pay="0.1"))
    assert app(ledger).cost["USD"] == 0.3  # Floats would make it 0.30000000000000004.


def test_a_changed_currency_counts_on_in_the_new_one(ledger: CallLedger) -> None:
    ledger.receive_push(push_body("1", pay="0.5"))
    ledger.configure(replace(config(), push=replace(config().push, currency="EUR")))
    ledger.receive_push(push_body("2", pay="0.25"))
    assert dict(app(ledger).cost) == {"USD": 0.5, "EUR": 0.25}


def test_a_gap_longer_than_a_window_is_logged_once(
    ledger: CallLedger, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    clock.now += 2 * MAX_WINDOW_SECONDS
    with caplog.at_level(logging.WARNING, logger="exporter.calls"):
        ledger.window(APP)
        ledger.read_failed(APP)
        ledger.window(APP)
    assert len([r for r in caplog.records if "longest window" in r.getMessage()]) == 1


# ---- the state a restart resumes from (exporter.storage keeps it on disk)


def restarted(ledger: CallLedger, clock: FakeClock, seconds: float = 60.0) -> CallLedger:
    """A new ledger, `seconds` later, seeded with what `ledger` exported."""
    states = [ledger.export(app_id) for app_id in (APP, OTHER_APP)]
    clock.now += seconds
    fresh = CallLedger(config(), clock=clock)
    fresh.restore(state for state in states if state is not None)
    return fresh


def test_a_restored_app_counts_the_calls_it_has_not_seen_and_none_it_has(
    ledger: CallLedger, clock: FakeClock
) -> None:
    ledger.read_succeeded(APP, clock(), [record("1"), record("2")])
    assert app(ledger).results["ANSWERED"] == 2
    resumed = restarted(ledger, clock)
    resumed.read_succeeded(APP, clock(), [record("1"), record("2"), record("3")])
    counted = app(resumed)
    assert counted.results["ANSWERED"] == 1  # "3", which ended while it was down.
    assert counted.records[(POLL, DUPLICATE)] == 2


def test_a_restored_app_reads_from_lookback_before_the_last_window(
    ledger: CallLedger, clock: FakeClock
) -> None:
    ledger.read_succeeded(APP, clock(), [])
    end = clock()
    resumed = restarted(ledger, clock, seconds=600)
    assert resumed.window(APP) == (end - LOOKBACK, clock())
    fresh = CallLedger(config(), clock=clock)  # Without a state: the lookback before now.
    assert fresh.window(APP) == (clock() - LOOKBACK, clock())


def test_a_state_older_than_the_longest_window_is_read_from_what_is_left_and_logged_once(
    ledger: CallLedger, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    resumed = restarted(ledger, clock, seconds=2 * MAX_WINDOW_SECONDS)
    with caplog.at_level(logging.WARNING, logger="exporter.calls"):
        assert resumed.window(APP) == (clock() - MAX_WINDOW_SECONDS, clock())
        resumed.window(APP)
    assert len([r for r in caplog.records if "longest window" in r.getMessage()]) == 1


def test_a_push_of_a_restored_call_adds_its_cost_once(ledger: CallLedger, clock: FakeClock) -> None:
    ledger.read_succeeded(APP, clock(), [record("1"), record("2")])
    ledger.receive_push(push_body("2", pay="0.5"))
    resumed = restarted(ledger, clock)
    resumed.receive_push(push_body("1", pay="0.25"))  # Its cost was never counted.
    resumed.receive_push(push_body("2", pay="0.5"))  # Its cost was.
    counted = app(resumed)
    assert sum(counted.results.values()) == 0
    assert dict(counted.cost) == {"USD": 0.25}
    assert counted.records[(PUSH, DUPLICATE)] == 2


def test_pushed_calls_are_remembered_before_the_first_read(clock: FakeClock) -> None:
    ledger = CallLedger(config(), clock=clock)
    ledger.receive_push(push_body("1"))
    state = ledger.export(APP)
    assert state is not None and state.covered_until is None and len(state.calls) == 1
    resumed = restarted(ledger, clock)
    resumed.receive_push(push_body("1"))
    resumed.read_succeeded(APP, clock(), [record("1"), record("2")])  # Still only remembers.
    resumed.read_succeeded(APP, clock(), [record("1"), record("2"), record("3")])
    assert sum(app(resumed).results.values()) == 1


def test_restored_calls_are_forgotten_by_age(ledger: CallLedger, clock: FakeClock) -> None:
    ledger.read_succeeded(APP, clock(), [record("1")])
    resumed = restarted(ledger, clock)
    clock.now += LOOKBACK + CLOCK_SLACK_SECONDS + 1
    resumed.read_succeeded(APP, clock(), [])  # Forgets.
    resumed.read_succeeded(APP, clock(), [record("1")])
    assert app(resumed).results["ANSWERED"] == 1
    state = resumed.export(APP)
    assert state is not None and len(state.calls) == 1


def test_the_export_holds_digests_of_the_ids_and_nothing_else_of_a_record(
    ledger: CallLedger, clock: FakeClock
) -> None:
    ledger.read_succeeded(APP, clock(), [record("123456")])
    state = ledger.export(APP)
    assert state is not None
    assert state.covered_until == clock()
    assert [call.digest for call in state.calls] == [counts.call_digest("123456")]
    assert b"123456" not in state.calls[0].digest
    assert counts.call_digest("123456") != counts.call_digest("123457")


def test_the_export_is_skipped_while_the_app_is_unchanged(
    ledger: CallLedger, clock: FakeClock
) -> None:
    first = ledger.export(APP)
    assert first is not None
    assert ledger.export(APP, unless=first.generation) is None
    ledger.receive_push(push_body("1"))
    assert ledger.export(APP, unless=first.generation) is not None
    assert ledger.export("NOT_CONFIGURED") is None


def test_a_state_for_an_app_not_in_the_config_is_ignored(
    ledger: CallLedger, clock: FakeClock
) -> None:
    ledger.read_succeeded(APP, clock(), [record("1")])
    state = ledger.export(APP)
    assert state is not None
    fresh = CallLedger(config((OTHER_APP,)), clock=clock)
    fresh.restore([state])
    assert [calls.app_id for calls in fresh.snapshot().apps] == [OTHER_APP]
    assert fresh.export(OTHER_APP) == counts.AppResume(OTHER_APP, None, ())


def test_a_restored_full_ledger_keeps_its_newest(
    ledger: CallLedger, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "MAX_REMEMBERED_CALLS", 3)
    for call_id in "12345":
        ledger.read_succeeded(APP, clock(), [record(call_id)])
        clock.now += 1
    resumed = restarted(ledger, clock)
    resumed.read_succeeded(APP, clock(), [record(call_id) for call_id in "2345"])
    assert app(resumed).results["ANSWERED"] == 1  # "2" was forgotten before the restart.
