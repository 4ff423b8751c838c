"""One bounded HTTP attempt, against a hostile server the test scripts byte by byte."""

from __future__ import annotations

import base64
import resource
import time
from collections.abc import Callable, Iterator

import pytest

from exporter.api.transport import Transport, parse_retry_after
from exporter.codes import PollError
from tests.support.hostile_api import (
    HostileApi,
    drip_body,
    drip_headers,
    endless_continue,
    gzip_bomb,
    hang_up,
    huge_body,
    page,
    page_body,
    redirect,
    respond,
)
from tests.support.records import record

KEY, SECRET, APP = "hostileKey", "hostile-secret", "APP"
TIMEOUT_SECONDS = 1.0
SLACK_SECONDS = 10.0  # Scheduling on a busy two-core machine; a drip would take 30 s and more.
MAX_BYTES = 1 << 20


@pytest.fixture
def post() -> Iterator[Callable[[HostileApi], bytes]]:
    """One POST through a Transport like the exporter's, to the scripted server."""
    transports: list[Transport] = []

    def send(server: HostileApi) -> bytes:
        transport = Transport(
            server.base_url,
            timeout_seconds=TIMEOUT_SECONDS,
            max_response_bytes=MAX_BYTES,
            pool_size=2,
        )
        transports.append(transport)
        return transport.send(
            "POST", server.url(), {"Api-Key": KEY, "Sign": "x", "Timestamp": "1"}, b"{}"
        )

    yield send
    for transport in transports:
        transport.close()


def failure(call: Callable[[], object]) -> tuple[PollError, float]:
    started = time.monotonic()
    with pytest.raises(PollError) as caught:
        call()
    return caught.value, time.monotonic() - started


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_never_followed_and_name_where_they_pointed(
    api: HostileApi, elsewhere: HostileApi, post: Callable[[HostileApi], bytes], status: int
) -> None:
    api.script(redirect(elsewhere.url(), status))
    elsewhere.always(page([record(1)]))
    error, _ = failure(lambda: post(api))
    assert error.code == f"http_{status}"
    assert f"127.0.0.1:{elsewhere.address[1]}" in error.detail
    assert not error.transient
    assert elsewhere.requests == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "behaviour",
    [
        drip_body(body=page_body([record(1)]), interval=1.0, chunk=1),
        drip_headers(body=page_body([record(1)]), interval=0.5),
        endless_continue(interval=0.2),
    ],
    ids=["dripped-body", "dripped-headers", "endless-100-continue"],
)
def test_the_timeout_bounds_the_whole_attempt_not_each_read(
    api: HostileApi, post: Callable[[HostileApi], bytes], behaviour: Callable[..., None]
) -> None:
    api.script(behaviour)
    error, took = failure(lambda: post(api))
    assert error.code == "timeout"
    assert took < TIMEOUT_SECONDS + SLACK_SECONDS


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.parametrize(
    "behaviour",
    [
        gzip_bomb(1 << 30, tail=page_body([record(1)])),
        huge_body(200 << 20, tail=page_body([record(1)])),
        huge_body(200 << 20, tail=page_body([record(1)]), chunked=True),
    ],
    ids=["gzip-bomb", "200-MB-body", "200-MB-chunked"],
)
def test_an_answer_over_the_cap_is_refused_while_it_is_read(
    api: HostileApi, post: Callable[[HostileApi], bytes], behaviour: Callable[..., None]
) -> None:
    before = peak_rss_bytes()
    api.script(behaviour)
    error, _ = failure(lambda: post(api))
    assert error.code == "invalid_response"
    assert peak_rss_bytes() - before < 64 << 20  # Never the body: a few chunks at the most.


def test_a_declared_length_over_the_cap_is_refused_unread(
    api: HostileApi, post: Callable[[HostileApi], bytes]
) -> None:
    api.script(respond(200, [("Content-Length", str(MAX_BYTES + 1))], b""))
    error, _ = failure(lambda: post(api))
    assert error.code == "invalid_response"
    assert "over the cap" in error.detail


def test_a_connection_broken_mid_answer_says_so(
    api: HostileApi, post: Callable[[HostileApi], bytes]
) -> None:
    api.script(hang_up())
    error, _ = failure(lambda: post(api))
    assert error.code == "connection"
    assert "could not connect" not in error.detail


def test_a_closed_port_says_it_could_not_connect() -> None:
    with HostileApi() as gone:
        url = gone.url()
    transport = Transport(url, timeout_seconds=1.0, max_response_bytes=MAX_BYTES, pool_size=1)
    try:
        error, _ = failure(lambda: transport.send("POST", url, {}, b"{}"))
    finally:
        transport.close()
    assert error.code == "connection"
    assert "could not connect" in error.detail


def test_a_closed_transport_sends_nothing_and_opens_no_connection(api: HostileApi) -> None:
    """Closing is for good: a transport that opened new pools after it was closed would hold
    their connections with nothing left to close them."""
    api.always(page([record(1)]))
    transport = Transport(api.url(), timeout_seconds=1.0, max_response_bytes=MAX_BYTES, pool_size=1)
    transport.send("POST", api.url(), {}, b"{}")
    transport.close()
    error, _ = failure(lambda: transport.send("POST", api.url(), {}, b"{}"))
    assert error.code == "connection"
    assert "closed" in error.detail
    assert len(api.requests) == 1
    assert api.connections_accepted == 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("3600", 300.0), ("Thu, 01 Jan 1970 00:00:10 GMT", 10.0), ("soon", None)],
)
def test_retry_after_reads_seconds_and_dates_capped(header: str, seconds: float | None) -> None:
    assert parse_retry_after(header, now=0.0) == seconds


def test_a_proxy_the_environment_names_carries_the_request_with_its_credentials(
    api: HostileApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = api.address
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://proxyuser:proxy-secret@{host}:{port}")
    api.script(page([record(1)]))
    upstream = "http://upstream.invalid/aivoice"
    transport = Transport(
        upstream, timeout_seconds=TIMEOUT_SECONDS, max_response_bytes=MAX_BYTES, pool_size=1
    )
    try:
        transport.send("POST", f"{upstream}/taskList", {"Api-Key": KEY}, b"{}")
    finally:
        transport.close()
    (request,) = api.requests
    assert request.path == f"{upstream}/taskList"  # The absolute form a proxy is sent.
    credentials = base64.b64encode(b"proxyuser:proxy-secret").decode()
    assert request.header("Proxy-Authorization") == f"Basic {credentials}"
