"""The ITNIO taskList simulator, checked over real sockets with plain `requests`.

Signatures are computed here from the vendor's document (md5 of key + secret + timestamp), not
with the simulator's own helper, so a mistake in one cannot hide in the other.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import math
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

import exporter.simulator as simulator_package
from exporter.simulator import (
    ALL_FAULT_KINDS,
    HOSTILE_FAULT_KINDS,
    KNOWN_STATUSES,
    Faults,
    Simulator,
    expected_status_code,
    gzip_bomb,
    odd_valid_records,
)
from tests.support.clock import FakeClock
from tests.support.simulators import MakeSim, simulators

KEY = "bDqJFiq9"
SECRET = "sim-test-secret"
APPS = ("LILIN888", "OTHER01")
ROOT = Path(__file__).resolve().parents[3]
CREATE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture
def make_sim() -> Iterator[MakeSim]:
    """Start simulators with any options; all are stopped when the test ends."""
    with simulators(KEY, SECRET, APPS) as make:
        yield make


@pytest.fixture
def sim(make_sim: MakeSim) -> Simulator:
    return make_sim()


def signed_headers(timestamp: str, key: str = KEY, secret: str = SECRET) -> dict[str, str]:
    sign = hashlib.md5(f"{key}{secret}{timestamp}".encode()).hexdigest()
    return {"Api-Key": key, "Timestamp": timestamp, "Sign": sign}


def post(
    sim: Simulator,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    now: float | None = None,
    timeout: float = 5,
    **params: Any,
) -> requests.Response:
    """POST taskList; the body defaults to page 1 of 100 of the first app, signed for `now`."""
    if body is None:
        body = {
            "current": params.pop("current", 1),
            "size": params.pop("size", 100),
            "params": {"appId": params.pop("app_id", APPS[0]), **params},
        }
    if headers is None:
        headers = signed_headers(str(int(time.time() if now is None else now)))
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{sim.base_url}/taskList", data=data, headers=headers, timeout=timeout)


def api(sim: Simulator, **kwargs: Any) -> dict[str, Any]:
    """The JSON answer of a request the API answers with HTTP 200."""
    response = post(sim, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def all_records(sim: Simulator, size: int = 5, **kwargs: Any) -> list[dict[str, Any]]:
    first = api(sim, size=size, **kwargs)["data"]
    records = list(first["records"])
    for current in range(2, first["pages"] + 1):
        records += api(sim, size=size, current=current, **kwargs)["data"]["records"]
    return records


def assert_error(answer: dict[str, Any], code: str) -> None:
    assert answer["status"] == code
    assert isinstance(answer["reason"], str) and answer["reason"]
    assert "data" not in answer


def read_http_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response with Content-Length, read off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the headers"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    return int(head.split()[1]), rest[:length]


# --------------------------------------------------------------------------- signing and codes


@pytest.mark.parametrize("api_key", [None, ""])
def test_missing_or_empty_api_key_answers_minus_59(sim: Simulator, api_key: str | None) -> None:
    headers = signed_headers(str(int(time.time())))
    if api_key is None:
        del headers["Api-Key"]
    else:
        headers["Api-Key"] = api_key
    assert_error(api(sim, headers=headers), "-59")


def test_missing_timestamp_answers_minus_58(sim: Simulator) -> None:
    headers = signed_headers(str(int(time.time())))
    del headers["Timestamp"]
    assert_error(api(sim, headers=headers), "-58")


def test_missing_sign_answers_minus_57(sim: Simulator) -> None:
    headers = signed_headers(str(int(time.time())))
    del headers["Sign"]
    assert_error(api(sim, headers=headers), "-57")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h: {**h, "Sign": "0" * 32},
        lambda h: {**h, "Sign": h["Sign"].upper()},
        lambda h: signed_headers(h["Timestamp"], secret="wrong-secret"),
        lambda h: signed_headers(h["Timestamp"], key="unknownKey"),
    ],
    ids=["wrong-sign", "uppercase-sign", "wrong-secret", "unknown-key"],
)
def test_bad_signature_or_unknown_key_answers_minus_1(
    sim: Simulator, mangle: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    headers = mangle(signed_headers(str(int(time.time()))))
    assert_error(api(sim, headers=headers), "-1")


@pytest.mark.parametrize("offset", [-301, 301, 86_400])
def test_timestamp_more_than_five_minutes_off_answers_minus_4(
    make_sim: MakeSim, offset: int
) -> None:
    clock = FakeClock()
    sim = make_sim(clock=clock)
    assert_error(api(sim, now=clock.now + offset), "-4")


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamp_up_to_five_minutes_off_is_accepted(make_sim: MakeSim, offset: int) -> None:
    clock = FakeClock()
    sim = make_sim(clock=clock)
    assert api(sim, now=clock.now + offset)["status"] == "0"


@pytest.mark.parametrize("timestamp", ["soon", "1700000000.5", "1700000000000000"])
def test_timestamp_that_is_not_epoch_seconds_answers_minus_4(
    sim: Simulator, timestamp: str
) -> None:
    assert_error(api(sim, headers=signed_headers(timestamp)), "-4")


def test_unknown_app_answers_minus_37(sim: Simulator) -> None:
    assert_error(api(sim, app_id="NO_SUCH_APP"), "-37")


@pytest.mark.parametrize(
    "body",
    [
        b"current=1&size=10",
        b"[1, 2]",
        {"current": 0, "size": 10, "params": {"appId": APPS[0]}},
        {"current": "1", "size": 10, "params": {"appId": APPS[0]}},
        {"current": 1, "size": 0, "params": {"appId": APPS[0]}},
        {"current": 1, "size": 101, "params": {"appId": APPS[0]}},
        {"current": 1, "size": 10},
        {"current": 1, "size": 10, "params": {"name": "x"}},
        {"current": 1, "size": 10, "params": {"appId": APPS[0], "name": 5}},
    ],
    ids=[
        "form",
        "array",
        "current-0",
        "current-string",
        "size-0",
        "size-101",
        "no-params",
        "no-appId",
        "name-not-string",
    ],
)
def test_bad_body_answers_minus_27(sim: Simulator, body: Any) -> None:
    assert_error(api(sim, body=body), "-27")


def test_header_names_are_case_insensitive(sim: Simulator) -> None:
    signed = signed_headers(str(int(time.time())))
    headers = {
        "API-KEY": signed["Api-Key"],
        "timestamp": signed["Timestamp"],
        "sIgN": signed["Sign"],
    }
    assert api(sim, headers=headers)["status"] == "0"


def test_php_sample_request_succeeds(sim: Simulator) -> None:
    # What PHP's curl sends for the vendor's sample: its header strings have no space after
    # the colon, and json_encode writes no spaces.
    timestamp = str(int(time.time()))
    sign = hashlib.md5(f"{KEY}{SECRET}{timestamp}".encode()).hexdigest()
    body = json.dumps(
        {"current": 1, "size": 10, "params": {"appId": APPS[0], "name": "Your task name"}},
        separators=(",", ":"),
    ).encode()
    host, port = sim.address
    request = (
        f"POST /aivoice/taskList HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n"
        f"Content-Type:application/json;charset=UTF-8\r\nSign:{sign}\r\n"
        f"Timestamp:{timestamp}\r\nApi-Key:{KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(sim.address, timeout=5) as sock:
        sock.sendall(request)
        status, payload = read_http_response(sock)
    answer = json.loads(payload)
    assert (status, answer["status"], answer["data"]["records"]) == (200, "0", [])


def test_java_sample_requests_succeed_on_one_keep_alive_connection(sim: Simulator) -> None:
    host, port = sim.address
    with socket.create_connection(sim.address, timeout=5) as sock:
        for _ in range(2):  # a fresh Timestamp and Sign each time, as the sample does
            timestamp = str(int(time.time()))
            sign = hashlib.md5(f"{KEY}{SECRET}{timestamp}".encode()).hexdigest()
            body = json.dumps(
                {"current": 1, "size": 10, "params": {"appId": APPS[0], "name": ""}},
                separators=(",", ":"),
            ).encode()
            sock.sendall(
                (
                    f"POST /aivoice/taskList HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    "Connection: Keep-Alive\r\nContent-Type: application/json;charset=UTF-8\r\n"
                    f"Sign: {sign}\r\nTimestamp: {timestamp}\r\nApi-Key: {KEY}\r\n"
                    f"User-Agent: Hutool\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
            status, payload = read_http_response(sock)
            assert (status, json.loads(payload)["status"]) == (200, "0")


# --------------------------------------------------------------------------- paging and records


def test_records_have_the_documented_shape(sim: Simulator) -> None:
    types = {
        "jobId": int,
        "name": str,
        "dialogFlowName": str,
        "jobPhoneNumberName": str,
        "robotCount": int,
        "mode": str,
        "hangupSms": bool,
        "taskTotal": int,
        "taskCompleted": int,
        "status": str,
        "isDialogFlowUnbind": bool,
        "createTime": str,
    }
    answer = api(sim)
    assert (answer["status"], answer["reason"]) == ("0", "success")
    data = answer["data"]
    assert list(data) == ["records", "total", "size", "current", "searchCount", "pages"]
    assert data["searchCount"] is True
    for record in data["records"]:
        assert list(record) == list(types)
        assert {key: type(value) for key, value in record.items()} == types
        assert record["mode"] in ("MANUAL", "AUTO")
        assert CREATE_TIME.fullmatch(record["createTime"])
        assert 0 <= record["taskCompleted"] <= record["taskTotal"]


def test_server_page_size_overrides_the_asked_size(make_sim: MakeSim) -> None:
    sim = make_sim(tasks_per_app=30, server_page_size=25)
    data = api(sim, size=1)["data"]
    assert (data["size"], len(data["records"]), data["total"], data["pages"]) == (25, 25, 30, 2)


def test_paging_covers_every_task_once_when_nothing_changes(make_sim: MakeSim) -> None:
    sim = make_sim(tasks_per_app=23)
    job_ids = [record["jobId"] for record in all_records(sim, size=5)]
    assert len(job_ids) == len(set(job_ids)) == 23
    assert job_ids == sorted(job_ids, reverse=True)  # newest first


def test_page_past_the_end_is_empty(sim: Simulator) -> None:
    data = api(sim, size=5, current=99)["data"]
    assert (data["records"], data["total"], data["current"], data["pages"]) == ([], 12, 99, 3)


def test_added_task_shifts_a_record_onto_the_next_page(sim: Simulator) -> None:
    page1 = api(sim, size=5)["data"]["records"]
    added = sim.add_task(APPS[0])
    page2 = api(sim, size=5, current=2)["data"]["records"]
    assert added["jobId"] > page1[0]["jobId"]
    assert page2[0]["jobId"] == page1[-1]["jobId"]  # the duplicate a client must drop


def test_removed_task_is_gone(sim: Simulator) -> None:
    job_id = sim.tasks(APPS[0])[3]["jobId"]
    assert sim.remove_task(APPS[0], job_id) is True
    assert job_id not in [record["jobId"] for record in api(sim)["data"]["records"]]
    assert sim.remove_task(APPS[0], job_id) is False


def test_name_filter_matches_substrings(sim: Simulator) -> None:
    records = api(sim, name="survey")["data"]["records"]
    expected = [r["jobId"] for r in sim.tasks(APPS[0]) if "survey" in r["name"]]
    assert records and [r["jobId"] for r in records] == expected
    assert api(sim, name="no task is called this")["data"]["total"] == 0


def test_first_app_has_odd_task_names_for_label_escaping(sim: Simulator) -> None:
    names = " ".join(record["name"] for record in api(sim)["data"]["records"])
    for odd in ('"', "\\", "回访", "🚀", "\n"):
        assert odd in names


def test_default_app_shows_every_known_status(sim: Simulator) -> None:
    statuses = {record["status"] for record in api(sim)["data"]["records"]}
    assert statuses == set(KNOWN_STATUSES)


# --------------------------------------------------------------------------- progression


def test_campaigns_progress_with_the_clock(make_sim: MakeSim) -> None:
    clock = FakeClock()
    sim = make_sim(clock=clock)
    before = {r["jobId"]: r for r in api(sim, now=clock.now)["data"]["records"]}
    clock.now += 60
    after = {r["jobId"]: r for r in api(sim, now=clock.now)["data"]["records"]}
    changed = {(before[j]["status"], after[j]["status"]) for j in before if before[j] != after[j]}
    assert ("IN_QUEUE", "IN_PROCESS") in changed
    assert ("NOT_STARTED", "IN_PROCESS") in changed
    assert ("IN_PROCESS", "COMPLETED") in changed
    assert ("IN_PROCESS", "USER_PAUSE") in changed
    assert all(after[j]["taskCompleted"] >= before[j]["taskCompleted"] for j in before)


def test_progress_is_deterministic_for_a_seed_and_clock(make_sim: MakeSim) -> None:
    clock = FakeClock()
    one, two, other = (make_sim(clock=clock, seed=s) for s in (3, 3, 4))
    clock.now += 42
    assert one.tasks(APPS[0]) == two.tasks(APPS[0])
    assert one.tasks(APPS[0]) != other.tasks(APPS[0])


def test_speed_scales_campaign_time(make_sim: MakeSim) -> None:
    clock = FakeClock()
    normal, fast = make_sim(clock=clock), make_sim(clock=clock, speed=10)
    clock.now += 6
    fast_records = fast.tasks(APPS[0])
    clock.now += 54
    assert fast_records == normal.tasks(APPS[0])


def test_set_tasks_pins_exact_records_and_freezes_the_app(make_sim: MakeSim) -> None:
    clock = FakeClock()
    sim = make_sim(clock=clock)
    pinned = [{"jobId": 7, "name": "odd", "status": "SOMETHING_NEW", "taskTotal": "12"}]
    sim.set_tasks(APPS[0], pinned)
    clock.now += 3600
    assert api(sim, now=clock.now)["data"]["records"] == pinned
    assert sim.tasks(APPS[1]) != []  # other apps untouched


# --------------------------------------------------------------------------- faults


def test_latency_delays_every_answer(sim: Simulator) -> None:
    sim.set_faults(Faults(latency_seconds=0.3))
    started = time.monotonic()
    assert api(sim)["status"] == "0"
    assert time.monotonic() - started >= 0.3
    assert sim.stats()["faults_total"] == 0  # slow is not failed


def test_api_code_fault_answers_that_code(sim: Simulator) -> None:
    sim.set_faults(Faults(api_code="-6"))
    assert_error(api(sim), "-6")


def test_faults_apply_only_to_their_app_ids(sim: Simulator) -> None:
    sim.set_faults(Faults(api_code="-50", app_ids=(APPS[1],)))
    assert api(sim, app_id=APPS[0])["status"] == "0"
    assert_error(api(sim, app_id=APPS[1]), "-50")


def test_http_status_fault_answers_that_status(sim: Simulator) -> None:
    sim.set_faults(Faults(http_status=429))
    assert post(sim).status_code == 429


def test_malformed_fault_answers_no_usable_page(sim: Simulator) -> None:
    sim.set_faults(Faults(malformed=True))
    for _ in range(8):
        response = post(sim)
        assert response.status_code == 200
        try:
            answer = response.json()
        except ValueError:
            continue
        assert "data" not in answer


def test_hang_fault_times_the_client_out(sim: Simulator) -> None:
    sim.set_faults(Faults(hang_seconds=0.5))
    with pytest.raises(requests.Timeout):
        post(sim, timeout=0.1)


def test_timeout_fault_drops_the_connection_instead_of_answering_late(sim: Simulator) -> None:
    sim.fail_next(1, "timeout")
    sim.set_faults(Faults(timeout_hang_seconds=0.1))
    with pytest.raises(requests.ConnectionError):
        post(sim, timeout=5)


def test_timeout_counts_when_injected_not_when_it_ends(sim: Simulator) -> None:
    sim.set_faults(Faults(hang_seconds=30))
    with pytest.raises(requests.Timeout):
        post(sim, timeout=0.2)
    assert sim.stats()["faults"]["timeout"] == 1  # while the request still hangs


@pytest.mark.parametrize("kind", ["http_5xx", "timeout", "garbage", "api_code"])
def test_random_faults_inject_only_the_chosen_kind(sim: Simulator, kind: str) -> None:
    sim.set_faults(Faults(random_fail_ratio=1.0, random_kinds=(kind,), timeout_hang_seconds=0.3))
    failures = 0
    # Only a hang needs a short client timeout; any other answer may take a busy machine long.
    timeout = 0.1 if kind == "timeout" else 30
    for _ in range(3):
        try:
            response = post(sim, timeout=timeout)
            failures += response.status_code >= 500 or "data" not in _json_or_empty(response)
        except requests.RequestException:
            failures += kind == "timeout"
    stats = sim.stats()
    assert failures == 3
    assert stats["faults_total"] == 3
    expected_kind = "http_status" if kind == "http_5xx" else kind
    assert stats["faults"][expected_kind] == 3


def _json_or_empty(response: requests.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def test_random_fail_ratio_fails_about_that_share(sim: Simulator) -> None:
    sim.set_faults(Faults(random_fail_ratio=0.5, random_kinds=("api_code",)))
    failed = sum(api(sim)["status"] != "0" for _ in range(60))
    assert 15 <= failed <= 45
    assert sim.stats()["faults_total"] == failed


def test_latency_jitter_stays_within_its_bound(sim: Simulator) -> None:
    sim.set_faults(Faults(latency_seconds=0.05, latency_jitter_seconds=0.1))
    for _ in range(3):
        started = time.monotonic()
        api(sim)
        # At most 0.15 s of latency, and scheduling slack far below a hang.
        assert 0.05 <= time.monotonic() - started < 5.0


@pytest.mark.parametrize("kind", ["http_5xx", "garbage", "api_code"])
def test_fail_next_fails_exactly_the_next_n_requests(sim: Simulator, kind: str) -> None:
    sim.fail_next(2, kind)
    answers = [_json_or_empty(post(sim)) for _ in range(4)]
    assert [a.get("status") == "0" and "data" in a for a in answers] == [False, False, True, True]


def test_fail_next_for_an_app_leaves_other_apps_alone(sim: Simulator) -> None:
    sim.fail_next(1, "api_code", app_id=APPS[1], api_code="-6")
    assert api(sim, app_id=APPS[0])["status"] == "0"
    assert_error(api(sim, app_id=APPS[1]), "-6")
    assert api(sim, app_id=APPS[1])["status"] == "0"


def test_fail_next_http_status_can_be_any_error_status(sim: Simulator) -> None:
    sim.fail_next(1, "http_5xx", http_status=429)
    assert post(sim).status_code == 429
    assert post(sim).status_code == 200


@pytest.mark.slow
def test_stats_count_every_injected_fault_exactly_once(make_sim: MakeSim) -> None:
    sim = make_sim(seed=11)
    sim.set_faults(
        Faults(random_fail_ratio=0.4, timeout_hang_seconds=0.3, random_api_codes=("-5", "-6"))
    )
    seen_failures = 0
    for _ in range(40):
        try:
            response = post(sim, timeout=0.15)
        except requests.RequestException:
            seen_failures += 1
            continue
        answer = _json_or_empty(response)
        seen_failures += (
            response.status_code != 200 or answer.get("status") != "0" or "data" not in answer
        )
    bad_sign = {**signed_headers(str(int(time.time()))), "Sign": "0" * 32}
    assert_error(api(sim, headers=bad_sign), "-1")  # a real rejection, not a fault
    stats = sim.stats()
    assert stats["requests"] == 41
    assert stats["faults_total"] == seen_failures == sum(stats["fault_codes"].values())
    assert stats["answered"] == {"0": 40 - seen_failures, "-1": 1}
    assert 0 < seen_failures < 40


def test_faults_reject_invalid_settings() -> None:
    for bad in (
        {"random_fail_ratio": 1.5},
        {"random_kinds": ("explode",)},
        {"latency_seconds": -1},
        {"http_status": 200},
        {"api_code": "0"},
        {"api_code": -5},
    ):
        with pytest.raises(ValueError):
            Faults(**bad)


# --------------------------------------------------------------------------- HTTP control


def test_post_faults_sets_them_and_missing_fields_reset(sim: Simulator) -> None:
    url = sim.base_url.replace("/aivoice", "/-/faults")
    assert requests.post(url, json={"api_code": "-6", "latency_seconds": 0.01}, timeout=5).ok
    assert_error(api(sim), "-6")
    response = requests.post(url, json={"latency_seconds": 0.01}, timeout=5)
    assert response.json()["api_code"] is None
    assert api(sim)["status"] == "0"
    assert requests.get(url, timeout=5).json() == Faults(latency_seconds=0.01).to_dict()


@pytest.mark.parametrize("body", [{"no_such_fault": 1}, {"random_fail_ratio": "lots"}, [1]])
def test_post_faults_rejects_bad_settings_with_400(sim: Simulator, body: Any) -> None:
    url = sim.base_url.replace("/aivoice", "/-/faults")
    response = requests.post(url, json=body, timeout=5)
    assert response.status_code == 400 and response.json()["error"]
    assert sim.faults == Faults()


def test_post_fail_next_queues_faults(sim: Simulator) -> None:
    url = sim.base_url.replace("/aivoice", "/-/fail-next")
    assert requests.post(url, json={"n": 1, "kind": "http_5xx"}, timeout=5).ok
    assert post(sim).status_code == 503
    assert requests.post(url, json={"n": 1, "kind": "nope"}, timeout=5).status_code == 400


def test_get_stats_returns_the_counters_as_json(sim: Simulator) -> None:
    sim.fail_next(1, "api_code")
    api(sim)
    api(sim)
    stats = requests.get(sim.base_url.replace("/aivoice", "/-/stats"), timeout=5).json()
    assert stats == sim.stats()
    assert (stats["requests"], stats["faults_total"], stats["fault_codes"]) == (2, 1, {"-5": 1})


def test_healthy_endpoint_answers_200(sim: Simulator) -> None:
    assert (
        requests.get(sim.base_url.replace("/aivoice", "/-/healthy"), timeout=5).status_code == 200
    )


def test_unknown_path_is_404_and_get_on_the_api_is_405(sim: Simulator) -> None:
    assert requests.post(f"{sim.base_url}/taskLists", timeout=5).status_code == 404
    assert requests.get(f"{sim.base_url}/taskList", timeout=5).status_code == 405


# --------------------------------------------------------------------------- lifecycle and CLI


def test_stop_ends_hanging_requests_and_frees_the_port() -> None:
    sim = Simulator(KEY, SECRET, APPS).start()
    sim.set_faults(Faults(hang_seconds=60))
    address = sim.address
    try:
        with pytest.raises(requests.Timeout):
            post(sim, timeout=0.1)
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 15  # Not the 60 s hang.
        with pytest.raises(OSError):
            socket.create_connection(address, timeout=1).close()
    finally:
        sim.stop()


def test_context_manager_starts_and_stops() -> None:
    with Simulator(KEY, SECRET, APPS) as sim:
        assert api(sim)["status"] == "0"
        address = sim.address
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=1).close()


@pytest.fixture
def simulator_process() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter.simulator", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()


def read_line(process: subprocess.Popen[str], timeout: float = 10) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        assert selector.select(timeout), "no output in time"
    return process.stdout.readline()  # type: ignore[union-attr]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_listens_on_port_zero_and_exits_0_on_signal(
    simulator_process: Callable[..., subprocess.Popen[str]], sig: signal.Signals
) -> None:
    process = simulator_process(
        "--listen-address",
        "127.0.0.1:0",
        "--api-key",
        KEY,
        "--api-secret",
        SECRET,
        "--app-ids",
        ",".join(APPS),
        "--tasks-per-app",
        "3",
        "--page-size",
        "2",
    )
    line = read_line(process)
    match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+)/aivoice)\n", line)
    assert match and int(match.group(2)) > 0, line
    base_url = match.group(1)
    timestamp = str(int(time.time()))
    body = {"current": 1, "size": 100, "params": {"appId": APPS[1]}}
    answer = requests.post(
        f"{base_url}/taskList", json=body, headers=signed_headers(timestamp), timeout=5
    ).json()
    assert (answer["data"]["size"], answer["data"]["total"]) == (2, 3)
    process.send_signal(sig)
    assert process.wait(timeout=5) == 0


def test_the_simulators_modules_import_each_other_one_way() -> None:
    """No cycles: the server depends on the model (``account``), never the other way."""
    package = Path(simulator_package.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        graph[path.stem] = {
            node.module.rsplit(".", 1)[-1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("exporter.simulator.")
        }
    assert "server" not in graph["account"] | graph["tasks"] | graph["call_index"]
    assert "simulator" not in graph["server"]
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for imported in graph.get(module, ()):
                visit(imported, (*path, module))
            done.add(module)

    for module in graph:
        if module != "__init__":
            visit(module, ())


def test_simulator_imports_only_the_standard_library_and_the_listen_parser() -> None:
    """It checks the exporter, so it shares none of its code; ``--demo`` needs nothing more."""
    code = (
        "import sys; before = set(sys.modules); import exporter.simulator; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    loaded = set(result.stdout.split())
    assert "exporter.simulator.simulator" in loaded, sorted(loaded)
    exporter_modules = {m for m in loaded if m.split(".")[0] == "exporter"}
    foreign = {
        m
        for m in exporter_modules
        if m not in ("exporter", "exporter.process", "exporter.process.listen")
        and not m.startswith("exporter.simulator")
    }
    third_party = {m.split(".")[0] for m in loaded - exporter_modules} - sys.stdlib_module_names
    assert (foreign, third_party) == (set(), set())


# --------------------------------------------------------------------------- churn while paging


def job_ids(records: list[dict[str, Any]]) -> list[Any]:
    return [record["jobId"] for record in records]


def read_pages(sim: Simulator, pages: list[int], size: int = 5) -> list[Any]:
    """The jobIds of these pages, read one after another in this order."""
    ids: list[Any] = []
    for current in pages:
        ids += job_ids(api(sim, size=size, current=current)["data"]["records"])
    return ids


def test_change_before_page_fires_once_just_before_that_page(sim: Simulator) -> None:
    sim.change_before_page(APPS[0], 2, "create")
    assert api(sim, size=5)["data"]["total"] == 12  # page 1: not yet
    assert sim.stats()["churn"] == {"create": 0, "delete": 0}
    assert api(sim, size=5, current=2)["data"]["total"] == 13
    assert api(sim, size=5, current=2)["data"]["total"] == 13  # once only
    assert sim.stats()["churn"] == {"create": 1, "delete": 0}


@pytest.mark.parametrize("page", [2, 3])
def test_create_between_page_reads_repeats_a_record(sim: Simulator, page: int) -> None:
    before = job_ids(sim.tasks(APPS[0]))
    sim.change_before_page(APPS[0], page, "create")
    read = read_pages(sim, [1, 2, 3])
    pushed_down = before[(page - 1) * 5 - 1]  # the last record of the page before
    assert sorted(read) == sorted([*before, pushed_down])
    assert len(sim.tasks(APPS[0])) == 13


@pytest.mark.parametrize("page", [2, 3])
def test_delete_between_page_reads_loses_a_record(sim: Simulator, page: int) -> None:
    before = job_ids(sim.tasks(APPS[0]))
    sim.change_before_page(APPS[0], page, "delete")
    read = read_pages(sim, [1, 2, 3])
    moved_up = before[(page - 1) * 5]  # the first record of the page: now on the one before
    assert sorted(read) == sorted(set(before) - {moved_up})
    assert before[0] in read and before[0] not in job_ids(sim.tasks(APPS[0]))  # deleted, seen
    assert sim.stats()["churn"] == {"create": 0, "delete": 1}


def test_create_between_pages_read_out_of_order_loses_a_record(sim: Simulator) -> None:
    before = job_ids(sim.tasks(APPS[0]))
    sim.change_before_page(APPS[0], 1, "create")
    read = read_pages(sim, [2, 3, 1])  # page 2 read before the change, page 1 after
    assert before[4] not in read  # pushed from page 1 onto page 2 after page 2 was read
    assert len(set(read)) == len(read) == 12


def test_change_before_page_deletes_and_creates_count_tasks(sim: Simulator) -> None:
    before = job_ids(sim.tasks(APPS[0]))
    sim.change_before_page(APPS[0], 1, "delete", count=3)
    assert job_ids(api(sim, size=5)["data"]["records"]) == before[3:8]
    sim.change_before_page(APPS[0], 1, "create", count=2)
    data = api(sim, size=5)["data"]
    assert data["total"] == 11 and job_ids(data["records"])[2:] == before[3:6]
    assert sim.stats()["churn"] == {"create": 2, "delete": 3}


def test_change_before_page_waits_while_the_page_is_answered_with_a_fault(
    sim: Simulator,
) -> None:
    sim.change_before_page(APPS[0], 1, "create")
    sim.fail_next(1, "api_code")
    assert_error(api(sim), "-5")
    assert len(sim.tasks(APPS[0])) == 12
    assert api(sim)["data"]["total"] == 13


def test_change_before_page_waits_for_its_own_app(sim: Simulator) -> None:
    sim.change_before_page(APPS[1], 1, "delete")
    assert api(sim, app_id=APPS[0])["data"]["total"] == 12
    assert len(sim.tasks(APPS[1])) == 12
    assert api(sim, app_id=APPS[1])["data"]["total"] == 11


def test_change_before_page_rejects_bad_arguments(sim: Simulator) -> None:
    for args, kwargs in (
        ((APPS[0], 0, "create"), {}),
        ((APPS[0], 1, "rename"), {}),
        ((APPS[0], 1, "create"), {"count": 0}),
        ((APPS[0], True, "create"), {}),
    ):
        with pytest.raises(ValueError):
            sim.change_before_page(*args, **kwargs)
    with pytest.raises(KeyError):
        sim.change_before_page("NO_SUCH_APP", 1, "create")


def test_post_change_before_page_queues_a_change(sim: Simulator) -> None:
    url = sim.base_url.replace("/aivoice", "/-/change-before-page")
    payload = {"app_id": APPS[0], "page": 1, "action": "delete", "count": 2}
    assert requests.post(url, json=payload, timeout=5).json() == {"queued": payload}
    assert api(sim)["data"]["total"] == 10
    for bad in ({**payload, "action": "x"}, {**payload, "app_id": "NOPE"}, {"page": 1}, [1]):
        response = requests.post(url, json=bad, timeout=5)
        assert response.status_code == 400 and response.json()["error"]


@pytest.mark.slow
def test_delay_page_builds_a_later_page_first_so_a_create_loses_a_record(
    sim: Simulator,
) -> None:
    before = job_ids(sim.tasks(APPS[0]))
    sim.delay_page(APPS[0], 2, 1.5)
    sim.change_before_page(APPS[0], 2, "create")
    page1 = job_ids(api(sim, size=5)["data"]["records"])
    pages: dict[int, dict[str, Any]] = {}
    held = threading.Thread(target=lambda: pages.update({2: api(sim, size=5, current=2)}))
    held.start()
    pages[3] = api(sim, size=5, current=3)  # built while page 2 is held, before the change
    held.join(timeout=10)
    assert (pages[3]["data"]["total"], pages[2]["data"]["total"]) == (12, 13)
    read = page1 + job_ids(pages[2]["data"]["records"]) + job_ids(pages[3]["data"]["records"])
    assert sorted(read) == sorted([*before[:9], *before[10:], before[4]])  # lost before[9]


@pytest.mark.slow
def test_delay_page_holds_once_and_only_its_page(sim: Simulator) -> None:
    sim.delay_page(APPS[0], 2, 5.0)
    started = time.monotonic()
    api(sim, current=1)
    api(sim, app_id=APPS[1], current=2)
    assert time.monotonic() - started < 5.0
    api(sim, current=2, timeout=60)
    assert time.monotonic() - started >= 5.0
    started = time.monotonic()
    api(sim, current=2)
    assert time.monotonic() - started < 5.0


def test_delay_page_rejects_bad_arguments_and_is_on_http(sim: Simulator) -> None:
    for args in ((APPS[0], 0, 1.0), (APPS[0], 1, -1), (APPS[0], 1, "soon")):
        with pytest.raises(ValueError):
            sim.delay_page(*args)
    url = sim.base_url.replace("/aivoice", "/-/delay-page")
    payload = {"app_id": APPS[0], "page": 1, "seconds": 0.3}
    assert requests.post(url, json=payload, timeout=5).json() == {"queued": payload}
    started = time.monotonic()
    api(sim)
    assert time.monotonic() - started >= 0.3
    assert requests.post(url, json={**payload, "app_id": "NOPE"}, timeout=5).status_code == 400


def test_churn_ratio_alternates_creates_and_deletes(sim: Simulator) -> None:
    sim.set_faults(Faults(churn_ratio=1.0))
    totals = [api(sim)["data"]["total"] for _ in range(6)]
    assert totals == [13, 12, 13, 12, 13, 12]
    assert sim.stats()["churn"] == {"create": 3, "delete": 3}


def test_churn_ratio_churns_about_that_share_and_keeps_the_count_near(sim: Simulator) -> None:
    sim.set_faults(Faults(churn_ratio=0.5))
    totals = {api(sim)["data"]["total"] for _ in range(40)}
    churn = sim.stats()["churn"]
    assert totals <= {12, 13}
    assert 10 <= churn["create"] + churn["delete"] <= 30
    assert churn["create"] - churn["delete"] in (0, 1)


def test_churn_applies_only_to_the_faults_app_ids(sim: Simulator) -> None:
    sim.set_faults(Faults(churn_ratio=1.0, app_ids=(APPS[1],)))
    assert [api(sim, app_id=APPS[0])["data"]["total"] for _ in range(2)] == [12, 12]
    assert api(sim, app_id=APPS[1])["data"]["total"] == 13


def test_nothing_churns_by_default(sim: Simulator) -> None:
    def tasks() -> list[object]:  # Progress moves with the clock; the tasks stay.
        return [task["jobId"] for task in sim.tasks(APPS[0])]

    before = tasks()
    for current in (1, 2, 3, 1):
        api(sim, size=5, current=current)
    assert tasks() == before
    assert sim.stats()["churn"] == {"create": 0, "delete": 0}


# --------------------------------------------------------------------------- hostile faults


def raw_post(sim: Simulator, timeout: float | tuple[float, float] = 5, **params: Any) -> Any:
    """POST taskList without following redirects or decoding the body: what came on the wire."""
    body = {
        "current": params.pop("current", 1),
        "size": params.pop("size", 100),
        "params": {"appId": params.pop("app_id", APPS[0])},
    }
    return requests.post(
        f"{sim.base_url}/taskList",
        json=body,
        headers=signed_headers(str(int(time.time()))),
        timeout=timeout,
        allow_redirects=False,
        stream=True,
    )


def wire_body(response: requests.Response) -> bytes:
    with response:
        return response.raw.read(decode_content=False)


def wire_body_within(response: requests.Response, seconds: float) -> bytes | None:
    """The body as sent, or None if it takes longer than `seconds` in all (a drip)."""
    deadline = time.monotonic() + seconds
    body = b""
    with response:
        while chunk := response.raw.read1(65536, decode_content=False):  # what has arrived
            body += chunk
            if time.monotonic() > deadline:
                return None
    return body


def only_fault(sim: Simulator, kind: str, code: str) -> None:
    stats = sim.stats()
    assert {k: v for k, v in stats["faults"].items() if v} == {kind: 1}
    assert stats["fault_codes"] == {code: 1}
    assert stats["answered"] == {}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_points_at_another_port_and_counts_http_status(
    sim: Simulator, status: int
) -> None:
    sim.fail_next(1, "redirect", http_status=status)
    response = raw_post(sim)
    wire_body(response)
    location = response.headers["Location"]
    assert response.status_code == status
    assert location == sim.redirect_url and f":{sim.address[1]}/" not in location
    only_fault(sim, "redirect", f"http_{status}")
    assert (sim.stats()["redirect_followed"], sim.stats()["redirect_credentials"]) == (0, 0)


def test_redirect_is_302_unless_told(sim: Simulator) -> None:
    sim.fail_next(1, "redirect")
    assert raw_post(sim).status_code == 302


@pytest.mark.parametrize("status", [302, 307])
def test_redirect_capture_counts_a_client_that_follows_with_credentials(
    sim: Simulator, status: int
) -> None:
    sim.fail_next(1, "redirect", http_status=status)
    response = post(sim)  # requests follows redirects and keeps custom headers
    assert response.status_code == 200 and response.history[0].status_code == status
    assert response.json()["data"]["records"] == []  # the capture's page: accepted, wrongly
    stats = sim.stats()
    assert (stats["redirect_followed"], stats["redirect_credentials"]) == (1, 1)
    assert stats["requests"] == 1  # the capture is not the API


def test_redirect_capture_counts_a_follow_without_credentials_apart(sim: Simulator) -> None:
    requests.get(sim.redirect_url, timeout=5).raise_for_status()
    assert (sim.stats()["redirect_followed"], sim.stats()["redirect_credentials"]) == (1, 0)


@pytest.mark.slow
def test_drip_sends_headers_then_the_page_a_byte_at_a_time(sim: Simulator) -> None:
    sim.set_tasks(APPS[0], [])  # a page of about 110 bytes
    interval = 0.01
    sim.set_faults(Faults(drip_interval_seconds=interval))
    sim.fail_next(1, "drip")
    started = time.monotonic()
    response = raw_post(sim, timeout=(5, 2))  # each read is quick: a per-read timeout holds
    length = int(response.headers["Content-Length"])
    body = wire_body(response)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert len(body) == length and json.loads(body)["data"]["total"] == 0
    assert elapsed >= length * interval
    only_fault(sim, "drip", "timeout")


@pytest.mark.slow
def test_drip_outlasts_a_client_timeout_on_the_whole_request(sim: Simulator) -> None:
    sim.set_faults(Faults(drip_interval_seconds=0.05))
    sim.fail_next(1, "drip")
    response = raw_post(sim, timeout=(5, 2))  # no read waits long enough to time out
    assert wire_body_within(response, 1.0) is None


def test_stop_cuts_a_drip_short(make_sim: MakeSim) -> None:
    sim = make_sim()
    sim.set_faults(Faults(drip_interval_seconds=1.0))
    sim.fail_next(1, "drip")
    response = raw_post(sim, timeout=(5, 10))
    sim.stop()
    with pytest.raises(urllib3.exceptions.ProtocolError, match="IncompleteRead"):
        wire_body(response)  # the connection closes: no hour-long wait, no read timeout


def test_oversize_is_16_mib_of_valid_json_by_default(sim: Simulator) -> None:
    sim.fail_next(1, "oversize")
    body = wire_body(raw_post(sim, timeout=30))
    assert len(body) == 16 * 1024 * 1024
    assert json.loads(body)["data"]["total"] == 12  # only a size cap can refuse it
    only_fault(sim, "oversize", "invalid_response")


def test_oversize_size_is_configurable(sim: Simulator) -> None:
    sim.set_faults(Faults(oversize_bytes=3 * 1024 * 1024 + 7))
    sim.fail_next(1, "oversize")
    response = raw_post(sim)
    assert int(response.headers["Content-Length"]) == len(wire_body(response)) == 3 * 2**20 + 7


def inflate(compressed: bytes) -> tuple[int, bytes]:
    """(inflated size, its last 200 bytes), in bounded steps: never the whole body at once."""
    inflater = zlib.decompressobj(wbits=31)  # gzip: the trailer's CRC and size are checked
    size, tail, pending = 0, b"", compressed
    while pending:
        chunk = inflater.decompress(pending, 1 << 20)
        pending = inflater.unconsumed_tail
        size += len(chunk)
        tail = (tail + chunk)[-200:]
    chunk = inflater.flush()
    assert inflater.eof
    return size + len(chunk), (tail + chunk)[-200:]


@pytest.mark.slow
def test_gzip_bomb_is_about_1_mib_inflating_to_1_gib(sim: Simulator) -> None:
    sim.fail_next(1, "gzip_bomb")
    response = raw_post(sim)
    compressed = wire_body(response)
    assert response.headers["Content-Encoding"] == "gzip"
    assert len(compressed) < 1.1 * 2**20
    size, tail = inflate(compressed)
    assert size == 2**30
    assert tail.endswith(b'"pages": 0}}')
    only_fault(sim, "gzip_bomb", "invalid_response")


def test_gzip_bomb_inflates_to_exactly_the_size_asked() -> None:
    tail = b'{"status": "0"}'
    size, end = inflate(gzip_bomb(5 * 2**20 + 123, tail))
    assert size == 5 * 2**20 + 123 and end.endswith(b" " + tail)


def test_too_many_records_is_a_consistent_page_of_5000(sim: Simulator) -> None:
    sim.fail_next(1, "too_many_records")
    data = json.loads(wire_body(raw_post(sim, size=100)))["data"]
    assert len(data["records"]) == len(set(job_ids(data["records"]))) == data["total"] == 5000
    assert (data["size"], data["pages"]) == (100, 50)
    only_fault(sim, "too_many_records", "invalid_response")


def test_too_many_records_count_is_configurable(sim: Simulator) -> None:
    sim.set_faults(Faults(too_many_records=250))
    sim.fail_next(1, "too_many_records")
    assert len(json.loads(wire_body(raw_post(sim, size=10)))["data"]["records"]) == 250


def test_poison_superscript_digit_passes_isdigit_but_not_int(sim: Simulator) -> None:
    sim.fail_next(1, "poison", variant="superscript_digit")
    value = json.loads(wire_body(raw_post(sim)))["data"]["records"][0]["taskTotal"]
    assert value == "²" and value.isdigit()
    with pytest.raises(ValueError):
        int(value)
    only_fault(sim, "poison", "invalid_response")


def test_poison_huge_integer_has_400_digits(sim: Simulator) -> None:
    sim.fail_next(1, "poison", variant="huge_integer")
    value = json.loads(wire_body(raw_post(sim)))["data"]["records"][0]["taskTotal"]
    assert isinstance(value, int) and len(str(value)) == 400


def test_poison_float_overflow_sums_to_infinity_within_one_status(sim: Simulator) -> None:
    sim.fail_next(1, "poison", variant="float_overflow")
    records = json.loads(wire_body(raw_post(sim)))["data"]["records"][:2]
    assert records[0]["status"] == records[1]["status"]
    assert math.isinf(records[0]["taskTotal"] + records[1]["taskTotal"])
    assert records[0]["jobId"] != records[1]["jobId"]


def test_poison_records_false_claims_five_tasks(sim: Simulator) -> None:
    sim.fail_next(1, "poison", variant="records_false")
    data = json.loads(wire_body(raw_post(sim)))["data"]
    assert (data["records"], data["total"]) == (False, 5)


def test_poison_on_a_page_past_the_end_still_carries_a_record(sim: Simulator) -> None:
    sim.fail_next(1, "poison", variant="float_overflow")
    records = json.loads(wire_body(raw_post(sim, current=9)))["data"]["records"]
    assert len(records) == 2 and math.isinf(records[0]["taskTotal"] * 2)


@pytest.mark.parametrize(
    ("variant", "status", "code"),
    [
        ("undocumented_code", "-77", "-77"),
        ("word", "MAINTENANCE", "other"),
        ("lone_surrogate", "\ud800", "other"),
        ("huge_status", "9" * 2**20, "other"),
        ("huge_reason", "-5", "-5"),
    ],
    ids=["undocumented_code", "word", "lone_surrogate", "huge_status", "huge_reason"],
)
def test_odd_status_answers_that_status_and_counts_its_code(
    sim: Simulator, variant: str, status: str, code: str
) -> None:
    sim.fail_next(1, "odd_status", variant=variant)
    answer = json.loads(wire_body(raw_post(sim)))
    assert answer["status"] == status and "data" not in answer
    assert len(answer["reason"]) == (2**20 if variant == "huge_reason" else len(answer["reason"]))
    only_fault(sim, "odd_status", code)


def test_odd_status_lone_surrogate_goes_out_as_a_json_escape(sim: Simulator) -> None:
    sim.fail_next(1, "odd_status", variant="lone_surrogate")
    assert b'"status": "\\ud800"' in wire_body(raw_post(sim))


def test_expected_status_code_keeps_api_codes_and_buckets_the_rest() -> None:
    assert [expected_status_code(s) for s in ("-5", "-123456789", "42", "0x1", "-1234567890")] == [
        "-5",
        "-123456789",
        "42",
        "other",
        "other",
    ]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds(sim: Simulator, status: int) -> None:
    sim.set_faults(Faults(retry_after_seconds=7))
    sim.fail_next(1, "retry_after", http_status=status, variant="seconds")
    response = raw_post(sim)
    assert (response.status_code, response.headers["Retry-After"]) == (status, "7")
    only_fault(sim, "retry_after", f"http_{status}")


def test_retry_after_as_an_http_date_from_the_simulators_clock(make_sim: MakeSim) -> None:
    clock = FakeClock(1_700_000_000.25)
    sim = make_sim(clock=clock)
    sim.set_faults(Faults(retry_after_seconds=30))
    sim.fail_next(1, "retry_after", variant="http_date")
    body = {"current": 1, "size": 100, "params": {"appId": APPS[0]}}
    response = post(sim, body, now=clock.now)
    assert response.status_code == 429
    assert parsedate_to_datetime(response.headers["Retry-After"]).timestamp() == 1_700_000_031


def test_retry_after_defaults_to_429_and_one_second(sim: Simulator) -> None:
    sim.fail_next(1, "retry_after", variant="seconds")
    response = raw_post(sim)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "1")


@pytest.mark.parametrize(
    ("kind", "faults_kind", "codes"),
    [
        ("redirect", "redirect", {"http_302"}),
        ("drip", "drip", {"timeout"}),
        ("oversize", "oversize", {"invalid_response"}),
        ("gzip_bomb", "gzip_bomb", {"invalid_response"}),
        ("too_many_records", "too_many_records", {"invalid_response"}),
        ("poison", "poison", {"invalid_response"}),
        ("odd_status", "odd_status", {"-77", "other", "-5"}),
        ("retry_after", "retry_after", {"http_429"}),
    ],
)
@pytest.mark.slow
def test_random_hostile_faults_inject_only_the_chosen_kind(
    sim: Simulator, kind: str, faults_kind: str, codes: set[str]
) -> None:
    sim.set_faults(
        Faults(
            random_fail_ratio=1.0,
            random_kinds=(kind,),
            oversize_bytes=2**20,
            gzip_bomb_bytes=2**20,
            drip_interval_seconds=0.01,
        )
    )
    bodies = [wire_body_within(raw_post(sim), 1.0) for _ in range(3)]
    assert (None in bodies) == (kind == "drip")
    stats = sim.stats()
    assert stats["faults"][faults_kind] == stats["faults_total"] == 3
    assert set(stats["fault_codes"]) <= codes and sum(stats["fault_codes"].values()) == 3


@pytest.mark.slow
def test_random_faults_mix_every_kind_and_count_each_once(make_sim: MakeSim) -> None:
    sim = make_sim(seed=5)
    sim.set_faults(
        Faults(
            random_fail_ratio=1.0,
            random_kinds=ALL_FAULT_KINDS,
            timeout_hang_seconds=0.5,
            oversize_bytes=2**20,
            gzip_bomb_bytes=2**20,
            drip_interval_seconds=0.01,
            redirect_statuses=(301, 308),
            retry_after_statuses=(429, 503),
        )
    )
    for _ in range(60):
        with contextlib.suppress(requests.RequestException):  # the timeout kind drops
            wire_body_within(raw_post(sim), 1.0)
    stats = sim.stats()
    assert stats["requests"] == stats["faults_total"] == 60
    assert sum(stats["fault_codes"].values()) == 60
    assert sum(stats["faults"].values()) == 60
    assert sum(1 for count in stats["faults"].values() if count) >= 10  # a real mix
    assert stats["redirect_followed"] == 0


def test_documented_random_faults_never_pick_a_hostile_kind(sim: Simulator) -> None:
    sim.set_faults(Faults(random_fail_ratio=1.0, timeout_hang_seconds=0.1))
    for _ in range(20):
        with contextlib.suppress(requests.RequestException):
            post(sim, timeout=1)
    faults = sim.stats()["faults"]
    assert sum(faults.values()) == 20
    assert all(faults[kind] == 0 for kind in HOSTILE_FAULT_KINDS)


def test_fail_next_rejects_arguments_its_kind_does_not_take(sim: Simulator) -> None:
    for kwargs in (
        {"kind": "poison", "variant": "nope"},
        {"kind": "redirect", "http_status": 404},
        {"kind": "retry_after", "http_status": 500},
        {"kind": "drip", "http_status": 503},
        {"kind": "timeout", "variant": "seconds"},
        {"kind": "explode"},
    ):
        with pytest.raises(ValueError):
            sim.fail_next(1, **kwargs)


def test_hostile_faults_reject_invalid_settings() -> None:
    for bad in (
        {"churn_ratio": 1.5},
        {"redirect_statuses": (200,)},
        {"retry_after_statuses": (500,)},
        {"oversize_bytes": 0},
        {"drip_interval_seconds": 0},
        {"too_many_records": 2.5},
        {"retry_after_seconds": -1},
        {"random_kinds": ("redirect",), "redirect_statuses": ()},
    ):
        with pytest.raises(ValueError):
            Faults(**bad)


def test_post_faults_sets_hostile_settings(sim: Simulator) -> None:
    url = sim.base_url.replace("/aivoice", "/-/faults")
    settings = {"random_kinds": ["redirect"], "redirect_statuses": [307], "churn_ratio": 0.25}
    answer = requests.post(url, json=settings, timeout=5).json()
    assert {key: answer[key] for key in settings} == settings
    assert sim.faults == Faults(
        random_kinds=("redirect",), redirect_statuses=(307,), churn_ratio=0.25
    )


def test_post_fail_next_takes_variant_and_status(sim: Simulator) -> None:
    url = sim.base_url.replace("/aivoice", "/-/fail-next")
    payload = {"n": 1, "kind": "retry_after", "http_status": 503, "variant": "seconds"}
    assert requests.post(url, json=payload, timeout=5).ok
    response = raw_post(sim)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")


def test_odd_valid_records_are_served_as_they_are(sim: Simulator) -> None:
    sim.set_tasks(APPS[0], odd_valid_records())
    records = json.loads(wire_body(raw_post(sim)))["data"]["records"]
    assert [r["jobId"] for r in records[:2]] == ["\ud800", "\udc00"]
    assert len(records[3]["name"]) == 2**20
    assert sim.stats()["faults_total"] == 0


def test_stop_closes_the_redirect_capture_too() -> None:
    sim = Simulator(KEY, SECRET, APPS).start()
    port = int(sim.redirect_url.split(":")[2].split("/")[0])
    sim.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
