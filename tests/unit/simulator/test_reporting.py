"""recordQuery's windows in the simulator: the time they select by, report lags, scripts.

Requests are signed here from the vendor's document and the window's truth is computed here
from the simulator's own list of calls, so the simulator's window code does not check itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from exporter.simulator import Simulator
from exporter.simulator.reporting import LATE_SHARE, ScriptedCall, report_lag
from tests.support.clock import FakeClock

KEY, SECRET, APP = "reportKey", "report-secret", "REPORTAPP"
ZONE = timezone(timedelta(hours=8))


def _text(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, ZONE).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZONE).timestamp())


def _window(sim: Simulator, now: float, first: float, last: float) -> dict[str, Any]:
    timestamp = str(int(now))
    headers = {
        "Api-Key": KEY,
        "Timestamp": timestamp,
        "Sign": hashlib.md5((KEY + SECRET + timestamp).encode()).hexdigest(),
    }
    body = {"current": 1, "size": 100, "params": {"appId": APP}}
    body["params"].update(startTime=_text(first), endTime=_text(last))  # type: ignore[attr-defined]
    answer = requests.post(f"{sim.base_url}/recordQuery", json=body, headers=headers, timeout=10)
    data: dict[str, Any] = answer.json()["data"]
    return data


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def sims(clock: FakeClock) -> Iterator[list[Simulator]]:
    started: list[Simulator] = []
    yield started
    for sim in started:
        sim.stop()


@pytest.mark.parametrize("select_by", ["start", "end"])
def test_a_window_holds_the_calls_whose_chosen_time_falls_in_it(
    select_by: str, clock: FakeClock, sims: list[Simulator]
) -> None:
    sim = Simulator(KEY, SECRET, [APP], clock=clock, select_by=select_by).start()
    sims.append(sim)
    clock.now += 900
    first, last = clock.now - 300, clock.now - 280
    field = "startTime" if select_by == "start" else "endTime"
    truth = {c["callId"] for c in sim.calls(APP) if first <= _seconds(c[field]) <= last}
    data = _window(sim, clock.now, first, last)
    assert truth and data["total"] == len(truth)
    assert {r["callId"] for r in data["records"]} == truth


def test_with_lags_a_call_shows_only_its_lag_after_its_end(
    clock: FakeClock, sims: list[Simulator]
) -> None:
    sim = Simulator(KEY, SECRET, [APP], clock=clock, select_by="end", report_lags=True).start()
    sims.append(sim)
    clock.now += 900
    first, last = clock.now - 60, clock.now
    ended = [c for c in sim.calls(APP) if first <= _seconds(c["endTime"]) <= last]
    shown = {c["callId"] for c in ended if _seconds(c["endTime"]) + 1 <= clock.now - 40}
    data = _window(sim, clock.now, first, last)
    assert shown <= {r["callId"] for r in data["records"]}
    assert 0 < data["total"] < len(ended)


def test_about_three_percent_of_calls_are_reported_late() -> None:
    lags = [report_lag(0, APP, str(n)) for n in range(20_000)]
    late = [lag for lag in lags if lag >= 5]
    assert all(5 <= lag <= 40 for lag in late)
    assert all(lag < 1 for lag in lags if lag < 5)
    assert abs(len(late) / len(lags) - LATE_SHARE) < 0.005


def test_a_scripted_call_shows_from_its_report_time(
    clock: FakeClock, sims: list[Simulator]
) -> None:
    sim = Simulator(KEY, SECRET, [APP], clock=clock, tasks_per_app=0, select_by="end").start()
    sims.append(sim)
    now = clock.now
    sim.shown.script(APP, [ScriptedCall("1", now - 10, now - 5, now + 20)])
    assert _window(sim, clock.now, now - 5, now - 5)["total"] == 0
    clock.now += 20
    assert _window(sim, clock.now, now - 5, now - 5)["records"][0]["callId"] == "1"
    assert _window(sim, clock.now, now - 10, now - 6)["total"] == 0  # its start is not its end
