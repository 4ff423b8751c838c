"""The real `aivoice-exporter` process end to end: --once, the served /metrics, signals, --demo."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.simulator import Faults, Simulator
from tests.conftest import APP_IDS, config_for, scrape, wait_until, write_config
from tests.support.records import record

A, B = APP_IDS


def sample_values(text: str, name: str) -> dict[tuple, float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_once_prints_metrics_and_exits_0(simulator: Simulator, tmp_path: Path) -> None:
    simulator.set_tasks(A, [record(7, taskTotal=10, taskCompleted=3)])
    result = run_once(write_config(tmp_path / "c.yaml", config_for(simulator)))
    assert result.returncode == 0, result.stderr
    assert sample_values(result.stdout, "aivoice_up") == {(("app_id", A),): 1, (("app_id", B),): 1}
    calls = sample_values(result.stdout, "aivoice_task_calls_completed")
    assert calls[(("app_id", A), ("job_id", "7"))] == 3


def test_once_exits_1_when_an_app_fails(simulator: Simulator, tmp_path: Path) -> None:
    simulator.set_faults(Faults(api_code="-37", app_ids=(B,)))
    result = run_once(write_config(tmp_path / "c.yaml", config_for(simulator)))
    assert result.returncode == 1
    assert sample_values(result.stdout, "aivoice_up") == {(("app_id", A),): 1, (("app_id", B),): 0}
    assert "application does not exist" in result.stderr


def test_daemon_serves_metrics(simulator: Simulator, tmp_path: Path, start_exporter) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(simulator))
    exporter = start_exporter("--config.file", str(config))
    text = wait_until(
        lambda: (t := scrape(exporter.url + "/metrics").text) and "aivoice_up{" in t and t
    )
    assert sample_values(text, "aivoice_up")[(("app_id", A),)] == 1
    assert sample_values(text, "aivoice_exporter_build_info")


def test_custom_telemetry_path(simulator: Simulator, tmp_path: Path, start_exporter) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(simulator))
    exporter = start_exporter("--config.file", str(config), "--web.telemetry-path", "/probe")
    assert "aivoice_exporter_build_info" in scrape(exporter.url + "/probe").text
    assert requests.get(exporter.url + "/metrics", timeout=5).status_code == 404


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_poll_exits_0_within_5_seconds(
    simulator: Simulator, tmp_path: Path, start_exporter, sig: int
) -> None:
    simulator.set_faults(Faults(latency_seconds=30))  # Every request hangs: a poll in progress.
    document = config_for(simulator, api={"timeout_seconds": 60})
    exporter = start_exporter("--config.file", str(write_config(tmp_path / "c.yaml", document)))
    wait_until(lambda: simulator.stats()["requests"] >= 1)
    started = time.monotonic()
    assert exporter.stop(sig) == 0
    assert time.monotonic() - started < 5


def test_json_log_format(simulator: Simulator, tmp_path: Path, start_exporter) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(simulator))
    exporter = start_exporter("--config.file", str(config), "--log.format", "json", wait=False)
    line = exporter.wait_for_log(r'"msg": "Listening"')
    assert re.search(r'"address": "127\.0\.0\.1:\d+"', line)


def test_demo_runs_without_a_config(start_exporter) -> None:
    exporter = start_exporter("--demo")
    line = exporter.wait_for_log(r"Demo: metrics at http://")
    url = re.search(r"(http://\S+)", line).group(1)  # type: ignore[union-attr]
    # Each app is published as its own first poll ends: wait for all three.
    ups = wait_until(lambda: len(u := sample_values(scrape(url).text, "aivoice_up")) == 3 and u)
    assert set(ups.values()) == {1.0}


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_config_check_lists_the_apps_and_exits_0_without_polling(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(simulator))
    result = run_check("--config.file", str(config))
    assert result.returncode == 0, result.stderr
    assert f"app {A}" in result.stdout and f"app {B}" in result.stdout
    assert simulator.stats()["requests"] == 0


def test_config_check_names_the_bad_field_and_exits_2(simulator: Simulator, tmp_path: Path) -> None:
    document = config_for(simulator, poll={"concurrency": 0})
    result = run_check("--config.file", str(write_config(tmp_path / "c.yaml", document)))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "aivoice-exporter: config error: poll.concurrency: must be between 1 and 64, got 0"
    )


def test_config_check_checks_the_web_config_too(simulator: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(simulator))
    web = tmp_path / "web.yaml"
    web.write_text("tls_server_config: {cert_file: /nonexistent.pem}\n")
    result = run_check("--config.file", str(config), "--web.config.file", str(web))
    assert result.returncode == 2
    assert "tls_server_config" in result.stderr
