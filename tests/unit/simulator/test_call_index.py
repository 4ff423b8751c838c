"""The simulator's ``CallIndex``: every window it answers is exactly what a fresh draw answers.

A fresh draw (``calls.started_between``) is the definition; the index must agree with it for
any sequence of windows and clock readings, forwards, backwards, far back and after a change
of plans, while drawing each call once.
"""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.simulator import calls
from exporter.simulator.call_index import KEEP_BEHIND_SECONDS, CallIndex
from exporter.simulator.calls import Call, Timeline, started_between
from exporter.simulator.campaigns import Plan, generate_plans

SEED, APP = 7, "INDEXAPP"
STARTED = 1_700_000_000.0
PLANS = generate_plans(APP, 0, 12, SEED, STARTED)

# (window start, window length, clock), all in wall seconds after the simulator's start.
windows = st.lists(
    st.tuples(
        st.integers(-1500, 1500), st.integers(0, 600), st.floats(-100, 2000, allow_nan=False)
    ),
    min_size=1,
    max_size=8,
)


def fresh(plans: list[Plan], start: int, end: int, now: float, timeline: Timeline) -> list[Call]:
    return started_between(SEED, APP, plans, start, end, now, timeline)


def ids(calls: list[Call]) -> list[str]:
    return [c.call_id for c in calls]


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(windows=windows, speed=st.sampled_from([1.0, 5.0, 0.5]))
def test_every_window_matches_a_fresh_draw(
    windows: list[tuple[int, int, float]], speed: float
) -> None:
    timeline = Timeline(STARTED, speed)
    index = CallIndex(SEED, APP, timeline)
    for offset, length, clock in windows:
        start, now = int(STARTED) + offset, STARTED + clock
        expected = fresh(PLANS, start, start + length, now, timeline)
        assert ids(index.started_between(PLANS, start, start + length, now)) == ids(expected)


def test_a_call_is_drawn_once_however_many_windows_overlap_it() -> None:
    timeline = Timeline(STARTED, 5.0)
    index = CallIndex(SEED, APP, timeline)
    drawn: list[str] = []
    real_call = calls.call

    def counting(*args: object) -> Call:
        made = real_call(*args)  # type: ignore[arg-type]
        drawn.append(made.call_id)
        return made

    with mock.patch.object(calls, "call", counting):
        for second in range(0, 600, 5):  # a poll every 5 s, each window the last 300 s
            now = int(STARTED) + 600 + second
            assert index.started_between(PLANS, now - 300, now, now)
    assert drawn
    assert len(drawn) == len(set(drawn))


def test_a_removed_task_takes_its_calls_with_it() -> None:
    timeline = Timeline(STARTED, 1.0)
    index = CallIndex(SEED, APP, timeline)
    start, now = int(STARTED) - 600, STARTED + 600
    everyone = index.started_between(PLANS, start, int(now), now)
    busiest = max(PLANS, key=lambda p: sum(c.plan is p for c in everyone))
    rest = [p for p in PLANS if p is not busiest]
    left = index.started_between(rest, start, int(now), now)
    assert ids(left) == ids(fresh(rest, start, int(now), now, timeline))
    assert len(left) < len(everyone)


def test_memory_follows_the_windows_not_the_uptime() -> None:
    timeline = Timeline(STARTED, 1.0)
    index = CallIndex(SEED, APP, timeline)
    first = int(STARTED) + 900
    for step in range(4):  # windows of 300 s, 20 minutes apart
        now = first + 1200 * step
        index.started_between(PLANS, now - 300, now, now)
    since_the_first = fresh(PLANS, first - 300, now, now, timeline)
    assert 0 < len(index._calls) < len(since_the_first) / 2
    oldest = min(c.end for c in index._calls)
    assert oldest >= now - 300 - KEEP_BEHIND_SECONDS - 1
