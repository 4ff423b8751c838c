"""Live reload (SIGHUP and POST /-/reload) and the start-up secret-permission warning."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.api.stats import TASK_LIST
from exporter.simulator import Simulator
from tests.support.configs import API_KEY, API_SECRET, APP_IDS, config_for, write_config
from tests.support.tools import scrape, wait_until

pytestmark = pytest.mark.slow

A, B = APP_IDS


def metric(url: str, name: str, **labels: str) -> float | None:
    wanted = tuple(sorted(labels.items()))
    for family in text_string_to_metric_families(scrape(url + "/metrics").text):
        for sample in family.samples:
            if sample.name == name and tuple(sorted(sample.labels.items())) == wanted:
                return sample.value
    return None


def only_app(simulator: Simulator, app_id: str, **sections: object) -> dict:
    account = {"api_key": API_KEY, "api_secret": API_SECRET, "app_ids": [app_id]}
    return config_for(simulator, accounts=[account], **sections)


def test_sighup_adds_and_removes_apps_and_keeps_counters(
    simulator: Simulator, tmp_path: Path, start_exporter
) -> None:
    path = write_config(
        tmp_path / "c.yaml", only_app(simulator, A, poll={"interval_seconds": 3600})
    )
    exporter = start_exporter("--config.file", str(path))
    wait_until(lambda: metric(exporter.url, "aivoice_up", app_id=A) == 1)
    sent = metric(exporter.url, "aivoice_api_requests_total", app_id=A, endpoint=TASK_LIST)

    write_config(path, only_app(simulator, B, poll={"interval_seconds": 3600}))
    exporter.popen.send_signal(signal.SIGHUP)
    # B is polled at once, not an hour later.
    wait_until(lambda: metric(exporter.url, "aivoice_up", app_id=B) == 1)
    assert metric(exporter.url, "aivoice_up", app_id=A) is None
    assert metric(exporter.url, "aivoice_api_requests_total", app_id=A, endpoint=TASK_LIST) is None

    write_config(path, config_for(simulator, poll={"interval_seconds": 3600}))
    exporter.popen.send_signal(signal.SIGHUP)
    wait_until(
        lambda: (
            (metric(exporter.url, "aivoice_api_requests_total", app_id=A, endpoint=TASK_LIST) or 0)
            > sent
        )
    )
    assert metric(exporter.url, "aivoice_config_last_reload_successful") == 1


def test_bad_reload_keeps_the_running_config(
    simulator: Simulator, tmp_path: Path, start_exporter
) -> None:
    path = write_config(tmp_path / "c.yaml", config_for(simulator))
    exporter = start_exporter("--config.file", str(path))
    wait_until(lambda: metric(exporter.url, "aivoice_up", app_id=A) == 1)
    path.write_text("accounts: [{api_key: k, app_ids: [A]}]\n")
    exporter.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: metric(exporter.url, "aivoice_config_last_reload_successful") == 0)
    exporter.wait_for_line(r"Reload failed.*accounts\[0\]\.api_secret: missing")
    polls = metric(exporter.url, "aivoice_api_requests_total", app_id=A, endpoint=TASK_LIST)
    wait_until(
        lambda: (
            metric(exporter.url, "aivoice_api_requests_total", app_id=A, endpoint=TASK_LIST) > polls
        )
    )
    assert metric(exporter.url, "aivoice_up", app_id=A) == 1
    assert exporter.popen.poll() is None


def test_reload_endpoint_answers_200_on_success_and_500_on_a_bad_config(
    simulator: Simulator, tmp_path: Path, start_exporter
) -> None:
    path = write_config(tmp_path / "c.yaml", only_app(simulator, A))
    exporter = start_exporter("--config.file", str(path), "--web.enable-lifecycle")
    write_config(path, only_app(simulator, B))
    assert requests.post(exporter.url + "/-/reload", timeout=10).status_code == 200
    wait_until(lambda: metric(exporter.url, "aivoice_up", app_id=B) == 1)
    path.write_text("accounts: []\n")
    assert requests.post(exporter.url + "/-/reload", timeout=10).status_code == 500
    assert metric(exporter.url, "aivoice_config_last_reload_successful") == 0


def test_reload_success_time_moves_forward(
    simulator: Simulator, tmp_path: Path, start_exporter
) -> None:
    path = write_config(tmp_path / "c.yaml", config_for(simulator))
    exporter = start_exporter("--config.file", str(path), "--web.enable-lifecycle")
    first = metric(exporter.url, "aivoice_config_last_reload_success_timestamp_seconds")
    wait_until(lambda: requests.post(exporter.url + "/-/reload", timeout=10).status_code == 200)
    wait_until(
        lambda: metric(exporter.url, "aivoice_config_last_reload_success_timestamp_seconds") > first
    )


def test_world_readable_plaintext_secret_is_warned_about(
    simulator: Simulator, tmp_path: Path, start_exporter
) -> None:
    path = write_config(tmp_path / "c.yaml", config_for(simulator))
    path.chmod(0o644)
    exporter = start_exporter("--config.file", str(path))
    exporter.wait_for_line(r"level=warning .*other users can read it")


def test_secret_from_environment_is_not_warned_about(
    simulator: Simulator, tmp_path: Path, start_exporter
) -> None:
    document = config_for(simulator)
    document["accounts"][0]["api_secret"] = "${TEST_AIVOICE_SECRET}"
    path = write_config(tmp_path / "c.yaml", document)
    path.chmod(0o644)
    exporter = start_exporter("--config.file", str(path), env={"TEST_AIVOICE_SECRET": API_SECRET})
    wait_until(lambda: metric(exporter.url, "aivoice_up", app_id=A) == 1)
    assert "other users can read it" not in exporter.log()
