"""The hostile fake (tests/support/hostile_api.py) does what each behaviour claims.

Checked with plain sockets and `requests`, never with the exporter: the exporter's tests rely
on these behaviours, so they must be proven on their own.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests

from tests.support.hostile_api import (
    HostileApi,
    api_error,
    drip_body,
    drip_headers,
    endless_continue,
    gzip_bomb,
    hang,
    hang_up,
    http_date,
    http_response,
    huge_body,
    page,
    page_body,
    raw,
    redirect,
    respond,
    retry_after,
)

CREDENTIALS = {"Api-Key": "bDqJFiq9", "Timestamp": "1700000000", "Sign": "0" * 32}


@pytest.fixture
def make_api() -> Iterator[Callable[..., HostileApi]]:
    """Start fakes with any options; all are stopped when the test ends."""
    started: list[HostileApi] = []

    def make(**options: Any) -> HostileApi:
        api = HostileApi(**options).start()
        started.append(api)
        return api

    yield make
    for api in started:
        api.stop()


@pytest.fixture
def api(make_api: Callable[..., HostileApi]) -> HostileApi:
    return make_api()


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def wire_body(response: requests.Response) -> bytes:
    with response:
        return response.raw.read(decode_content=False)


# --------------------------------------------------------------------------- recording and script


def test_records_method_path_headers_and_body(api: HostileApi) -> None:
    api.script(respond(200, body=b"ok"))
    body = {"current": 1, "size": 100, "params": {"appId": "A"}}
    requests.post(api.url(), json=body, headers=CREDENTIALS, timeout=5)
    (request,) = api.requests
    assert (request.method, request.path) == ("POST", "/aivoice/taskList")
    assert request.json() == body
    assert request.header("api-key") == CREDENTIALS["Api-Key"]
    assert request.header("SIGN") == CREDENTIALS["Sign"]
    assert request.has_credentials


def test_script_answers_in_order_then_the_default(api: HostileApi) -> None:
    api.script(respond(201), respond(202))
    statuses = [requests.get(api.url("/x"), timeout=5).status_code for _ in range(3)]
    assert statuses == [201, 202, 500]
    api.always(respond(204))
    assert requests.get(api.url("/x"), timeout=5).status_code == 204


def test_respond_keeps_the_connection_alive_and_close_ends_it(api: HostileApi) -> None:
    api.script(respond(200, body=b"a"), respond(200, body=b"b", close=True), respond(200))
    with requests.Session() as session:
        answers = [session.get(api.url("/"), timeout=5) for _ in range(3)]
    assert [a.content for a in answers] == [b"a", b"b", b""]
    assert [r.connection for r in api.requests] == [1, 1, 2]
    assert answers[1].headers["Connection"] == "close"


def test_raw_sends_exactly_its_bytes_and_closes(api: HostileApi) -> None:
    data = b"HTTP/1.1 200 OK\r\nX-Odd: \xff\r\n\r\nno length, ends at close"
    api.script(raw(data))
    with socket.create_connection(api.address, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_until_closed(sock) == data


def test_hang_up_closes_without_an_answer(api: HostileApi) -> None:
    api.script(hang_up())
    with pytest.raises(requests.ConnectionError):
        requests.get(api.url("/"), timeout=5)
    assert len(api.requests) == 1


# --------------------------------------------------------------------------- slow answers


@pytest.mark.slow
def test_drip_headers_takes_an_interval_per_header_byte(api: HostileApi) -> None:
    interval = 0.02
    api.script(drip_headers(200, [("X-A", "1")], b"body", interval=interval))
    head_length = len(http_response(200, [("X-A", "1")], b"body")) - len(b"body")
    started = time.monotonic()
    response = requests.get(api.url("/"), timeout=(5, 2))  # no single read waits long
    elapsed = time.monotonic() - started
    assert (response.status_code, response.content) == (200, b"body")
    assert elapsed >= head_length * interval


@pytest.mark.slow
def test_drip_body_sends_the_head_first_then_a_byte_per_interval(api: HostileApi) -> None:
    api.script(drip_body(200, [("Content-Type", "text/plain")], b"x" * 25, interval=0.04))
    started = time.monotonic()
    response = requests.get(api.url("/"), timeout=(5, 2), stream=True)
    head_seconds = time.monotonic() - started
    body = wire_body(response)
    elapsed = time.monotonic() - started
    assert response.headers["Content-Length"] == "25" and body == b"x" * 25
    assert elapsed >= 25 * 0.04 and head_seconds < elapsed


@pytest.mark.slow
def test_drip_body_chunk_sets_bytes_per_interval(api: HostileApi) -> None:
    api.script(drip_body(body=b"y" * 40, interval=0.01, chunk=8))
    with socket.create_connection(api.address, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, body = read_until_closed(sock).partition(b"\r\n\r\n")
    assert body == b"y" * 40 and b"Content-Length: 40" in head


def test_endless_continue_never_gives_a_final_answer(api: HostileApi) -> None:
    api.script(endless_continue(interval=0.02))
    with socket.create_connection(api.address, timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        received = b""
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            received += sock.recv(65536)
    lines = [line for line in received.split(b"\r\n") if line]
    assert len(lines) >= 3
    assert set(lines) == {b"HTTP/1.1 100 Continue"}


def test_hang_sends_nothing_until_the_client_gives_up(api: HostileApi) -> None:
    api.script(hang())
    with pytest.raises(requests.Timeout):
        requests.get(api.url("/"), timeout=(5, 0.3))
    wait = time.monotonic() + 5
    while api.cut_short < 1:  # the fake sees the hang-up and frees the connection
        assert time.monotonic() < wait, "the fake never noticed the client left"
        time.sleep(0.01)


def test_client_hanging_up_mid_drip_ends_the_behaviour(api: HostileApi) -> None:
    api.script(drip_body(body=b"z" * 1000, interval=0.01))
    response = requests.get(api.url("/"), timeout=(5, 2), stream=True)
    response.raw.read(3)
    response.close()
    deadline = time.monotonic() + 5
    while api.cut_short < 1:
        assert time.monotonic() < deadline, "the drip went on after the client left"
        time.sleep(0.01)


# --------------------------------------------------------------------------- redirects and limits


def test_redirect_sends_credentials_to_the_second_instance_when_followed(
    make_api: Callable[..., HostileApi],
) -> None:
    first, second = make_api(), make_api()
    first.script(redirect(second.url(), status=307))
    second.script(page([]))
    response = requests.post(first.url(), json={}, headers=CREDENTIALS, timeout=5)
    assert response.history[0].status_code == 307
    (followed,) = second.requests
    assert followed.has_credentials and followed.method == "POST"


def test_redirect_unfollowed_leaves_the_second_instance_untouched(
    make_api: Callable[..., HostileApi],
) -> None:
    first, second = make_api(), make_api()
    first.script(redirect(second.url()))
    response = requests.post(first.url(), headers=CREDENTIALS, timeout=5, allow_redirects=False)
    assert (response.status_code, response.headers["Location"]) == (302, second.url())
    assert second.requests == []


def test_retry_after_in_seconds_and_as_a_date(api: HostileApi) -> None:
    api.script(retry_after(3600), retry_after(http_date(120), status=503))
    first = requests.get(api.url("/"), timeout=5)
    second = requests.get(api.url("/"), timeout=5)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "3600")
    assert second.status_code == 503
    ahead = parsedate_to_datetime(second.headers["Retry-After"]).timestamp() - time.time()
    assert 110 < ahead <= 121


@pytest.mark.slow
def test_gzip_bomb_is_small_on_the_wire_and_inflates_fully(api: HostileApi) -> None:
    tail = page_body([])
    api.script(gzip_bomb(256 << 20, tail=tail))
    response = requests.get(api.url("/"), timeout=10, stream=True)
    compressed = wire_body(response)
    assert response.headers["Content-Encoding"] == "gzip"
    assert len(compressed) < (256 << 20) / 900
    inflater = zlib.decompressobj(wbits=31)
    inflated, last, pending = 0, b"", compressed
    while pending:
        chunk = inflater.decompress(pending, 1 << 20)
        pending = inflater.unconsumed_tail
        inflated += len(chunk)
        last = (last + chunk)[-len(tail) :]
    assert inflater.eof and inflated == 256 << 20
    assert json.loads(last) == json.loads(tail)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_huge_body_streams_the_size_asked(api: HostileApi, chunked: bool) -> None:
    size = (32 << 20) + 5
    api.script(huge_body(size, tail=b"[1]", chunked=chunked))
    response = requests.get(api.url("/"), timeout=10, stream=True)
    received, last = 0, b""
    for chunk in response.iter_content(1 << 20):
        received += len(chunk)
        last = (last + chunk)[-3:]
    assert received == size and last == b"[1]"
    assert ("Content-Length" in response.headers) != chunked


def test_page_is_the_documented_envelope(api: HostileApi) -> None:
    records = [{"jobId": n, "name": f"t{n}"} for n in range(3)]
    api.script(page(records, size=2))
    answer = requests.get(api.url("/"), timeout=5).json()
    assert answer == {
        "status": "0",
        "reason": "success",
        "data": {
            "records": records,
            "total": 3,
            "size": 2,
            "current": 1,
            "searchCount": True,
            "pages": 2,
        },
    }


def test_page_can_lie_and_carry_lone_surrogates(api: HostileApi) -> None:
    api.script(page(False, total=5), api_error("\ud800", "r" * 10))
    assert requests.get(api.url("/"), timeout=5).json()["data"]["records"] is False
    body = requests.get(api.url("/"), timeout=5).content
    assert b'"status": "\\ud800"' in body


# --------------------------------------------------------------------------- threads and stop


def test_connections_beyond_the_bound_wait_in_the_backlog(
    make_api: Callable[..., HostileApi],
) -> None:
    api = make_api(max_connections=3)
    api.always(hang())
    clients = [socket.create_connection(api.address, timeout=5) for _ in range(6)]
    try:
        for sock in clients:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        api.wait_for_requests(3)
        time.sleep(0.3)  # time enough for a fourth to be served, were it allowed
        assert len(api.requests) == 3 and api.peak_connections == 3
        clients[0].close()  # a slot frees up: the next waiting client is served
        api.wait_for_requests(4)
    finally:
        for sock in clients:
            sock.close()


def test_stop_closes_hanging_and_idle_connections_and_joins_its_threads() -> None:
    before = set(threading.enumerate())
    api = HostileApi().start()
    api.script(respond(200, body=b"kept"), hang(), drip_body(body=b"q" * 100, interval=1.0))
    idle, hanging, dripping = [socket.create_connection(api.address, timeout=5) for _ in range(3)]
    try:
        for count, sock in enumerate((idle, hanging, dripping), start=1):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            api.wait_for_requests(count)  # in this order, so each gets its behaviour
        assert idle.recv(65536).endswith(b"kept")  # then kept alive, waiting for a request
        api.stop()
        assert read_until_closed(idle) == b""  # EOF, not a 5 s socket timeout
        assert read_until_closed(hanging) == b""
        assert b"Content-Length: 100" in read_until_closed(dripping)
        assert set(threading.enumerate()) <= before
        with pytest.raises(OSError):
            socket.create_connection(api.address, timeout=1).close()
    finally:
        for sock in (idle, hanging, dripping):
            sock.close()
        api.stop()
