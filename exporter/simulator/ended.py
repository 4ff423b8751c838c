"""``EndedCalls``: each call drawn once as it ends, and handed to everything that needs it.

Three readers want the calls that end: the record index (recordQuery), the push and the
balance (each call's cost). Drawing a call costs some 17 us; each reader drawing for itself
drew every call up to three times. The feed draws the calls that ended since its last look,
once, for every app, and hands the same ``Call`` objects to each reader, in the order drawn.

Drawing happens when a reader asks (``catch_up``), never in the background: the push asks
every tick, recordQuery and getBalance when they are read.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from exporter.simulator.calls import Call, Timeline, ended_in
from exporter.simulator.campaigns import Plan

T = TypeVar("T")
Reader = Callable[[Mapping[str, tuple[Plan, ...]], Mapping[str, list[Call]], float, float], None]
"""Called with every app's plans, the calls each app ended in (after, until] simulated seconds,
then ``after`` and ``until``; under the feed's lock, so it must not call the feed back."""


class EndedCalls:
    """The account's ended calls, drawn once, from the simulated time it is made. Thread-safe."""

    def __init__(
        self,
        seed: int,
        timeline: Timeline,
        plans: Callable[[], Mapping[str, Sequence[Plan]]],
        elapsed: Callable[[], float],
    ) -> None:
        self._seed = seed
        self._timeline = timeline
        self._plans = plans
        self._elapsed = elapsed
        self._lock = threading.Lock()
        self._cursor = elapsed()  # simulated time up to which ended calls were drawn
        self._readers: list[Reader] = []

    @property
    def cursor(self) -> float:
        """Simulated time up to which calls were drawn and handed on; moves only forward, and
        only once every reader has had the calls up to it."""
        return self._cursor

    def subscribe(self, reader: Reader) -> None:
        """Hand ``reader`` every call that ends from now on."""
        with self._lock:
            self._readers.append(reader)

    def catch_up(self, until: float | None = None) -> float:
        """Draw the calls that ended up to ``until`` (default: now) and hand them to every
        reader; the cursor after."""
        with self._lock:
            after = self._cursor
            until = self._elapsed() if until is None else until
            if until > after:
                plans = {app: tuple(ps) for app, ps in self._plans().items()}
                calls = {
                    app: list(ended_in(self._seed, app, ps, after, until, self._timeline))
                    for app, ps in plans.items()
                }
                for reader in self._readers:
                    reader(plans, calls, after, until)
                self._cursor = until  # after the readers: see CallIndex.started_between
            return self._cursor


class Handover(Generic[T]):
    """The feed's reader for a thread that collects calls at its own pace (the push): keeps
    what ended once ``start`` is called, at most ``room`` calls; the rest are counted as
    dropped. ``collect`` hands them on as ``form`` makes them (the push: its records)."""

    def __init__(self, feed: EndedCalls, room: int, form: Callable[[Call], T]) -> None:
        self._feed = feed
        self._room = room
        self._form = form
        self._lock = threading.Lock()
        self._kept: deque[Call] | None = None  # None: not started
        self._overflow = 0
        feed.subscribe(self._keep)

    def start(self) -> None:
        """Keep what ends from now on; what ended before is never handed over."""
        self._feed.catch_up()
        with self._lock:
            if self._kept is None:
                self._kept = deque()

    def collect(self, limit: int) -> tuple[list[T], int]:
        """At most ``limit`` of the calls that ended since the last look, and how many more
        ended: those are dropped."""
        self._feed.catch_up()
        with self._lock:
            kept = self._kept or deque()
            taken = [kept.popleft() for _ in range(min(max(0, limit), len(kept)))]
            more, self._overflow = len(kept) + self._overflow, 0
            kept.clear()
        return [self._form(c) for c in taken], more

    def _keep(
        self,
        plans: Mapping[str, tuple[Plan, ...]],
        calls: Mapping[str, list[Call]],
        after: float,
        until: float,
    ) -> None:
        with self._lock:
            if self._kept is None:
                return
            for app_calls in calls.values():
                fits = app_calls[: max(0, self._room - len(self._kept))]
                self._kept.extend(fits)
                self._overflow += len(app_calls) - len(fits)
