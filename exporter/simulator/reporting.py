"""Which calls a recordQuery window holds: the time it selects by, and when a call is reported.

The vendor does not say whether a window selects its calls by their start or by their end
(docs/api.md), nor how soon a call shows in recordQuery once it ends. ``Reporting`` makes both
a setting, so the exporter can be run against either answer:

* ``select_by`` is ``"start"`` (a call is in [start, end] when its start's whole second is) or
  ``"end"`` (likewise its end's); both ends of a window are inclusive, in whole seconds, as the
  request's ``yyyy-MM-dd HH:mm:ss`` writes them;
* with ``lags``, a call shows only ``report_lag`` seconds after its end: most within a second,
  ``LATE_SHARE`` of them ``LATE_SECONDS`` late. The lag is a pure function of the seed and the
  call id, so every read agrees on it. Without, a call shows the moment it ends.

``ScriptedCalls`` is an app's calls given one by one (start, end, when reported) instead of
generated from campaigns: the benchmark and the tests use it for a workload of their own shape.
"""

from __future__ import annotations

import bisect
import math
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.simulator.call_index import CallIndex
from exporter.simulator.calls import MAX_CALL_SECONDS, query_record
from exporter.simulator.campaigns import Plan, create_time

SELECT_BY = ("start", "end")
LATE_SHARE = 0.03
LATE_SECONDS = (5.0, 40.0)
SCRIPTED_JOB_ID = "7000000001"


@dataclass(frozen=True)
class Reporting:
    """What a recordQuery window selects by, and whether calls show late (see the module)."""

    select_by: str = "start"
    lags: bool = False

    def __post_init__(self) -> None:
        if self.select_by not in SELECT_BY:
            raise ValueError(f"select_by: must be one of {', '.join(SELECT_BY)}")


def report_lag(seed: int, app_id: str, call_id: str) -> float:
    """Seconds from a call's end to its showing in recordQuery, the same at every draw."""
    draw = zlib.crc32(f"{seed}:{app_id}:{call_id}".encode()) / 2**32
    if draw < LATE_SHARE:
        low, high = LATE_SECONDS
        return low + (high - low) * draw / LATE_SHARE
    return (draw - LATE_SHARE) / (1 - LATE_SHARE)  # within a second


def selected(start: float, end: float, window: tuple[int, int], select_by: str) -> bool:
    """Whether a call that ran from `start` to `end` is in the window [first, last] (seconds)."""
    moment = start if select_by == "start" else end
    return window[0] <= math.floor(moment) <= window[1]


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """One call of a script: wall seconds it started, ended, and showed in recordQuery."""

    call_id: str
    start: float
    end: float
    reported: float
    result: str = "ANSWERED"


class ScriptedCalls:
    """An app's calls given one by one; thread-safe. Calls are added, never removed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[ScriptedCall] = []  # by report time
        self._reported: list[float] = []

    def add(self, calls: Iterable[ScriptedCall]) -> None:
        with self._lock:
            merged = sorted([*self._calls, *calls], key=lambda c: (c.reported, c.call_id))
            self._calls = merged
            self._reported = [c.reported for c in merged]

    def all(self) -> list[ScriptedCall]:
        with self._lock:
            return list(self._calls)

    def window(self, first: int, last: int, now: float, select_by: str) -> list[ScriptedCall]:
        """The calls shown at `now` in the window [first, last], oldest end first."""
        with self._lock:
            shown = self._calls[: bisect.bisect_right(self._reported, now)]
        found = [c for c in shown if selected(c.start, c.end, (first, last), select_by)]
        found.sort(key=lambda c: (c.end, c.call_id))
        return found


def scripted_record(c: ScriptedCall, app_id: str) -> dict[str, Any]:
    """A scripted call as recordQuery shows it (no personal data: it has none)."""
    talk = max(0, math.floor(c.end - c.start))
    return {
        "callId": c.call_id,
        "appId": app_id,
        "callJobId": SCRIPTED_JOB_ID,
        "resultStatus": c.result,
        "hangupBy": "REMOTE_HANGUP",
        "startTime": create_time(c.start),
        "endTime": create_time(c.end),
        "chatDuration": str(talk),
        "chargedDuration": str(math.ceil(talk / 60) * 60),
    }


class ShownCalls:
    """What an account's recordQuery windows hold: its apps' generated calls (from each app's
    ``CallIndex``) or scripted ones, under its ``Reporting``. Thread-safe."""

    def __init__(
        self, reporting: Reporting, seed: int, speed: float, app_ids: Sequence[str]
    ) -> None:
        self.reporting = reporting
        self._seed = seed
        # Selecting by end, a call in a window started at most the longest call before it.
        self._reach = math.ceil(MAX_CALL_SECONDS / (speed or 1.0)) + 1
        self._app_ids = frozenset(app_ids)
        self._lock = threading.Lock()
        self._scripts: dict[str, ScriptedCalls] = {}

    def script(self, app_id: str, calls: Iterable[ScriptedCall]) -> None:
        """From now on, answer the app's recordQuery from these calls (and any added later)
        instead of its campaigns': each shows from its ``reported`` time on."""
        if app_id not in self._app_ids:
            raise ValueError(f"app_id: {app_id!r} is not an app of this account")
        with self._lock:
            script = self._scripts.setdefault(app_id, ScriptedCalls())
        script.add(calls)

    def scripted(self, app_id: str) -> list[ScriptedCall]:
        """The app's scripted calls, shown or not yet, by report time."""
        with self._lock:
            script = self._scripts.get(app_id)
        return [] if script is None else script.all()

    def window(
        self, index: CallIndex, plans: Sequence[Plan], app_id: str, start: int, end: int, now: float
    ) -> list[Any]:
        """The calls the window [start, end] holds at ``now``, oldest end first."""
        with self._lock:
            script = self._scripts.get(app_id)
        if script is not None:
            return script.window(start, end, now, self.reporting.select_by)
        if self.reporting == Reporting():
            return index.started_between(plans, start, end, now)
        reach = self._reach if self.reporting.select_by == "end" else 0
        return [
            c
            for c in index.started_between(plans, start - reach, end, now)
            if selected(c.start, c.end, (start, end), self.reporting.select_by)
            and (
                not self.reporting.lags or c.end + report_lag(self._seed, app_id, c.call_id) <= now
            )
        ]

    def render(self, c: Any, app_id: str) -> dict[str, Any]:
        return scripted_record(c, app_id) if isinstance(c, ScriptedCall) else query_record(c)
