"""``CallIndex``: an app's ended calls, each drawn once, kept in recordQuery's order.

Drawing a call costs some 17 us (a seeded ``random.Random`` and a dozen draws). Drawing a whole
window for every page made a read of a 20,000-call window cost pages x window; the index draws
each call once, as it ends, and a window is a ``bisect`` and a filter over what it holds.

It holds, for every plan, the calls whose index lies in ``[done(low), done(high))``, where
``done(t)`` is the plan's ``taskCompleted`` at simulated time ``t``: exactly the calls that
ended in ``(low, high]``. ``high`` follows the clock; ``low`` reaches back as far as a window
asks and moves up once no window has needed the oldest calls for a while, so memory follows the
windows asked for, not the uptime. A change of plans (a task deleted) starts it afresh.

With an ``EndedCalls`` feed, the calls that end from the first read on come from the feed,
which draws them once for the index, the push and the balance alike; the index draws only the
calls that ended before (those a window reaches back to).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from exporter.simulator.calls import MAX_CALL_SECONDS, Call, Timeline, ended_in
from exporter.simulator.campaigns import Plan
from exporter.simulator.ended import EndedCalls, Reader

KEEP_BEHIND_SECONDS = 600
"""Wall seconds of calls kept before the start of the window asked for last."""
KEPT_WINDOWS = 16
"""recordQuery windows (per second of the clock) kept for their next pages."""

WindowKey = tuple[str, int, int, int]  # app id, the window's start and end, the clock's second


class KeptWindows:
    """The calls of the latest recordQuery windows, kept for the pages asked for next: a read
    pages through one window within a second or so, and cutting it again for every page would
    cost every page the window. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: OrderedDict[WindowKey, list[Call]] = OrderedDict()

    def get(self, key: WindowKey, cut: Callable[[], list[Call]]) -> list[Call]:
        """The window's calls: kept ones, or ``cut()``, kept from now on (outside the lock)."""
        with self._lock:
            found = self._windows.get(key)
        if found is None:
            found = cut()
            with self._lock:
                self._windows[key] = found
                while len(self._windows) > KEPT_WINDOWS:
                    self._windows.popitem(last=False)
        return found


class CallIndex:
    """One app's ended calls, oldest end first (then by callId), drawn once. Thread-safe."""

    def __init__(
        self, seed: int, app_id: str, timeline: Timeline, feed: EndedCalls | None = None
    ) -> None:
        self._seed = seed
        self._feed = feed
        self._live = False  # the feed's calls follow on from what is held: no gap since high
        self._asked = 0  # the start of the window asked for last (wall seconds)
        self._app_id = app_id
        self._timeline = timeline
        self._lock = threading.Lock()
        self._plans: tuple[Plan, ...] = ()
        self._low = self._high = 0.0  # simulated seconds: the calls that ended in (low, high]
        self._calls: list[Call] = []
        self._ends: list[float] = []  # each call's end (wall seconds), for bisect

    def started_between(
        self, plans: Sequence[Plan], start: int, end: int, now: float
    ) -> list[Call]:
        """What ``calls.started_between`` answers, from the index: the calls that started in
        whole wall seconds [start, end] and ended by ``now``, oldest end first."""
        timeline = self._timeline
        # A call ends after it starts and at most MAX_CALL_SECONDS (simulated) later.
        low, high = timeline.elapsed(start) - 1.0, timeline.elapsed(now)
        latest = timeline.wall(timeline.elapsed(end + 1) + MAX_CALL_SECONDS)
        if self._feed is not None:
            self._feed.catch_up(high)  # outside the lock: the feed calls ``extend``
        with self._lock:
            self._cover(tuple(plans), low, high, start)
            first = bisect.bisect_left(self._ends, timeline.wall(low))
            last = bisect.bisect_right(self._ends, latest)
            found = [c for c in self._calls[first:last] if start <= math.floor(c.start) <= end]
            drawn_up_to = self._high
        if high < drawn_up_to:  # an earlier clock reading than the last: not all had ended
            done = {id(plan): plan.state_at(high)[1] for plan in plans}
            found = [c for c in found if c.index < done[id(c.plan)]]
        return found

    def _cover(self, plans: tuple[Plan, ...], low: float, high: float, start: int) -> None:
        """Draw the calls ending in (low, high] that the index lacks; the caller holds the lock."""
        if not _same(plans, self._plans) or (self._feed is not None and not self._live):
            self._plans, self._calls, self._ends = plans, [], []
            # With a feed, what ended up to its cursor is drawn here, and the rest comes from it.
            self._low = self._high = min(low, high) if self._feed is None else self._feed.cursor
            self._live = self._feed is not None
        self._asked = start
        if high > self._high:
            self._add(self._draw(self._high, high), at_end=True)
            self._high = high
        if low < self._low:
            self._add(self._draw(low, self._low), at_end=False)
            self._low = low
            return
        self._forget_old(low)

    def extend(
        self, plans: tuple[Plan, ...], drawn: list[Call], after: float, until: float
    ) -> None:
        """Keep the feed's calls of this app that ended in (after, until] simulated seconds, if
        they follow on from what the index holds, for the same plans; else start afresh at the
        next read."""
        with self._lock:
            if not self._live:
                return
            if after != self._high or not _same(plans, self._plans):
                self._live = False
                self._plans, self._calls, self._ends = (), [], []
                return
            self._add(sorted(drawn, key=_order), at_end=True)
            self._high = until
            self._forget_old(self._timeline.elapsed(self._asked) - 1.0)

    def _forget_old(self, low: float) -> None:
        """Forget calls no window has needed for a while; the caller holds the lock."""
        start = self._asked
        keep_from = min(self._timeline.elapsed(start - KEEP_BEHIND_SECONDS), self._high)
        if keep_from < low and self._low < self._timeline.elapsed(start - 2 * KEEP_BEHIND_SECONDS):
            self._forget_before(keep_from)

    def _draw(self, low: float, high: float) -> list[Call]:
        """The calls that ended in (low, high] simulated seconds, in order."""
        return sorted(
            ended_in(self._seed, self._app_id, self._plans, low, high, self._timeline), key=_order
        )

    def _add(self, drawn: list[Call], *, at_end: bool) -> None:
        if not drawn:
            return
        if at_end and (not self._calls or _order(self._calls[-1]) < _order(drawn[0])):
            self._calls.extend(drawn)  # the feed's small steps: in place, not a copy each
            self._ends.extend(c.end for c in drawn)
            return
        before, after = (self._calls, drawn) if at_end else (drawn, self._calls)
        calls = before + after
        if before and after and _order(before[-1]) > _order(after[0]):
            calls.sort(key=_order)  # two sorted runs: timsort merges them in one pass
        self._calls = calls
        self._ends = [c.end for c in calls]

    def _forget_before(self, low: float) -> None:
        cut = {id(plan): plan.state_at(low)[1] for plan in self._plans}
        self._calls = [c for c in self._calls if c.index >= cut[id(c.plan)]]
        self._ends = [c.end for c in self._calls]
        self._low = low


def index_reader(indexes: Mapping[str, CallIndex]) -> Reader:
    """The feed's reader that hands each app's ended calls to its index."""

    def extend(
        plans: Mapping[str, tuple[Plan, ...]],
        calls: Mapping[str, list[Call]],
        after: float,
        until: float,
    ) -> None:
        for app_id, index in indexes.items():
            index.extend(plans.get(app_id, ()), calls.get(app_id, []), after, until)

    return extend


def _same(plans: tuple[Plan, ...], others: tuple[Plan, ...]) -> bool:
    """The very same plans: calls refer to their plan by identity."""
    return len(plans) == len(others) and all(p is o for p, o in zip(plans, others, strict=True))


def _order(c: Call) -> tuple[float, int]:
    return c.end, int(c.call_id)
