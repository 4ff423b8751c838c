"""The call-record push listener: the vendor POSTs one JSON call record a request to us.

HTTP only: what a record means is the ledger's business (`receive(body)` answers the status),
and every answer's status goes to `answered` to be counted, with whether it answered a push
another exporter forwarded (`FORWARDED_HEADER`) rather than the vendor. The vendor's console
takes only a URL and sends no credentials, so a secret token in the path is the lock:
`POST /push/call-record/<token>`, compared in constant time. A wrong or missing token looks like
any unknown path (404), so a scanner learns nothing.

This port may face the internet, so every request is bounded: its headers (`HEADER_BYTES`), its
body (`MAX_BODY_BYTES`) and its time (`REQUEST_DEADLINE_SECONDS` from the first byte asked for
to the last, so a client dripping a byte at a time is cut off, however steady). The token never
reaches a log or a repr, and the body is never logged.
"""

from __future__ import annotations

import hmac
import io
import logging
import math
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from exporter.web.server import IDLE_TIMEOUT_SECONDS, ConnectionHandler, HttpListener

# A short name, not the module's path: every log line carries it (`logger`), and filters match it.
log = logging.getLogger("exporter.push")

PUSH_PATH = "/push/call-record/"
# Marks a push one exporter hands on to another (exporter.forward): it is never handed on again.
FORWARDED_HEADER = "Aivoice-Forwarded"
MAX_BODY_BYTES = 1_000_000  # A record with a long transcript is tens of kilobytes.
HEADER_BYTES = 64 * 1024  # Request line and headers together; the vendor sends a few hundred.
CHUNK_FRAMING_BYTES = 64 * 1024  # Chunk-size lines of a chunked body, on top of its data.
REQUEST_DEADLINE_SECONDS = 30.0  # From waiting for a request's first byte to reading its last.

_CONTENT_LENGTH = re.compile(r"[0-9]{1,16}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}")
_MAX_CHUNK_LINE = 1024
_MAX_TRAILERS = 32
# Whatever follows the push path in a log line (the real token, a mistyped one, a query) is
# replaced: a near-miss of the token is still most of the secret.
_AFTER_PUSH_PATH = re.compile(re.escape(PUSH_PATH) + r"[^\s'\"]*")


class _TooLarge(Exception):
    """The request read more bytes than it is allowed."""


class _BoundedReader(io.RawIOBase):
    """The connection's reads, each bounded by the request's deadline and byte allowance.

    The socket timeout alone bounds each read, so a steady drip would never end; here every
    read waits at most until the deadline, and a request never takes more than it is allowed.
    """

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._deadline = math.inf
        self._allowance = 0

    def begin(self, deadline_seconds: float, allowance: int) -> None:
        """A new request: a new deadline, and `allowance` bytes for its line and headers."""
        self._deadline = time.monotonic() + deadline_seconds
        self._allowance = allowance

    def allow(self, more: int) -> None:
        """`more` bytes for the body, once its headers said how long it is."""
        self._allowance += more

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._allowance <= 0:
            raise _TooLarge
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request deadline passed")
        self._connection.settimeout(min(IDLE_TIMEOUT_SECONDS, remaining))
        with memoryview(buffer) as view:
            received = self._connection.recv_into(view[: self._allowance])
        self._allowance -= received
        return received


@dataclass(frozen=True)
class _Push:
    """What the connections of one `PushServer` share."""

    token: bytes = field(repr=False)
    receive: Callable[[bytes], int]
    answered: Callable[[int, bool], None]
    deadline_seconds: float
    forwarded: Callable[[bytes], int] | None = None

    def redact(self, text: str) -> str:
        text = text.replace(self.token.decode("ascii"), "<token>")
        return _AFTER_PUSH_PATH.sub(PUSH_PATH + "<token>", text)


class _PushHandler(ConnectionHandler):
    push: _Push  # Set on the subclass that `PushServer` makes.
    _reader: _BoundedReader
    _forwarded = False  # The request being answered carries FORWARDED_HEADER.

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # The buffered file the base class made; this one reads bounded.
        self._reader = _BoundedReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        # Until the request line is parsed, an answer still needs these.
        self.command, self.requestline = "", ""
        self.request_version = self.default_request_version
        self._forwarded = False
        self._reader.begin(self.push.deadline_seconds, HEADER_BYTES)
        try:
            super().handle_one_request()
        except _TooLarge:
            self.close_connection = True
            self._answer(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, b"Headers too large.\n")

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed:  # Until its headers are read, a request is taken for the vendor's.
            self._forwarded = self.headers.get(FORWARDED_HEADER) is not None
        return parsed

    def do_POST(self) -> None:
        if not self._on_push_path():
            self._answer(HTTPStatus.NOT_FOUND, b"Not found.\n", close=True)
            return
        body = self._body()
        if body is None:
            return
        receive = self.push.receive
        if self.push.forwarded is not None and self._forwarded:
            receive = self.push.forwarded
        try:
            status: int = receive(body)
        except Exception as err:  # The ledger's fault, not the vendor's: say so, keep serving.
            log.error("Push not taken in", extra={"error": type(err).__name__})
            status = HTTPStatus.INTERNAL_SERVER_ERROR
        if status == HTTPStatus.OK:
            self._answer(HTTPStatus.OK, b"success")
        elif status == HTTPStatus.BAD_REQUEST:
            self._answer(HTTPStatus.BAD_REQUEST, b"Bad request.\n")
        elif status == HTTPStatus.SERVICE_UNAVAILABLE:  # Not every owner has it: retry later.
            self._answer(HTTPStatus.SERVICE_UNAVAILABLE, b"Try again later.\n")
        elif status == HTTPStatus.MISDIRECTED_REQUEST:  # A peer forwarded what is not ours.
            self._answer(HTTPStatus.MISDIRECTED_REQUEST, b"Not this shard's.\n")
        else:
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, b"Internal error.\n", close=True)

    def do_GET(self) -> None:
        """And every other method: 405 on the push path, 404 (as for any stranger) elsewhere."""
        if self._on_push_path():
            self._answer(
                HTTPStatus.METHOD_NOT_ALLOWED, b"Use POST.\n", close=True, extra=("Allow", "POST")
            )
        else:
            self._answer(HTTPStatus.NOT_FOUND, b"Not found.\n", close=True)

    do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = do_GET

    def _on_push_path(self) -> bool:
        # The request line was read as Latin-1, so this gives back its very bytes, whatever
        # they are, for a comparison that takes as long however early they differ.
        path = self.path.split("?", 1)[0].encode("latin-1")
        return hmac.compare_digest(path, PUSH_PATH.encode() + self.push.token)

    def _body(self) -> bytes | None:
        """The request's body, or None when it has been answered already."""
        lengths = self.headers.get_all("Content-Length") or []
        coding = self.headers.get("Transfer-Encoding")
        if coding is not None:
            if lengths:  # Both at once is how requests are smuggled past proxies.
                self._answer(HTTPStatus.BAD_REQUEST, b"Bad request.\n", close=True)
                return None
            if coding.strip().lower() != "chunked":
                self._answer(
                    HTTPStatus.NOT_IMPLEMENTED, b"Transfer coding not supported.\n", close=True
                )
                return None
            return self._chunked_body()
        if not lengths:
            self._answer(HTTPStatus.LENGTH_REQUIRED, b"Content-Length required.\n", close=True)
            return None
        if len(lengths) > 1 or not _CONTENT_LENGTH.fullmatch(lengths[0].strip()):
            self._answer(HTTPStatus.BAD_REQUEST, b"Bad request.\n", close=True)
            return None
        length = int(lengths[0])
        if length > MAX_BODY_BYTES:
            self._too_large()
            return None
        self._reader.allow(length)
        body = self.rfile.read(length)
        if len(body) < length:  # The client stopped sending before the end it announced.
            self._answer(HTTPStatus.BAD_REQUEST, b"Bad request.\n", close=True)
            return None
        return body

    def _chunked_body(self) -> bytes | None:
        self._reader.allow(MAX_BODY_BYTES + CHUNK_FRAMING_BYTES)
        body = bytearray()
        try:
            while size := self._chunk_size():
                if len(body) + size > MAX_BODY_BYTES:
                    self._too_large()
                    return None
                chunk = self.rfile.read(size)
                body += chunk
                if len(chunk) < size or self.rfile.read(2) != b"\r\n":
                    raise ValueError("chunk")
            for _ in range(_MAX_TRAILERS + 1):
                if self.rfile.readline(_MAX_CHUNK_LINE + 1) in (b"\r\n", b"\n"):
                    return bytes(body)
            raise ValueError("trailers")
        except _TooLarge:
            self._too_large()
        except ValueError:
            self._answer(HTTPStatus.BAD_REQUEST, b"Bad request.\n", close=True)
        return None

    def _chunk_size(self) -> int:
        line = self.rfile.readline(_MAX_CHUNK_LINE + 1)
        size = line.split(b";", 1)[0].strip()
        if not line.endswith(b"\n") or not _CHUNK_SIZE.fullmatch(size):
            raise ValueError("chunk size")
        return int(size, 16)

    def _too_large(self) -> None:
        self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"Request body too large.\n", close=True)

    def _answer(
        self,
        status: HTTPStatus,
        body: bytes,
        *,
        close: bool = False,
        extra: tuple[str, str] | None = None,
    ) -> None:
        """Answer in plain text; `close` when the request may not have been read to its end."""
        self.connection.settimeout(self.timeout)  # Not what is left of the request's deadline.
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if extra is not None:
            self.send_header(*extra)
        if close or self.close_connection:
            self.send_header("Connection", "close")  # Also sets close_connection.
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_response(self, code: int, message: str | None = None) -> None:
        # Every answer passes here, the base class's own errors (400, 431, 501, 505) too.
        self.push.answered(int(code), self._forwarded)
        super().send_response(code, message)

    def log_message(self, format: str, *args: object) -> None:
        line = self.push.redact(format % args)
        log.debug("HTTP request", extra={"client": self.address_string(), "line": line})


class PushServer(HttpListener):
    """`POST /push/call-record/<token>` on its own port: bodies to `receive`, answers counted.

    `receive(body)` returns the status to answer: 200 (`success`), 400, or, when it forwards
    (exporter.forward), 503 and 421. `forwarded(body)`, if given, takes the pushes another
    exporter forwarded (`FORWARDED_HEADER`) instead. `answered(status, forwarded)` is called
    once for every answer the listener gives, whatever it is, `forwarded` when the request
    carried `FORWARDED_HEADER`. `deadline_seconds` bounds each request's
    time (tests shorten it).
    """

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        receive: Callable[[bytes], int],
        answered: Callable[[int, bool], None],
        ssl_context: ssl.SSLContext | None = None,
        *,
        deadline_seconds: float = REQUEST_DEADLINE_SECONDS,
        forwarded: Callable[[bytes], int] | None = None,
    ) -> None:
        if not token or not token.isascii():
            raise ValueError("push token: must be non-empty ASCII")
        push = _Push(token.encode("ascii"), receive, answered, deadline_seconds, forwarded)
        handler = type("PushHandler", (_PushHandler,), {"push": push})
        super().__init__(host, port, handler, ssl_context)

    def __repr__(self) -> str:
        host, port = self.address
        return f"PushServer({host}:{port}, tls={self.tls})"
