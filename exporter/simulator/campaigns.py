"""Generated campaigns: tasks whose status and progress are a pure function of time and a seed.

Nothing here holds state or a lock, so a test (or the demo) gets the same campaigns for the
same seed, and a page can be rendered from a snapshot of an app's entries outside the lock.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from exporter.simulator.lines import ONE_LINE, AppLines, app_lines

CREATE_TIME_ZONE = timezone(timedelta(hours=8))
"""The vendor's local time, as its other examples write it (docs/api.md)."""
_ODD_NAMES = (
    'Say "hello" campaign',
    "C:\\campaigns\\spring",
    "回访客户 第二批",
    "Launch 🚀 week 🎉",
    "two\nlines",
)
_NAMES = (
    "renewal reminder",
    "payment follow-up",
    "satisfaction survey",
    "welcome call",
    "appointment confirmation",
    "win-back offer",
    "delivery notice",
    "event invitation",
)
# One fate per task index, cycled, so a default app of 12 tasks shows every known status at
# start-up and several change within a minute at speed 1.
_FATES = (
    "done",
    "finishing",
    "scheduled",
    "queued",
    "USER_PAUSE",
    "RUNNABLE",
    "SYSTEM_SUSPENDED",
    "TERMINATE",
    "long",
    "manual",
    "pausing",
    "done",
)


@dataclass(frozen=True)
class Plan:
    """A generated task whose progress is a pure function of simulated time.

    Times are simulated seconds relative to the simulator's start (``speed`` scales them).
    Calling starts at ``start`` (``inf``: never), runs at ``rate`` calls a second and ends
    COMPLETED at ``total``, unless it stops in ``stop_status`` after ``stop_after`` calls.
    """

    job_id: int
    name: str
    dialog_flow: str
    line: str
    robots: int
    mode: str
    hangup_sms: bool
    unbound: bool
    create_time: str  # already formatted: it never changes
    total: int
    start: float
    rate: float
    waiting_status: str
    stop_after: int | None = None
    stop_status: str = "COMPLETED"
    lines: AppLines = ONE_LINE  # The app's lines: see ``lines``.

    def state_at(self, elapsed: float) -> tuple[str, int]:
        """The task's (status, taskCompleted) ``elapsed`` simulated seconds after start-up."""
        if elapsed < self.start:
            return self.waiting_status, 0
        done = min(self.total, int((elapsed - self.start) * self.rate))
        if self.stop_after is not None and done >= self.stop_after:
            return self.stop_status, self.stop_after
        return ("COMPLETED" if done >= self.total else "IN_PROCESS"), done

    def record_at(self, elapsed: float) -> dict[str, Any]:
        """The task as the API shows it, field for field as the vendor's example."""
        status, done = self.state_at(elapsed)
        return {
            "jobId": self.job_id,
            "name": self.name,
            "dialogFlowName": self.dialog_flow,
            "jobPhoneNumberName": self.line,
            "robotCount": self.robots,
            "mode": self.mode,
            "hangupSms": self.hangup_sms,
            "taskTotal": self.total,
            "taskCompleted": done,
            "status": status,
            "isDialogFlowUnbind": self.unbound,
            "createTime": self.create_time,
        }


Entry = Plan | dict[str, Any]
"""An app's task: generated, or a pinned or added record served as it is."""


def generate_plans(
    app_id: str,
    app_index: int,
    count: int,
    seed: int,
    started: float,
    lines: AppLines | None = None,
    rate_scale: float = 1.0,
) -> list[Plan]:
    """The app's tasks, newest (highest jobId) first, the same for the same seed and app.

    Their calls go out on ``lines`` (default: the app's, from the seed); ``rate_scale``
    multiplies every task's calls a second (an account's volume: 1 is a busy one)."""
    if lines is None:
        lines = app_lines(seed, app_id)
    rng = random.Random(f"{seed}:{app_id}")
    stride = 1000 * (count // 1000 + 1)
    created = started
    plans: list[Plan] = []
    for index in reversed(range(count)):  # newest first; creation times walk backwards
        created -= rng.uniform(2 * 3600, 8 * 3600)
        fate = _FATES[index % len(_FATES)]
        timing = {"waiting_status": "NOT_STARTED", **_plan_timing(fate, rng, rate_scale)}
        name = f"{_NAMES[index % len(_NAMES)]} {index + 1:02d}"
        if app_index == 0 and 1 <= index <= len(_ODD_NAMES):
            name = _ODD_NAMES[index - 1]
        plans.append(
            Plan(
                job_id=(app_index + 1) * stride + index,
                name=name,
                dialog_flow=f"flow-{rng.randrange(1, 20)}.{rng.randrange(1, 30)}",
                line=f"line{rng.randrange(10, 99)}",
                robots=rng.randrange(1, 21),
                mode="MANUAL" if fate == "manual" else rng.choice(("AUTO", "AUTO", "MANUAL")),
                hangup_sms=rng.random() < 0.3,
                unbound=fate == "TERMINATE",
                create_time=create_time(created),
                lines=lines,
                **timing,
            )
        )
    return plans


def _plan_timing(fate: str, rng: random.Random, scale: float = 1.0) -> dict[str, Any]:
    """Total, start, rate and stop of a task with this fate (simulated seconds)."""
    rate = round(rng.uniform(1.0, 4.0), 2) * scale
    total = rng.randrange(100, 1000, 10)
    started_long_ago = -3600.0 - total / rate
    if fate == "done":
        return {"total": total, "start": started_long_ago, "rate": rate}
    if fate in ("finishing", "long", "pausing"):
        running_for = rng.uniform(300, 1800)
        remaining = {"finishing": rng.uniform(20, 50), "long": rng.uniform(7200, 21600)}.get(
            fate, 3600.0
        )
        total = max(1, round(rate * (running_for + remaining)))
        timing: dict[str, Any] = {"total": total, "start": -running_for, "rate": rate}
        if fate == "pausing":  # a user pauses it within the first minute
            timing["stop_after"] = int(rate * (running_for + rng.uniform(20, 45)))
            timing["stop_status"] = "USER_PAUSE"
        return timing
    if fate in ("scheduled", "queued"):
        start = rng.uniform(25, 40) if fate == "scheduled" else rng.uniform(5, 20)
        waiting = "NOT_STARTED" if fate == "scheduled" else "IN_QUEUE"
        return {"total": total, "start": start, "rate": rate, "waiting_status": waiting}
    if fate == "manual":
        return {"total": total, "start": float("inf"), "rate": rate}
    # Stopped for good in the status the fate is named after, part of the way through.
    stop_after = int(total * rng.uniform(0.1, 0.8))
    return {
        "total": total,
        "start": started_long_ago,
        "rate": rate,
        "stop_after": stop_after,
        "stop_status": fate,
    }


def new_record(job_id: int, now: float) -> dict[str, Any]:
    """A task just created, field for field as the vendor's example."""
    return {
        "jobId": job_id,
        "name": f"added task {job_id}",
        "dialogFlowName": "flow-1.1",
        "jobPhoneNumberName": "line10",
        "robotCount": 1,
        "mode": "AUTO",
        "hangupSms": False,
        "taskTotal": 0,
        "taskCompleted": 0,
        "status": "NOT_STARTED",
        "isDialogFlowUnbind": False,
        "createTime": create_time(now),
    }


def create_time(epoch: float) -> str:
    """``createTime`` as the vendor's example writes it."""
    return datetime.fromtimestamp(epoch, CREATE_TIME_ZONE).strftime("%Y-%m-%d %H:%M:%S")


def render(entry: Entry, elapsed: float) -> dict[str, Any]:
    """The record a client sees ``elapsed`` simulated seconds after start-up; a copy."""
    return entry.record_at(elapsed) if isinstance(entry, Plan) else copy.deepcopy(entry)


def entry_name(entry: Entry) -> str:
    name = entry.name if isinstance(entry, Plan) else entry.get("name")
    return name if isinstance(name, str) else ""


def entry_job_id(entry: Entry) -> object:
    return entry.job_id if isinstance(entry, Plan) else entry.get("jobId")
