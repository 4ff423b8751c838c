"""channelList: the answer read into `LineList`s, hostile entries skipped, and the client's read
counted under its own endpoint, against the simulator over real sockets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.api.client import ApiClient
from exporter.api.lines import MAX_LINES_LISTED, LineList, parse_channel_list
from exporter.api.stats import CHANNEL_LIST, RequestRecorder
from exporter.api.transport import Transport
from exporter.codes import CHANNEL_LIST_CODES, INVALID_RESPONSE, TRANSPORT_CODES, PollError
from exporter.config.model import Account, ApiConfig
from exporter.process.workers import WorkerPool
from exporter.simulator import Simulator
from exporter.simulator.lines import app_lines
from tests.support.configs import API_KEY, API_SECRET, APP_IDS

APP = APP_IDS[0]


def answer(data: Any, status: Any = "0") -> bytes:
    return json.dumps({"status": status, "reason": "success", "data": data}).encode()


def test_the_documented_answer_is_read() -> None:
    body = answer([{"tenantPhoneNumberId": "7301", "phoneNumber": "+1 555 0100"}])
    assert parse_channel_list(body) == LineList((("7301", "+1 555 0100"),))


def test_an_id_as_a_number_is_the_same_line_as_its_string() -> None:
    body = answer(
        [
            {"tenantPhoneNumberId": 7301, "phoneNumber": "a"},
            {"tenantPhoneNumberId": "7301", "phoneNumber": "b"},
        ]
    )
    assert parse_channel_list(body).lines == (("7301", "a"),)


def test_unreadable_entries_are_skipped_and_counted() -> None:
    body = answer(
        [
            {"tenantPhoneNumberId": "1", "phoneNumber": "ok"},
            {"tenantPhoneNumberId": "9" * 300, "phoneNumber": "id too long"},
            {"tenantPhoneNumberId": True, "phoneNumber": "a boolean id"},
            {"tenantPhoneNumberId": "2"},
            "not an object",
        ]
    )
    assert parse_channel_list(body) == LineList((("1", "ok"),), skipped=4)


def test_a_long_name_is_cut_to_a_labels_length() -> None:
    body = answer([{"tenantPhoneNumberId": "1", "phoneNumber": "x" * 5000}])
    ((_, name),) = parse_channel_list(body).lines
    assert len(name) == 256


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (answer([], status="-37"), "-37"),
        (answer({"records": []}), INVALID_RESPONSE),
        (answer([{}] * (MAX_LINES_LISTED + 1)), INVALID_RESPONSE),
        (b"<html>", INVALID_RESPONSE),
    ],
)
def test_an_answer_that_cannot_be_read_fails_the_read(body: bytes, code: str) -> None:
    with pytest.raises(PollError) as caught:
        parse_channel_list(body)
    assert caught.value.code == code


@pytest.fixture
def client(simulator: Simulator) -> Iterator[tuple[ApiClient, RequestRecorder]]:
    config = ApiConfig(base_url=simulator.base_url, timeout_seconds=15.0, max_retries=0)
    transport = Transport(
        config.base_url,
        timeout_seconds=15.0,
        max_response_bytes=config.max_response_bytes,
        pool_size=2,
    )
    pool = WorkerPool(2, "test-request")
    recorder = RequestRecorder()
    recorder.track([APP], [CHANNEL_LIST])
    account = Account(API_KEY, API_SECRET, APP_IDS)
    stop = threading.Event()
    try:
        yield (
            ApiClient(
                account, config, transport=transport, pool=pool, recorder=recorder, stop=stop
            ),
            recorder,
        )
    finally:
        pool.close()
        transport.close()


def test_the_client_reads_the_apps_lines(client: tuple[ApiClient, RequestRecorder]) -> None:
    read = client[0].read_lines(APP)
    expected = tuple((line.line_id, line.name) for line in app_lines(7, APP).lines)
    assert read == LineList(expected)


def test_a_read_counts_under_channel_list_with_its_codes_at_zero(
    simulator: Simulator, client: tuple[ApiClient, RequestRecorder]
) -> None:
    reader, recorder = client
    simulator.fail_next(1, "api_code", api_code="-5", endpoint="channelList")
    with pytest.raises(PollError):
        reader.read_lines(APP)
    reader.read_lines(APP)
    stats = recorder.snapshot([APP])[APP].endpoints[CHANNEL_LIST]
    assert stats.requests == 2
    assert dict(stats.errors) == {**dict.fromkeys(CHANNEL_LIST_CODES + TRANSPORT_CODES, 0), "-5": 1}
