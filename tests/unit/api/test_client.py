"""The API client over real sockets: signing, codes, paging and retries against the simulator;
redirects and Retry-After against a hostile server the test scripts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exporter.api.client import MAX_READS, ApiClient, RateLimiter
from exporter.api.paging import Stopped
from exporter.api.stats import RECORD_QUERY, TASK_LIST, RequestRecorder
from exporter.api.transport import Transport
from exporter.codes import TASK_LIST_CODES, PollError, explain
from exporter.config.model import Account, ApiConfig
from exporter.process.workers import WorkerPool
from exporter.simulator import Faults, Simulator
from exporter.snapshot import Task
from tests.support import hostile_api
from tests.support.clock import FakeClock
from tests.support.configs import API_KEY, API_SECRET, APP_IDS
from tests.support.hostile_api import HostileApi
from tests.support.records import record

APP = APP_IDS[0]
UTC8 = dt.timezone(dt.timedelta(hours=8))


@dataclasses.dataclass
class Harness:
    client: ApiClient
    recorder: RequestRecorder

    def tasks(self, app_id: str = APP) -> tuple[Task, ...]:
        return self.client.read_tasks(app_id).tasks

    def requests_sent(self, app_id: str = APP, endpoint: str = TASK_LIST) -> int:
        return self.recorder.snapshot([app_id])[app_id].endpoints[endpoint].requests

    def errors(self, app_id: str = APP, endpoint: str = TASK_LIST) -> dict[str, int]:
        endpoints = self.recorder.snapshot([app_id])[app_id].endpoints
        counts = endpoints[endpoint].errors if endpoint in endpoints else {}
        return {code: n for code, n in counts.items() if n}


MakeClient = Callable[..., Harness]


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """Clients on their own transport and pool, all closed when the test ends."""
    opened: list[tuple[Transport, WorkerPool]] = []

    def make(
        sim: Simulator,
        *,
        secret: str = API_SECRET,
        clock: Any = time.time,
        workers: int = 4,
        **api: Any,
    ) -> Harness:
        settings = {
            "base_url": sim.base_url,
            # Generous: a busy machine answers late, and a timeout would be retried and
            # counted. The tests of timeouts set their own.
            "timeout_seconds": 15.0,
            "max_requests_per_second": 500,
        }
        config = ApiConfig(**{**settings, **api})
        transport = Transport(
            config.base_url,
            timeout_seconds=config.timeout_seconds,
            max_response_bytes=config.max_response_bytes,
            pool_size=workers,
        )
        pool = WorkerPool(workers, "test-request")
        opened.append((transport, pool))
        recorder = RequestRecorder()
        client = ApiClient(
            Account(API_KEY, secret, APP_IDS),
            config,
            transport=transport,
            pool=pool,
            recorder=recorder,
            stop=threading.Event(),
            clock=clock,
        )
        return Harness(client, recorder)

    yield make
    for transport, pool in opened:
        pool.close()
        transport.close()


@pytest.fixture
def pinned(simulator: Simulator) -> Iterator[Simulator]:
    """The simulator holding 25 fixed tasks in APP (job ids 25 down to 1)."""
    simulator.set_tasks(APP, [record(n) for n in range(25, 0, -1)])
    yield simulator


def test_signed_request_is_accepted(pinned: Simulator, make_client: MakeClient) -> None:
    tasks = make_client(pinned).tasks(APP)
    assert len(tasks) == 25


def test_every_request_and_retry_is_signed_afresh(
    pinned: Simulator, make_client: MakeClient
) -> None:
    readings: list[float] = []

    def clock() -> float:
        readings.append(time.time())
        return readings[-1]

    pinned.fail_next(1, "http_5xx")
    harness = make_client(pinned, clock=clock, page_size=10)
    harness.tasks()
    assert harness.requests_sent() == 4  # three pages, one retried
    assert len(readings) == 4


def test_wrong_secret_is_authentication_error(pinned: Simulator, make_client: MakeClient) -> None:
    harness = make_client(pinned, secret="not-the-secret")
    with pytest.raises(PollError) as caught:
        harness.tasks()
    assert caught.value.code == "-1"
    assert harness.errors() == {"-1": 1}


def test_skewed_clock_gets_timestamp_expired_and_says_so(
    pinned: Simulator, make_client: MakeClient
) -> None:
    harness = make_client(pinned, clock=lambda: time.time() - 3600)
    with pytest.raises(PollError) as caught:
        harness.tasks()
    assert caught.value.code == "-4"
    assert "clock" in str(caught.value)


def test_unknown_app_is_minus_37(pinned: Simulator, make_client: MakeClient) -> None:
    with pytest.raises(PollError) as caught:
        make_client(pinned).tasks("NO_SUCH_APP")
    assert caught.value.code == "-37"


@pytest.mark.parametrize("code", TASK_LIST_CODES)
def test_api_code_is_counted_once_and_not_retried(
    pinned: Simulator, code: str, make_client: MakeClient
) -> None:
    pinned.set_faults(Faults(api_code=code))
    harness = make_client(pinned, max_retries=2)
    with pytest.raises(PollError) as caught:
        harness.tasks()
    assert caught.value.code == code
    assert harness.requests_sent() == 1
    assert harness.errors() == {code: 1}
    assert explain(code) in str(caught.value)


def test_paging_follows_the_servers_page_size(
    simulator: Simulator, make_client: MakeClient
) -> None:
    sim = Simulator(API_KEY, API_SECRET, APP_IDS, server_page_size=7).start()
    try:
        sim.set_tasks(APP, [record(n) for n in range(25, 0, -1)])
        harness = make_client(sim, page_size=100)
        tasks = harness.tasks()
    finally:
        sim.stop()
    assert sorted(int(t.job_id) for t in tasks) == list(range(1, 26))
    assert harness.requests_sent() == 4  # ceil(25 / 7), though 100 a page was asked for


CHURN_TASKS = 1234  # At 25 a page: 50 pages, the last one short.
CHURN_PAGE_SIZE = 25


@pytest.fixture
def churning(simulator: Simulator) -> Iterator[Simulator]:
    """A simulator answering 25 records a page, whatever is asked, for APP's 1,234 tasks."""
    sim = Simulator(API_KEY, API_SECRET, APP_IDS, server_page_size=CHURN_PAGE_SIZE).start()
    try:
        yield sim
    finally:
        sim.stop()


def pin_churn_tasks(sim: Simulator) -> set[str]:
    sim.set_tasks(APP, [record(n) for n in range(CHURN_TASKS, 0, -1)])
    return {str(n) for n in range(1, CHURN_TASKS + 1)}


@pytest.mark.slow
@pytest.mark.parametrize("action", ["create", "delete"])
def test_a_change_before_any_page_gives_the_old_or_the_new_set_never_a_mix(
    churning: Simulator, make_client: MakeClient, action: str
) -> None:
    """For every page: tasks change just before it is built, pages completing in any order."""
    churning.set_faults(Faults(latency_jitter_seconds=0.01))  # Pages finish in shuffled order.
    harness = make_client(churning, page_size=100, workers=8, max_requests_per_second=1000)
    pages = -(-CHURN_TASKS // CHURN_PAGE_SIZE)
    for page in range(1, pages + 1):
        before = pin_churn_tasks(churning)
        churning.change_before_page(APP, page, action)
        read = harness.client.read_tasks(APP)
        after = {str(entry["jobId"]) for entry in churning.tasks(APP)}
        got = [task.job_id for task in read.tasks]
        assert len(got) == len(set(got)), f"page {page}: a task counted twice"
        assert set(got) in (before, after), f"page {page}: a mix of the old and new task sets"
        assert read.consistent, f"page {page}: {read.problem}"
    reads = harness.recorder.snapshot([APP])[APP].reads
    assert reads["consistent"] == pages
    assert reads["inconsistent"] == 0


@pytest.mark.parametrize("action", ["create", "delete"])
def test_a_change_between_pages_built_out_of_order_is_read_again(
    churning: Simulator, make_client: MakeClient, action: str
) -> None:
    """Page 3 is built before page 2, and the tasks change between the two."""
    harness = make_client(churning, page_size=100, workers=8, max_requests_per_second=1000)
    before = pin_churn_tasks(churning)
    churning.delay_page(APP, 2, 0.3)
    churning.change_before_page(APP, 2, action)
    read = harness.client.read_tasks(APP)
    after = {str(entry["jobId"]) for entry in churning.tasks(APP)}
    assert after != before
    assert {task.job_id for task in read.tasks} == after
    assert dict(harness.recorder.snapshot([APP])[APP].reads) == {
        "consistent": 1,
        "reread": 1,
        "inconsistent": 0,
    }


def test_an_app_that_never_holds_still_publishes_the_best_read_and_says_so(
    churning: Simulator, make_client: MakeClient
) -> None:
    """A task is created before page 2 of every read: no read can be trusted."""
    harness = make_client(churning, page_size=100, workers=8, max_requests_per_second=1000)
    pin_churn_tasks(churning)
    fetch_page = harness.client.fetch_page

    def fetch_page_and_churn(app_id: str, current: int, deadline: float) -> Any:
        if current == 1:  # Each read starts here: make its page 2 see one task more.
            churning.change_before_page(APP, 2, "create")
        return fetch_page(app_id, current, deadline)

    harness.client.fetch_page = fetch_page_and_churn  # type: ignore[method-assign]
    read = harness.client.read_tasks(APP)
    assert not read.consistent
    assert "totals differ" in read.problem
    assert len({task.job_id for task in read.tasks}) >= CHURN_TASKS
    assert dict(harness.recorder.snapshot([APP])[APP].reads) == {
        "consistent": 0,
        "reread": MAX_READS - 1,
        "inconsistent": 1,
    }


def test_page_past_the_end_stops_paging(pinned: Simulator, make_client: MakeClient) -> None:
    harness = make_client(pinned, page_size=10)
    tasks = harness.tasks()
    assert len(tasks) == 25
    assert harness.requests_sent() == 3


@pytest.mark.slow
def test_transient_failures_are_retried_and_each_counted(
    pinned: Simulator, make_client: MakeClient
) -> None:
    pinned.fail_next(2, "http_5xx", http_status=503)
    harness = make_client(pinned, max_retries=2)
    assert len(harness.tasks()) == 25
    assert harness.requests_sent() == 3
    assert harness.errors() == {"http_503": 2}


@pytest.mark.slow
def test_retries_give_up_after_max_retries(pinned: Simulator, make_client: MakeClient) -> None:
    pinned.fail_next(5, "garbage")
    harness = make_client(pinned, max_retries=2)
    with pytest.raises(PollError) as caught:
        harness.tasks()
    assert caught.value.code == "invalid_response"
    assert harness.requests_sent() == 3
    assert harness.errors() == {"invalid_response": 3}


def test_rate_limited_answer_is_retried(pinned: Simulator, make_client: MakeClient) -> None:
    pinned.fail_next(1, "http_5xx", http_status=429)
    harness = make_client(pinned)
    harness.tasks()
    assert harness.errors() == {"http_429": 1}


def test_client_error_status_is_not_retried(pinned: Simulator, make_client: MakeClient) -> None:
    pinned.set_faults(Faults(http_status=404))
    harness = make_client(pinned, max_retries=2)
    with pytest.raises(PollError) as caught:
        harness.tasks()
    assert caught.value.code == "http_404"
    assert harness.requests_sent() == 1


@pytest.mark.slow
def test_slow_answer_counts_as_timeout(pinned: Simulator, make_client: MakeClient) -> None:
    pinned.fail_next(1, "timeout")
    pinned.set_faults(Faults(timeout_hang_seconds=3))
    harness = make_client(pinned, timeout_seconds=0.3, max_retries=1)
    assert len(harness.tasks()) == 25
    assert harness.errors() == {"timeout": 1}


def test_refused_connection_counts_as_connection(make_client: MakeClient) -> None:
    sim = Simulator(API_KEY, API_SECRET, APP_IDS).start()
    sim.stop()  # The port is now closed.
    harness = make_client(sim, max_retries=0)
    with pytest.raises(PollError) as caught:
        harness.tasks()
    assert caught.value.code == "connection"
    assert harness.errors() == {"connection": 1}


def test_record_fields_are_mapped(pinned: Simulator, make_client: MakeClient) -> None:
    pinned.set_tasks(APP, [record(20, name="name8", hangupSms=True, isDialogFlowUnbind="true")])
    (task,) = make_client(pinned).tasks(APP)
    assert (task.job_id, task.name, task.status, task.mode) == ("20", "name8", "IN_PROCESS", "AUTO")
    assert (task.calls, task.calls_completed, task.robots) == (100, 40, 2)
    assert (task.dialog_flow, task.line) == ("flow", "line63")
    assert task.hangup_sms is True
    assert task.dialog_flow_unbound is True
    assert task.created_seconds == dt.datetime(2022, 9, 20, 16, 57, 4, tzinfo=UTC8).timestamp()


def test_odd_create_time_never_fails_the_poll(pinned: Simulator, make_client: MakeClient) -> None:
    pinned.set_tasks(APP, [record(1, createTime="yesterday"), record(2, createTime=None)])
    tasks = make_client(pinned).tasks(APP)
    assert [t.created_seconds for t in tasks] == [None, None]


def test_secret_never_appears_in_errors_or_repr(pinned: Simulator, make_client: MakeClient) -> None:
    harness = make_client(pinned, secret="super-secret-xyz")
    with pytest.raises(PollError) as caught:
        harness.tasks()
    assert "super-secret-xyz" not in str(caught.value)
    assert "super-secret-xyz" not in repr(harness.client)


# ---------------------------------------------------------------------- call records (recordQuery)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def still(clock: FakeClock) -> Iterator[Simulator]:
    """A simulator whose time stands still, so the calls that have ended stay as they are."""
    sim = Simulator(API_KEY, API_SECRET, APP_IDS, seed=7, clock=clock).start("127.0.0.1", 0)
    yield sim
    sim.stop()


def call_ids(sim: Simulator, start: float, end: float) -> list[str]:
    return [call["callId"] for call in sim.calls(APP, start, end)]


def test_read_calls_returns_exactly_the_windows_calls(
    still: Simulator, clock: FakeClock, make_client: MakeClient
) -> None:
    start, end = clock.now - 120, clock.now - 60
    read = make_client(still, clock=clock, page_size=50).client.read_calls(APP, start, end)
    expected = call_ids(still, start, end)
    assert expected and [record.call_id for record in read.records] == expected
    assert (read.rejected, read.truncated) == ((), False)


def test_read_calls_reads_every_page(
    still: Simulator, clock: FakeClock, make_client: MakeClient
) -> None:
    start, end = clock.now - 60, clock.now
    harness = make_client(still, clock=clock, page_size=25)
    read = harness.client.read_calls(APP, start, end)
    pages = math.ceil(len(call_ids(still, start, end)) / 25)
    assert pages > 3 and harness.requests_sent(endpoint=RECORD_QUERY) == pages
    assert len({record.call_id for record in read.records}) == len(read.records)


def test_read_calls_names_the_queried_app_on_every_record(
    still: Simulator, clock: FakeClock, make_client: MakeClient
) -> None:
    read = make_client(still, clock=clock).client.read_calls(APP, clock.now - 60, clock.now)
    assert read.records and {record.app_id for record in read.records} == {APP}


def test_read_calls_writes_the_window_in_the_configured_zone(
    still: Simulator, clock: FakeClock, make_client: MakeClient
) -> None:
    # The simulator reads windows as +08:00; a client set to +09:00 writes every moment one
    # hour later on the clock face, so it must ask an hour earlier to get the same calls.
    harness = make_client(still, clock=clock, create_time_zone=dt.timezone(dt.timedelta(hours=9)))
    start, end = clock.now - 120, clock.now - 60
    read = harness.client.read_calls(APP, start - 3600, end - 3600)
    expected = call_ids(still, start, end)
    assert expected and [record.call_id for record in read.records] == expected


def test_read_calls_of_an_empty_window_is_empty(
    still: Simulator, clock: FakeClock, make_client: MakeClient
) -> None:
    harness = make_client(still, clock=clock)
    read = harness.client.read_calls(APP, clock.now - 86400 * 30, clock.now - 86400 * 29)
    assert (read.records, read.rejected) == ((), ())
    assert harness.requests_sent(endpoint=RECORD_QUERY) == 1


def test_read_calls_passes_on_unreadable_records_and_keeps_the_rest(
    still: Simulator, clock: FakeClock, make_client: MakeClient
) -> None:
    start, end = clock.now - 60, clock.now
    still.fail_next(1, "poison", variant="superscript_digit", endpoint="recordQuery")
    read = make_client(still, clock=clock, page_size=50).client.read_calls(APP, start, end)
    expected = call_ids(still, start, end)
    assert read.rejected == ("chargedDuration is not a number",)
    assert [record.call_id for record in read.records] == expected[1:]


def test_a_record_query_failure_is_counted_under_record_query_only(
    still: Simulator, clock: FakeClock, make_client: MakeClient
) -> None:
    still.fail_next(1, "http_5xx", http_status=503, endpoint="recordQuery")
    harness = make_client(still, clock=clock)
    assert harness.tasks()  # Comes first, and must not take the recordQuery fault.
    start, end = clock.now - 60, clock.now
    read = harness.client.read_calls(APP, start, end)
    pages = math.ceil(len(call_ids(still, start, end)) / 100)
    assert [record.call_id for record in read.records] == call_ids(still, start, end)
    assert harness.errors(endpoint=RECORD_QUERY) == {"http_503": 1}
    assert harness.requests_sent(endpoint=RECORD_QUERY) == pages + 1  # One retried.
    assert harness.errors(endpoint=TASK_LIST) == {}


def test_a_record_query_api_error_fails_the_read(
    still: Simulator, clock: FakeClock, make_client: MakeClient
) -> None:
    still.fail_next(1, "api_code", api_code="-5", endpoint="recordQuery")
    harness = make_client(still, clock=clock)
    with pytest.raises(PollError) as caught:
        harness.client.read_calls(APP, clock.now - 60, clock.now)
    assert caught.value.code == "-5"
    assert harness.errors(endpoint=RECORD_QUERY) == {"-5": 1}


# ------------------------------------------------- against a hostile server: redirects, Retry-After


HOSTILE_KEY, HOSTILE_SECRET = "hostileKey", "hostile-secret"
SLACK_SECONDS = 10.0  # Scheduling on a busy two-core machine; far below what is told apart.


@pytest.fixture
def client(api: HostileApi) -> Iterator[tuple[ApiClient, RequestRecorder, threading.Event]]:
    """A client of the scripted server, its recorder, and the event that stops it."""
    config = ApiConfig(
        base_url=api.base_url, timeout_seconds=1.0, max_retries=1, max_requests_per_second=1000
    )
    transport = Transport(
        config.base_url,
        timeout_seconds=config.timeout_seconds,
        max_response_bytes=config.max_response_bytes,
        pool_size=2,
    )
    pool = WorkerPool(2, "test-request")
    recorder, stop = RequestRecorder(), threading.Event()
    yield (
        ApiClient(
            Account(HOSTILE_KEY, HOSTILE_SECRET, (APP,)),
            config,
            transport=transport,
            pool=pool,
            recorder=recorder,
            stop=stop,
        ),
        recorder,
        stop,
    )
    stop.set()
    pool.close()
    transport.close()


def test_a_redirect_is_counted_once_and_not_retried(
    api: HostileApi,
    elsewhere: HostileApi,
    client: tuple[ApiClient, RequestRecorder, threading.Event],
) -> None:
    reader, recorder, _ = client
    api.always(hostile_api.redirect(elsewhere.url(), 307))
    with pytest.raises(PollError):
        reader.read_tasks(APP)
    stats = recorder.snapshot([APP])[APP].endpoints[TASK_LIST]
    assert (stats.requests, stats.errors["http_307"]) == (1, 1)
    assert elsewhere.requests == []


@pytest.mark.slow
@pytest.mark.parametrize("header", ["2", "date"])
def test_retry_after_holds_the_next_request_at_least_that_long(
    api: HostileApi, client: tuple[ApiClient, RequestRecorder, threading.Event], header: str
) -> None:
    reader, recorder, _ = client
    value = hostile_api.http_date(2) if header == "date" else header
    api.script(hostile_api.retry_after(value), hostile_api.page([record(1)]))
    started = time.monotonic()
    tasks = reader.read_tasks(APP).tasks
    waited = time.monotonic() - started
    assert [task.job_id for task in tasks] == ["1"]
    assert recorder.snapshot([APP])[APP].endpoints[TASK_LIST].errors["http_429"] == 1
    assert len(api.requests) == 2
    assert waited >= (1.0 if header == "date" else 2.0)  # A date is whole seconds: 1 s or more.


def test_a_long_retry_after_never_holds_past_shutdown(
    api: HostileApi, client: tuple[ApiClient, RequestRecorder, threading.Event]
) -> None:
    reader, _, stop = client
    api.script(hostile_api.retry_after(3600, status=503))
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        reader.read_tasks(APP)
    assert time.monotonic() - started < 0.5 + SLACK_SECONDS


# ------------------------------------------------------------- the rate limit's two classes


class _Stepped:
    """A monotonic clock the limiter reads, moved on by the limiter's own waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now


class _Sleeper(threading.Event):
    """A stop event whose waits move the clock on instead of sleeping."""

    def __init__(self, clock: _Stepped) -> None:
        super().__init__()
        self._clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self._clock.slept.append(timeout)
        self._clock.now += timeout
        return False


def test_a_task_read_never_waits_behind_call_record_reads() -> None:
    clock = _Stepped()
    limiter = RateLimiter(5.0, clock=clock)
    stop = _Sleeper(clock)
    for _ in range(10):  # A call-record backlog takes every slot as it comes.
        limiter.wait(stop, low=True)
    clock.slept.clear()
    limiter.wait(stop)
    assert clock.slept == []


def test_call_record_reads_wait_for_a_free_slot_and_keep_to_the_rate() -> None:
    clock = _Stepped()
    limiter = RateLimiter(5.0, clock=clock)
    stop = _Sleeper(clock)
    started = clock.now
    for _ in range(11):
        limiter.wait(stop, low=True)
    assert clock.now - started == pytest.approx(2.0)  # Ten intervals of 0.2 s after the first.


def test_a_retry_after_holds_task_reads_too() -> None:
    clock = _Stepped()
    limiter = RateLimiter(5.0, clock=clock)
    stop = _Sleeper(clock)
    limiter.hold(3.0)
    started = clock.now
    limiter.wait(stop)
    assert clock.now - started == pytest.approx(3.0)
