"""One HTTP attempt against the API, bounded in every way a hostile server could stretch it.

- Time: `api.timeout_seconds` bounds the whole attempt, connect, headers and body together, not
  each socket read, so a server that drips a byte a second, or sends `100 Continue` forever,
  is cut off on time (`timeout`).
- Memory: the body is read in chunks and refused past `api.max_response_bytes` after
  decompression (urllib3 inflates a chunk at a time, so a gzip bomb never unfolds), and a
  `Content-Length` over the cap is refused unread (`invalid_response`).
- Credentials: redirects are never followed; a 3xx is an error (`http_3xx`) that names where
  it pointed, so `Api-Key` and `Sign` never reach another host.
- `Retry-After` on a 429 or 503 is read and handed back with the error, for the rate limiter.

Requests go through urllib3's pools directly: a request through `requests` cost about twice the
CPU (its per-request preparation, settings merging and hooks), and a poll of 50,000 tasks makes
500 of them. requests still reads the proxies from the environment and names the CA bundle, once,
so both stay what they were.
"""

from __future__ import annotations

import email.utils
import io
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from exporter import __version__
from exporter.api.wire import MAX_DETAIL_CHARS, clean_text
from exporter.codes import CONNECTION, INVALID_RESPONSE, TIMEOUT, PollError, http_code

CHUNK_BYTES = 64 * 1024
MAX_RETRY_AFTER_SECONDS = 300.0  # However long a server asks us to wait, look again by then.


class _DeadlineReader(io.RawIOBase):
    """A socket's read side that gives up at a fixed moment, however the bytes trickle in."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the whole answer did not arrive within api.timeout_seconds")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """Stands in for the socket while http.client reads a response from it."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DeadlineMixin:
    """Reads the whole response (status, headers, body) against one deadline.

    urllib3, given `Timeout(total=T)`, connects within T and then sets `self.timeout` to what is
    left of T just before reading the response; that remainder becomes the deadline.
    """

    sock: Any
    timeout: Any

    def getresponse(self) -> Any:
        real = self.sock
        stand_in = _DeadlineSocket(real, time.monotonic() + float(self.timeout))
        self.sock = stand_in
        try:
            return super().getresponse()  # type: ignore[misc]
        finally:
            if self.sock is stand_in:  # http.client sets None when it closes the connection
                self.sock = real


class _HTTPConnection(_DeadlineMixin, HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineMixin, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class Transport:
    """Keep-alive pools whose every request is bounded in time, size and destination."""

    def __init__(
        self, base_url: str, *, timeout_seconds: float, max_response_bytes: int, pool_size: int
    ) -> None:
        self._timeout = urllib3.Timeout(total=timeout_seconds)
        self._max_bytes = max_response_bytes
        self._pool_size = pool_size
        # Proxies from the environment (HTTPS_PROXY, NO_PROXY) are read once, here, not on
        # every request: that lookup was a third of a request's CPU time.
        self._proxies = requests.utils.get_environ_proxies(base_url)
        # requests' adapter builds the pool managers (proxy headers, SOCKS);
        # the requests themselves then go to urllib3 directly.
        self._adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._lock = threading.Lock()
        self._managers: dict[str | None, urllib3.PoolManager] = {}
        self._closed = False

    def send(self, method: str, url: str, headers: dict[str, str], body: bytes) -> bytes:
        """The body of a 200 answer; every other outcome is a `PollError`. A GET (getBalance)
        sends no body."""
        headers = {**headers, "User-Agent": f"aivoice-exporter/{__version__}"}
        try:
            response = self._manager(url).urlopen(
                method,
                url,
                body=None if method == "GET" else body,
                headers=headers,
                timeout=self._timeout,
                retries=False,  # The client retries, with backoff, and counts every attempt.
                redirect=False,
                preload_content=False,
                decode_content=True,
            )
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as err:
            raise _transport_error(err) from None
        try:
            _check_status(response)
            return self._read_body(response)
        finally:
            response.close()  # A connection left with unread bytes is closed, not reused.
            response.release_conn()

    def _manager(self, url: str) -> urllib3.PoolManager:
        """The pools for `url`: direct, or through the proxy the environment names for it.

        Once closed, a transport opens no pool again: one would hold its connections open
        with nothing left to close them."""
        proxy = requests.utils.select_proxy(url, self._proxies)
        manager = self._managers.get(proxy)
        if manager is not None:
            return manager
        with self._lock:
            if self._closed:
                raise PollError(CONNECTION, "sent through a transport already closed")
            if proxy not in self._managers:
                # The CA bundle requests itself verifies against.
                ca_certs = requests.utils.DEFAULT_CA_BUNDLE_PATH
                if proxy is None:
                    made: urllib3.PoolManager = urllib3.PoolManager(
                        num_pools=4,
                        maxsize=self._pool_size,
                        cert_reqs="CERT_REQUIRED",
                        ca_certs=ca_certs,
                    )
                else:
                    made = self._adapter.proxy_manager_for(
                        proxy, cert_reqs="CERT_REQUIRED", ca_certs=ca_certs
                    )
                made.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
                self._managers[proxy] = made
            return self._managers[proxy]

    def _read_body(self, response: urllib3.BaseHTTPResponse) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.strip().isdigit() and int(declared) > self._max_bytes:
            raise PollError(INVALID_RESPONSE, f"a {declared}-byte answer is over the cap")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.stream(CHUNK_BYTES, decode_content=True):
                size += len(chunk)
                if size > self._max_bytes:
                    raise PollError(
                        INVALID_RESPONSE,
                        f"the answer grew past api.max_response_bytes ({self._max_bytes})",
                    )
                chunks.append(chunk)
        except urllib3.exceptions.DecodeError:
            raise PollError(INVALID_RESPONSE, "the compressed answer is corrupt") from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise _transport_error(err) from None
        return b"".join(chunks)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for manager in self._managers.values():
                manager.clear()
            self._managers.clear()
            self._adapter.close()  # It keeps the proxy managers it made, too.


def _check_status(response: urllib3.BaseHTTPResponse) -> None:
    status = response.status
    if status == 200:
        return
    code = http_code(status)
    if 300 <= status < 400:
        location = urlsplit(response.headers.get("Location", ""))
        where = clean_text(location.netloc or location.path or "nowhere", MAX_DETAIL_CHARS)
        raise PollError(code, f"redirect to {where} not followed")
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
    raise PollError(code, retry_after_seconds=retry_after)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from `Retry-After` (delta seconds or an HTTP date), capped; None if unset."""
    if not value:
        return None
    text = value.strip()[:64]
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            seconds = email.utils.parsedate_to_datetime(text).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _transport_error(err: Exception) -> PollError:
    """A transport failure as a `code` label and a detail that says what happened where."""
    # Before the timeout test: urllib3's NewConnectionError is a ConnectTimeoutError too.
    if _is_connect_failure(err):
        return PollError(
            CONNECTION, "could not connect: check DNS, proxies, firewalls and api.base_url"
        )
    if _is_timeout(err):
        return PollError(TIMEOUT, "no whole answer in time")
    if isinstance(err, requests.exceptions.ContentDecodingError):
        return PollError(INVALID_RESPONSE, "the compressed answer is corrupt")
    return PollError(CONNECTION, f"the connection broke during the exchange ({type(err).__name__})")


def _is_timeout(err: BaseException) -> bool:
    for cause in _causes(err):
        if isinstance(cause, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
            return True
    return False


def _is_connect_failure(err: BaseException) -> bool:
    return any(
        isinstance(cause, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError))
        for cause in _causes(err)
    )


def _causes(err: BaseException) -> list[BaseException]:
    """The error, what it wraps (requests puts urllib3's error in `args[0]`), and so on."""
    seen: list[BaseException] = []
    current: Any = err
    while isinstance(current, BaseException) and current not in seen and len(seen) < 8:
        seen.append(current)
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
        elif current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        else:
            current = current.__cause__ or current.__context__
    return seen
