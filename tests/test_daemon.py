"""The daemon in-process, over real sockets: polling, staleness, isolation, HTTP, logging."""

from __future__ import annotations

import gzip
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.config import parse_config
from exporter.daemon import Daemon
from exporter.poller import Poller
from exporter.simulator import Faults, Simulator
from exporter.snapshot import Snapshot
from exporter.stats import RequestRecorder
from tests.conftest import API_SECRET, APP_IDS, config_for, wait_until
from tests.support.records import record

A, B = APP_IDS


def values(text: str, name: str, openmetrics: bool = False) -> dict[tuple, float]:
    families = parse_om(text) if openmetrics else parse_text(text)
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in families
        for s in f.samples
        if s.name == name
    }


class Running:
    """A daemon serving on an ephemeral loopback port."""

    def __init__(self, daemon: Daemon, url: str) -> None:
        self.daemon = daemon
        self.url = url

    def text(self) -> str:
        response = requests.get(self.url + "/metrics", timeout=5)
        response.raise_for_status()
        return response.text

    def value(self, name: str, **labels: str) -> float | None:
        return values(self.text(), name).get(tuple(sorted(labels.items())))


@pytest.fixture
def run_daemon(simulator: Simulator) -> Iterator[Callable[..., Running]]:
    daemons: list[Daemon] = []

    def start(**sections: Any) -> Running:
        config = parse_config(config_for(simulator, **sections), {})
        daemon = Daemon(config)
        daemons.append(daemon)
        host, port = daemon.serve("127.0.0.1", 0, "/metrics")
        return Running(daemon, f"http://{host}:{port}")

    yield start
    for daemon in daemons:
        daemon.stop()


def test_serves_tasks_from_the_simulator(simulator: Simulator, run_daemon) -> None:
    simulator.set_tasks(A, [record(1, taskTotal=300, taskCompleted=120)])
    running = run_daemon()
    wait_until(lambda: running.value("aivoice_up", app_id=A) == 1)
    assert running.value("aivoice_task_calls", app_id=A, job_id="1") == 300
    assert running.value("aivoice_task_calls_completed", app_id=A, job_id="1") == 120
    assert running.value("aivoice_tasks", app_id=A, status="IN_PROCESS") == 1


def test_ready_only_after_the_first_poll(simulator: Simulator, run_daemon) -> None:
    simulator.set_faults(Faults(latency_seconds=1.0))
    running = run_daemon()
    assert requests.get(running.url + "/-/ready", timeout=5).status_code == 503
    assert running.value("aivoice_up", app_id=A) is None  # No false `up 0` before a poll.
    wait_until(lambda: requests.get(running.url + "/-/ready", timeout=5).status_code == 200)


def test_failing_app_keeps_last_data_and_other_app_is_untouched(
    simulator: Simulator, run_daemon
) -> None:
    simulator.set_tasks(A, [record(1)])
    simulator.set_tasks(B, [record(2)])
    running = run_daemon()
    wait_until(lambda: running.value("aivoice_up", app_id=A) == 1)
    simulator.set_faults(Faults(api_code="-6", app_ids=(A,)))
    wait_until(lambda: running.value("aivoice_up", app_id=A) == 0)
    assert running.value("aivoice_task_calls", app_id=A, job_id="1") == 100
    assert running.value("aivoice_up", app_id=B) == 1
    assert running.value("aivoice_task_calls", app_id=B, job_id="2") == 100
    assert running.value("aivoice_api_errors_total", app_id=A, code="-6") >= 1
    assert running.value("aivoice_api_errors_total", app_id=B, code="-6") == 0


def test_stale_app_drops_task_series(simulator: Simulator, run_daemon) -> None:
    simulator.set_tasks(A, [record(1)])
    running = run_daemon(poll={"interval_seconds": 1, "stale_after_seconds": 2})
    wait_until(lambda: running.value("aivoice_up", app_id=A) == 1)
    simulator.set_faults(Faults(api_code="-1", app_ids=(A,)))
    wait_until(lambda: running.value("aivoice_task_calls", app_id=A, job_id="1") is None)
    assert running.value("aivoice_tasks", app_id=A, status="IN_PROCESS") is None
    assert running.value("aivoice_up", app_id=A) == 0
    assert running.value("aivoice_poll_last_success_timestamp_seconds", app_id=A) > 0


def test_vanished_task_leaves_at_next_good_poll(simulator: Simulator, run_daemon) -> None:
    simulator.set_tasks(A, [record(2), record(1)])
    running = run_daemon()
    wait_until(lambda: running.value("aivoice_task_calls", app_id=A, job_id="2") == 100)
    simulator.remove_task(A, 2)
    wait_until(lambda: running.value("aivoice_task_calls", app_id=A, job_id="2") is None)
    assert running.value("aivoice_task_calls", app_id=A, job_id="1") == 100


def test_openmetrics_is_served_when_asked(simulator: Simulator, run_daemon) -> None:
    running = run_daemon()
    wait_until(lambda: running.value("aivoice_up", app_id=A) == 1)
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = requests.get(running.url + "/metrics", headers={"Accept": accept}, timeout=5)
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert values(response.text, "aivoice_up", openmetrics=True)[(("app_id", A),)] == 1


def test_gzip_is_served_when_asked(simulator: Simulator, run_daemon) -> None:
    running = run_daemon()
    wait_until(lambda: running.value("aivoice_up", app_id=A) == 1)
    raw = requests.get(
        running.url + "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True
    )
    assert raw.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(raw.raw.read())
    assert b"aivoice_up" in body


def test_plain_text_without_accept_header(simulator: Simulator, run_daemon) -> None:
    running = run_daemon()
    response = requests.get(
        running.url + "/metrics", headers={"Accept": "", "Accept-Encoding": ""}, timeout=5
    )
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "Content-Encoding" not in response.headers


@pytest.mark.parametrize(("path", "status"), [("/", 200), ("/-/healthy", 200), ("/nothing", 404)])
def test_other_paths(run_daemon, path: str, status: int) -> None:
    running = run_daemon()
    assert requests.get(running.url + path, timeout=5).status_code == status


def test_landing_page_links_metrics(run_daemon) -> None:
    running = run_daemon()
    assert 'href="metrics"' in requests.get(running.url + "/", timeout=5).text


def test_reload_endpoint_is_off_without_lifecycle_flag(run_daemon) -> None:
    running = run_daemon()
    assert requests.post(running.url + "/-/reload", timeout=5).status_code == 403


def test_huge_body_is_refused(run_daemon) -> None:
    running = run_daemon()
    response = requests.post(running.url + "/-/reload", data=b"x" * 1_000_000, timeout=5)
    assert response.status_code == 413


def test_failure_is_logged_once_with_an_explanation(
    simulator: Simulator, run_daemon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter")
    simulator.set_faults(Faults(api_code="-4", app_ids=(A,)))
    running = run_daemon()
    wait_until(lambda: (running.value("aivoice_api_errors_total", app_id=A, code="-4") or 0) >= 3)
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage() == "Poll failed"
    ]
    assert len(warnings) == 1
    assert warnings[0].app_id == A
    assert warnings[0].code == "-4"
    assert "clock" in warnings[0].explanation
    simulator.set_faults(Faults())
    wait_until(lambda: any(r.getMessage() == "Poll recovered" for r in caplog.records))


def test_secret_never_appears_in_logs_or_metrics(
    simulator: Simulator, run_daemon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    simulator.set_faults(Faults(api_code="-1"))
    running = run_daemon()
    wait_until(lambda: running.value("aivoice_api_errors_total", app_id=A, code="-1"))
    assert API_SECRET not in running.text()
    assert API_SECRET not in caplog.text


def test_requests_in_flight_stay_within_concurrency(simulator: Simulator, run_daemon) -> None:
    simulator.set_tasks(A, [record(n) for n in range(1, 61)])
    simulator.set_faults(Faults(latency_seconds=0.2))
    running = run_daemon(api={"page_size": 5}, poll={"concurrency": 2, "interval_seconds": 30})
    wait_until(lambda: running.value("aivoice_up", app_id=A) == 1, timeout=20)
    duration = running.value("aivoice_poll_duration_seconds", app_id=A)
    # 12 pages of 0.2 s, 2 at a time after the first: at least 0.2 + 11 / 2 * 0.2 s.
    assert duration >= 0.2 + 5 * 0.2


def test_scrape_does_not_wait_for_a_slow_poll(simulator: Simulator, run_daemon) -> None:
    running = run_daemon()
    wait_until(lambda: running.value("aivoice_up", app_id=A) == 1)
    before = simulator.stats()["requests"]
    simulator.set_faults(Faults(latency_seconds=1.5))
    wait_until(lambda: simulator.stats()["requests"] > before)  # A poll is under way.
    response = requests.get(running.url + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.elapsed.total_seconds() < 0.5


def test_polls_keep_a_fixed_schedule(simulator: Simulator) -> None:
    """Each poll takes 0.2 s; with a 1 s interval each app's polls end 1 s apart, not 1.2 s."""
    simulator.set_faults(Faults(latency_seconds=0.2))
    ends: list[float] = []  # When a new result for APP_IDS[0] was published.
    seen: list[object] = []

    def publish(snapshot: Snapshot) -> None:
        app = next((app for app in snapshot.apps if app.app_id == APP_IDS[0]), None)
        if app is not None and (not seen or app is not seen[-1]):
            seen.append(app)
            ends.append(time.monotonic())

    config = parse_config(config_for(simulator, poll={"interval_seconds": 1}), {})
    stop = threading.Event()
    poller = Poller(config, recorder=RequestRecorder(), publish=publish, stop=stop)
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(ends) >= 4, timeout=10)
    finally:
        stop.set()
        poller.wake()
        thread.join(5)
        poller.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(ends[:4])]
    assert all(abs(gap - 1.0) < 0.15 for gap in gaps), gaps
