"""A clock the test moves by hand."""

from __future__ import annotations


class FakeClock:
    """A clock the test moves by hand; the simulator reads it for signatures and progress."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
