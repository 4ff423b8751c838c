"""The request recorder: counts that survive, and label values that stay bounded."""

from __future__ import annotations

import pytest

from exporter.api.stats import (
    INITIAL_ERROR_CODES,
    MAX_EXTRA_CODES,
    RECORD_QUERY,
    TASK_LIST,
    RequestRecorder,
)


def test_every_documented_code_starts_at_zero() -> None:
    recorder = RequestRecorder()
    recorder.track(["A"], [TASK_LIST])
    errors = recorder.snapshot(["A"])["A"].endpoints[TASK_LIST].errors
    assert {code: errors[code] for code in INITIAL_ERROR_CODES} == dict.fromkeys(
        INITIAL_ERROR_CODES, 0
    )


def test_undocumented_codes_beyond_the_bound_count_as_other() -> None:
    recorder = RequestRecorder()
    for n in range(MAX_EXTRA_CODES + 15):
        recorder.observe("A", 0.1, f"-{1000 + n}")
    errors = recorder.snapshot(["A"])["A"].endpoints[TASK_LIST].errors
    assert len(errors) == len(INITIAL_ERROR_CODES) + MAX_EXTRA_CODES + 1
    assert errors["other"] == 15
    assert sum(errors.values()) == MAX_EXTRA_CODES + 15


def test_one_apps_codes_never_use_up_anothers_bound() -> None:
    recorder = RequestRecorder()
    for n in range(MAX_EXTRA_CODES + 5):
        recorder.observe("A", 0.1, f"-{1000 + n}")
    recorder.observe("B", 0.1, "-77")
    assert recorder.snapshot(["B"])["B"].endpoints[TASK_LIST].errors["-77"] == 1


def test_reads_start_at_zero_and_count_each_outcome() -> None:
    recorder = RequestRecorder()
    recorder.track(["A"], [TASK_LIST])
    assert dict(recorder.snapshot(["A"])["A"].reads) == {
        "consistent": 0,
        "reread": 0,
        "inconsistent": 0,
    }
    recorder.count_read("A", "reread")
    recorder.count_read("A", "consistent")
    assert dict(recorder.snapshot(["A"])["A"].reads) == {
        "consistent": 1,
        "reread": 1,
        "inconsistent": 0,
    }


def test_tracked_record_query_starts_at_zero() -> None:
    recorder = RequestRecorder()
    recorder.track(["A"], [TASK_LIST, RECORD_QUERY])
    record_query = recorder.snapshot(["A"])["A"].endpoints[RECORD_QUERY]
    assert record_query.requests == 0
    assert {code: record_query.errors[code] for code in INITIAL_ERROR_CODES} == dict.fromkeys(
        INITIAL_ERROR_CODES, 0
    )


def test_each_endpoint_counts_its_own_requests_errors_and_latency() -> None:
    recorder = RequestRecorder()
    recorder.track(["A"], [TASK_LIST, RECORD_QUERY])
    recorder.observe("A", 0.07, None)
    recorder.observe("A", 3.0, "timeout", endpoint=RECORD_QUERY)
    recorder.observe("A", 0.2, "-5", endpoint=RECORD_QUERY)
    endpoints = recorder.snapshot(["A"])["A"].endpoints
    task_list, record_query = endpoints[TASK_LIST], endpoints[RECORD_QUERY]
    assert (task_list.requests, record_query.requests) == (1, 2)
    assert sum(task_list.errors.values()) == 0
    assert (record_query.errors["timeout"], record_query.errors["-5"]) == (1, 1)
    assert (task_list.duration_buckets[-1], record_query.duration_buckets[-1]) == (1, 2)
    assert (task_list.duration_sum, record_query.duration_sum) == (0.07, 3.2)


def test_an_endpoint_no_longer_tracked_leaves_the_snapshot_and_keeps_its_counts() -> None:
    recorder = RequestRecorder()
    recorder.track(["A"], [TASK_LIST, RECORD_QUERY])
    recorder.observe("A", 0.1, None, endpoint=RECORD_QUERY)
    recorder.track(["A"], [TASK_LIST])  # A reload turned recordQuery off.
    assert set(recorder.snapshot(["A"])["A"].endpoints) == {TASK_LIST}
    recorder.track(["A"], [TASK_LIST, RECORD_QUERY])  # And on again.
    assert recorder.snapshot(["A"])["A"].endpoints[RECORD_QUERY].requests == 1


def test_an_unknown_endpoint_is_refused() -> None:
    recorder = RequestRecorder()
    with pytest.raises(ValueError, match="unknown endpoint"):
        recorder.observe("A", 0.1, None, endpoint="smsSend")
