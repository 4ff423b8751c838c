"""The push listener in-process over real sockets, handing bodies to a ledger the test controls.

Raw sockets send what no polite client would (no length, a drip, a wrong token that is the
right one cut short); `requests` and `http.client` send the polite pushes, and the simulator's
own pusher plays the vendor.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.calls.counts import PUSH_CODES
from exporter.process.logs import LogfmtFormatter
from exporter.simulator import Simulator
from exporter.web.push import FORWARDED_HEADER, MAX_BODY_BYTES, PushServer
from tests.support.clock import FakeClock
from tests.support.configs import API_KEY, API_SECRET, APP_IDS
from tests.support.tls import Certs, tls_server_config, web_config
from tests.support.tools import read_until_closed

TOKEN = "Qx7-frontHalf.~backHalf_9Zk"
PUSH_PATH = f"/push/call-record/{TOKEN}"
RECORD = '{"callId": "c-1", "appId": "APP_A", "customerPersonName": "Zoë"}'.encode()


class FakeLedger:
    """Answers each push with the next of `statuses` (then 200) and keeps what it was given."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.bodies: list[bytes] = []
        self.answers: list[int] = []
        self.forwarded: list[bool] = []  # For each answer: was the push marked as forwarded?
        self._lock = threading.Lock()

    def receive(self, body: bytes) -> int:
        with self._lock:
            self.bodies.append(body)
            return self.statuses.pop(0) if self.statuses else 200

    def answered(self, status: int, forwarded: bool) -> None:
        with self._lock:
            self.answers.append(status)
            self.forwarded.append(forwarded)


@contextlib.contextmanager
def listening(ledger: FakeLedger, **options: Any) -> Iterator[PushServer]:
    server = PushServer("127.0.0.1", 0, TOKEN, ledger.receive, ledger.answered, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger()


@pytest.fixture
def server(ledger: FakeLedger) -> Iterator[PushServer]:
    with listening(ledger) as server:
        yield server


def url(server: PushServer, path: str = PUSH_PATH) -> str:
    host, port = server.address
    return f"http://{host}:{port}{path}"


def exchange(server: PushServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; (status, headers, body) of the answer, read until the server hangs up."""
    with socket.create_connection(server.address, timeout=5) as sock:
        with contextlib.suppress(ConnectionError):
            sock.sendall(request)
        received = read_until_closed(sock)
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in lines)}
    return int(status_line.split()[1]), headers, body


def post(path: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    """A raw POST to `path` with these header lines, asking the server to close after it."""
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: x", b"Connection: close", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# ------------------------------------------------------------------------------------ the push


def test_right_token_answers_200_success_and_hands_over_the_exact_body(
    server: PushServer, ledger: FakeLedger
) -> None:
    body = RECORD + b"\x00\xff raw bytes"
    response = requests.post(url(server), data=body, timeout=5)
    assert (response.status_code, response.content) == (200, b"success")
    assert response.headers["Content-Type"].startswith("text/plain")
    assert ledger.bodies == [body]


def test_a_body_of_exactly_the_cap_is_received(server: PushServer, ledger: FakeLedger) -> None:
    body = b"x" * MAX_BODY_BYTES
    response = requests.post(url(server), data=body, timeout=5)
    assert response.status_code == 200
    assert ledger.bodies == [body]


def test_a_chunked_body_is_received_whole(server: PushServer, ledger: FakeLedger) -> None:
    response = requests.post(url(server), data=iter([RECORD[:10], RECORD[10:]]), timeout=5)
    assert response.status_code == 200
    assert ledger.bodies == [RECORD]


def test_pushes_on_one_kept_alive_connection_are_each_received(
    server: PushServer, ledger: FakeLedger
) -> None:
    connection = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        for n in range(3):
            connection.request("POST", PUSH_PATH, body=b"record %d" % n)
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"success")
    finally:
        connection.close()
    assert ledger.bodies == [b"record 0", b"record 1", b"record 2"]


def test_400_from_receive_is_answered_400(server: PushServer, ledger: FakeLedger) -> None:
    ledger.statuses = [400]
    response = requests.post(url(server), data=b"not json", timeout=5)
    assert (response.status_code, response.text) == (400, "Bad request.\n")
    assert ledger.bodies == [b"not json"]


def test_a_failing_receive_answers_500_and_logs_no_detail(
    ledger: FakeLedger, caplog: pytest.LogCaptureFixture
) -> None:
    def receive(body: bytes) -> int:
        raise KeyError("detail-from-the-record")

    caplog.set_level(logging.DEBUG, logger="exporter")
    server = PushServer("127.0.0.1", 0, TOKEN, receive, ledger.answered)
    server.start()
    try:
        response = requests.post(url(server), data=RECORD, timeout=5)
    finally:
        server.stop()
    assert response.status_code == 500
    assert ledger.answers == [500]
    logged = "\n".join(LogfmtFormatter().format(record) for record in caplog.records)
    assert "KeyError" in logged
    assert "detail-from-the-record" not in logged


# ------------------------------------------------------------------------------ refused pushes


@pytest.mark.parametrize(
    "path",
    [
        b"/push/call-record/wrong-token-of-some-length",
        b"/push/call-record/",
        b"/push/call-record",
        PUSH_PATH.encode()[:-1],
        PUSH_PATH.encode() + b"x",
        PUSH_PATH.encode() + b"/",
        PUSH_PATH.encode().upper(),
        b"/push/call-record/\xc3\xa9\xff",
        b"/",
        b"/metrics",
    ],
    ids=[
        "wrong",
        "empty",
        "missing",
        "prefix",
        "suffix",
        "trailing-slash",
        "upper-case",
        "non-ascii",
        "root",
        "metrics",
    ],
)
def test_anything_but_the_push_path_gets_404_and_is_never_received(
    server: PushServer, ledger: FakeLedger, path: bytes
) -> None:
    status, _, body = exchange(server, post(path, b"Content-Length: 5", body=b"{...}"))
    assert (status, body) == (404, b"Not found.\n")
    assert ledger.bodies == []


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_on_the_push_path_get_405_allowing_post(
    server: PushServer, ledger: FakeLedger, method: str
) -> None:
    response = requests.request(method, url(server), timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert ledger.bodies == []


def test_get_with_a_wrong_token_gets_404_not_405(server: PushServer) -> None:
    # A 405 would tell a scanner that it had guessed the token.
    response = requests.get(url(server, PUSH_PATH[:-1]), timeout=5)
    assert response.status_code == 404


def test_a_body_over_the_cap_gets_413_unread_and_the_connection_closed(
    server: PushServer, ledger: FakeLedger
) -> None:
    # Only the headers are sent: the answer (and the hang-up) cannot wait for the body.
    length = b"Content-Length: %d" % (MAX_BODY_BYTES + 1)
    status, headers, _ = exchange(server, post(PUSH_PATH.encode(), length))
    assert status == 413
    assert headers["connection"] == "close"
    assert ledger.bodies == []


def test_a_chunked_body_over_the_cap_gets_413(server: PushServer, ledger: FakeLedger) -> None:
    chunk = b"x" * 100_000
    chunks = b"%x\r\n%s\r\n" % (len(chunk), chunk) * (MAX_BODY_BYTES // len(chunk))
    over = b"1\r\n"  # The chunk that would pass the cap: its size is read, its byte never.
    request = post(PUSH_PATH.encode(), b"Transfer-Encoding: chunked", body=chunks + over)
    status, headers, _ = exchange(server, request)
    assert status == 413
    assert headers["connection"] == "close"
    assert ledger.bodies == []


def test_a_post_without_content_length_gets_411(server: PushServer, ledger: FakeLedger) -> None:
    status, _, _ = exchange(server, post(PUSH_PATH.encode(), body=RECORD))
    assert status == 411
    assert ledger.bodies == []


@pytest.mark.parametrize(
    "headers",
    [
        (b"Content-Length: 5", b"Transfer-Encoding: chunked"),
        (b"Content-Length: 5", b"Content-Length: 5"),
        (b"Content-Length: +5",),
        (b"Content-Length: 5\xb2",),
    ],
    ids=["length-and-chunked", "two-lengths", "signed", "superscript-digit"],
)
def test_an_ambiguous_body_length_gets_400(
    server: PushServer, ledger: FakeLedger, headers: tuple[bytes, ...]
) -> None:
    status, _, _ = exchange(server, post(PUSH_PATH.encode(), *headers, body=b"5\r\n{...}\r\n"))
    assert status == 400
    assert ledger.bodies == []


def test_headers_over_the_limit_get_431(server: PushServer, ledger: FakeLedger) -> None:
    many = [b"X-Header-%d: %s" % (n, b"v" * 1000) for n in range(70)]  # 70 kB in all
    status, _, _ = exchange(server, post(PUSH_PATH.encode(), *many, b"Content-Length: 2"))
    assert status == 431
    assert ledger.bodies == []


def test_every_answer_is_counted_once_with_its_status(
    server: PushServer, ledger: FakeLedger
) -> None:
    ledger.statuses = [200, 400]
    requests.post(url(server), data=RECORD, timeout=5)
    requests.post(url(server), data=b"junk", timeout=5)
    requests.post(url(server, "/push/call-record/nope"), data=RECORD, timeout=5)
    requests.get(url(server), timeout=5)
    exchange(server, post(PUSH_PATH.encode()))
    exchange(server, post(PUSH_PATH.encode(), b"Content-Length: 2000000"))
    exchange(server, b"GARBAGE\r\n\r\n")
    assert ledger.answers == [200, 400, 404, 405, 411, 413, 400]


def test_every_status_the_listener_answers_is_one_the_ledger_counts_from_zero(
    server: PushServer, ledger: FakeLedger
) -> None:
    ledger.statuses = [200, 400, 500]
    for _ in range(3):
        exchange(server, post(PUSH_PATH.encode(), b"Content-Length: 2", body=b"{}"))
    exchange(server, post(b"/elsewhere"))
    exchange(server, b"GET " + PUSH_PATH.encode() + b" HTTP/1.1\r\nConnection: close\r\n\r\n")
    exchange(server, post(PUSH_PATH.encode()))
    exchange(server, post(PUSH_PATH.encode(), b"Content-Length: 2000000"))
    exchange(server, post(PUSH_PATH.encode(), *[b"X-H: " + b"v" * 1000] * 70))
    exchange(server, post(PUSH_PATH.encode(), b"Transfer-Encoding: gzip"))
    exchange(server, b"BREW " + PUSH_PATH.encode() + b" HTTP/1.1\r\n\r\n")
    exchange(server, b"POST " + PUSH_PATH.encode() + b" HTTP/2.0\r\n\r\n")
    answered = {str(status) for status in ledger.answers}
    assert answered == {"200", "400", "404", "405", "411", "413", "431", "500", "501", "505"}
    assert answered <= set(PUSH_CODES)


def test_a_push_marked_forwarded_is_counted_apart_from_the_vendors(
    server: PushServer, ledger: FakeLedger
) -> None:
    with requests.Session() as session:  # One connection: the mark is the request's own.
        session.post(url(server), data=RECORD, headers={FORWARDED_HEADER: "1"}, timeout=5)
        session.post(url(server), data=RECORD, timeout=5)
    exchange(server, post(PUSH_PATH.encode(), f"{FORWARDED_HEADER}: 1".encode()))
    assert ledger.answers == [200, 200, 411]
    assert ledger.forwarded == [True, False, True]


# ------------------------------------------------------------------------------- TLS and logs


@pytest.fixture
def tls_server(certs: Certs, tmp_path: Path, ledger: FakeLedger) -> Iterator[PushServer]:
    """A listener with the TLS context a web config file (`--web.config.file`) gives."""
    context = web_config(tmp_path, tls_server_config(certs)).ssl_context()
    with listening(ledger, ssl_context=context) as server:
        yield server


def https_push(server: PushServer, certs: Certs) -> requests.Response:
    url = f"https://{server.address[0]}:{server.address[1]}{PUSH_PATH}"
    return requests.post(url, data=RECORD, verify=str(certs.ca), timeout=5)


def test_push_over_tls_with_the_web_config_certificate(
    tls_server: PushServer, certs: Certs, ledger: FakeLedger
) -> None:
    response = https_push(tls_server, certs)
    assert tls_server.tls
    assert (response.status_code, response.content) == (200, b"success")
    assert ledger.bodies == [RECORD]


def test_plain_http_to_the_tls_listener_is_refused_and_it_serves_on(
    tls_server: PushServer, certs: Certs, ledger: FakeLedger
) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.post(url(tls_server), data=RECORD, timeout=5)
    assert https_push(tls_server, certs).status_code == 200
    assert ledger.bodies == [RECORD]


def test_neither_token_nor_body_reaches_the_debug_log(
    server: PushServer, ledger: FakeLedger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter")
    requests.post(url(server), data=RECORD, timeout=5)
    requests.post(url(server, PUSH_PATH[:-1]), data=RECORD, timeout=5)
    requests.get(url(server, PUSH_PATH + "?x=1"), timeout=5)
    exchange(server, PUSH_PATH.encode() + b"\r\n\r\n")  # Malformed: the error says its line.
    logged = "\n".join(LogfmtFormatter().format(record) for record in caplog.records)
    assert logged.count("/push/call-record/<token>") == 5  # The access log is on...
    for secret in ("frontHalf", "backHalf", "customerPersonName", "Zo"):
        assert secret not in logged  # ...and says nothing of the token or the body.


# ------------------------------------------------------------------------------ slow clients


@pytest.mark.parametrize(
    "head",
    [
        b"POST /push/call-",
        f"POST {PUSH_PATH} HTTP/1.1\r\nHost: x\r\nX-Drip: ".encode(),
        f"POST {PUSH_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode(),
    ],
    ids=["request-line", "headers", "body"],
)
def test_a_slow_drip_is_cut_off_while_a_normal_push_succeeds(
    ledger: FakeLedger, head: bytes
) -> None:
    """A byte every 0.1 s never trips the 10 s idle timeout: only the request deadline ends it."""
    with (
        listening(ledger, deadline_seconds=0.5) as server,
        socket.create_connection(server.address, timeout=5) as slow,
    ):
        slow.sendall(head)
        started = time.monotonic()
        response = requests.post(url(server), data=RECORD, timeout=5)
        assert response.status_code == 200
        while not hung_up(slow):
            assert time.monotonic() - started < 20, "the drip was never cut off"
            with contextlib.suppress(ConnectionError):
                slow.sendall(b"a")
            time.sleep(0.1)
    assert ledger.bodies == [RECORD]
    assert ledger.answers == [200]


def hung_up(sock: socket.socket) -> bool:
    """Whether the server closed `sock` (and said nothing on it), without waiting."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(5)


# -------------------------------------------------------------------- the simulator's pusher


@contextlib.contextmanager
def pushing_simulator(
    server: PushServer, clock: FakeClock, *more: PushServer
) -> Iterator[tuple[Simulator, int]]:
    """A simulator pushing to `server` (and any `more`, each push to one at random), its clock
    moved on so that calls end: and how many."""
    sim = Simulator(
        API_KEY,
        API_SECRET,
        APP_IDS,
        seed=7,
        clock=clock,
        push_url=",".join(url(target) for target in (server, *more)),
        push_retry_delay=0.01,
        push_duplicate_ratio=0.0,
    ).start("127.0.0.1", 0)
    try:
        before = completed(sim)
        clock.now += 5
        ended = completed(sim) - before
        assert ended > 0
        yield sim, ended
    finally:
        sim.stop()


def completed(sim: Simulator) -> int:
    return sum(task["taskCompleted"] for app in APP_IDS for task in sim.tasks(app))


def wait_for_pushes(sim: Simulator, delivered: int) -> dict[str, int]:
    deadline = time.monotonic() + 20
    while (stats := sim.stats())["push_delivered"] < delivered or stats["push_pending"]:
        assert time.monotonic() < deadline, f"pushes not delivered: {stats}"
        time.sleep(0.02)
    return dict(stats)


def test_the_simulators_pusher_delivers_every_call_once(
    server: PushServer, ledger: FakeLedger
) -> None:
    with pushing_simulator(server, FakeClock()) as (sim, ended):
        stats = wait_for_pushes(sim, ended)
    assert (stats["push_sent"], stats["push_retried"], stats["push_failed"]) == (ended, 0, 0)
    call_ids = [json.loads(body)["callId"] for body in ledger.bodies]
    assert len(call_ids) == len(set(call_ids)) == ended


def test_the_simulators_pusher_retries_until_answered_success(
    server: PushServer, ledger: FakeLedger
) -> None:
    ledger.statuses = [400, 400]
    with pushing_simulator(server, FakeClock()) as (sim, ended):
        stats = wait_for_pushes(sim, ended)
    assert (stats["push_retried"], stats["push_failed"]) == (2, 0)
    assert stats["push_sent"] == ended + 2 == len(ledger.bodies)
    assert ledger.answers.count(400) == 2


def test_the_simulators_pusher_spreads_pushes_over_several_urls(
    server: PushServer, ledger: FakeLedger
) -> None:
    other = FakeLedger()
    with (
        listening(other) as second,
        pushing_simulator(server, FakeClock(), second) as (sim, ended),
    ):
        stats = wait_for_pushes(sim, ended)
    assert stats["push_sent"] == ended == len(ledger.bodies) + len(other.bodies)
    assert ledger.bodies and other.bodies
