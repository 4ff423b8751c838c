"""The API client against the simulator, over real sockets: signing, codes, paging, retries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from exporter.client import ApiClient, PollError, parse_create_time, parse_page, sign_headers
from exporter.codes import TASK_LIST_CODES, explain
from exporter.config import Account, ApiConfig
from exporter.simulator import Faults, Simulator
from exporter.stats import RequestRecorder
from tests.conftest import API_KEY, API_SECRET, APP_IDS

APP = APP_IDS[0]
UTC8 = dt.timezone(dt.timedelta(hours=8))


@dataclasses.dataclass
class Harness:
    client: ApiClient
    recorder: RequestRecorder

    def requests_sent(self, app_id: str = APP) -> int:
        return self.recorder.snapshot([app_id])[app_id].requests

    def errors(self, app_id: str = APP) -> dict[str, int]:
        counts = self.recorder.snapshot([app_id])[app_id].errors
        return {code: n for code, n in counts.items() if n}


def make_client(
    sim: Simulator,
    *,
    secret: str = API_SECRET,
    clock: Any = time.time,
    workers: int = 4,
    **api: Any,
) -> Harness:
    settings = {"base_url": sim.base_url, "timeout_seconds": 1.0, "max_requests_per_second": 500}
    recorder = RequestRecorder()
    client = ApiClient(
        Account(API_KEY, secret, APP_IDS),
        ApiConfig(**{**settings, **api}),
        session=requests.Session(),
        recorder=recorder,
        in_flight=threading.Semaphore(workers),
        workers=workers,
        stop=threading.Event(),
        clock=clock,
    )
    return Harness(client, recorder)


def record(job_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "name": f"task {job_id}",
        "dialogFlowName": "flow",
        "jobPhoneNumberName": "line63",
        "robotCount": 2,
        "mode": "AUTO",
        "hangupSms": False,
        "taskTotal": 100,
        "taskCompleted": 40,
        "status": "IN_PROCESS",
        "isDialogFlowUnbind": False,
        "createTime": "2022-09-20 16:57:04",
        **fields,
    }


@pytest.fixture
def pinned(simulator: Simulator) -> Iterator[Simulator]:
    """The simulator holding 25 fixed tasks in APP (job ids 25 down to 1)."""
    simulator.set_tasks(APP, [record(n) for n in range(25, 0, -1)])
    yield simulator


def test_sign_is_md5_of_key_secret_and_timestamp() -> None:
    headers = sign_headers("bDqJFiq9", "secret", 1630468800.7)
    assert headers["Timestamp"] == "1630468800"
    assert headers["Sign"] == hashlib.md5(b"bDqJFiq9secret1630468800").hexdigest()
    assert headers["Api-Key"] == "bDqJFiq9"


def test_signed_request_is_accepted(pinned: Simulator) -> None:
    tasks = make_client(pinned).client.fetch_tasks(APP)
    assert len(tasks) == 25


def test_every_request_and_retry_is_signed_afresh(pinned: Simulator) -> None:
    readings: list[float] = []

    def clock() -> float:
        readings.append(time.time())
        return readings[-1]

    pinned.fail_next(1, "http_5xx")
    harness = make_client(pinned, clock=clock, page_size=10)
    harness.client.fetch_tasks(APP)
    assert harness.requests_sent() == 4  # three pages, one retried
    assert len(readings) == 4


def test_wrong_secret_is_authentication_error(pinned: Simulator) -> None:
    harness = make_client(pinned, secret="not-the-secret")
    with pytest.raises(PollError) as caught:
        harness.client.fetch_tasks(APP)
    assert caught.value.code == "-1"
    assert harness.errors() == {"-1": 1}


def test_skewed_clock_gets_timestamp_expired_and_says_so(pinned: Simulator) -> None:
    harness = make_client(pinned, clock=lambda: time.time() - 3600)
    with pytest.raises(PollError) as caught:
        harness.client.fetch_tasks(APP)
    assert caught.value.code == "-4"
    assert "clock" in str(caught.value)


def test_unknown_app_is_minus_37(pinned: Simulator) -> None:
    with pytest.raises(PollError) as caught:
        make_client(pinned).client.fetch_tasks("NO_SUCH_APP")
    assert caught.value.code == "-37"


@pytest.mark.parametrize("code", TASK_LIST_CODES)
def test_api_code_is_counted_once_and_not_retried(pinned: Simulator, code: str) -> None:
    pinned.set_faults(Faults(api_code=code))
    harness = make_client(pinned, max_retries=2)
    with pytest.raises(PollError) as caught:
        harness.client.fetch_tasks(APP)
    assert caught.value.code == code
    assert harness.requests_sent() == 1
    assert harness.errors() == {code: 1}
    assert explain(code) in str(caught.value)


def test_paging_follows_the_servers_page_size(simulator: Simulator) -> None:
    sim = Simulator(API_KEY, API_SECRET, APP_IDS, server_page_size=7).start()
    try:
        sim.set_tasks(APP, [record(n) for n in range(25, 0, -1)])
        harness = make_client(sim, page_size=100)
        tasks = harness.client.fetch_tasks(APP)
    finally:
        sim.stop()
    assert sorted(int(t.job_id) for t in tasks) == list(range(1, 26))
    assert harness.requests_sent() == 4  # ceil(25 / 7), though 100 a page was asked for


def test_task_added_while_paging_counts_each_job_once(pinned: Simulator) -> None:
    harness = make_client(pinned, page_size=10, workers=1)
    original = harness.client.fetch_page

    def fetch_page_then_add(app_id: str, current: int) -> Any:
        page = original(app_id, current)
        if current == 1:
            pinned.add_task(APP, record(26))  # Pushes job 16 from page 1 onto page 2.
        return page

    harness.client.fetch_page = fetch_page_then_add  # type: ignore[method-assign]
    tasks = harness.client.fetch_tasks(APP)
    ids = [t.job_id for t in tasks]
    assert len(ids) == len(set(ids))
    assert set(ids) == {str(n) for n in range(1, 26)}  # 26 came after page 1; 16 counted once


def test_page_past_the_end_stops_paging(pinned: Simulator) -> None:
    harness = make_client(pinned, page_size=10)
    tasks = harness.client.fetch_tasks(APP)
    assert len(tasks) == 25
    assert harness.requests_sent() == 3


def test_transient_failures_are_retried_and_each_counted(pinned: Simulator) -> None:
    pinned.fail_next(2, "http_5xx", http_status=503)
    harness = make_client(pinned, max_retries=2)
    assert len(harness.client.fetch_tasks(APP)) == 25
    assert harness.requests_sent() == 3
    assert harness.errors() == {"http_503": 2}


def test_retries_give_up_after_max_retries(pinned: Simulator) -> None:
    pinned.fail_next(5, "garbage")
    harness = make_client(pinned, max_retries=2)
    with pytest.raises(PollError) as caught:
        harness.client.fetch_tasks(APP)
    assert caught.value.code == "invalid_response"
    assert harness.requests_sent() == 3
    assert harness.errors() == {"invalid_response": 3}


def test_rate_limited_answer_is_retried(pinned: Simulator) -> None:
    pinned.fail_next(1, "http_5xx", http_status=429)
    harness = make_client(pinned)
    harness.client.fetch_tasks(APP)
    assert harness.errors() == {"http_429": 1}


def test_client_error_status_is_not_retried(pinned: Simulator) -> None:
    pinned.set_faults(Faults(http_status=404))
    harness = make_client(pinned, max_retries=2)
    with pytest.raises(PollError) as caught:
        harness.client.fetch_tasks(APP)
    assert caught.value.code == "http_404"
    assert harness.requests_sent() == 1


def test_slow_answer_counts_as_timeout(pinned: Simulator) -> None:
    pinned.fail_next(1, "timeout")
    pinned.set_faults(Faults(timeout_hang_seconds=3))
    harness = make_client(pinned, timeout_seconds=0.3, max_retries=1)
    assert len(harness.client.fetch_tasks(APP)) == 25
    assert harness.errors() == {"timeout": 1}


def test_refused_connection_counts_as_connection() -> None:
    sim = Simulator(API_KEY, API_SECRET, APP_IDS).start()
    sim.stop()  # The port is now closed.
    harness = make_client(sim, max_retries=0)
    with pytest.raises(PollError) as caught:
        harness.client.fetch_tasks(APP)
    assert caught.value.code == "connection"
    assert harness.errors() == {"connection": 1}


def test_record_fields_are_mapped(pinned: Simulator) -> None:
    pinned.set_tasks(APP, [record(20, name="name8", hangupSms=True, isDialogFlowUnbind="true")])
    (task,) = make_client(pinned).client.fetch_tasks(APP)
    assert (task.job_id, task.name, task.status, task.mode) == ("20", "name8", "IN_PROCESS", "AUTO")
    assert (task.calls, task.calls_completed, task.robots) == (100, 40, 2)
    assert (task.dialog_flow, task.line) == ("flow", "line63")
    assert task.hangup_sms is True
    assert task.dialog_flow_unbound is True
    assert task.created_seconds == dt.datetime(2022, 9, 20, 16, 57, 4, tzinfo=UTC8).timestamp()


def test_odd_create_time_never_fails_the_poll(pinned: Simulator) -> None:
    pinned.set_tasks(APP, [record(1, createTime="yesterday"), record(2, createTime=None)])
    tasks = make_client(pinned).client.fetch_tasks(APP)
    assert [t.created_seconds for t in tasks] == [None, None]


def test_create_time_without_seconds_is_read() -> None:
    expected = dt.datetime(2022, 9, 20, 16, 57, tzinfo=UTC8).timestamp()
    assert parse_create_time("2022-09-20 16:57", UTC8) == expected


def test_documented_example_answer_parses() -> None:
    body = b"""{"status": "0", "reason": "success", "data": {"records": [{"jobId": 20,
      "name": "name8", "dialogFlowName": "name8.12", "jobPhoneNumberName": "line63",
      "robotCount": 1, "mode": "AUTO", "hangupSms": false, "taskTotal": 0, "taskCompleted": 0,
      "status": "NOT_STARTED", "isDialogFlowUnbind": false, "createTime": "2022-09-20 16:57:04"}],
      "total": 1, "size": 25, "current": 1, "searchCount": true, "pages": 1}}"""
    page = parse_page(body, UTC8)
    assert (page.pages, page.total, len(page.tasks)) == (1, 1, 1)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"status": "0"}',
        b'{"status": "0", "data": {"records": {"jobId": 1}}}',
        b'{"status": "0", "data": {"records": [{"name": "no job id"}]}}',
        b'{"status": "0", "data": {"records": [{"jobId": 1, "taskTotal": -3}]}}',
        b"[1, 2]",
    ],
)
def test_malformed_answers_are_invalid_response(body: bytes) -> None:
    with pytest.raises(PollError) as caught:
        parse_page(body, UTC8)
    assert caught.value.code == "invalid_response"


def test_integer_status_is_accepted() -> None:
    page = parse_page(b'{"status": 0, "data": {"records": [], "total": 0, "pages": 0}}', UTC8)
    assert page.tasks == ()


def test_secret_never_appears_in_errors_or_repr(pinned: Simulator) -> None:
    harness = make_client(pinned, secret="super-secret-xyz")
    with pytest.raises(PollError) as caught:
        harness.client.fetch_tasks(APP)
    assert "super-secret-xyz" not in str(caught.value)
    assert "super-secret-xyz" not in repr(harness.client)
