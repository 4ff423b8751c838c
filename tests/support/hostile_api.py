"""A hostile HTTP server for client tests: raw sockets, every byte the test's choice.

The simulator behaves like the API, with faults it counts. Some client tests need what no
well-behaved server library sends (headers dripped a byte at a time, endless ``100 Continue``,
a body that does not end, a gzip bomb) and an exact record of what the client sent, credentials
included. This server reads each request, records it, and hands it to the next *behaviour* the
test scripted: a function that writes whatever it likes to the socket.

    with HostileApi() as api, HostileApi() as elsewhere:
        api.script(redirect(elsewhere.url()), page([{"jobId": 1}]))
        ...  # point the client at api.base_url
        assert not any(r.has_credentials for r in elsewhere.requests)

Threads are bounded: one accepts, and at most ``max_connections`` serve; more clients wait in
the listen backlog. ``stop()`` (or leaving the ``with``) closes every connection, hanging ones
too, and joins every thread. Request bodies need a ``Content-Length`` (what ``requests`` sends
for bytes and JSON); chunked request bodies are refused by closing the connection.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from types import TracebackType
from typing import Any

from exporter.simulator import gzip_bomb as gzip_bomb_bytes

__all__ = [
    "JSON",
    "Behaviour",
    "Exchange",
    "HostileApi",
    "Request",
    "api_error",
    "drip_body",
    "drip_headers",
    "endless_continue",
    "gzip_bomb",
    "hang",
    "hang_up",
    "http_date",
    "http_response",
    "huge_body",
    "page",
    "page_body",
    "raw",
    "redirect",
    "respond",
    "retry_after",
]

JSON = "application/json;charset=UTF-8"
MAX_HEAD_BYTES = 64 * 1024
CHUNK = 64 * 1024
CREDENTIAL_HEADERS = ("api-key", "sign", "timestamp")

Headers = Sequence[tuple[str, str]] | Mapping[str, str]


@dataclass(frozen=True)
class Request:
    """One request as it arrived: header names as sent, in order."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    connection: int
    """Which connection it came on, numbered from 1: equal numbers mean a kept-alive one."""

    def header(self, name: str) -> str | None:
        """The first value of a header, by case-insensitive name."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    @property
    def has_credentials(self) -> bool:
        """Whether it carries ``Api-Key``, ``Sign`` or ``Timestamp``."""
        return any(key.lower() in CREDENTIAL_HEADERS for key, _ in self.headers)

    def json(self) -> Any:
        return json.loads(self.body)


class _Ended(Exception):
    """The client hung up or the server is stopping: the behaviour cannot go on."""


class Exchange:
    """One request being answered: what a behaviour gets to write its answer with."""

    def __init__(self, request: Request, sock: socket.socket, stopping: threading.Event) -> None:
        self.request = request
        self._sock = sock
        self._stopping = stopping
        self.closing = False

    def send(self, data: bytes) -> None:
        """Write bytes now; ends the behaviour if the client has gone or the server stops."""
        if self._stopping.is_set():
            raise _Ended
        try:
            self._sock.sendall(data)
        except OSError as err:
            raise _Ended from err

    def pause(self, seconds: float) -> None:
        """Wait, cut short (ending the behaviour) by ``stop()``."""
        if self._stopping.wait(seconds):
            raise _Ended

    def hold(self, seconds: float = float("inf")) -> None:
        """Wait without writing until ``seconds`` pass; ends the behaviour when the client
        hangs up or the server stops."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self._sock], [], [], 0.05)
            if self._stopping.is_set():
                raise _Ended
            if not readable:
                continue
            try:
                if not self._sock.recv(1, socket.MSG_PEEK):
                    raise _Ended  # an orderly close
            except OSError as err:
                raise _Ended from err
            self.pause(0.05)  # the client sent more (pipelined): keep holding, don't spin

    def close(self) -> None:
        """Close the connection once the behaviour returns, instead of keeping it alive."""
        self.closing = True


Behaviour = Callable[[Exchange], None]


class HostileApi:
    """A scripted HTTP/1.1 server on 127.0.0.1 and a free port."""

    def __init__(
        self,
        *,
        default: Behaviour | None = None,
        max_connections: int = 16,
        max_body_bytes: int = 1 << 20,
        idle_timeout_seconds: float = 30.0,
    ) -> None:
        self._default = default or respond(500, body=b"hostile_api: nothing scripted\n")
        self._max_connections = max_connections
        self._max_body_bytes = max_body_bytes
        self._idle_timeout = idle_timeout_seconds
        self._lock = threading.Lock()
        self._script: deque[Behaviour] = deque()
        self._requests: list[Request] = []
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._accepted = 0
        self._peak = 0
        self._cut_short = 0

    # ---- lifecycle

    def start(self) -> HostileApi:
        if self._listener is not None or self._stopping.is_set():
            raise RuntimeError("a HostileApi starts once")
        listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        listener.settimeout(0.05)  # how long stop() may wait for the accept loop
        self._listener = listener
        self._spawn(self._accept_loop, f"hostile-api-accept:{self.address[1]}")
        return self

    def stop(self) -> None:
        """Close the listener and every connection, hanging ones too; join all threads."""
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        for thread in self._live_threads():
            if thread.name.startswith("hostile-api-accept"):
                thread.join(timeout=5)  # no connection is accepted after this
        with self._lock:
            connections = list(self._open)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._live_threads():
            thread.join(timeout=5)

    def __enter__(self) -> HostileApi:
        return self if self._listener is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- where and what

    @property
    def address(self) -> tuple[str, int]:
        if self._listener is None:
            raise RuntimeError("not started")
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    @property
    def base_url(self) -> str:
        """An ``api.base_url`` for the exporter: ``http://127.0.0.1:PORT/aivoice``."""
        return self.url("/aivoice")

    def url(self, path: str = "/aivoice/taskList") -> str:
        host, port = self.address
        return f"http://{host}:{port}{path}"

    def script(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with these, one each, in order (after any queued before)."""
        with self._lock:
            self._script.extend(behaviours)

    def always(self, behaviour: Behaviour) -> None:
        """Answer with this whenever the script is empty (at first: a 500 that says so)."""
        with self._lock:
            self._default = behaviour

    @property
    def requests(self) -> list[Request]:
        """Every request received so far, in order of arrival."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[Request]:
        """The requests once there are at least ``count``; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(received := self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(received)} requests within {timeout} s, not {count}")
            time.sleep(0.01)
        return received

    @property
    def connections_accepted(self) -> int:
        with self._lock:
            return self._accepted

    @property
    def peak_connections(self) -> int:
        """The most connections served at once: never above ``max_connections``."""
        with self._lock:
            return self._peak

    @property
    def cut_short(self) -> int:
        """Behaviours ended early because the client hung up (or the server stopped)."""
        with self._lock:
            return self._cut_short

    # ---- serving

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _live_threads(self) -> list[threading.Thread]:
        with self._lock:
            return [t for t in self._threads if t.is_alive()]

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.05):
                continue  # every slot busy: let clients wait in the backlog
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                self._slots.release()
                continue
            except OSError:  # the listener was closed by stop()
                self._slots.release()
                return
            with self._lock:
                self._accepted += 1
                number = self._accepted
                self._open.add(sock)
                self._peak = max(self._peak, len(self._open))
            self._spawn(self._serve, f"hostile-api-conn:{number}", sock, number)

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            sock.settimeout(self._idle_timeout)
            reader = _Reader(sock, self._max_body_bytes)
            while not self._stopping.is_set():
                request = reader.request(number)
                if request is None:
                    return
                with self._lock:
                    self._requests.append(request)
                    behaviour = self._script.popleft() if self._script else self._default
                exchange = Exchange(request, sock, self._stopping)
                try:
                    behaviour(exchange)
                except _Ended:
                    with self._lock:
                        self._cut_short += 1
                    return
                if exchange.closing or (request.header("Connection") or "").lower() == "close":
                    return
        except (OSError, _BadRequest):
            return  # a client that hung up, timed out or sent garbage: just close
        finally:
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()
            self._slots.release()


class _BadRequest(Exception):
    pass


class _Reader:
    """Reads requests off one connection: head up to a blank line, body by Content-Length."""

    def __init__(self, sock: socket.socket, max_body_bytes: int) -> None:
        self._sock = sock
        self._max_body = max_body_bytes
        self._buffer = b""

    def request(self, connection: int) -> Request | None:
        """The next request, or None when the client closed the connection between requests."""
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise _BadRequest("head too long")
            chunk = self._sock.recv(CHUNK)
            if not chunk:
                if self._buffer.strip():
                    raise _BadRequest("closed mid-head")
                return None
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise _BadRequest(f"bad request line {lines[0]!r}")
        headers = tuple(_header(line) for line in lines[1:])
        names = {name.lower(): value for name, value in headers}
        if "transfer-encoding" in names:
            raise _BadRequest("chunked request bodies are not supported")
        length_text = names.get("content-length", "0").strip()
        if not length_text.isdigit() or int(length_text) > self._max_body:
            raise _BadRequest(f"bad Content-Length {length_text!r}")
        body = self._read_exactly(int(length_text))
        return Request(parts[0], parts[1], headers, body, connection)

    def _read_exactly(self, length: int) -> bytes:
        while len(self._buffer) < length:
            chunk = self._sock.recv(CHUNK)
            if not chunk:
                raise _BadRequest("closed mid-body")
            self._buffer += chunk
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return body


def _header(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep:
        raise _BadRequest(f"bad header line {line!r}")
    return name.strip(), value.strip()


# --------------------------------------------------------------------------- behaviours


def http_response(
    status: int = 200,
    headers: Headers = (),
    body: bytes = b"",
    *,
    close: bool = False,
) -> bytes:
    """A whole response as bytes; ``Content-Length`` is added unless the headers frame it."""
    pairs = _pairs(headers)
    names = {name.lower() for name, _ in pairs}
    if not names & {"content-length", "transfer-encoding"}:
        pairs.append(("Content-Length", str(len(body))))
    if close:
        pairs.append(("Connection", "close"))
    return _head(status, pairs) + body


def _pairs(headers: Headers) -> list[tuple[str, str]]:
    return list(headers.items() if isinstance(headers, Mapping) else headers)


def _head(status: int, pairs: Sequence[tuple[str, str]]) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{name}: {value}" for name, value in pairs)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def raw(data: bytes, *, close: bool = True) -> Behaviour:
    """Send exactly these bytes; then close (their framing is the test's business)."""

    def behave(exchange: Exchange) -> None:
        exchange.send(data)
        if close:
            exchange.close()

    return behave


def respond(
    status: int = 200, headers: Headers = (), body: bytes = b"", *, close: bool = False
) -> Behaviour:
    """A well-formed answer; the connection stays open for the next request unless ``close``."""
    return raw(http_response(status, headers, body, close=close), close=close)


def hang_up() -> Behaviour:
    """Close the connection without a byte of answer."""
    return raw(b"")


def hang() -> Behaviour:
    """Send nothing and keep the connection open until the client gives up or ``stop()``."""

    def behave(exchange: Exchange) -> None:
        exchange.hold()

    return behave


def drip_headers(
    status: int = 200, headers: Headers = (), body: bytes = b"", *, interval: float = 1.0
) -> Behaviour:
    """The status line and headers one byte every ``interval`` seconds, then the body at once."""

    def behave(exchange: Exchange) -> None:
        response = http_response(status, headers, body)
        head_length = response.index(b"\r\n\r\n") + 4
        for index in range(head_length):
            exchange.pause(interval)
            exchange.send(response[index : index + 1])
        exchange.send(response[head_length:])

    return behave


def drip_body(
    status: int = 200,
    headers: Headers = (),
    body: bytes = b"",
    *,
    interval: float = 1.0,
    chunk: int = 1,
) -> Behaviour:
    """The head at once (with the full ``Content-Length``), then ``chunk`` bytes of the body
    every ``interval`` seconds: each read gets data, the whole takes ``len / chunk`` intervals."""

    def behave(exchange: Exchange) -> None:
        exchange.send(_head_of(status, headers, len(body)))
        for start in range(0, len(body), chunk):
            exchange.pause(interval)
            exchange.send(body[start : start + chunk])

    return behave


def _head_of(status: int, headers: Headers, length: int) -> bytes:
    return _head(status, [*_pairs(headers), ("Content-Length", str(length))])


def endless_continue(interval: float = 0.5) -> Behaviour:
    """``HTTP/1.1 100 Continue`` every ``interval`` seconds, never a final answer."""

    def behave(exchange: Exchange) -> None:
        while True:
            exchange.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            exchange.pause(interval)

    return behave


def redirect(location: str, status: int = 302) -> Behaviour:
    """A redirect to ``location`` (another ``HostileApi``'s ``url()``, to see who follows)."""
    return respond(status, [("Location", location)])


def retry_after(value: int | str, status: int = 429) -> Behaviour:
    """A 429 (or 503) with ``Retry-After: value``: seconds, or an ``http_date()``."""
    return respond(status, [("Retry-After", str(value)), ("Content-Type", "text/plain")], b"slow")


def http_date(seconds_from_now: float) -> str:
    """An HTTP date ``seconds_from_now`` ahead, rounded up to a whole second."""
    return formatdate(int(time.time() + seconds_from_now + 0.999), usegmt=True)


def gzip_bomb(inflated_bytes: int = 1 << 30, *, tail: bytes = b"") -> Behaviour:
    """200, ``Content-Encoding: gzip``: about ``inflated_bytes / 1000`` on the wire, streamed,
    inflating to ``inflated_bytes`` (spaces, then ``tail``: a ``page_body()`` makes it JSON).

    The bomb is built here, before any request: building it takes a busy machine a second or
    more, which inside the exchange would run down the client's timeout before the first byte."""
    bomb = gzip_bomb_bytes(inflated_bytes, tail)

    def behave(exchange: Exchange) -> None:
        headers = [("Content-Type", JSON), ("Content-Encoding", "gzip")]
        exchange.send(_head_of(200, headers, len(bomb)))
        for start in range(0, len(bomb), CHUNK):
            exchange.send(bomb[start : start + CHUNK])

    return behave


def huge_body(
    size: int,
    *,
    content_type: str = JSON,
    fill: bytes = b" ",
    tail: bytes = b"",
    chunked: bool = False,
) -> Behaviour:
    """200 with ``size`` bytes of ``fill`` then ``tail``, made as they are sent (never held in
    memory); framed by ``Content-Length``, or with ``chunked`` by chunked encoding (no length
    known up front)."""
    if len(fill) != 1 or size < len(tail):
        raise ValueError("fill: one byte; size: at least len(tail)")

    def pieces() -> Iterator[bytes]:
        whole, rest = divmod(size - len(tail), CHUNK)
        block = fill * CHUNK
        for _ in range(whole):
            yield block
        if rest or tail:
            yield fill * rest + tail

    def behave(exchange: Exchange) -> None:
        if not chunked:
            exchange.send(_head_of(200, [("Content-Type", content_type)], size))
            for piece in pieces():
                exchange.send(piece)
            return
        headers = [("Content-Type", content_type), ("Transfer-Encoding", "chunked")]
        exchange.send(_head(200, headers))
        for piece in pieces():
            exchange.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        exchange.send(b"0\r\n\r\n")

    return behave


def page_body(
    records: Any,
    *,
    total: Any = None,
    size: Any = 100,
    current: Any = 1,
    pages: Any = None,
    status: Any = "0",
    reason: Any = "success",
) -> bytes:
    """The documented envelope ``{"status", "reason", "data": {...}}`` as bytes. ``total`` and
    ``pages`` default to what ``records`` implies; any field may be any JSON value, to lie."""
    count = len(records) if isinstance(records, list) else 0
    if total is None:
        total = count
    if pages is None and isinstance(total, int) and isinstance(size, int) and size > 0:
        pages = -(-total // size)
    data = {
        "records": records,
        "total": total,
        "size": size,
        "current": current,
        "searchCount": True,
        "pages": pages,
    }
    return _json({"status": status, "reason": reason, "data": data})


def page(records: Any, *, headers: Headers = (), **fields: Any) -> Behaviour:
    """A 200 JSON page of these records; ``fields`` as for ``page_body``."""
    return respond(200, [("Content-Type", JSON), *_pairs(headers)], page_body(records, **fields))


def api_error(status: Any, reason: Any = "error") -> Behaviour:
    """An API error: HTTP 200 with ``{"status": status, "reason": reason}``."""
    return respond(200, [("Content-Type", JSON)], _json({"status": status, "reason": reason}))


def _json(document: object) -> bytes:
    """UTF-8 like the vendor's server; a lone surrogate forces JSON escapes instead."""
    try:
        return json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(document).encode("ascii")
