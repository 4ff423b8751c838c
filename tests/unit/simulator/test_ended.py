"""The simulator's ``EndedCalls``: each call is drawn once as it ends, and the record index, the
push and the balance all get it."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.simulator import calls
from exporter.simulator.balance import BalanceBook
from exporter.simulator.call_index import CallIndex, index_reader
from exporter.simulator.calls import PRICE_PER_MINUTE, Call, Timeline, ended_in, started_between
from exporter.simulator.campaigns import generate_plans
from exporter.simulator.ended import EndedCalls, Handover

SEED, APP, OTHER = 11, "FEEDAPP", "FEEDAPP2"
STARTED = 1_700_000_000.0
PLANS = {
    APP: generate_plans(APP, 0, 12, SEED, STARTED),
    OTHER: generate_plans(OTHER, 1, 12, SEED, STARTED),
}


class Clock:
    def __init__(self) -> None:
        self.now = STARTED

    def __call__(self) -> float:
        return self.now


def ids(found: list[Call]) -> list[str]:
    return [c.call_id for c in found]


def test_each_ended_call_is_drawn_once_for_the_index_the_push_and_the_balance() -> None:
    clock, timeline = Clock(), Timeline(STARTED, 5.0)
    feed = EndedCalls(SEED, timeline, lambda: PLANS, lambda: timeline.elapsed(clock()))
    indexes = {app: CallIndex(SEED, app, timeline, feed) for app in PLANS}
    feed.subscribe(index_reader(indexes))
    push = Handover(feed, 1_000_000, lambda c: c)
    book = BalanceBook(1000.0, feed)
    push.start()
    drawn: list[str] = []
    real_call = calls.call

    def counting(*args: object) -> Call:
        made = real_call(*args)  # type: ignore[arg-type]
        drawn.append(made.call_id)
        return made

    pushed: list[Call] = []
    with mock.patch.object(calls, "call", counting):
        # The first window starts with the simulator: nothing before it for the index to draw.
        indexes[APP].started_between(tuple(PLANS[APP]), int(STARTED), int(STARTED), STARTED)
        for step in range(1, 41):
            clock.now = STARTED + 3 * step
            book.balance()
            pushed += push.collect(1_000_000)[0]
            start = max(int(STARTED), int(clock.now) - 60)  # nothing from before the start
            indexes[APP].started_between(tuple(PLANS[APP]), start, int(clock.now), clock.now)
    ended = [c for app, ps in PLANS.items() for c in ended_in(SEED, app, ps, 0.0, 600.0, timeline)]
    assert len(ended) > 100
    assert len(drawn) == len(set(drawn))  # once each, though three readers took them
    assert set(ids(ended)) <= set(drawn)
    assert sorted(ids(pushed)) == sorted(ids(ended))
    spent = sum(c.billed // 60 for c in ended) * PRICE_PER_MINUTE
    assert book.balance() == pytest.approx(1000.0 - spent, abs=0.01)


def test_the_push_gets_only_what_ends_after_it_starts() -> None:
    clock, timeline = Clock(), Timeline(STARTED, 5.0)
    feed = EndedCalls(SEED, timeline, lambda: PLANS, lambda: timeline.elapsed(clock()))
    push = Handover(feed, 1_000_000, lambda c: c)
    clock.now = STARTED + 30
    feed.catch_up()
    push.start()
    clock.now = STARTED + 60
    taken, more = push.collect(1_000_000)
    expected = [c for app, ps in PLANS.items() for c in ended_in(SEED, app, ps, 150, 300, timeline)]
    assert ids(taken) == ids(expected)
    assert more == 0


def test_the_push_drops_what_its_queue_has_no_room_for() -> None:
    clock, timeline = Clock(), Timeline(STARTED, 5.0)
    feed = EndedCalls(SEED, timeline, lambda: PLANS, lambda: timeline.elapsed(clock()))
    push = Handover(feed, 10, lambda c: c)
    push.start()
    clock.now = STARTED + 60
    ended = sum(1 for app, ps in PLANS.items() for _ in ended_in(SEED, app, ps, 0, 300, timeline))
    taken, more = push.collect(4)
    assert (len(taken), more) == (4, ended - 4)
    assert push.collect(4) == ([], 0)


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(
    windows=st.lists(
        st.tuples(
            st.integers(-1500, 1500), st.integers(0, 600), st.floats(-100, 2000, allow_nan=False)
        ),
        min_size=1,
        max_size=8,
    ),
    speed=st.sampled_from([1.0, 5.0, 0.5]),
)
def test_an_index_fed_by_it_answers_every_window_as_a_fresh_draw(
    windows: list[tuple[int, int, float]], speed: float
) -> None:
    clock, timeline = Clock(), Timeline(STARTED, speed)
    feed = EndedCalls(SEED, timeline, lambda: PLANS, lambda: timeline.elapsed(clock()))
    indexes = {app: CallIndex(SEED, app, timeline, feed) for app in PLANS}
    feed.subscribe(index_reader(indexes))
    for offset, length, at in windows:
        start, clock.now = int(STARTED) + offset, STARTED + at
        feed.catch_up()  # as the push does, between reads
        end = start + length
        found = indexes[APP].started_between(tuple(PLANS[APP]), start, end, clock.now)
        expected = started_between(SEED, APP, PLANS[APP], start, end, clock.now, timeline)
        assert ids(found) == ids(expected)
