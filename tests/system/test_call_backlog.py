"""Task polls first: while one app reads a backlog of call records, the task polls of every app
of its account keep their pace.

The real daemon polls the simulator over loopback every second. One app's recordQuery then
shows 20,000 calls at once, as after a long outage; the test records every task poll of both
apps (their durations, from the exporter's own poll history) until all 20,000 are counted, and
compares them with the same run's polls before. Each taskList answer takes TASK_LATENCY, as
over a real network: a poll then takes a tenth of a second, far above what a busy machine's
scheduling adds, while a task request queued behind the backlog's pages would wait seconds.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from exporter.config.load import parse_config
from exporter.daemon import Daemon
from exporter.simulator import Simulator
from exporter.simulator.api import TASK_LIST
from exporter.simulator.faults import Faults
from exporter.simulator.reporting import ScriptedCall
from exporter.tasks.history import PollOutcome
from tests.support.clock import FakeClock
from tests.support.configs import API_KEY, API_SECRET, APP_IDS, config_for
from tests.support.tools import wait_until

A, B = APP_IDS
BACKLOG = 20_000
BACKLOG_SECONDS = 200  # The backlog's calls end over this long: 100 a second, a page.
INTERVAL = 1.0
RATE = 40.0  # Requests a second for the account: the backlog alone is 200 pages, 5 s of them.
TASK_LATENCY = 0.1  # Seconds each taskList answer takes.

pytestmark = pytest.mark.slow


class Polls:
    """Every task poll of each app, as the daemon's poll history records it, collected from a
    thread that looks at it far more often than the apps are polled."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self.seen: dict[str, list[PollOutcome]] = {A: [], B: []}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.wait(0.02):
            for app_id, history in self._daemon.poller.histories().items():
                polls = self.seen[app_id]
                for outcome in reversed(history.recent):
                    if not any(outcome is seen for seen in polls[-len(history.recent) :]):
                        polls.append(outcome)

    def count(self, app_id: str) -> int:
        return len(self.seen[app_id])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def running() -> Iterator[tuple[Simulator, FakeClock, Daemon, Polls]]:
    clock = FakeClock(float(int(time.time())))
    simulator = Simulator(API_KEY, API_SECRET, APP_IDS, clock=clock, select_by="end").start()
    simulator.set_faults(Faults(latency_seconds=TASK_LATENCY, endpoints=(TASK_LIST,)))
    for app_id in APP_IDS:
        simulator.shown.script(app_id, [])
    document = config_for(
        simulator,
        api={"max_requests_per_second": RATE, "timeout_seconds": 10},
        poll={"interval_seconds": INTERVAL, "timeout_seconds": 60},
        calls={"enabled": True},
    )
    daemon = Daemon(parse_config(document, {}), clock=clock)
    daemon.serve("127.0.0.1", 0, "/metrics")
    polls = Polls(daemon)
    yield simulator, clock, daemon, polls
    polls.stop()
    daemon.stop()
    simulator.stop()


def counted(daemon: Daemon, app_id: str) -> int:
    apps = {app.app_id: app for app in daemon.calls.snapshot().apps}
    return sum(apps[app_id].results.values()) if app_id in apps else 0


def test_task_polls_keep_their_pace_while_an_app_reads_a_backlog_of_call_records(
    running: tuple[Simulator, FakeClock, Daemon, Polls],
) -> None:
    simulator, clock, daemon, polls = running
    wait_until(
        lambda: (
            all(a.up is not None for a in daemon.calls.snapshot().apps)
            and min(polls.count(A), polls.count(B)) >= 8
        ),
        what="the first call-record reads and eight task polls of each app",
    )
    before = {app_id: polls.count(app_id) for app_id in APP_IDS}
    start = clock.now
    simulator.shown.script(
        A,
        [
            ScriptedCall(str(n), end - 5, end, end)
            for n in range(BACKLOG)
            if (end := start + 1 + n * BACKLOG_SECONDS / BACKLOG)
        ],
    )
    clock.now = start + BACKLOG_SECONDS + 2
    wait_until(lambda: counted(daemon, A) == BACKLOG, timeout=300, what="the backlog, counted")
    during = {app_id: polls.seen[app_id][before[app_id] :] for app_id in APP_IDS}
    usual = {app_id: polls.seen[app_id][: before[app_id]] for app_id in APP_IDS}
    reads = daemon.poller.histories()[A].calls
    assert reads is not None and reads.ok
    # The backlog took several polls of A, and A kept its pace: polled about as often as B,
    # whose polls have nothing to read (a round is skipped while the app's poll still runs).
    assert len(during[A]) >= 3
    assert len(during[A]) >= len(during[B]) - 2
    for app_id in APP_IDS:
        durations = [poll.duration_seconds for poll in during[app_id]]
        typical = statistics.median(poll.duration_seconds for poll in usual[app_id][2:])
        assert all(poll.ok for poll in during[app_id])
        assert max(durations) < INTERVAL
        assert statistics.median(durations) <= 1.5 * typical, (app_id, durations, typical)
