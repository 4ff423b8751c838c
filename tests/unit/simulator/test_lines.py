"""The simulator's lines: ``POST /aivoice/channelList``, the line each call goes out on, and the
line that degrades. Requests are signed here from the vendor's document."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from exporter.simulator import Faults, Simulator
from exporter.simulator.calls import ANSWERED_STATUSES
from exporter.simulator.lines import Degrade, app_lines
from tests.support.clock import FakeClock
from tests.support.simulators import MakeSim, simulators

KEY, SECRET = "linesKey", "lines-secret"
APPS = ("LINEAPP1", "LINEAPP2")
ZONE = timezone(timedelta(hours=8))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_sim(clock: FakeClock) -> Iterator[MakeSim]:
    with simulators(KEY, SECRET, APPS, clock=clock) as make:
        yield make


def channel_list(sim: Simulator, clock: FakeClock, body: Any) -> dict[str, Any]:
    timestamp = str(int(clock.now))
    sign = hashlib.md5(f"{KEY}{SECRET}{timestamp}".encode()).hexdigest()
    response = requests.post(
        f"{sim.base_url}/channelList",
        json=body,
        headers={"Api-Key": KEY, "Timestamp": timestamp, "Sign": sign},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


def test_each_app_has_two_to_four_lines_the_same_for_the_same_seed() -> None:
    for seed in range(30):
        for app in APPS:
            lines = app_lines(seed, app).lines
            assert 2 <= len(lines) <= 4
            assert len({line.line_id for line in lines}) == len(lines)
            assert lines == app_lines(seed, app).lines


def test_channel_list_lists_the_apps_lines(make_sim: MakeSim, clock: FakeClock) -> None:
    sim = make_sim(seed=3)
    answer = channel_list(sim, clock, {"appId": APPS[0]})
    assert (answer["status"], answer["reason"]) == ("0", "success")
    assert answer["data"] == [
        {"tenantPhoneNumberId": line.line_id, "phoneNumber": line.name}
        for line in app_lines(3, APPS[0]).lines
    ]


@pytest.mark.parametrize(
    ("body", "code"), [({"appId": "NOSUCHAPP"}, "-37"), ({}, "-27"), ([1], "-27")]
)
def test_channel_list_refuses_what_the_api_refuses(
    make_sim: MakeSim, clock: FakeClock, body: Any, code: str
) -> None:
    assert channel_list(make_sim(), clock, body)["status"] == code


def test_a_poisoned_channel_list_hides_the_lines_among_hostile_entries(
    make_sim: MakeSim, clock: FakeClock
) -> None:
    sim = make_sim(seed=3)
    sim.fail_next(1, "poison", endpoint="channelList")
    data = channel_list(sim, clock, {"appId": APPS[0]})["data"]
    ids = {str(entry.get("tenantPhoneNumberId")) for entry in data if isinstance(entry, dict)}
    assert {line.line_id for line in app_lines(3, APPS[0]).lines} <= ids
    assert any(
        isinstance(entry, dict) and "<script>" in entry.get("phoneNumber", "") for entry in data
    )


def test_faults_can_aim_at_channel_list_alone(make_sim: MakeSim, clock: FakeClock) -> None:
    sim = make_sim()
    sim.set_faults(Faults(api_code="-5", endpoints=("channelList",)))
    assert channel_list(sim, clock, {"appId": APPS[0]})["status"] == "-5"
    sim.set_faults(Faults(api_code="-5", endpoints=("recordQuery",)))
    assert channel_list(sim, clock, {"appId": APPS[0]})["status"] == "0"


def test_every_call_goes_out_on_one_of_the_apps_lines_named_alike_both_ways(
    make_sim: MakeSim, clock: FakeClock
) -> None:
    sim = make_sim(seed=5)
    clock.now += 600
    calls = sim.calls(APPS[0])
    on = Counter(record["tenantPhoneNumberId"] for record in calls)
    assert set(on) == {line.line_id for line in app_lines(5, APPS[0]).lines}
    assert all(isinstance(line, str) for line in on)


def answered_share(records: list[dict[str, Any]]) -> float:
    return sum(r["resultStatus"] in ANSWERED_STATUSES for r in records) / len(records)


def ended(record: dict[str, Any]) -> float:
    return (
        datetime.strptime(record["endTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZONE).timestamp()
    )


def test_the_degraded_line_answers_a_third_as_often_once_it_degrades(
    make_sim: MakeSim, clock: FakeClock
) -> None:
    start = clock.now
    sim = make_sim(seed=5, degrade=Degrade(APPS[0], line=1, after=1200.0))
    clock.now += 3600
    records = sim.calls(APPS[0], start=start)
    lines = app_lines(5, APPS[0]).lines
    degraded, healthy = lines[1].line_id, lines[0].line_id

    def share(line_id: str, *, before: bool) -> float:
        on_line = [r for r in records if r["tenantPhoneNumberId"] == line_id]
        return answered_share([r for r in on_line if (ended(r) < start + 1200) == before])

    assert share(degraded, before=True) == pytest.approx(share(healthy, before=True), rel=0.25)
    assert share(degraded, before=False) == pytest.approx(share(healthy, before=False) / 3, rel=0.3)


def test_a_degraded_line_leaves_every_other_call_as_it_was(
    make_sim: MakeSim, clock: FakeClock
) -> None:
    start = clock.now
    degraded = make_sim(seed=5, degrade=Degrade(APPS[0], line=1, after=0.0))
    healthy = make_sim(seed=5)
    clock.now += 1800
    line = app_lines(5, APPS[0]).lines[1].line_id
    for app in APPS:
        before = [r for r in healthy.calls(app, start=start) if r["tenantPhoneNumberId"] != line]
        after = [r for r in degraded.calls(app, start=start) if r["tenantPhoneNumberId"] != line]
        assert before == after
