"""The apps' calling lines: what ``channelList`` lists, which line each call goes out on, and the
line that degrades.

Each app has two to four lines, drawn from the seed (an id as the vendor writes it, a string of
digits, and a phone number as its name). A task's calls go out on the app's lines in turn, so
every line carries calls whichever tasks run. A ``Degrade`` makes one line of one app answer
less from a moment on, as a line that carriers start labelling as spam does: of the calls that
would have been answered on it, only ``answered_share`` are; the rest ring out, are refused or
fail on the line.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

# What becomes of a call the degraded line loses, and how often.
LOST_RESULTS = ("NO_ANSWER", "REFUSED", "FROM_PHONE_ERROR")
LOST_WEIGHTS = (5.0, 3.0, 2.0)
# Entries a poisoned channelList answer holds: what no client should take as it comes.
HOSTILE_LINES: tuple[Any, ...] = (
    {"tenantPhoneNumberId": "9" * 300, "phoneNumber": "+1 555 0199"},
    {"tenantPhoneNumberId": "7001", "phoneNumber": '<script>alert("line")</script>'},
    {"tenantPhoneNumberId": "7002", "phoneNumber": "line\nwith\x00control\x1bchars"},
    {"tenantPhoneNumberId": "7003", "phoneNumber": "x" * 5000},
    {"tenantPhoneNumberId": True, "phoneNumber": "a boolean id"},
    {"tenantPhoneNumberId": "7004"},
    "not an object",
    None,
)


@dataclass(frozen=True)
class Line:
    line_id: str
    name: str


@dataclass(frozen=True)
class Degrade:
    """One line of one app answers ``answered_share`` of what it would from ``after`` simulated
    seconds on (the time the call ends)."""

    app_id: str
    line: int = 0  # Index into the app's lines.
    after: float = 0.0
    answered_share: float = 1 / 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.answered_share <= 1.0:
            raise ValueError("degrade answered_share: must be in [0, 1]")
        if self.line < 0:
            raise ValueError("degrade line: must be >= 0")


@dataclass(frozen=True)
class AppLines:
    """An app's lines, and from when one of them degrades (``degraded``: its index)."""

    lines: tuple[Line, ...]
    degraded: int | None = None
    degrade_after: float = float("inf")
    answered_share: float = 1.0

    def line_of(self, job_id: int, index: int) -> Line:
        """The line call ``index`` of the task goes out on: the app's lines in turn."""
        return self.lines[(job_id + index) % len(self.lines)]

    def loses(self, line: Line, ended: float) -> float:
        """The share of would-be answered calls that ``line`` loses, for a call ending at
        ``ended`` simulated seconds: 0 unless it is the degraded line by then."""
        if self.degraded is None or ended < self.degrade_after:
            return 0.0
        return 1.0 - self.answered_share if line == self.lines[self.degraded] else 0.0


ONE_LINE = AppLines((Line("1000", "+1 555 0100"),))
"""The lines of a task made by hand: one."""


def app_lines(seed: int, app_id: str, degrade: Degrade | None = None) -> AppLines:
    """The app's two to four lines, the same for the same seed; ``degrade`` applies if it names
    this app."""
    rng = random.Random(f"{seed}:{app_id}:lines")
    count = rng.randint(2, 4)
    ids = rng.sample(range(1000, 10000), count)
    lines = tuple(Line(str(i), f"+1 555 01{rng.randrange(10, 100)}") for i in ids)
    if degrade is None or degrade.app_id != app_id:
        return AppLines(lines)
    return AppLines(lines, degrade.line % count, degrade.after, degrade.answered_share)
