"""The HTTP side: serves the latest rendered exposition, never waiting on the API.

`/metrics` (or `--web.telemetry-path`) picks Prometheus text or OpenMetrics by the Accept header
with client_python's own `choose_encoder`, and gzip by Accept-Encoding. `/` is the status page
(exporter.web.status), built from the latest snapshots and gzipped by Accept-Encoding too.
`/-/healthy` says the process answers, `/-/ready` that every app has been polled once,
`/-/reload` (POST, with `--web.enable-lifecycle`) re-reads the config. TLS and basic auth come
from `--web.config.file`.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE

from exporter import __version__
from exporter.exposition.exposition import Exposition, gzipped
from exporter.process.memory import free_memory_releaser
from exporter.web.basic_auth import WWW_AUTHENTICATE
from exporter.web.status import HEADERS as STATUS_HEADERS
from exporter.web.status import StatusInputs, render_status

# A short name, not the module's path: every log line carries it (`logger`), and filters match it.
log = logging.getLogger("exporter.server")

MAX_BODY_BYTES = 64 * 1024  # Nothing here takes a body; refuse big ones unread.
IDLE_TIMEOUT_SECONDS = 10.0  # A silent connection holds one thread this long at the most.


class WebSecurity(Protocol):
    """What the server needs of `--web.config.file` (see exporter.webconfig)."""

    @property
    def headers(self) -> tuple[tuple[str, str], ...]: ...

    def ssl_context(self) -> ssl.SSLContext | None: ...

    def authorized(self, authorization_header: str | None) -> bool: ...


class Published:
    """The exposition a scrape serves, swapped whole by the poller."""

    def __init__(self, initial: Exposition) -> None:
        self.exposition = initial
        self.ready = False
        self._release_free_memory = free_memory_releaser()

    def publish(self, exposition: Exposition, ready: bool = True) -> None:
        """Swap in a new exposition; once every app has been polled, stay ready."""
        self.exposition = exposition
        self.ready = self.ready or ready
        self._release_free_memory()


@dataclass(frozen=True)
class Routes:
    telemetry_path: str
    published: Published
    security: WebSecurity | None = None
    reload: Callable[[], bool] | None = None  # None: `--web.enable-lifecycle` is off.
    status_page: Callable[[], bytes] | None = None  # The page at `/` (exporter.web.status).


class ConnectionHandler(BaseHTTPRequestHandler):
    """What every listener's connections share: keep-alive, the idle timeout, and the TLS
    handshake in the connection's own thread."""

    protocol_version = "HTTP/1.1"  # Keep-alive, so Prometheus reuses its connection.
    default_request_version = "HTTP/1.0"  # Errors get a status line, even to garbage.
    disable_nagle_algorithm = True  # Headers and body go in two writes: don't hold the second.
    server_version = f"aivoice-exporter/{__version__}"
    timeout = IDLE_TIMEOUT_SECONDS

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            # The handshake runs here, in the connection's own thread, so a client that opens
            # a socket and says nothing can never stall the accept loop. The socket's timeout
            # bounds the whole handshake, not each read of it.
            self.connection.do_handshake()


class _Handler(ConnectionHandler):
    routes: Routes  # Set on the subclass that `MetricsServer` makes.

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_POST(self) -> None:
        if not self._body_acceptable() or not self._authorized():
            return
        if self.path.split("?")[0] != "/-/reload":
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"Only GET and HEAD are allowed here.\n")
        elif self.routes.reload is None:
            self._send(HTTPStatus.FORBIDDEN, b"Lifecycle API is not enabled.\n")
        elif self.routes.reload():
            self._send(HTTPStatus.OK, b"Reloaded.\n")
        else:
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"Reload failed; see the log.\n")

    def _route(self, head: bool) -> None:
        if not self._body_acceptable() or not self._authorized():
            return
        path = self.path.split("?")[0]
        if path == self.routes.telemetry_path:
            self._metrics(head)
        elif path == "/":
            page = (self.routes.status_page or self._bare_status_page)()
            gzip = self._gzip_accepted()
            self._send(
                HTTPStatus.OK,
                gzipped(page) if gzip else page,
                "text/html; charset=utf-8",
                head=head,
                extra=list(STATUS_HEADERS),
                gzip=gzip,
            )
        elif path == "/-/healthy":
            self._send(HTTPStatus.OK, b"Healthy.\n", head=head)
        elif path == "/-/ready":
            if self.routes.published.ready:
                self._send(HTTPStatus.OK, b"Ready.\n", head=head)
            else:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"Not polled yet.\n", head=head)
        elif path == "/-/reload":
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"Use POST.\n", head=head)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"Not found.\n", head=head)

    def _bare_status_page(self) -> bytes:
        return render_status(StatusInputs(__version__, self.routes.telemetry_path))

    def _metrics(self, head: bool) -> None:
        _, content_type = choose_encoder(self.headers.get("Accept", ""))
        openmetrics = content_type.startswith("application/openmetrics-text")
        if openmetrics:
            content_type = OPENMETRICS_TYPE
        gzip = self._gzip_accepted()
        # The cached part and the live process metrics, sent one after the other.
        parts = self.routes.published.exposition.parts(openmetrics, gzip)
        self._send(HTTPStatus.OK, parts, content_type, head=head, gzip=gzip)

    def _gzip_accepted(self) -> bool:
        return gzip_accepted(self.headers.get("Accept-Encoding", ""))

    def _body_acceptable(self) -> bool:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"Request body refused.\n")
            return False
        if length:
            self.rfile.read(length)
        return True

    def _authorized(self) -> bool:
        security = self.routes.security
        if security is None or security.authorized(self.headers.get("Authorization")):
            return True
        self._send(
            HTTPStatus.UNAUTHORIZED,
            b"Unauthorized.\n",
            extra=[("WWW-Authenticate", WWW_AUTHENTICATE)],
        )
        return False

    def _send(
        self,
        status: HTTPStatus,
        body: bytes | Sequence[bytes],
        content_type: str = "text/plain; charset=utf-8",
        *,
        head: bool = False,
        extra: list[tuple[str, str]] | None = None,
        gzip: bool = False,
    ) -> None:
        """The answer; `gzip` says the body is gzipped already (`gzip_accepted` said so)."""
        parts = (body,) if isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(sum(len(part) for part in parts)))
        if gzip:
            self.send_header("Content-Encoding", "gzip")
        path = self.path.split("?")[0]
        if path == self.routes.telemetry_path:
            self.send_header("Vary", "Accept, Accept-Encoding")
        elif path == "/":
            self.send_header("Vary", "Accept-Encoding")
        headers = self.routes.security.headers if self.routes.security else ()
        for name, value in [*headers, *(extra or [])]:
            self.send_header(name, value)
        self.end_headers()
        if not head:
            for part in parts:
                self.wfile.write(part)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("HTTP request", extra={"client": self.address_string(), "line": format % args})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up, times out or fails the TLS handshake is its own problem.
        log.debug("HTTP connection error", extra={"client": client_address}, exc_info=True)


class HttpListener:
    """A threaded HTTP(S) server on its own thread; `address` is the port really bound.

    One daemon thread per connection, each bounded in time by its handler's timeouts; the
    accept loop only accepts (TLS handshakes run in the connections' threads)."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: type[BaseHTTPRequestHandler],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        server = type("Server", (_Server,), {"address_family": _family(host)})
        self._server = server((host, port), handler)
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        # How often the accept loop looks for shutdown(): stopping waits for it at most this long.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.tls = ssl_context is not None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class MetricsServer(HttpListener):
    """The exposition, health and lifecycle endpoints (see `Routes`)."""

    def __init__(self, host: str, port: int, routes: Routes) -> None:
        handler = type("Handler", (_Handler,), {"routes": routes})
        context = routes.security.ssl_context() if routes.security else None
        super().__init__(host, port, handler, context)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
