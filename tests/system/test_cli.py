"""The real `aivoice-exporter` process end to end: --once, the served /metrics, signals,
--demo, --config.check, and the exit codes and one-line errors of a bad start."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.exposition.families import CALL_FAMILIES, PUSH_REQUESTS
from exporter.simulator import Faults, Simulator
from tests.support.configs import APP_IDS, config_for, write_config
from tests.support.exposition import api_samples, sample_values
from tests.support.processes import ExporterProcess
from tests.support.records import record
from tests.support.tools import scrape, wait_until

pytestmark = pytest.mark.slow

A, B = APP_IDS
OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}
IDLE_CONNECTIONS = 30


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The exporter with these flags, run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60
    )


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("--config.file", str(config), "--once")


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


def test_served_metrics_show_the_apps_up_and_the_build_info(
    simulator: Simulator, tmp_path: Path, start_exporter
) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(simulator))
    exporter = start_exporter("--config.file", str(config))
    text = wait_until(
        lambda: (t := scrape(exporter.url + "/metrics").text) and "aivoice_up{" in t and t
    )
    assert sample_values(text, "aivoice_up")[(("app_id", A),)] == 1
    assert sample_values(text, "aivoice_exporter_build_info")


def test_telemetry_path_flag_moves_the_metrics(
    simulator: Simulator, tmp_path: Path, start_exporter
) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(simulator))
    exporter = start_exporter("--config.file", str(config), "--web.telemetry-path", "/probe")
    assert "aivoice_exporter_build_info" in scrape(exporter.url + "/probe").text
    assert requests.get(exporter.url + "/metrics", timeout=5).status_code == 404


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_poll_exits_0_promptly(
    simulator: Simulator, tmp_path: Path, start_exporter, sig: int
) -> None:
    simulator.set_faults(Faults(latency_seconds=30))  # Every request hangs: a poll in progress.
    document = config_for(simulator, api={"timeout_seconds": 60})
    exporter = start_exporter("--config.file", str(write_config(tmp_path / "c.yaml", document)))
    wait_until(lambda: simulator.stats()["requests"] >= 1)
    started = time.monotonic()
    assert exporter.stop(sig, timeout=30) == 0
    assert time.monotonic() - started < 15  # Not the 30 s hang.


def test_json_log_format_logs_the_listen_address_as_a_field(
    simulator: Simulator, tmp_path: Path, start_exporter
) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(simulator))
    exporter = start_exporter("--config.file", str(config), "--log.format", "json", wait=False)
    line = exporter.wait_for_line(r'"msg": "Listening"').string
    assert re.search(r'"address": "127\.0\.0\.1:\d+"', line)


def test_demo_runs_without_a_config(start_exporter) -> None:
    exporter = start_exporter("--demo")
    url = exporter.wait_for_line(r"Demo: metrics at (http://\S+)").group(1)
    # Each app is published as its own first poll ends: wait for all three.
    ups = wait_until(lambda: len(u := sample_values(scrape(url).text, "aivoice_up")) == 3 and u)
    assert set(ups.values()) == {1.0}


def test_demo_shows_every_call_metric_with_data(start_exporter) -> None:
    exporter = start_exporter("--demo")
    url = exporter.wait_for_line(r"Demo: metrics at (http://\S+)").group(1)
    suffix = {"counter": "_total", "histogram": "_bucket", "gauge": "", "info": "_info"}
    families = (*CALL_FAMILIES, PUSH_REQUESTS)
    call_metrics = {family.name + suffix[family.kind] for family in families}

    def without_data() -> set[str]:
        """The call metrics with no sample above 0 yet (a demo app needs a few calls)."""
        text = scrape(url).text
        return {
            name
            for name in call_metrics - {"aivoice_push_requests_total"}
            if sum(sample_values(text, name).values()) <= 0
        }

    wait_until(lambda: not without_data(), timeout=120, what="every call metric with data")
    text = scrape(url).text
    names = {sample.name for family in parse_text(text) for sample in family.samples}
    assert call_metrics <= names
    records = sample_values(text, "aivoice_call_records_total")
    sources = {dict(labels)["source"] for labels, value in records.items() if value}
    assert sources == {"poll", "push"}
    answers = sample_values(text, "aivoice_push_requests_total")
    assert answers[(("code", "200"), ("sender", "vendor"))] > 0


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("--config.check", *args)


def test_config_check_lists_the_apps_and_exits_0_without_polling(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(simulator))
    result = run_check("--config.file", str(config))
    assert result.returncode == 0, result.stderr
    assert f"app {A}" in result.stdout and f"app {B}" in result.stdout
    assert simulator.stats()["requests"] == 0


def test_config_check_describes_calls_and_the_push_without_its_token(
    simulator: Simulator, tmp_path: Path
) -> None:
    token = "check-push-token-0123456789"
    document = config_for(
        simulator,
        calls={"enabled": True},
        push={"listen_address": ":10189", "token": token, "currency": "EUR"},
    )
    result = run_check("--config.file", str(write_config(tmp_path / "c.yaml", document)))
    assert result.returncode == 0, result.stderr
    assert "call records (recordQuery) each poll, 900 s back" in result.stdout
    assert "push listener on :10189: POST /push/call-record/ch" in result.stdout
    assert token not in result.stdout + result.stderr


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


def shard_config(simulator: Simulator, tmp_path: Path) -> Path:
    """Nine one-app accounts under one key (shards go by the account name)."""
    accounts = [
        {"name": f"acct-{i}", "api_key": "k", "api_secret": "s", "app_ids": [f"APP_{i}"]}
        for i in range(9)
    ]
    return write_config(tmp_path / "c.yaml", config_for(simulator, accounts=accounts))


def test_config_check_with_shard_flags_lists_only_that_shards_apps(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = shard_config(simulator, tmp_path)
    listed = []
    for ordinal in range(3):
        result = run_check(
            "--config.file", str(config), "--shard", str(ordinal + 3), "--total-shards", "3"
        )
        assert result.returncode == 0, result.stderr
        assert f"shard {ordinal} of 3 (--shard {ordinal + 3})" in result.stdout
        apps = re.findall(r"app (APP_\d)", result.stdout)
        assert apps and f"{len(apps)} of 9 account(s)" in result.stdout
        listed += apps
    assert sorted(listed) == [f"APP_{i}" for i in range(9)]


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (("--shard", "-1"), "--shard: must be a whole number >= 0, got '-1'"),
        (("--shard", "1.5"), "--shard: must be a whole number >= 0, got '1.5'"),
        (("--total-shards", "0"), "--total-shards: must be >= 1, got '0'"),
        (("--total-shards", "two"), "--total-shards: must be a whole number >= 1, got 'two'"),
    ],
)
def test_bad_shard_flags_exit_2_with_one_line_naming_the_flag(
    simulator: Simulator, tmp_path: Path, flags: tuple[str, ...], line: str
) -> None:
    result = run_check("--config.file", str(shard_config(simulator, tmp_path)), *flags)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"aivoice-exporter: config error: {line}"]


def test_peers_without_an_entry_for_this_shard_exit_2_naming_push_peers(
    simulator: Simulator, tmp_path: Path
) -> None:
    push = {
        "listen_address": "127.0.0.1:0",
        "token": "check-push-token-0123456789",
        "peers": ["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"],
    }
    config = write_config(tmp_path / "c.yaml", config_for(simulator, push=push))
    result = run_check("--config.file", str(config), "--shard", "3", "--total-shards", "3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "aivoice-exporter: config error: push.peers: lists 3 processes, none for --shard 3: "
        "list every process, in ordinal order"
    ]


def test_config_error_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("accounts:\n  - api_key: k\n    app_ids: [A]\n")
    result = run_cli("--config.file", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "aivoice-exporter: config error: accounts[0].api_secret: missing"
    ]
    assert "Traceback" not in result.stderr


def test_missing_config_file_exits_2_without_traceback(tmp_path: Path) -> None:
    result = run_cli("--config.file", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot read config file" in result.stderr


def test_bad_listen_address_exits_2() -> None:
    result = run_cli("--web.listen-address", "nonsense")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "aivoice-exporter: config error: --web.listen-address: want HOST:PORT, got 'nonsense'"
    )


def test_open_fds_follow_idle_connections_without_a_poll(
    simulator: Simulator, start_exporter: Callable[..., ExporterProcess], tmp_path: Path
) -> None:
    """The process metrics are the process's now; the API data stay those of the last poll."""
    path = write_config(
        tmp_path / "config.yaml", config_for(simulator, poll={"interval_seconds": 3600})
    )
    exporter = start_exporter("--config.file", str(path))
    wait_until(lambda: requests.get(exporter.url + "/-/ready", timeout=5).status_code == 200)
    open_fds = "process_open_fds"

    def metrics() -> str:
        return scrape(exporter.url + "/metrics", headers=OPENMETRICS).text

    def fds(text: str) -> float:
        return sample_values(text, open_fds, openmetrics=True)[()]

    # Settled: the connections of the readiness checks are closed on the server's side too.
    readings: list[str] = []
    wait_until(lambda: readings.append(metrics()) or fds(readings[-1]) == fds(metrics()))
    before = readings[-1]
    with ExitStack() as stack:
        host, port = exporter.address.rsplit(":", 1)
        for _ in range(IDLE_CONNECTIONS):
            stack.enter_context(socket.create_connection((host, int(port)), timeout=5))

        def with_them_open() -> str:
            text = metrics()
            return text if fds(text) >= fds(before) + IDLE_CONNECTIONS else ""

        after = wait_until(with_them_open)
    success = "aivoice_poll_last_success_timestamp_seconds"
    assert (
        api_samples(after.encode(), True)[(success, (("app_id", A),))]
        == api_samples(before.encode(), True)[(success, (("app_id", A),))]
    )
    assert fds(after) >= fds(before) + IDLE_CONNECTIONS
