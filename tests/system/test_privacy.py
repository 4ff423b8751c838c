"""Personal data never leaves the parser: not in metrics, logs, errors or answers.

The real exporter process reads the simulator's call records (every one with a phone number,
a name, a transcript, audio URLs and properties) and takes pushes full of marked personal data,
readable, unreadable and misaddressed, with its log at debug level. Then every byte it wrote
is searched for any of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from exporter.simulator import Simulator
from tests.support.configs import API_KEY, API_SECRET, APP_IDS, config_for, write_config
from tests.support.processes import ExporterProcess, start_exporter_process
from tests.support.strategies import PRIVATE, personal_fields, push_record
from tests.support.tools import wait_until

A = APP_IDS[0]
TOKEN = "privacy-test-token-0123456789"

pytestmark = pytest.mark.slow


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    simulator = Simulator(API_KEY, API_SECRET, APP_IDS, speed=10.0).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def exporter(simulator: Simulator, tmp_path: Path) -> Iterator[ExporterProcess]:
    document = config_for(
        simulator,
        poll={"interval_seconds": 2, "timeout_seconds": 30},
        calls={"enabled": True, "lookback_seconds": 120},  # Calls last 66 s at this speed.
        push={"listen_address": "127.0.0.1:0", "token": TOKEN},
    )
    config = write_config(tmp_path / "config.yaml", document)
    process = start_exporter_process("--config.file", str(config), "--log.level", "debug")
    yield process
    process.stop()


def push_url(exporter: ExporterProcess) -> str:
    line = exporter.wait_for_line(r'msg="Push listener started" address=(\S+)')
    return f"http://{line.group(1)}/push/call-record/{TOKEN}"


def counted(exporter: ExporterProcess, source: str) -> float:
    text = requests.get(exporter.url + "/metrics", timeout=10).text
    prefix = f'aivoice_call_records_total{{app_id="{A}",outcome="counted",source="{source}"}} '
    return next(
        (float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix)),
        0.0,
    )


def wait_for(exporter: ExporterProcess, source: str, what: str) -> None:
    try:
        wait_until(lambda: counted(exporter, source) > 0, timeout=120, what=what)
    except AssertionError as failed:
        raise AssertionError(f"{failed}\n{exporter.log(80)}") from None


def test_no_personal_data_reaches_any_output(
    simulator: Simulator, exporter: ExporterProcess
) -> None:
    url = push_url(exporter)
    # The poll counts first: once the push is on, it brings every call before recordQuery
    # shows it, and the poll's records would only be duplicates, never reaching the counters.
    wait_for(exporter, "poll", f"calls of {A} counted from recordQuery (its second read)")
    simulator.start_push(url)
    hostile = [
        push_record(1, appId=A),
        push_record(2, appId="NOT-CONFIGURED"),
        push_record(3, appId=A, chatDuration=PRIVATE),
        push_record(4, appId=A, resultStatus={"nested": PRIVATE}),
        {**personal_fields(), "appId": A},  # No callId.
    ]
    answers = [requests.post(url, json=record, timeout=5) for record in hostile]
    answers.append(requests.post(url, data=f"not json {PRIVATE}".encode(), timeout=5))
    answers.append(requests.post(url.replace(TOKEN, PRIVATE), json=hostile[0], timeout=5))
    assert [answer.status_code for answer in answers] == [200, 200, 400, 400, 400, 400, 404]
    wait_for(exporter, "push", f"calls of {A} counted from the push")

    secrets = {PRIVATE}
    for app_id in APP_IDS:
        for call in simulator.calls(app_id):
            secrets |= {call["calledPhoneNumber"], call["customerPersonName"]}
            secrets |= {value for value in (call["fullAudioUrl"], call["properties"]) if value}
    outputs = [answer.text for answer in answers]
    for accept in ("text/plain", "application/openmetrics-text; version=1.0.0"):
        outputs.append(
            requests.get(exporter.url + "/metrics", headers={"Accept": accept}, timeout=10).text
        )
    exporter.stop()
    outputs.append(exporter.log())
    leaked = sorted(secret for secret in secrets for output in outputs if secret in output)
    assert leaked == []
    assert len(secrets) > 100  # The search had plenty to look for.
