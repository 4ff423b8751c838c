"""The poller in-process against the simulator: per-app publishing, bounds, isolation."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from exporter.api.stats import TASK_LIST, RequestRecorder
from exporter.config.load import parse_config
from exporter.daemon import Daemon
from exporter.simulator import Faults, Simulator
from exporter.snapshot import AppSnapshot, Snapshot
from exporter.tasks.history import AppHistory
from exporter.tasks.poller import Poller
from tests.support.configs import API_KEY, API_SECRET, APP_IDS, config_for
from tests.support.records import record
from tests.support.simulator_process import SimulatorProcess
from tests.support.tools import wait_until

# Every test here polls a simulator in real time, for a second or more.
pytestmark = pytest.mark.slow


class Published:
    """Every snapshot the poller published, for tests to look back over."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshots: list[tuple[float, Snapshot]] = []

    def __call__(self, snapshot: Snapshot) -> None:
        with self.lock:
            self.snapshots.append((time.monotonic(), snapshot))

    def latest(self, app_id: str) -> AppSnapshot | None:
        with self.lock:
            for _, snapshot in reversed(self.snapshots):
                for app in snapshot.apps:
                    if app.app_id == app_id:
                        return app
        return None

    def first_time(self, check: Callable[[Snapshot], bool]) -> float | None:
        with self.lock:
            return next((when for when, snapshot in self.snapshots if check(snapshot)), None)


@pytest.fixture
def run_poller() -> Iterator[Callable[..., tuple[Poller, Published]]]:
    """Start `Poller.run()` on a thread for a config document; stopped when the test ends."""
    started: list[tuple[Poller, threading.Event, threading.Thread]] = []

    def start(document: dict[str, Any]) -> tuple[Poller, Published]:
        published = Published()
        stop = threading.Event()
        poller = Poller(
            parse_config(document, {}), recorder=RequestRecorder(), publish=published, stop=stop
        )
        thread = threading.Thread(target=poller.run, daemon=True)
        thread.start()
        started.append((poller, stop, thread))
        return poller, published

    yield start
    for poller, stop, thread in started:
        stop.set()
        poller.wake()
        thread.join(5)
        poller.close()


def test_an_app_is_published_as_soon_as_its_own_poll_ends(
    simulator: Simulator, run_poller: Callable[..., tuple[Poller, Published]]
) -> None:
    simulator.set_faults(Faults(latency_seconds=3.0, app_ids=("APP_B",)))
    _, published = run_poller(config_for(simulator, poll={"interval_seconds": 60}))
    wait_until(lambda: published.latest("APP_A") is not None, timeout=2.5)
    assert published.latest("APP_B") is None  # Still polling: A did not wait for it.
    wait_until(lambda: published.latest("APP_B") is not None, timeout=10)


def test_a_slow_app_never_delays_another_apps_polls(
    simulator: Simulator, run_poller: Callable[..., tuple[Poller, Published]]
) -> None:
    """B drips for longer than the whole test; A keeps its one-second schedule meanwhile."""
    simulator.set_faults(Faults(latency_seconds=30.0, app_ids=("APP_B",)))
    document = config_for(
        simulator,
        api={"timeout_seconds": 60},
        poll={"interval_seconds": 1, "concurrency": 2, "timeout_seconds": 60},
    )
    _, published = run_poller(document)
    successes: set[float] = set()

    def a_polled_three_times() -> bool:
        app = published.latest("APP_A")
        if app is not None and app.last_success_seconds is not None:
            successes.add(app.last_success_seconds)
        return len(successes) >= 3

    wait_until(a_polled_three_times, timeout=8)
    assert published.latest("APP_B") is None


def test_an_app_poll_that_outruns_its_timeout_fails_alone(
    simulator: Simulator, run_poller: Callable[..., tuple[Poller, Published]]
) -> None:
    simulator.set_faults(Faults(latency_seconds=30.0, app_ids=("APP_B",)))
    document = config_for(
        simulator,
        api={"timeout_seconds": 60},
        poll={"interval_seconds": 60, "timeout_seconds": 1},
    )
    _, published = run_poller(document)
    wait_until(lambda: published.latest("APP_B") is not None, timeout=5)
    b, a = published.latest("APP_B"), published.latest("APP_A")
    assert b is not None and not b.up and b.tasks is None
    assert a is not None and a.up


def test_a_poison_value_fails_that_app_only(
    simulator: Simulator, run_poller: Callable[..., tuple[Poller, Published]]
) -> None:
    simulator.set_tasks("APP_A", [record(1, taskTotal="²")])
    simulator.set_tasks("APP_B", [record(2)])
    _, published = run_poller(config_for(simulator))
    wait_until(lambda: published.latest("APP_A") and published.latest("APP_B"))
    a, b = published.latest("APP_A"), published.latest("APP_B")
    assert a is not None and not a.up
    assert b is not None and b.up and b.tasks is not None and len(b.tasks) == 1


@pytest.mark.parametrize(
    "poison",
    [
        {"taskTotal": "²"},
        {"taskTotal": "7" * 400},
        {"taskCompleted": 10**300},
        {"taskTotal": 1e308},
        {"robotCount": float("nan")},
        {"jobId": "9" * 500},
        {"jobId": {"nested": True}},
    ],
    ids=["superscript", "long-digits", "huge-int", "huge-float", "nan", "long-id", "object-id"],
)
def test_poison_values_are_invalid_responses_not_crashes(
    simulator: Simulator, poison: dict[str, Any]
) -> None:
    simulator.set_tasks("APP_A", [record(1, **poison)])
    recorder = RequestRecorder()
    poller = Poller(
        parse_config(config_for(simulator), {}),
        recorder=recorder,
        publish=lambda snapshot: None,
        stop=threading.Event(),
    )
    try:
        snapshot = poller.poll_once()
    finally:
        poller.close()
    (a,) = (app for app in snapshot.apps if app.app_id == "APP_A")
    assert not a.up
    assert snapshot.requests["APP_A"].endpoints[TASK_LIST].errors["invalid_response"] >= 1


def test_counts_whose_sum_overflows_a_float_never_reach_the_render(simulator: Simulator) -> None:
    """Each count parses as an int; their sum would be inf in the per-status aggregate."""
    simulator.set_tasks("APP_A", [record(1, taskTotal=10**308), record(2, taskTotal=10**308)])
    daemon = Daemon(parse_config(config_for(simulator), {}))
    try:
        snapshot = daemon.poll_once()
        text = daemon.published.exposition.body(openmetrics=False, gzipped=False).decode()
    finally:
        daemon.stop()
    up = {app.app_id: app.up for app in snapshot.apps}
    assert up == {"APP_A": False, "APP_B": True}
    assert 'aivoice_up{app_id="APP_B"} 1.0' in text


def test_threads_are_bounded_by_concurrency_not_by_apps(tmp_path: Path) -> None:
    """200 apps at concurrency 8: the poller adds two pools of 8 threads, whatever the apps."""
    apps = [f"APP_{n}" for n in range(200)]
    with SimulatorProcess(API_KEY, API_SECRET, apps, tasks_per_app=30, page_size=10) as sim:
        document = config_for(sim, poll={"concurrency": 8})
        document["accounts"][0]["app_ids"] = apps
        before = threading.active_count()
        peak = [before]
        stop_watching = threading.Event()

        def watch() -> None:
            while not stop_watching.wait(0.005):
                peak[0] = max(peak[0], threading.active_count())

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        poller = Poller(
            parse_config(document, {}),
            recorder=RequestRecorder(),
            publish=lambda snapshot: None,
            stop=threading.Event(),
        )
        try:
            snapshot = poller.poll_once()
        finally:
            poller.close()
            stop_watching.set()
            watcher.join()
    assert len(snapshot.apps) == 200 and all(app.up for app in snapshot.apps)
    assert peak[0] - before <= 2 * 8 + 1  # The pools, and the watcher itself.


def test_a_reload_never_cuts_a_poll_in_progress_short(
    simulator: Simulator,
    run_poller: Callable[..., tuple[Poller, Published]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator.set_faults(Faults(latency_seconds=1.0))
    # Six pages an app: at the reload each poll still has five pages to ask for.
    document = config_for(simulator, api={"page_size": 2}, poll={"interval_seconds": 60})
    poller, published = run_poller(document)
    time.sleep(0.3)  # Both apps' first pages are waiting on the simulator now.
    poller.reconfigure(parse_config(document, {}))
    wait_until(lambda: published.latest("APP_A") and published.latest("APP_B"), timeout=10)
    a, b = published.latest("APP_A"), published.latest("APP_B")
    assert a is not None and a.up and b is not None and b.up
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.slow
def test_polls_keep_a_fixed_schedule(simulator: Simulator) -> None:
    """Each poll takes 1.4 s; with a 2 s interval each app's polls end 2 s apart on average,
    not 3.4 s (a sleep after each poll). The two are far apart, and the mean over three gaps
    only moves by the first and last end's lateness, so a busy machine cannot blur them."""
    simulator.set_faults(Faults(latency_seconds=1.4))
    ends: list[float] = []  # When a new result for APP_IDS[0] was published.
    seen: list[object] = []

    def publish(snapshot: Snapshot) -> None:
        app = next((app for app in snapshot.apps if app.app_id == APP_IDS[0]), None)
        if app is not None and (not seen or app is not seen[-1]):
            seen.append(app)
            ends.append(time.monotonic())

    config = parse_config(
        config_for(simulator, api={"timeout_seconds": 30}, poll={"interval_seconds": 2}), {}
    )
    stop = threading.Event()
    poller = Poller(config, recorder=RequestRecorder(), publish=publish, stop=stop)
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(ends) >= 4, timeout=60, what="four polls of the app")
    finally:
        stop.set()
        poller.wake()
        thread.join(5)
        poller.close()
    mean_gap = (ends[3] - ends[0]) / 3
    assert mean_gap < 2.7, mean_gap


def test_each_poll_is_published_into_the_apps_history(simulator: Simulator) -> None:
    A, B = APP_IDS
    histories: list[Mapping[str, AppHistory]] = []
    poller = Poller(
        parse_config(config_for(simulator), {}),
        recorder=RequestRecorder(),
        publish=lambda snapshot: None,
        stop=threading.Event(),
        publish_history=histories.append,
    )
    try:
        poller.poll_once()
        simulator.set_faults(Faults(api_code="-50", app_ids=(B,)))
        poller.poll_once()
    finally:
        poller.close()
    latest = histories[-1]
    assert [o.error for o in latest[A].recent] == [None, None]
    assert all(o.pages == 1 for o in latest[A].recent)
    assert [o.error for o in latest[B].recent] == ["-50", None]
    assert latest[B].failing_since == latest[B].recent[0].finished_seconds
    assert latest[A].failing_since is None
