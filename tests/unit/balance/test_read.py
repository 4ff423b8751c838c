"""getBalance: the answer's parsing (strings, numbers, junk), its own code table, and one request
signed and counted through the account's client, against the simulator."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.api.client import ApiClient
from exporter.api.stats import GET_BALANCE, RequestRecorder
from exporter.api.transport import Transport
from exporter.balance.read import MAX_AMOUNT, Balance, parse_balance, read_balance
from exporter.codes import (
    BALANCE_CODES,
    EXPLANATIONS,
    INVALID_RESPONSE,
    TRANSPORT_CODES,
    PollError,
    explain,
    explain_balance,
)
from exporter.config.model import Account, ApiConfig
from exporter.process.workers import WorkerPool
from exporter.simulator import Faults, Simulator
from tests.support.clock import FakeClock
from tests.support.configs import API_KEY, API_SECRET, APP_IDS


def answer(**fields: Any) -> bytes:
    return json.dumps({"status": "0", "reason": "success", **fields}).encode()


# ---- parsing -----------------------------------------------------------------------------------


def test_amounts_come_as_strings_at_the_top_level() -> None:
    parsed = parse_balance(answer(balance="1234.56", gift="10", credit="-20.5"))
    assert parsed == Balance(1234.56, 10.0, -20.5)
    assert parsed.amounts() == {"balance": 1234.56, "gift": 10.0, "credit": -20.5}


def test_json_numbers_and_a_numeric_status_are_accepted_too() -> None:
    body = json.dumps({"status": 0, "balance": 12, "gift": 0.5, "credit": 0}).encode()
    assert parse_balance(body) == Balance(12.0, 0.5, 0.0)


def test_gift_and_credit_may_be_absent_and_are_then_left_out() -> None:
    assert parse_balance(answer(balance=" 3.5 ")).amounts() == {"balance": 3.5}


def test_a_null_balance_is_no_balance_but_a_null_gift_is_left_out() -> None:
    with pytest.raises(PollError):
        parse_balance(answer(balance=None))
    assert parse_balance(answer(balance="1", gift=None)).amounts() == {"balance": 1.0}


def test_an_answer_inside_data_is_not_the_documented_shape() -> None:
    with pytest.raises(PollError) as caught:
        parse_balance(answer(data={"balance": "1"}))
    assert caught.value.code == INVALID_RESPONSE


JUNK_AMOUNTS = [
    '"abc"',
    '"12,50"',
    '""',
    '"1e400"',
    '"NaN"',
    '"Infinity"',
    '"0x10"',
    '"١٢"',  # Arabic-Indic digits: str.isdigit says yes, they are not the API's
    "1e400",  # json reads it as inf
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    "9" * 400,
    '"' + "9" * 400 + '"',
    "1e13",
    "true",
    "false",
    "[1]",
    '{"amount": 1}',
]


@pytest.mark.parametrize("raw", JUNK_AMOUNTS)
def test_junk_amounts_fail_the_request_as_invalid_response(raw: str) -> None:
    for field in ("balance", "gift", "credit"):
        values = {"balance": '"1.00"', "gift": '"0"', "credit": '"0"', field: raw}
        text = ", ".join(f'"{k}": {v}' for k, v in values.items())
        with pytest.raises(PollError) as caught:
            parse_balance(f'{{"status": "0", {text}}}'.encode())
        assert caught.value.code == INVALID_RESPONSE, (field, raw)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"status": "0", "balance": "1.00"',
        b"[]",
        b'{"balance": "1.00"}',
        b'{"status": "0"}',
        b'{"status": true, "balance": "1"}',
        b"\xff\xfe",
    ],
)
def test_broken_answers_fail_as_invalid_response(body: bytes) -> None:
    with pytest.raises(PollError) as caught:
        parse_balance(body)
    assert caught.value.code == INVALID_RESPONSE


@pytest.mark.parametrize("code", BALANCE_CODES)
def test_an_sms_status_is_the_code_explained_with_the_sms_table(code: str) -> None:
    with pytest.raises(PollError) as caught:
        parse_balance(json.dumps({"status": code, "reason": "no"}).encode())
    assert caught.value.code == code
    assert explain_balance(code) in str(caught.value)


def test_the_sms_codes_are_explained_apart_from_the_aivoice_ones() -> None:
    # -2 is aivoice's unknown and the SMS API's restricted IP; -16 / -4 are swapped likewise.
    assert "IP" in explain_balance("-2") and "IP" not in explain("-2")
    assert "undocumented" in explain_balance("-6") and "IP" in EXPLANATIONS["-6"]
    assert "undocumented" in explain_balance("-4")
    assert "13" not in EXPLANATIONS and "locked" in explain_balance("-13")
    assert explain_balance("timeout") == explain("timeout")


@settings(max_examples=300, deadline=None)
@given(st.decimals(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT, places=2))
def test_any_amount_in_range_reads_back_as_written(amount: Any) -> None:
    assert parse_balance(answer(balance=str(amount))).balance == float(amount)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**450), max_value=10**450),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=2),
    )
)
def test_whatever_balance_comes_the_result_is_finite_or_a_poll_error(value: Any) -> None:
    try:
        body = json.dumps({"status": "0", "balance": value}).encode()
    except ValueError:
        return
    try:
        parsed = parse_balance(body)
    except PollError as err:
        assert err.code == INVALID_RESPONSE
        return
    assert math.isfinite(parsed.balance) and abs(parsed.balance) <= MAX_AMOUNT
    assert not isinstance(value, bool)


# ---- one request, signed and counted -----------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[Simulator]:
    # Frozen campaigns (speed 0): no call ends, so the balance stays put.
    simulator = Simulator(API_KEY, API_SECRET, APP_IDS, seed=7, balance=500.0, speed=0)
    simulator.start("127.0.0.1", 0)
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def opened() -> Iterator[list[tuple[Transport, WorkerPool]]]:
    made: list[tuple[Transport, WorkerPool]] = []
    yield made
    for transport, pool in made:
        pool.close()
        transport.close()


def client_for(
    sim: Simulator,
    opened: list[tuple[Transport, WorkerPool]],
    *,
    secret: str = API_SECRET,
    clock: Any = time.time,
    max_retries: int = 0,
) -> ApiClient:
    api = ApiConfig(
        base_url=sim.base_url,
        timeout_seconds=1.0,
        max_retries=max_retries,
        max_requests_per_second=1000,  # The rate limit is not what these tests check.
    )
    transport = Transport(
        api.base_url, timeout_seconds=1.0, max_response_bytes=api.max_response_bytes, pool_size=2
    )
    pool = WorkerPool(2, "test-balance")
    opened.append((transport, pool))
    return ApiClient(
        Account(API_KEY, secret, APP_IDS),
        api,
        transport=transport,
        pool=pool,
        recorder=RequestRecorder(),
        stop=threading.Event(),
        clock=clock,
    )


def balance_url(sim: Simulator) -> str:
    return sim.base_url.removesuffix("/aivoice") + "/sms/getBalance"


def errors(recorder: RequestRecorder, account: str = "main") -> dict[str, int]:
    counts = recorder.snapshot([account])[account].endpoints[GET_BALANCE]
    return {code: n for code, n in counts.errors.items() if n}


def test_a_signed_request_reads_the_simulators_balance(
    sim: Simulator, opened: list[tuple[Transport, WorkerPool]]
) -> None:
    recorder = RequestRecorder()
    recorder.track(["main"], [GET_BALANCE])
    balance = read_balance(client_for(sim, opened), balance_url(sim), "main", recorder)
    assert balance.amounts() == {"balance": 500.0, "gift": 0.0, "credit": 0.0}
    stats = recorder.snapshot(["main"])["main"].endpoints[GET_BALANCE]
    assert stats.requests == 1 and not errors(recorder)
    assert set(stats.errors) == set(BALANCE_CODES + TRANSPORT_CODES)  # start at 0
    assert sim.stats()["answered"] == {"0": 1}


def test_a_wrong_secret_is_the_sms_authentication_error(
    sim: Simulator, opened: list[tuple[Transport, WorkerPool]]
) -> None:
    recorder = RequestRecorder()
    client = client_for(sim, opened, secret="wrong")
    with pytest.raises(PollError) as caught:
        read_balance(client, balance_url(sim), "main", recorder)
    assert caught.value.code == "-1"
    assert errors(recorder) == {"-1": 1}


def test_a_clock_far_off_is_the_sms_timestamp_code(
    sim: Simulator, opened: list[tuple[Transport, WorkerPool]]
) -> None:
    recorder = RequestRecorder()
    client = client_for(sim, opened, clock=FakeClock(time.time() - 3600))
    with pytest.raises(PollError) as caught:
        read_balance(client, balance_url(sim), "main", recorder)
    assert caught.value.code == "-16"
    assert "clock" in str(caught.value)


@pytest.mark.slow  # Two backoffs of up to 0.5 s and 1 s.
def test_faults_count_once_each_and_transient_ones_are_retried(
    sim: Simulator, opened: list[tuple[Transport, WorkerPool]]
) -> None:
    recorder = RequestRecorder()
    client = client_for(sim, opened, max_retries=2)
    sim.fail_next(1, "http_5xx", http_status=502, endpoint=GET_BALANCE)
    sim.fail_next(1, "poison", endpoint=GET_BALANCE)
    assert read_balance(client, balance_url(sim), "main", recorder).balance == 500.0
    assert errors(recorder) == {"http_502": 1, INVALID_RESPONSE: 1}
    sim.fail_next(1, "api_code", api_code="-18", endpoint=GET_BALANCE)
    with pytest.raises(PollError) as caught:  # The API's own codes are never retried.
        read_balance(client, balance_url(sim), "main", recorder)
    assert caught.value.code == "-18"
    assert recorder.snapshot(["main"])["main"].endpoints[GET_BALANCE].requests == 4


def test_every_poisoned_answer_is_refused(
    sim: Simulator, opened: list[tuple[Transport, WorkerPool]]
) -> None:
    recorder = RequestRecorder()
    client = client_for(sim, opened)
    sim.set_faults(
        Faults(random_fail_ratio=1.0, random_kinds=("poison",), endpoints=(GET_BALANCE,))
    )
    for _ in range(40):
        with pytest.raises(PollError) as caught:
            read_balance(client, balance_url(sim), "main", recorder)
        assert caught.value.code == INVALID_RESPONSE
    assert errors(recorder) == {INVALID_RESPONSE: 40}
