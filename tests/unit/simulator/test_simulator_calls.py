"""The simulator's call records: ``POST /aivoice/recordQuery`` and the call-record push.

Requests are signed here from the vendor's document, and pushes land on a tiny receiver this
file owns, so nothing of the simulator's own code checks itself.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from exporter.simulator import Faults, Simulator
from tests.support.clock import FakeClock
from tests.support.simulators import MakeSim, simulators

KEY = "callsKey"
SECRET = "calls-secret"
APPS = ("CALLAPP1", "CALLAPP2")
ZONE = timezone(timedelta(hours=8))
RESULTS = {
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
}
STRING_FIELDS = (
    "callId",
    "callRecordId",
    "keyId",
    "appId",
    "callJobId",
    "dialogFlowId",
    "tenantPhoneNumberId",
    "calledPhoneNumber",
    "customerPersonName",
    "hangupBy",
    "resultStatus",
    "startTime",
    "endTime",
    "chatDuration",
    "chargedDuration",
    "chatRound",
    "intentLevelDetailName",
    "attributes",
    "customerConcern",
    "properties",
    "dynamicProperties",
    "fullAudioUrl",
    "customerAudioUrl",
    "redialTimes",
)
NUMERIC_STRINGS = ("chatDuration", "chargedDuration", "chatRound", "redialTimes", "callJobId")
DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_sim(clock: FakeClock) -> Iterator[MakeSim]:
    """Simulators on the test's fake clock; all stopped when the test ends."""
    with simulators(KEY, SECRET, APPS, clock=clock) as make:
        yield make


@pytest.fixture
def sim(make_sim: MakeSim) -> Simulator:
    return make_sim()


def vendor_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, ZONE).strftime("%Y-%m-%d %H:%M:%S")


def query(
    sim: Simulator,
    clock: FakeClock,
    start: float,
    end: float,
    *,
    current: int = 1,
    size: int = 100,
    app_id: str = APPS[0],
    secret: str = SECRET,
    params: dict[str, Any] | None = None,
) -> requests.Response:
    """POST recordQuery for [start, end], signed for the fake clock's now."""
    timestamp = str(int(clock.now))
    sign = hashlib.md5(f"{KEY}{secret}{timestamp}".encode()).hexdigest()
    if params is None:
        params = {"appId": app_id, "startTime": vendor_time(start), "endTime": vendor_time(end)}
    body = {"current": current, "size": size, "params": params}
    return requests.post(
        f"{sim.base_url}/recordQuery",
        json=body,
        headers={"Api-Key": KEY, "Timestamp": timestamp, "Sign": sign},
        timeout=10,
    )


def answer(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


def every_record(
    sim: Simulator, clock: FakeClock, start: float, end: float, size: int
) -> list[dict[str, Any]]:
    first = answer(query(sim, clock, start, end, size=size))["data"]
    records = list(first["records"])
    for current in range(2, first["pages"] + 1):
        page = answer(query(sim, clock, start, end, size=size, current=current))["data"]
        records += page["records"]
    return records


def completed(sim: Simulator, app_id: str = APPS[0]) -> dict[str, int]:
    return {str(task["jobId"]): task["taskCompleted"] for task in sim.tasks(app_id)}


def epoch(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZONE).timestamp())


# ---- recordQuery


@pytest.mark.slow
def test_record_query_returns_only_calls_that_started_in_the_window(
    sim: Simulator, clock: FakeClock
) -> None:
    start, end = clock.now - 600, clock.now - 300
    records = every_record(sim, clock, start, end, size=100)
    assert records
    assert all(start <= epoch(r["startTime"]) <= end for r in records)
    everything = sim.calls(APPS[0], start - 900, end + 900)
    inside = [r for r in everything if start <= epoch(r["startTime"]) <= end]
    assert sorted(r["callId"] for r in records) == sorted(r["callId"] for r in inside)
    assert len(inside) < len(everything)


def test_record_query_pages_cover_every_call_once(sim: Simulator, clock: FakeClock) -> None:
    start, end = clock.now - 60, clock.now
    first = answer(query(sim, clock, start, end, size=40))["data"]
    records = every_record(sim, clock, start, end, size=40)
    ids = [r["callId"] for r in records]
    assert first["pages"] == math.ceil(first["total"] / 40) > 2
    assert len(ids) == len(set(ids)) == first["total"]


def test_record_query_serves_oldest_end_first(sim: Simulator, clock: FakeClock) -> None:
    records = every_record(sim, clock, clock.now - 300, clock.now, size=100)
    ends = [epoch(r["endTime"]) for r in records]
    assert ends == sorted(ends)


def test_record_query_page_past_the_end_is_empty(sim: Simulator, clock: FakeClock) -> None:
    data = answer(query(sim, clock, clock.now - 60, clock.now, current=10_000))["data"]
    assert data["records"] == [] and data["total"] > 0


def test_record_query_checks_the_signature(sim: Simulator, clock: FakeClock) -> None:
    payload = answer(query(sim, clock, clock.now - 60, clock.now, secret="wrong"))
    assert payload["status"] == "-1" and "data" not in payload


def test_record_query_unknown_app_answers_minus_37(sim: Simulator, clock: FakeClock) -> None:
    payload = answer(query(sim, clock, clock.now - 60, clock.now, app_id="NOPE"))
    assert payload["status"] == "-37"


@pytest.mark.parametrize(
    "params",
    [
        {"appId": APPS[0], "endTime": "2023-11-14 22:00:00"},
        {"appId": APPS[0], "startTime": "2023-11-14 21:00:00"},
        {"startTime": "2023-11-14 21:00:00", "endTime": "2023-11-14 22:00:00"},
        {"appId": APPS[0], "startTime": "2023-11-14T21:00:00", "endTime": "2023-11-14 22:00:00"},
        {"appId": APPS[0], "startTime": "2023-11-14 21:00", "endTime": "2023-11-14 22:00:00"},
        {"appId": APPS[0], "startTime": "2023-02-30 21:00:00", "endTime": "2023-11-14 22:00:00"},
        {"appId": APPS[0], "startTime": 1700000000, "endTime": "2023-11-14 22:00:00"},
        {"appId": APPS[0], "startTime": "2023-11-14 22:00:01", "endTime": "2023-11-14 22:00:00"},
    ],
)
def test_record_query_missing_or_invalid_params_answer_minus_27(
    sim: Simulator, clock: FakeClock, params: dict[str, Any]
) -> None:
    payload = answer(query(sim, clock, 0, 0, params=params))
    assert payload["status"] == "-27" and "data" not in payload


@pytest.mark.parametrize("size", [0, 101])
def test_record_query_size_outside_1_to_100_answers_minus_27(
    sim: Simulator, clock: FakeClock, size: int
) -> None:
    assert answer(query(sim, clock, clock.now - 60, clock.now, size=size))["status"] == "-27"


def test_records_carry_the_documented_fields_as_strings(sim: Simulator, clock: FakeClock) -> None:
    records = every_record(sim, clock, clock.now - 300, clock.now, size=100)
    assert records
    for record in records:
        assert all(isinstance(record[name], str) for name in STRING_FIELDS), record
        assert all(record[name].isdigit() for name in NUMERIC_STRINGS), record
        assert isinstance(record["robotCount"], int)
        assert DATE.fullmatch(record["startTime"]) and DATE.fullmatch(record["endTime"])
        assert record["appId"] == APPS[0] and record["customerPersonName"]


@pytest.mark.slow
def test_outcomes_use_the_documented_values_with_plausible_shares(sim: Simulator) -> None:
    records = sim.calls(APPS[0]) + sim.calls(APPS[1])
    shares = collections.Counter(r["resultStatus"] for r in records)
    assert set(shares) == RESULTS
    common = shares["ANSWERED"] + shares["NO_ANSWER"] + shares["BUSY"]
    assert common > 0.7 * len(records)
    assert all(0 < shares[value] < 0.05 * len(records) for value in RESULTS - {"ANSWERED",
               "NO_ANSWER", "BUSY"})  # fmt: skip


@pytest.mark.slow
def test_only_answered_calls_talk_and_billing_rounds_up_to_minutes(sim: Simulator) -> None:
    for record in sim.calls(APPS[0]):
        talk, billed = int(record["chatDuration"]), int(record["chargedDuration"])
        answered = record["resultStatus"] in ("ANSWERED", "TRANSFER_ARTIFICIAL")
        assert (talk > 0) == answered, record
        assert billed == math.ceil(talk / 60) * 60
        assert epoch(record["startTime"]) <= epoch(record["endTime"])


@pytest.mark.slow
def test_call_ids_are_unique_across_apps(sim: Simulator) -> None:
    ids = [r["callId"] for app in APPS for r in sim.calls(app)]
    assert len(ids) == len(set(ids)) > 1000


@pytest.mark.slow
def test_each_task_has_as_many_ended_calls_as_it_completed(sim: Simulator) -> None:
    for app_id in APPS:
        per_task = collections.Counter(r["callJobId"] for r in sim.calls(app_id))
        done = completed(sim, app_id)
        assert {job: n for job, n in done.items() if n} == dict(per_task)


@pytest.mark.slow
def test_calls_appear_when_they_end(sim: Simulator, clock: FakeClock) -> None:
    before_calls, before_done = sim.calls(APPS[0]), completed(sim)
    clock.now += 30
    after_calls, after_done = sim.calls(APPS[0]), completed(sim)
    new = {r["callId"] for r in after_calls} - {r["callId"] for r in before_calls}
    assert len(new) == sum(after_done.values()) - sum(before_done.values()) > 0
    assert all(epoch(r["endTime"]) > clock.now - 31 for r in after_calls if r["callId"] in new)


@pytest.mark.slow
def test_calls_are_the_same_for_the_same_seed(make_sim: MakeSim) -> None:
    assert make_sim(seed=3).calls(APPS[0]) == make_sim(seed=3).calls(APPS[0])
    assert make_sim(seed=3).calls(APPS[0]) != make_sim(seed=4).calls(APPS[0])


def test_added_and_pinned_tasks_make_no_calls(sim: Simulator) -> None:
    sim.set_tasks(APPS[0], [])
    assert sim.calls(APPS[0]) == []


def test_record_query_is_counted_in_stats(sim: Simulator, clock: FakeClock) -> None:
    answer(query(sim, clock, clock.now - 60, clock.now))
    stats = sim.stats()
    assert (stats["requests"], stats["record_queries"], stats["answered"]) == (1, 1, {"0": 1})


# ---- faults on recordQuery


def task_list_status(sim: Simulator, clock: FakeClock) -> str:
    timestamp = str(int(clock.now))
    sign = hashlib.md5(f"{KEY}{SECRET}{timestamp}".encode()).hexdigest()
    response = requests.post(
        f"{sim.base_url}/taskList",
        json={"current": 1, "size": 100, "params": {"appId": APPS[0]}},
        headers={"Api-Key": KEY, "Timestamp": timestamp, "Sign": sign},
        timeout=10,
    )
    status: str = answer(response)["status"]
    return status


def test_faults_scoped_to_record_query_leave_task_list_healthy(
    sim: Simulator, clock: FakeClock
) -> None:
    sim.set_faults(Faults(api_code="-5", endpoints=("recordQuery",)))
    assert answer(query(sim, clock, clock.now - 60, clock.now))["status"] == "-5"
    assert task_list_status(sim, clock) == "0"
    assert sim.stats()["fault_codes"] == {"-5": 1}


def test_unscoped_faults_apply_to_record_query_too(sim: Simulator, clock: FakeClock) -> None:
    sim.set_faults(Faults(http_status=503))
    assert query(sim, clock, clock.now - 60, clock.now).status_code == 503


def test_fail_next_can_target_record_query_only(sim: Simulator, clock: FakeClock) -> None:
    sim.fail_next(1, "api_code", endpoint="recordQuery")
    assert task_list_status(sim, clock) == "0"
    assert answer(query(sim, clock, clock.now - 60, clock.now))["status"] == "-5"
    assert answer(query(sim, clock, clock.now - 60, clock.now))["status"] == "0"


def test_poison_on_record_query_poisons_a_call_field(sim: Simulator, clock: FakeClock) -> None:
    sim.fail_next(1, "poison", endpoint="recordQuery", variant="superscript_digit")
    records = answer(query(sim, clock, clock.now - 60, clock.now))["data"]["records"]
    assert records[0]["chargedDuration"] == "²"


def test_faults_reject_unknown_endpoints() -> None:
    with pytest.raises(ValueError, match="endpoints"):
        Faults(endpoints=("callList",))


def test_faults_endpoints_round_trip_through_json(sim: Simulator) -> None:
    url = sim.base_url.replace("/aivoice", "/-/faults")
    sent = requests.post(url, json={"api_code": "-5", "endpoints": ["recordQuery"]}, timeout=5)
    assert sent.ok and sim.faults == Faults(api_code="-5", endpoints=("recordQuery",))


# ---- the push


class Receiver:
    """A loopback push receiver: answers each push with the next of ``answers`` (then the
    last one for ever) and keeps what arrived."""

    def __init__(self, answers: list[tuple[int, bytes]]) -> None:
        self.answers = answers
        self.pushes: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.pushes.append((dict(self.headers.items()), json.loads(body)))
                    index = min(len(receiver.pushes), len(receiver.answers)) - 1
                    status, reply = receiver.answers[index]
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/push/call-record/t0ken"

    def records(self) -> list[dict[str, Any]]:
        with self.lock:
            return [record for _, record in self.pushes]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(answers: list[tuple[int, bytes]] | None = None) -> Receiver:
        made.append(Receiver(answers or [(200, b"success")]))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def ended_calls(sim: Simulator, before: dict[str, dict[str, int]]) -> int:
    """Calls that ended since ``before`` (per app, per task completed counts)."""
    return sum(
        n - before[app].get(job, 0) for app in APPS for job, n in completed(sim, app).items()
    )


def push_for(
    make_sim: MakeSim, receiver: Receiver, clock: FakeClock, seconds: float, **options: Any
) -> tuple[Simulator, int]:
    """A simulator pushing to ``receiver``, ``seconds`` after its start: and how many calls
    ended meanwhile."""
    options.setdefault("push_duplicate_ratio", 0.0)
    options.setdefault("push_retry_delay", 0.01)
    sim = make_sim(push_url=receiver.url, **options)
    before = {app: completed(sim, app) for app in APPS}
    clock.now += seconds
    return sim, ended_calls(sim, before)


def test_push_delivers_each_ended_call_once(
    make_sim: MakeSim, make_receiver: Callable[..., Receiver], clock: FakeClock
) -> None:
    receiver = make_receiver()
    sim, expected = push_for(make_sim, receiver, clock, 5)
    wait_for(lambda: sim.stats()["push_delivered"] == expected)
    ids = [r["callId"] for r in receiver.records()]
    assert len(ids) == len(set(ids)) == expected > 0
    stats = sim.stats()
    assert (stats["push_sent"], stats["push_retried"], stats["push_failed"]) == (expected, 0, 0)


def test_push_sends_json_with_no_credentials(
    make_sim: MakeSim, make_receiver: Callable[..., Receiver], clock: FakeClock
) -> None:
    receiver = make_receiver()
    sim, _ = push_for(make_sim, receiver, clock, 3)
    wait_for(lambda: sim.stats()["push_delivered"] > 0)
    headers, _ = receiver.pushes[0]
    names = {name.lower() for name in headers}
    assert headers["Content-Type"] == "application/json"
    assert not names & {"api-key", "sign", "timestamp", "authorization"}


def test_push_records_use_the_push_field_formats(
    make_sim: MakeSim, make_receiver: Callable[..., Receiver], clock: FakeClock
) -> None:
    receiver = make_receiver()
    sim, _ = push_for(make_sim, receiver, clock, 5)
    wait_for(lambda: sim.stats()["push_delivered"] > 10)
    for record in receiver.records():
        assert record["appId"] in APPS and record["resultStatus"] in RESULTS
        for name in ("robotCallJobId", "startTime", "endTime", "chatDuration", "billingTime"):
            assert isinstance(record[name], int), (name, record)
        assert record["startTime"] <= record["endTime"] <= clock.now
        assert re.fullmatch(r"\d+\.\d\d", record["pay"])
        assert record["billingTime"] == math.ceil(record["chatDuration"] / 60) * 60
        assert isinstance(record["callDetailList"], list) and record["calledPhoneNumber"]
        assert (record["chatDuration"] > 0) == bool(record["callDetailList"])


def test_pushed_calls_match_record_query(
    make_sim: MakeSim, make_receiver: Callable[..., Receiver], clock: FakeClock
) -> None:
    receiver = make_receiver()
    sim, expected = push_for(make_sim, receiver, clock, 5)
    wait_for(lambda: sim.stats()["push_delivered"] == expected)
    polled = {r["callId"]: r for app in APPS for r in sim.calls(app, clock.now - 900)}
    for pushed in receiver.records():
        record = polled[pushed["callId"]]
        assert str(pushed["robotCallJobId"]) == record["callJobId"]
        assert str(pushed["billingTime"]) == record["chargedDuration"]
        assert vendor_time(pushed["endTime"]) == record["endTime"]


@pytest.mark.slow
def test_failed_pushes_are_retried_until_answered_success(
    make_sim: MakeSim, make_receiver: Callable[..., Receiver], clock: FakeClock
) -> None:
    receiver = make_receiver([(503, b"busy"), (200, b"nope"), (200, b"success")])
    sim, expected = push_for(make_sim, receiver, clock, 3)
    wait_for(lambda: sim.stats()["push_delivered"] == expected)
    stats = sim.stats()
    assert stats["push_retried"] >= 2 and stats["push_failed"] == 0
    assert stats["push_sent"] == expected + stats["push_retried"] == len(receiver.records())
    assert {r["callId"] for r in receiver.records()} == {
        r["callId"] for r in receiver.records()[2:]
    }


@pytest.mark.slow
def test_pushes_give_up_after_the_last_try(
    make_sim: MakeSim, make_receiver: Callable[..., Receiver], clock: FakeClock
) -> None:
    receiver = make_receiver([(500, b"")])
    sim, expected = push_for(make_sim, receiver, clock, 2, push_max_attempts=3)
    wait_for(lambda: sim.stats()["push_failed"] == expected)
    stats = sim.stats()
    assert (stats["push_sent"], stats["push_delivered"]) == (3 * expected, 0)
    assert collections.Counter(r["callId"] for r in receiver.records()) == dict.fromkeys(
        {r["callId"] for r in receiver.records()}, 3
    )


def test_some_calls_are_pushed_twice(
    make_sim: MakeSim, make_receiver: Callable[..., Receiver], clock: FakeClock
) -> None:
    receiver = make_receiver()
    sim, expected = push_for(make_sim, receiver, clock, 5, push_duplicate_ratio=0.5)
    wait_for(lambda: sim.stats()["push_delivered"] == expected)
    wait_for(lambda: sim.stats()["push_pending"] == 0)
    seen = collections.Counter(r["callId"] for r in receiver.records())
    twice = sum(1 for n in seen.values() if n == 2)
    assert len(seen) == expected and set(seen.values()) <= {1, 2}
    assert twice == sim.stats()["push_duplicated"] and 0 < twice < expected


def test_calls_that_ended_before_start_are_not_pushed(
    make_sim: MakeSim, make_receiver: Callable[..., Receiver], clock: FakeClock
) -> None:
    receiver = make_receiver()
    sim, _ = push_for(make_sim, receiver, clock, 0)
    time.sleep(0.3)  # several push ticks; the fake clock stands still
    assert sim.stats()["push_sent"] == 0 and receiver.records() == []


def test_stop_ends_the_push_thread(
    make_sim: MakeSim, make_receiver: Callable[..., Receiver], clock: FakeClock
) -> None:
    sim, _ = push_for(make_sim, make_receiver(), clock, 0)
    assert any(t.name == "aivoice-push" for t in threading.enumerate())
    sim.stop()
    assert not any(t.name == "aivoice-push" for t in threading.enumerate())


def test_push_url_must_be_http(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="push_url"):
        Simulator(KEY, SECRET, APPS, clock=clock, push_url="ftp://127.0.0.1/x")


def test_stats_count_no_pushes_without_a_push_url(sim: Simulator, clock: FakeClock) -> None:
    clock.now += 5
    stats = sim.stats()
    assert [stats[k] for k in ("push_sent", "push_delivered", "push_dropped")] == [0, 0, 0]


def test_calls_that_find_the_queue_full_are_dropped_and_counted(
    make_sim: MakeSim, make_receiver: Callable[..., Receiver], clock: FakeClock
) -> None:
    receiver = make_receiver()
    sim, expected = push_for(make_sim, receiver, clock, 30, push_queue_size=5)
    wait_for(lambda: sim.stats()["push_delivered"] + sim.stats()["push_dropped"] == expected)
    assert (sim.stats()["push_delivered"], len(receiver.records())) == (5, 5)
    assert sim.stats()["push_dropped"] == expected - 5 > 0
