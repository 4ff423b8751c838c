"""The request recorder: counts that survive, and label values that stay bounded."""

from __future__ import annotations

from exporter.stats import INITIAL_ERROR_CODES, MAX_EXTRA_CODES, RequestRecorder


def test_every_documented_code_starts_at_zero() -> None:
    recorder = RequestRecorder()
    recorder.track(["A"])
    errors = recorder.snapshot(["A"])["A"].errors
    assert {code: errors[code] for code in INITIAL_ERROR_CODES} == dict.fromkeys(
        INITIAL_ERROR_CODES, 0
    )


def test_undocumented_codes_beyond_the_bound_count_as_other() -> None:
    recorder = RequestRecorder()
    for n in range(MAX_EXTRA_CODES + 15):
        recorder.observe("A", 0.1, f"-{1000 + n}")
    errors = recorder.snapshot(["A"])["A"].errors
    assert len(errors) == len(INITIAL_ERROR_CODES) + MAX_EXTRA_CODES + 1
    assert errors["other"] == 15
    assert sum(errors.values()) == MAX_EXTRA_CODES + 15


def test_one_apps_codes_never_use_up_anothers_bound() -> None:
    recorder = RequestRecorder()
    for n in range(MAX_EXTRA_CODES + 5):
        recorder.observe("A", 0.1, f"-{1000 + n}")
    recorder.observe("B", 0.1, "-77")
    assert recorder.snapshot(["B"])["B"].errors["-77"] == 1


def test_reads_start_at_zero_and_count_each_outcome() -> None:
    recorder = RequestRecorder()
    recorder.track(["A"])
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
