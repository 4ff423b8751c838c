"""Hostile HTTP clients against the exporter's server: refused or outlasted, never obeyed.

The daemon runs in-process on an ephemeral loopback port. Each test misbehaves over raw sockets
(silent, slow, oversized, malformed or vanishing clients) and then checks that an ordinary
client still gets `/metrics` promptly. Every socket opened is closed when the test ends.
"""

from __future__ import annotations

import contextlib
import re
import socket
import statistics
import struct
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from exporter.config.load import parse_config
from exporter.daemon import Daemon
from exporter.simulator import Simulator
from tests.support.configs import config_for
from tests.support.tools import read_until_closed

pytestmark = pytest.mark.slow

# What "answers promptly" means for a scrape of a cached body on a busy two-core machine: far
# less than the attacks below hold their connections.
PROMPT_SECONDS = 5.0


@pytest.fixture
def exporter_address(simulator: Simulator) -> Iterator[tuple[str, int]]:
    """A daemon serving on 127.0.0.1 with one poll done; polls rarely, to keep the tests quiet."""
    document = config_for(simulator, poll={"interval_seconds": 60, "stale_after_seconds": 600})
    daemon = Daemon(parse_config(document, {}))
    try:
        address = daemon.serve("127.0.0.1", 0, "/metrics")
        deadline = time.monotonic() + 10
        while not daemon.published.ready:
            assert time.monotonic() < deadline, "the first poll never finished"
            time.sleep(0.05)
        yield address
    finally:
        daemon.stop()


@pytest.fixture
def open_socket(exporter_address: tuple[str, int]) -> Iterator[Callable[[], socket.socket]]:
    """Connect raw sockets to the exporter; all of them are closed when the test ends."""
    with contextlib.ExitStack() as stack:

        def connect() -> socket.socket:
            return stack.enter_context(socket.create_connection(exporter_address, timeout=5))

        yield connect


def metrics_promptly(address: tuple[str, int]) -> requests.Response:
    """A normal scrape on a new connection, which must answer 200 within `PROMPT_SECONDS`."""
    host, port = address
    started = time.perf_counter()
    with requests.Session() as session:
        response = session.get(f"http://{host}:{port}/metrics", timeout=30)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert b"aivoice_up{" in response.content
    assert elapsed < PROMPT_SECONDS, f"/metrics took {elapsed:.2f} s"
    return response


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send what the server may refuse to read: it can hang up before taking it all."""
    with contextlib.suppress(ConnectionError):
        sock.sendall(data)


def response_status(sock: socket.socket) -> int:
    """The status code of the response on `sock` (the server may reset it just after)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    status_line = received.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1."), f"no HTTP response, got {received[:200]!r}"
    return int(status_line.split()[1])


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server hangs up on `sock` (EOF or reset) within the socket's timeout."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def test_hundred_silent_connections_do_not_delay_metrics(
    exporter_address: tuple[str, int], open_socket: Callable[[], socket.socket]
) -> None:
    silent = [open_socket() for _ in range(100)]
    metrics_promptly(exporter_address)
    for sock in silent:  # Still open: the scrape did not wait for any of them to go.
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)


def test_huge_header_line_is_refused(
    exporter_address: tuple[str, int], open_socket: Callable[[], socket.socket]
) -> None:
    sock = open_socket()
    send_quietly(
        sock, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    )
    assert response_status(sock) in (400, 431)
    assert closed_by_server(sock)
    metrics_promptly(exporter_address)


def test_huge_request_line_is_refused(
    exporter_address: tuple[str, int], open_socket: Callable[[], socket.socket]
) -> None:
    sock = open_socket()
    send_quietly(sock, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response_status(sock) in (400, 414)
    metrics_promptly(exporter_address)


def test_too_many_headers_are_refused(
    exporter_address: tuple[str, int], open_socket: Callable[[], socket.socket]
) -> None:
    sock = open_socket()
    headers = b"".join(b"X-Header-%d: v\r\n" % n for n in range(1000))
    send_quietly(sock, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert response_status(sock) in (400, 431)
    metrics_promptly(exporter_address)


@pytest.mark.parametrize("method", ["GET /metrics", "POST /-/reload"])
def test_huge_body_is_refused_unread(
    exporter_address: tuple[str, int], open_socket: Callable[[], socket.socket], method: str
) -> None:
    sock = open_socket()
    head = f"{method} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n".encode()
    send_quietly(sock, head + b"x" * 65536)  # The other 999 MB never come: it must not wait.
    assert response_status(sock) == 413
    metrics_promptly(exporter_address)


def test_chunked_body_is_refused(
    exporter_address: tuple[str, int], open_socket: Callable[[], socket.socket]
) -> None:
    sock = open_socket()
    send_quietly(
        sock, b"POST /-/reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffff\r\n"
    )
    assert response_status(sock) == 413
    metrics_promptly(exporter_address)


def test_slowloris_does_not_block_others(
    exporter_address: tuple[str, int], open_socket: Callable[[], socket.socket]
) -> None:
    slow = open_socket()
    slow.sendall(b"GET /metrics HTTP/1.1\r\n")
    for byte in b"X-S":  # A header byte a second, as slowloris sends them.
        slow.sendall(bytes([byte]))
        started = time.monotonic()
        metrics_promptly(exporter_address)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /metr",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n",
        b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
    ],
    ids=["mid-request-line", "mid-headers", "mid-body"],
)
@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_client_vanishing_mid_request_does_no_harm(
    exporter_address: tuple[str, int], partial: bytes, reset: bool
) -> None:
    with socket.create_connection(exporter_address, timeout=5) as sock:
        sock.sendall(partial)
        if reset:  # Linger 0: close with a TCP reset instead of a goodbye.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    metrics_promptly(exporter_address)


def test_client_vanishing_before_reading_the_answer_does_no_harm(
    exporter_address: tuple[str, int],
) -> None:
    for _ in range(20):
        with socket.create_connection(exporter_address, timeout=5) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    metrics_promptly(exporter_address)


def test_kept_alive_gzip_scrape_is_not_held_back_by_nagle(
    exporter_address: tuple[str, int],
) -> None:
    """Not hostile: Prometheus itself, which keeps its connection and asks for gzip."""
    host, port = exporter_address
    durations = []
    with requests.Session() as session:
        for _ in range(10):
            started = time.perf_counter()
            response = session.get(
                f"http://{host}:{port}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5
            )
            durations.append(time.perf_counter() - started)
            assert response.status_code == 200
    assert statistics.median(durations) < 0.02, f"durations: {durations}"


MALFORMED_REQUEST_LINES = pytest.mark.parametrize(
    "request_line",
    [
        b"GARBAGE",
        b"GET /metrics HTTP/1.1 extra",
        b"GET /metrics HTTX/1.1",
        b"GET /metrics HTTP/one.one",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # A TLS ClientHello, to plain HTTP.
    ],
    ids=["one-word", "four-words", "bad-protocol", "bad-version", "tls-hello"],
)


@MALFORMED_REQUEST_LINES
def test_malformed_request_line_gets_400(
    exporter_address: tuple[str, int],
    open_socket: Callable[[], socket.socket],
    request_line: bytes,
) -> None:
    sock = open_socket()
    sock.sendall(request_line + b"\r\n\r\n")
    answer = read_until_closed(sock)  # The server hangs up after it.
    status_line = answer.split(b"\r\n", 1)[0]
    assert re.fullmatch(rb"HTTP/1\.[01] 400 .*", status_line), answer[:200]
    assert b"# TYPE" not in answer  # Refused, not served.
    metrics_promptly(exporter_address)
