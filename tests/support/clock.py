"""Clocks the tests move: by hand, or in steps to the present."""

from __future__ import annotations

import time

from tests.support.tools import wait_until


class FakeClock:
    """A clock the test moves by hand; the simulator reads it for signatures and progress."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SteppedClock:
    """A clock that stands still until `step()` moves it to the present, in whole seconds.

    For a simulator whose calls must end only when the test says so, while the exporters sign
    their requests with the real clock: a step keeps the two within the API's five minutes.
    """

    def __init__(self, step_seconds: float = 4.0, deadline: float = 120.0) -> None:
        self.now = float(int(time.time()))
        self._step_seconds = step_seconds
        self._deadline = deadline

    def __call__(self) -> float:
        return self.now

    def step(self) -> None:
        """Wait for the real clock to be `step_seconds` on, then move there."""
        target = self.now + self._step_seconds
        wait_until(lambda: time.time() >= target, timeout=self._deadline, what="the clock to move")
        self.now = float(int(time.time()))
