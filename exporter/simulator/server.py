"""The simulator over HTTP: the API path, its test-control endpoints, and the listener that
catches followed redirects.

Standard library servers, one thread a connection. Both listeners remember their
connections, so ``Simulator.stop()`` also ends kept-alive and hanging ones. The handlers hand
each request to the ``Account`` and send what it answers: the model never sees HTTP. The control
endpoints (``/-/faults``, ``/-/fail-next``, ``/-/change-before-page``, ``/-/delay-page``,
``/-/stats``) have no authentication: bind to loopback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from exporter.simulator.account import Account
from exporter.simulator.api import (
    API_PATH,
    BALANCE_PATH,
    CHANNEL_LIST,
    CHANNEL_LIST_PATH,
    EMPTY_PAGE,
    GET_BALANCE,
    JSON,
    RECORD_QUERY,
    RECORD_QUERY_PATH,
    TASK_LIST,
    json_bytes,
)
from exporter.simulator.faults import Faults

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its connections, so stop() can close kept-alive ones."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        simulator: Account,
        handler: type[BaseHTTPRequestHandler],
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup, which can stall start-up."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a timed-out poller) is normal here, not a traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("client %s went away", client_address)
            return
        super().handle_error(request, client_address)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


class _TrackedHandler(BaseHTTPRequestHandler):
    """A handler whose connection its Server can close on stop()."""

    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    server_version = "aivoice-simulator"
    sys_version = ""
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class CaptureHandler(_TrackedHandler):
    """Where ``redirect`` faults point: counts who follows, answers a valid empty page.

    HTTP/1.0, one request a connection: nothing stays open here.
    """

    def _capture(self) -> None:
        self.server.simulator.redirected(dict(self.headers.items()))
        length = self.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        self.send_response(200)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(EMPTY_PAGE)))
        self.end_headers()
        self.wfile.write(EMPTY_PAGE)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _capture


class ApiHandler(_TrackedHandler):
    """HTTP/1.1 with keep-alive, as the vendor's Java sample uses it."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        simulator = self.server.simulator
        if path == "/-/healthy":
            self._send(200, b"OK\n", "text/plain; charset=utf-8")
        elif path == "/-/stats":
            self._send_json(200, simulator.stats())
        elif path == "/-/faults":
            self._send_json(200, simulator.faults.to_dict())
        elif path == BALANCE_PATH:
            self._serve_api(b"", GET_BALANCE)
        elif path in (API_PATH, RECORD_QUERY_PATH, CHANNEL_LIST_PATH):
            self._send_json(405, {"error": "use POST"}, extra={"Allow": "POST"})
        else:
            self._send_json(404, {"error": f"no such path {path}"})

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        if path == API_PATH:
            self._serve_api(body, TASK_LIST)
        elif path == RECORD_QUERY_PATH:
            self._serve_api(body, RECORD_QUERY)
        elif path == CHANNEL_LIST_PATH:
            self._serve_api(body, CHANNEL_LIST)
        elif path == "/-/faults":
            self._control(body, self._set_faults)
        elif path == "/-/fail-next":
            self._control(body, self._fail_next)
        elif path == "/-/change-before-page":
            self._control(body, self._change_before_page)
        elif path == "/-/delay-page":
            self._control(body, self._delay_page)
        elif path == "/-/top-up":
            self._control(body, self._top_up)
        else:
            self._send_json(404, {"error": f"no such path {path}"})

    def _serve_api(self, body: bytes, endpoint: str) -> None:
        simulator = self.server.simulator
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = simulator.answer(headers, body, endpoint)
        running = simulator.wait(reply.delay) if reply.delay > 0 else True
        if reply.drop or not running:
            self.close_connection = True  # hang up without an answer
            return
        if reply.chunks is None:
            self._send(reply.status, reply.body, reply.content_type, extra=dict(reply.headers))
            return
        self._send_head(reply.status, reply.content_type, reply.length, dict(reply.headers))
        for chunk in reply.chunks:
            if reply.drip_seconds > 0 and not simulator.wait(reply.drip_seconds):
                self.close_connection = True  # stopping: cut the body short
                return
            self.wfile.write(chunk)  # a client that hung up ends this with a ConnectionError

    def _control(self, body: bytes, action: Callable[[Any], object]) -> None:
        try:
            result = action(json.loads(body or b"{}"))
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            self._send_json(400, {"error": str(exc)})
            return
        self._send_json(200, result)

    def _set_faults(self, payload: Any) -> dict[str, Any]:
        faults = Faults.from_dict(payload)
        self.server.simulator.set_faults(faults)
        return faults.to_dict()

    def _fail_next(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise ValueError('fail-next: must be a JSON object like {"n": 2, "kind": "timeout"}')
        self.server.simulator.fail_next(**payload)
        return {"queued": payload}

    def _change_before_page(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise ValueError(
                'change-before-page: must be a JSON object like {"app_id": "A", "page": 2, '
                '"action": "create", "count": 1}'
            )
        self.server.simulator.change_before_page(**payload)
        return {"queued": payload}

    def _delay_page(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise ValueError(
                'delay-page: must be a JSON object like {"app_id": "A", "page": 2, "seconds": 1}'
            )
        self.server.simulator.delay_page(**payload)
        return {"queued": payload}

    def _top_up(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or set(payload) != {"amount"}:
            raise ValueError('top-up: must be a JSON object like {"amount": 100}')
        return {"balance": self.server.simulator.balance.top_up(payload["amount"])}

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            self._send_json(400, {"error": "bad Content-Length"}, close=True)
            return None
        if int(length) > MAX_BODY_BYTES:
            self._send_json(413, {"error": "body too large"}, close=True)
            return None
        return self.rfile.read(int(length))

    def _send_json(
        self,
        status: int,
        payload: object,
        *,
        close: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self._send(status, json_bytes(payload), JSON, close=close, extra=extra)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        close: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self._send_head(status, content_type, len(body), extra or {}, close=close)
        self.wfile.write(body)

    def _send_head(
        self,
        status: int,
        content_type: str,
        length: int,
        extra: Mapping[str, str],
        *,
        close: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in extra.items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()


def url_host(host: str) -> str:
    """A bound host as a URL's host: a wildcard becomes loopback, IPv6 gets brackets."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if host != "::" else "::1"
    return f"[{host}]" if ":" in host else host
