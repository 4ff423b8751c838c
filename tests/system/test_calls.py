"""Call outcomes end to end: the simulator's recordQuery and push into the real daemon.

The simulator and the exporter share a clock the test moves, so the calls that end while the
test advances it are known exactly. Each test checks the exporter's counters against the
simulator's own list of calls.
"""

from __future__ import annotations

import collections
import copy
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from exporter.config.load import parse_config
from exporter.daemon import Daemon
from exporter.simulator import Faults, Simulator
from exporter.simulator.lines import app_lines
from tests.support.clock import FakeClock
from tests.support.configs import API_KEY, API_SECRET, APP_IDS, config_for
from tests.support.exposition import call_results, scraped
from tests.support.tools import wait_until

A, B = APP_IDS
TOKEN = "test-push-token-0123456789"
ADVANCE = 120.0  # Seconds of calling per step: about five hundred calls per app.

pytestmark = pytest.mark.slow


@dataclass
class Stack:
    simulator: Simulator
    clock: FakeClock
    daemon: Daemon
    url: str
    push_url: str
    documents: list[dict[str, Any]]

    def reconfigure(self, apps: tuple[str, ...]) -> None:
        """The next reload reads a config that polls `apps`."""
        document = copy.deepcopy(self.documents[-1])
        document["accounts"][0]["app_ids"] = list(apps)
        self.documents.append(document)

    def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return scraped(self.url, name)

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples(name).get(tuple(sorted(labels.items())))

    def results(self, app_id: str) -> dict[str, int]:
        return call_results(self.url, app_id)

    def calls_between(self, app_id: str, after: float, until: float) -> list[dict[str, Any]]:
        """The simulator's calls that ended after `after` and by `until` (whole seconds): their
        `endTime` is the second they ended in."""
        return [
            call
            for call in self.simulator.calls(app_id)
            if after <= _seconds(call["endTime"]) < until
        ]

    def pushes_settled(self) -> bool:
        stats = self.simulator.stats()
        return stats["push_pending"] == 0 and stats["push_sent"] > 0


def _seconds(text: str) -> float:
    moment = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    return moment.replace(tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()


@pytest.fixture
def stack() -> Iterator[Callable[..., Stack]]:
    started: list[tuple[Simulator, Daemon]] = []

    def start(
        *,
        push: bool = True,
        polled: bool = True,
        duplicates: float = 0.3,
        apps: tuple[str, ...] = APP_IDS,
        **simulator_options: Any,
    ) -> Stack:
        clock = FakeClock(float(int(time.time())))  # Whole seconds, as the records' times.
        simulator = Simulator(
            API_KEY,
            API_SECRET,
            APP_IDS,
            clock=clock,
            push_duplicate_ratio=duplicates,
            push_retry_delay=0.05,
            **simulator_options,
        ).start()
        sections: dict[str, Any] = {
            "poll": {"interval_seconds": 3600},
            "calls": {"enabled": polled},
        }
        if push:
            sections["push"] = {"listen_address": "127.0.0.1:0", "token": TOKEN}
        document = config_for(simulator, **sections)
        document["accounts"][0]["app_ids"] = list(apps)
        documents = [document]
        daemon = Daemon(
            parse_config(document, {}),
            load_config=lambda: parse_config(documents[-1], {}),
            clock=clock,
        )
        started.append((simulator, daemon))
        host, port = daemon.serve("127.0.0.1", 0, "/metrics")
        push_url = ""
        if daemon.push_address is not None:
            push_host, push_port = daemon.push_address
            push_url = f"http://{push_host}:{push_port}/push/call-record/{TOKEN}"
        running = Stack(simulator, clock, daemon, f"http://{host}:{port}", push_url, documents)
        wait_until(lambda: daemon.published.ready, what="the first poll")
        if polled:  # The first call-record reads, which only remember, follow the task polls.
            apps = daemon.calls.snapshot
            wait_until(
                lambda: all(a.up is not None for a in apps().apps),
                what="the first call-record reads",
            )
        return running

    yield start
    for simulator, daemon in started:
        simulator.stop()
        daemon.stop()


def test_each_call_counts_once_across_poll_and_push(stack: Callable[..., Stack]) -> None:
    running = stack()
    running.simulator.start_push(running.push_url)
    start = running.clock()
    running.clock.now += ADVANCE
    wait_until(running.pushes_settled, timeout=60, what="the pushes")
    running.daemon.poll_once()
    for app_id in APP_IDS:
        expected = collections.Counter(
            call["resultStatus"] for call in running.calls_between(app_id, start, running.clock())
        )
        assert running.results(app_id) == dict(expected)
    pushed_twice = running.simulator.stats()["push_duplicated"]
    assert pushed_twice > 0
    duplicates = sum(
        running.value(
            "aivoice_call_records_total", app_id=app_id, source="push", outcome="duplicate"
        )
        or 0
        for app_id in APP_IDS
    )
    assert duplicates == pushed_twice


def test_the_first_read_counts_nothing(stack: Callable[..., Stack]) -> None:
    running = stack(push=False)
    assert running.simulator.calls(A)  # The first read's window held calls.
    assert running.results(A) == {}
    assert running.value("aivoice_calls_up", app_id=A) == 1


@pytest.mark.parametrize("select_by", ["start", "end"])
def test_polling_alone_counts_the_calls_that_end_after_the_first_read(
    stack: Callable[..., Stack], select_by: str
) -> None:
    running = stack(push=False, select_by=select_by)
    start = running.clock()
    running.clock.now += ADVANCE
    running.daemon.poll_once()
    running.daemon.poll_once()  # The same window again: nothing new.
    expected = collections.Counter(
        call["resultStatus"] for call in running.calls_between(A, start, running.clock())
    )
    assert running.results(A) == dict(expected)


def test_the_push_alone_counts_each_call_once_with_its_cost(stack: Callable[..., Stack]) -> None:
    running = stack(polled=False)
    running.simulator.start_push(running.push_url)
    start = running.clock()
    running.clock.now += ADVANCE
    wait_until(running.pushes_settled, timeout=60, what="the pushes")
    calls = running.calls_between(B, start, running.clock())
    assert running.results(B) == dict(collections.Counter(c["resultStatus"] for c in calls))
    billed = sum(int(c["chargedDuration"]) for c in calls)
    assert running.value("aivoice_call_billed_seconds_total", app_id=B) == billed
    cost = running.value("aivoice_call_cost_total", app_id=B, currency="USD")
    assert cost == pytest.approx(billed / 60 * 0.05)
    assert running.value("aivoice_calls_up", app_id=B) is None


@pytest.mark.parametrize("select_by", ["start", "end"])
def test_calls_that_end_while_the_pages_are_read_count_once(
    stack: Callable[..., Stack], select_by: str
) -> None:
    # Newest first, every call that ends mid-read pushes the records below it down the pages:
    # one read sees some twice and misses others, which the next poll's reads bring.
    running = stack(
        push=False,
        newest_first=True,
        server_page_size=20,
        tasks_per_app=2,
        select_by=select_by,
    )
    start = running.clock()
    stop = threading.Event()

    def move_time() -> None:
        while not stop.wait(0.01):
            running.clock.now += 1.0

    mover = threading.Thread(target=move_time)
    mover.start()
    try:
        for _ in range(3):
            running.daemon.poll_once()
    finally:
        stop.set()
        mover.join()
    moved = running.clock() - start
    running.clock.now = float(int(running.clock()))  # Whole seconds again, for the truth.
    running.daemon.poll_once()  # A read of a window that holds still.
    assert moved > 10  # Calls ended while the pages were read.
    for app_id in APP_IDS:
        expected = collections.Counter(
            call["resultStatus"] for call in running.calls_between(app_id, start, running.clock())
        )
        assert running.results(app_id) == dict(expected)


def test_a_restart_counts_no_call_twice(stack: Callable[..., Stack]) -> None:
    first = stack(push=False)
    first.clock.now += ADVANCE
    first.daemon.poll_once()
    assert sum(first.results(A).values()) > 0
    first.daemon.stop()
    config = parse_config(config_for(first.simulator, calls={"enabled": True}), {})
    second = Daemon(config, clock=first.clock)
    try:
        second.poll_once()
        second.poll_once()
        assert b"aivoice_call_results_total" in second.published.exposition.text
        assert b'result="ANSWERED"} 0.0' in second.published.exposition.text
    finally:
        second.stop()


def test_a_record_query_outage_leaves_the_task_metrics_alone(
    stack: Callable[..., Stack],
) -> None:
    running = stack(push=False)
    tasks_before = running.samples("aivoice_task_calls")
    running.simulator.set_faults(Faults(api_code="-5", endpoints=("recordQuery",)))
    running.daemon.poll_once()
    assert running.value("aivoice_calls_up", app_id=A) == 0
    assert running.value("aivoice_up", app_id=A) == 1
    assert running.samples("aivoice_task_calls") == tasks_before
    errors = running.value("aivoice_api_errors_total", app_id=A, endpoint="recordQuery", code="-5")
    assert errors is not None and errors >= 1
    assert running.value("aivoice_api_errors_total", app_id=A, endpoint="taskList", code="-5") in (
        None,
        0,
    )


@pytest.mark.parametrize("select_by", ["start", "end"])
def test_a_record_query_outage_loses_no_call(stack: Callable[..., Stack], select_by: str) -> None:
    running = stack(push=False, select_by=select_by)
    start = running.clock()
    running.simulator.set_faults(Faults(api_code="-5", endpoints=("recordQuery",)))
    running.clock.now += ADVANCE
    running.daemon.poll_once()
    running.simulator.set_faults(Faults())
    running.daemon.poll_once()
    expected = collections.Counter(
        call["resultStatus"] for call in running.calls_between(A, start, running.clock())
    )
    assert running.results(A) == dict(expected)


def test_a_reload_keeps_counts_and_primes_an_added_app(stack: Callable[..., Stack]) -> None:
    running = stack(push=False, apps=(A,))
    start = running.clock()
    running.clock.now += ADVANCE
    running.daemon.poll_once()
    before = running.results(A)
    running.reconfigure(apps=APP_IDS)
    assert running.daemon.reload()
    running.daemon.poll_once()  # B's first read: remembered, not counted.
    running.clock.now += ADVANCE
    running.daemon.poll_once()
    expected = collections.Counter(
        call["resultStatus"] for call in running.calls_between(A, start, running.clock())
    )
    assert running.results(A) == dict(expected) and sum(expected.values()) > sum(before.values())
    added = collections.Counter(
        call["resultStatus"] for call in running.calls_between(B, start + ADVANCE, running.clock())
    )
    assert running.results(B) == dict(added)


def test_each_call_counts_once_under_its_line_named_from_channel_list(
    stack: Callable[..., Stack],
) -> None:
    running = stack()
    running.simulator.start_push(running.push_url)
    start = running.clock()
    running.clock.now += ADVANCE
    wait_until(running.pushes_settled, timeout=60, what="the pushes")
    running.daemon.poll_once()
    for app_id in APP_IDS:
        calls = running.calls_between(app_id, start, running.clock())
        expected = collections.Counter((c["tenantPhoneNumberId"], c["resultStatus"]) for c in calls)
        counted = {
            (labels["line_id"], labels["result"]): value
            for key, value in running.samples("aivoice_line_call_results_total").items()
            if (labels := dict(key))["app_id"] == app_id and value
        }
        assert counted == dict(expected)
        names = {
            dict(key)["line_id"]: dict(key)["line"]
            for key in running.samples("aivoice_line_info")
            if dict(key)["app_id"] == app_id
        }
        assert names == {line.line_id: line.name for line in app_lines(0, app_id).lines}
        assert {line for line, _ in expected} <= set(names)  # every call on a listed line


def test_a_channel_list_outage_keeps_the_names_and_touches_nothing_else(
    stack: Callable[..., Stack],
) -> None:
    running = stack(push=False)
    wait_until(
        lambda: running.samples("aivoice_line_info"), what="the lines' names of the first read"
    )
    names = running.samples("aivoice_line_info")
    running.simulator.set_faults(Faults(api_code="-5", endpoints=("channelList",)))
    running.clock.now += 600  # calls.lines_refresh_seconds: the names are read again
    running.daemon.poll_once()
    errors = running.value("aivoice_api_errors_total", app_id=A, endpoint="channelList", code="-5")
    assert errors is not None and errors >= 1
    assert running.samples("aivoice_line_info") == names
    assert (running.value("aivoice_up", app_id=A), running.value("aivoice_calls_up", app_id=A)) == (
        1,
        1,
    )
    assert sum(running.results(A).values()) > 0
