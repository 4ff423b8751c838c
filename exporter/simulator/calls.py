"""Generated calls: every call of a generated task, a pure function of the seed and the plan.

Nothing is stored: a call is drawn again whenever it is asked for, so memory stays bounded
however long the simulator runs. The model (docs/development.md):

* call ``k`` (0-based) of a task ends at simulated time ``plan.start + (k + 1) / plan.rate``, so
  the calls that have ended are exactly the task's ``taskCompleted`` (``Plan.state_at``);
* its outcome is drawn with ``OUTCOME_WEIGHTS``; it rang ``ring`` seconds (longer for
  ``NO_ANSWER``) and, when answered (``ANSWERED``, ``TRANSFER_ARTIFICIAL``), talked ``talk``
  seconds (3-600, median about 40); it started ``ring + talk`` simulated seconds before its end;
* the billed time rounds the talk time up to whole minutes; the cost is ``PRICE_PER_MINUTE`` a
  billed minute. Unanswered calls bill 0 and cost 0.

Times in records are wall-clock: the simulator's start plus simulated time divided by its
speed; durations are simulated seconds (the same thing at speed 1).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.simulator.campaigns import Plan, create_time
from exporter.simulator.lines import LOST_RESULTS, LOST_WEIGHTS, Line

RESULT_STATUSES = (
    "ANSWERED",
    "TRANSFER_ARTIFICIAL",
    "NO_ANSWER",
    "BUSY",
    "POWER_OFF",
    "OUT_OF_SERVICE",
    "REFUSED",
    "VACANT_NUMBER",
    "CAN_NOT_CONNECT",
    "CALL_LOSS",
    "FROM_PHONE_ERROR",
    "SYSTEM_ERROR",
)
"""The documented ``resultStatus`` values (docs/api.md)."""
OUTCOME_WEIGHTS = (45.0, 2.0, 24.0, 12.0, 4.0, 3.0, 3.0, 2.0, 2.0, 1.5, 1.0, 0.5)
"""Relative shares of ``RESULT_STATUSES``, in the same order: most calls are answered, not
answered or busy, a few end each other way."""
ANSWERED_STATUSES = frozenset({"ANSWERED", "TRANSFER_ARTIFICIAL"})
MAX_CALL_SECONDS = 60 + 600
"""The longest call, ring and talk (simulated seconds): bounds the calls a window can hold."""
PRICE_PER_MINUTE = 0.05
INTENTS = ("A - strong interest", "B - some interest", "C - call back later", "D - not now", "")
"""Tenant-like tag names for ``intentLevelDetailName``; answered calls only, sometimes empty."""
_FIRST = ("Alice", "Bruno", "Chen", "Dana", "Emeka", "Fatima", "Goran", "Hana", "Ivan", "Jia")
_LAST = ("Moreau", "Okafor", "Lindqvist", "Tanaka", "Silva", "Novak", "Haddad", "Kowalski")
_CONCERNS = ("price", "delivery time", "contract terms", "")
_CALL_ID_STRIDE = 1_000_000  # calls a task can have: Plan totals stay far below


@dataclass(frozen=True)
class Timeline:
    """Maps the simulator's simulated seconds to wall-clock seconds and back."""

    started_at: float
    speed: float

    @property
    def _scale(self) -> float:
        return self.speed or 1.0  # at speed 0 time stands still; times still need a mapping

    def wall(self, elapsed: float) -> float:
        return self.started_at + elapsed / self._scale

    def elapsed(self, wall: float) -> float:
        return (wall - self.started_at) * self._scale


@dataclass(frozen=True)
class Call:
    """One finished call, every value drawn; ``start`` and ``end`` are wall-clock seconds."""

    app_id: str
    plan: Plan
    index: int
    start: float
    end: float
    result: str
    talk: int
    hangup_by: str
    rounds: int
    intent: str
    redials: int
    phone: str
    person: str
    concern: str
    record_id: str
    key_id: str
    line_id: str = ""  # tenantPhoneNumberId: the app's line the call went out on

    @property
    def call_id(self) -> str:
        return str(self.plan.job_id * _CALL_ID_STRIDE + self.index)

    @property
    def billed(self) -> int:
        """Talk time rounded up to whole minutes, in seconds."""
        return math.ceil(self.talk / 60) * 60

    @property
    def answered(self) -> bool:
        return self.result in ANSWERED_STATUSES


def call(seed: int, app_id: str, plan: Plan, index: int, timeline: Timeline) -> Call:
    """Call ``index`` of the task, the same for the same seed whenever it is drawn."""
    rng = random.Random(f"{seed}:{app_id}:{plan.job_id}:{index}")
    result = rng.choices(RESULT_STATUSES, OUTCOME_WEIGHTS)[0]
    line = plan.lines.line_of(plan.job_id, index)
    result = _on_line(rng, plan, line, index, result)
    answered = result in ANSWERED_STATUSES
    ring = rng.randint(30, 60) if result == "NO_ANSWER" else rng.randint(0, 20)
    talk = min(600, max(3, round(rng.lognormvariate(3.7, 0.8)))) if answered else 0
    end = plan.start + (index + 1) / plan.rate
    return Call(
        app_id=app_id,
        plan=plan,
        index=index,
        start=timeline.wall(end - ring - talk),
        end=timeline.wall(end),
        result=result,
        talk=talk,
        hangup_by=rng.choice(("REMOTE_HANGUP", "ROBOT_HANGUP")) if answered else "SYSTEM_HANGUP",
        rounds=max(1, talk // 8) if answered else 0,
        intent=rng.choice(INTENTS) if answered else "",
        redials=rng.choices((0, 1, 2), (85, 12, 3))[0],
        phone=f"1555{rng.randrange(10**6, 10**7)}",
        person=f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
        concern=rng.choice(_CONCERNS) if answered else "",
        record_id=str(rng.randrange(10**17, 10**18)),
        key_id=str(rng.randrange(10**9, 10**10)),
        line_id=line.line_id,
    )


def _on_line(rng: random.Random, plan: Plan, line: Line, index: int, result: str) -> str:
    """The result as the call's line lets it end: a degraded line loses some of the calls that
    would have been answered (``lines.Degrade``); any other line changes nothing."""
    lost = plan.lines.loses(line, plan.start + (index + 1) / plan.rate)
    if lost and result in ANSWERED_STATUSES and rng.random() < lost:
        return rng.choices(LOST_RESULTS, LOST_WEIGHTS)[0]
    return result


def started_between(
    seed: int,
    app_id: str,
    plans: Sequence[Plan],
    start: int,
    end: int,
    now: float,
    timeline: Timeline,
) -> list[Call]:
    """The calls that started in whole wall seconds [start, end] and ended by ``now``, oldest
    end first (then by callId). Only candidates whose end can fall in the window are drawn."""
    low, high = timeline.elapsed(start), timeline.elapsed(end + 1) + MAX_CALL_SECONDS
    ended_now = timeline.elapsed(now)
    found: list[Call] = []
    for plan in plans:
        done = plan.state_at(ended_now)[1]
        if done == 0:
            continue
        first = max(0, math.floor((low - plan.start) * plan.rate) - 2)
        last = min(done, math.ceil((high - plan.start) * plan.rate) + 2)
        for index in range(first, last):
            drawn = call(seed, app_id, plan, index, timeline)
            if start <= math.floor(drawn.start) <= end:
                found.append(drawn)
    found.sort(key=lambda c: (c.end, int(c.call_id)))
    return found


def ended_in(
    seed: int, app_id: str, plans: Iterable[Plan], after: float, until: float, timeline: Timeline
) -> Iterator[Call]:
    """The plans' calls that ended in (after, until] simulated seconds, plan by plan: a plan's
    ``taskCompleted`` counts its ended calls, so only those are drawn."""
    for plan in plans:
        for index in range(plan.state_at(after)[1], plan.state_at(until)[1]):
            yield call(seed, app_id, plan, index, timeline)


def query_record(c: Call) -> dict[str, Any]:
    """The call as ``recordQuery`` shows it: strings where the vendor documents strings."""
    return {
        "callId": c.call_id,
        "callRecordId": c.record_id,
        "keyId": c.key_id,
        "appId": c.app_id,
        "callJobId": str(c.plan.job_id),
        "dialogFlowId": _dialog_flow_id(c.plan),
        "tenantPhoneNumberId": c.line_id,
        "robotCount": c.plan.robots,
        "calledPhoneNumber": c.phone,
        "customerPersonName": c.person,
        "hangupBy": c.hangup_by,
        "resultStatus": c.result,
        "startTime": create_time(c.start),
        "endTime": create_time(c.end),
        "chatDuration": str(c.talk),
        "chargedDuration": str(c.billed),
        "chatRound": str(c.rounds),
        "intentLevelDetailName": c.intent,
        "attributes": json.dumps({"customerName": c.person, "segment": "retail"}),
        "customerConcern": c.concern,
        "properties": _properties(c),
        "dynamicProperties": json.dumps({"visit": str(c.redials + 1)}),
        "fullAudioUrl": _audio(c, "full"),
        "customerAudioUrl": _audio(c, "customer"),
        "redialTimes": str(c.redials),
    }


def push_record(c: Call) -> dict[str, Any]:
    """The call as the push sends it: Unix seconds and numbers, ``pay`` a string amount."""
    return {
        "callId": c.call_id,
        "appId": c.app_id,
        "robotCallJobId": c.plan.job_id,
        "dialogFlowId": _dialog_flow_id(c.plan),
        "tenantPhoneNumberId": int(c.line_id),  # the push sends a number
        "calledPhoneNumber": c.phone,
        "startTime": math.floor(c.start),
        "endTime": math.floor(c.end),
        "resultStatus": c.result,
        "hangupBy": c.hangup_by,
        "chatDuration": c.talk,
        "billingTime": c.billed,
        "pay": f"{c.billed // 60 * PRICE_PER_MINUTE:.2f}",
        "chatRound": c.rounds,
        "intentLevelDetailName": c.intent,
        "callDetailList": _transcript(c),
        "callCount": c.redials + 1,
        "redialTimes": c.redials,
        "fullAudioUrl": _audio(c, "full"),
        "customerAudioUrl": _audio(c, "customer"),
        "properties": _properties(c),
        "dynamicProperties": json.dumps({"visit": str(c.redials + 1)}),
    }


def filler_record(index: int, now: float) -> dict[str, Any]:
    """A made-up answered call outside every task, for hostile pages."""
    return {
        "callId": str(9_000_000_000_000 + index),
        "callJobId": "9000000000",
        "resultStatus": "ANSWERED",
        "startTime": create_time(now - 60),
        "endTime": create_time(now),
        "chatDuration": "60",
        "chargedDuration": "60",
    }


def _dialog_flow_id(plan: Plan) -> str:
    return str(sum(map(ord, plan.dialog_flow)) * 97 % 100_000)


def _properties(c: Call) -> str:
    return json.dumps({"customerName": c.person, "phone": c.phone})


def _audio(c: Call, kind: str) -> str:
    return f"https://audio.example.invalid/{c.app_id}/{c.call_id}/{kind}.wav" if c.talk else ""


def _transcript(c: Call) -> list[dict[str, Any]]:
    if not c.answered:
        return []
    return [
        {"role": "ROBOT", "offset": 0, "text": f"Hello, am I speaking with {c.person}?"},
        {"role": "CUSTOMER", "offset": 3, "text": f"Yes, {c.person.split()[0]} here."},
        {"role": "ROBOT", "offset": 6, "text": f"We will call {c.phone} again if needed."},
    ]
