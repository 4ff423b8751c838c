"""An app's poll history: the recent polls, the failures kept longer, and since when it fails."""

from __future__ import annotations

from exporter.tasks.history import HISTORY_LENGTH, AppHistory, CallsRead, PollOutcome


def ok(at: float) -> PollOutcome:
    return PollOutcome(at, 0.2, pages=1)


def failed(at: float, code: str = "-50") -> PollOutcome:
    return PollOutcome(at, 0.1, error=code, detail="not quoted")


def recorded(*outcomes: PollOutcome) -> AppHistory:
    history = AppHistory()
    for outcome in outcomes:
        history = history.record(outcome)
    return history


def test_the_recent_polls_are_the_last_twenty_newest_first() -> None:
    history = recorded(*(ok(t) for t in range(30)))
    assert [o.finished_seconds for o in history.outcomes()] == list(range(29, 9, -1))
    assert len(history.recent) == HISTORY_LENGTH


def test_a_failure_outlives_the_successes_that_push_it_out_of_the_recent_polls() -> None:
    history = recorded(failed(0), *(ok(t) for t in range(1, 31)))
    assert failed(0) not in history.recent
    shown = history.outcomes()
    assert shown[-1] == failed(0)
    assert [o.finished_seconds for o in shown[:-1]] == list(range(30, 10, -1))


def test_only_the_last_twenty_failures_are_kept() -> None:
    history = recorded(*(failed(t) for t in range(25)))
    assert [o.finished_seconds for o in history.failures] == list(range(24, 4, -1))
    assert len(history.outcomes()) == HISTORY_LENGTH  # The same failures: each shown once.


def test_failing_since_is_the_first_failure_of_the_current_run() -> None:
    history = recorded(ok(0), failed(10), failed(20, "-6"), failed(30))
    assert history.failing_since == 10
    assert history.last_failure == failed(30)


def test_a_success_ends_the_failing_run_and_keeps_the_failure_to_read() -> None:
    history = recorded(failed(10), ok(20))
    assert history.failing_since is None
    assert history.last_failure == failed(10)
    assert history.last == ok(20)
    assert recorded(failed(10), ok(20), failed(30)).failing_since == 30


def test_recording_returns_a_new_history_and_leaves_the_old_one_as_it_was() -> None:
    before = recorded(ok(0))
    after = before.record(failed(1)).record_calls(CallsRead(2.0, "timeout"))
    assert before == recorded(ok(0))
    assert before.calls is None
    assert after.calls == CallsRead(2.0, "timeout")
    assert not after.calls.ok
