"""The daemon in-process, over real sockets: config -> poller -> render -> server, wired.

Polling, staleness, isolation and logging as a scrape sees them; the server's own routes and
formats are tested with the server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.api.stats import GET_BALANCE, TASK_LIST
from exporter.config.load import parse_config
from exporter.config.shard import Shard
from exporter.daemon import Daemon
from exporter.simulator import Faults, Simulator
from exporter.snapshot import EndpointStats
from tests.support.browser import parse
from tests.support.configs import API_KEY, API_SECRET, APP_IDS, config_for
from tests.support.records import record
from tests.support.tools import wait_until

A, B = APP_IDS
RELOADS_DURING_READS = 30


def values(text: str, name: str) -> dict[tuple, float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in parse_text(text)
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


@pytest.mark.slow
def test_ready_only_after_the_first_poll(simulator: Simulator, run_daemon) -> None:
    simulator.set_faults(Faults(latency_seconds=1.0))
    running = run_daemon()
    assert requests.get(running.url + "/-/ready", timeout=5).status_code == 503
    assert running.value("aivoice_up", app_id=A) is None  # No false `up 0` before a poll.
    wait_until(lambda: requests.get(running.url + "/-/ready", timeout=5).status_code == 200)


@pytest.mark.slow
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
    assert running.value("aivoice_api_errors_total", app_id=A, code="-6", endpoint=TASK_LIST) >= 1
    assert running.value("aivoice_api_errors_total", app_id=B, code="-6", endpoint=TASK_LIST) == 0


@pytest.mark.slow
def test_stale_app_drops_task_series(simulator: Simulator, run_daemon) -> None:
    simulator.set_tasks(A, [record(1)])
    running = run_daemon(poll={"interval_seconds": 1, "stale_after_seconds": 2})
    wait_until(lambda: running.value("aivoice_up", app_id=A) == 1)
    simulator.set_faults(Faults(api_code="-1", app_ids=(A,)))
    wait_until(lambda: running.value("aivoice_task_calls", app_id=A, job_id="1") is None)
    assert running.value("aivoice_tasks", app_id=A, status="IN_PROCESS") is None
    assert running.value("aivoice_up", app_id=A) == 0
    assert running.value("aivoice_poll_last_success_timestamp_seconds", app_id=A) > 0


@pytest.mark.slow
def test_vanished_task_leaves_at_next_good_poll(simulator: Simulator, run_daemon) -> None:
    simulator.set_tasks(A, [record(2), record(1)])
    running = run_daemon()
    wait_until(lambda: running.value("aivoice_task_calls", app_id=A, job_id="2") == 100)
    simulator.remove_task(A, 2)
    wait_until(lambda: running.value("aivoice_task_calls", app_id=A, job_id="2") is None)
    assert running.value("aivoice_task_calls", app_id=A, job_id="1") == 100


def test_reload_endpoint_is_off_without_lifecycle_flag(run_daemon) -> None:
    running = run_daemon()
    assert requests.post(running.url + "/-/reload", timeout=5).status_code == 403


@pytest.mark.slow
def test_failure_is_logged_once_with_an_explanation(
    simulator: Simulator, run_daemon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter")
    simulator.set_faults(Faults(api_code="-4", app_ids=(A,)))
    running = run_daemon()
    wait_until(
        lambda: (
            (
                running.value("aivoice_api_errors_total", app_id=A, code="-4", endpoint=TASK_LIST)
                or 0
            )
            >= 3
        )
    )
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
    wait_until(
        lambda: running.value("aivoice_api_errors_total", app_id=A, code="-1", endpoint=TASK_LIST)
    )
    assert API_SECRET not in running.text()
    assert API_SECRET not in caplog.text


@pytest.mark.slow
def test_requests_in_flight_stay_within_concurrency(simulator: Simulator, run_daemon) -> None:
    simulator.set_tasks(A, [record(n) for n in range(1, 61)])
    simulator.set_faults(Faults(latency_seconds=0.2))
    running = run_daemon(api={"page_size": 5}, poll={"concurrency": 2, "interval_seconds": 30})
    wait_until(lambda: running.value("aivoice_up", app_id=A) == 1, timeout=20)
    duration = running.value("aivoice_poll_duration_seconds", app_id=A)
    # 12 pages of 0.2 s, 2 at a time after the first: at least 0.2 + 11 / 2 * 0.2 s.
    assert duration >= 0.2 + 5 * 0.2


@pytest.mark.slow
def test_scrape_does_not_wait_for_a_slow_poll(simulator: Simulator, run_daemon) -> None:
    running = run_daemon()
    wait_until(lambda: running.value("aivoice_up", app_id=A) == 1)
    before = simulator.stats()["requests"]
    simulator.set_faults(Faults(latency_seconds=20))
    wait_until(lambda: simulator.stats()["requests"] > before)  # A poll is under way.
    response = requests.get(running.url + "/metrics", timeout=30)
    assert response.status_code == 200
    # Far less than the poll's 20 s, with room for a busy machine's scheduling.
    assert response.elapsed.total_seconds() < 5


def test_the_status_page_follows_the_config_through_reloads(simulator: Simulator) -> None:
    documents = [config_for(simulator)]
    daemon = Daemon(
        parse_config(documents[0], {}), load_config=lambda: parse_config(documents[-1], {})
    )
    try:
        daemon.poll_once()
        grown = config_for(simulator)
        grown["accounts"][0]["app_ids"] = [A, B, "ADDED"]
        documents.append(grown)
        assert daemon.reload()
        page = parse(daemon.status_page().decode())
        (table,) = page.find_all("table", "apps")
        rows = {
            row.find_all("b")[0].text: row.text for row in table.find_all("tbody")[0].find_all("tr")
        }
        assert list(rows) == ["ADDED", A, B]  # Not polled yet, before the apps that are up.
        assert "not polled yet" in rows["ADDED"]
        documents.append({"accounts": "not a list"})
        assert not daemon.reload()
        assert "the last reload failed" in parse(daemon.status_page().decode()).text
    finally:
        daemon.stop()


@pytest.mark.slow
def test_balance_reads_beside_busy_polls_stay_within_the_connection_pool(
    simulator: Simulator, run_daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """The request thread and the balance reader share the transport and send at once: its
    pool holds both, so no connection is opened only to be dropped (urllib3 warns when it
    must). At concurrency 1 the request thread is busy most of every second."""
    simulator.set_faults(Faults(latency_seconds=0.1))
    for app in APP_IDS:
        simulator.set_tasks(app, [record(n) for n in range(1, 31)])
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        running = run_daemon(
            api={"page_size": 10, "timeout_seconds": 30},
            poll={"concurrency": 1, "interval_seconds": 1},
            balance={"enabled": True, "interval_seconds": 1},
        )
        wait_until(
            lambda: (
                (
                    running.value(
                        "aivoice_api_requests_total", account=API_KEY, endpoint="getBalance"
                    )
                    or 0
                )
                >= 8
            ),
            what="eight balance reads",
        )
    assert not [r for r in caplog.records if r.name.startswith("urllib3")], caplog.text


@pytest.mark.slow
def test_balance_reads_never_fail_across_reloads(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Each reload swaps in new clients while the balance reader reads without a pause. At 10
    requests a second a read mostly waits for its slot in the rate limit of the client it
    borrowed, so the reloads land in reads under way: those end on their own client."""
    document = config_for(simulator, api={"max_requests_per_second": 10}, balance={"enabled": True})
    daemon = Daemon(parse_config(document, {}), load_config=lambda: parse_config(document, {}))
    stop = threading.Event()

    def read_continuously() -> None:
        while not stop.is_set():
            daemon.balance.read_all()

    def balance_requests() -> EndpointStats:
        return daemon.balance.snapshot().requests[API_KEY].endpoints[GET_BALANCE]

    reader = threading.Thread(target=read_continuously)
    with caplog.at_level(logging.WARNING):
        reader.start()
        try:
            for _ in range(RELOADS_DURING_READS):
                done = balance_requests().requests
                wait_until(lambda n=done: balance_requests().requests > n, what="one more read")
                assert daemon.reload()
        finally:
            stop.set()
            reader.join(timeout=60)
            daemon.stop()
    assert balance_requests().requests > RELOADS_DURING_READS
    assert {code: n for code, n in balance_requests().errors.items() if n} == {}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert daemon.balance.snapshot().accounts[0].up


def two_accounts(simulator: Simulator) -> dict[str, Any]:
    """APP_A and APP_B under accounts that the hash puts on different shards of 2."""
    accounts = [
        {"name": name, "api_key": "testKey1", "api_secret": API_SECRET, "app_ids": [app]}
        for name, app in (("east", A), ("west", B))
    ]
    return config_for(simulator, accounts=accounts)


def test_a_shard_polls_and_serves_only_its_own_accounts(simulator: Simulator) -> None:
    config = parse_config(two_accounts(simulator), {})
    served = []
    for ordinal in (0, 1):
        daemon = Daemon(config, shard=Shard(ordinal, 2))
        try:
            snapshot = daemon.poll_once()
            text = daemon.published.exposition.text.decode()
        finally:
            daemon.stop()
        served.append({app.app_id for app in snapshot.apps})
        assert values(text, "aivoice_exporter_shard") == {(): ordinal}
        assert values(text, "aivoice_exporter_total_shards") == {(): 2}
    assert sorted(served, key=sorted) == [{A}, {B}]


def test_a_shards_status_page_shows_its_own_apps_and_names_the_shard(
    simulator: Simulator,
) -> None:
    config = parse_config(two_accounts(simulator), {})
    daemon = Daemon(config, shard=Shard(3, 2))  # A pod index: shard 3 mod 2.
    try:
        daemon.poll_once()
        (table,) = parse(daemon.status_page().decode()).find_all("table", "apps")
    finally:
        daemon.stop()
    header = [cell.text for cell in table.find_all("th")]
    rows = table.find_all("tbody")[0].find_all("tr")
    assert "Shard" in header and len(rows) == 1
    shard = rows[0].find_all("td")[header.index("Shard")].text
    assert shard == "1 of 2"
