"""``Simulator``: an ``Account`` served over HTTP on daemon threads, with its push."""

from __future__ import annotations

import threading
from types import TracebackType

from exporter.simulator.account import Account
from exporter.simulator.api import API_PATH
from exporter.simulator.server import ApiHandler, CaptureHandler, Server, url_host


class Simulator(Account):
    """The ITNIO ``taskList`` and ``recordQuery`` API for one account, served over HTTP on a
    daemon thread, and, with ``push_url``, the call-record push (see ``push``).

    Every method is thread-safe: tests change tasks and faults while a client polls.
    """

    _server: Server | None = None
    _capture: Server | None = None
    _serving: tuple[tuple[Server, threading.Thread], ...] = ()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Simulator:
        """Listen on host:port (0: a free port) and serve on a daemon thread.

        A second listener on a free port of the same host catches followed redirects.
        """
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("a Simulator starts once")
        self._server = Server((host, port), self, ApiHandler)
        try:
            self._capture = Server((host, 0), self, CaptureHandler)
        except OSError:
            self._server.server_close()
            raise
        serving = []
        for server, role in ((self._server, "simulator"), (self._capture, "redirect-capture")):
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.02},  # how long stop() may wait
                name=f"aivoice-{role}:{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            serving.append((server, thread))
        self._serving = tuple(serving)
        self._push_from_now()
        return self

    def start_push(self, url: str) -> None:
        """Push each call that ends from now on to ``url`` (for a receiver that starts after
        the simulator, such as ``--demo``'s); without effect if the push is already on."""
        if self._server is not None:
            self._push_from_now(url)

    def stop(self) -> None:
        """Stop serving, end hanging requests and close open connections. Idempotent."""
        self._stop()
        for server, thread in self._serving:
            if not thread.is_alive():
                continue
            server.shutdown()
            server.close_connections()
            server.server_close()
            thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port), with the real port when started on port 0."""
        if self._server is None:
            raise RuntimeError("not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def base_url(self) -> str:
        """What the exporter's ``api.base_url`` should be, e.g. http://127.0.0.1:PORT/aivoice."""
        host, port = self.address
        return f"http://{url_host(host)}:{port}/aivoice"

    @property
    def redirect_url(self) -> str:
        """Where a ``redirect`` fault points: the capture listener, another loopback port."""
        if self._capture is None:
            raise RuntimeError("not started")
        host, port = self._capture.server_address[:2]
        return f"http://{url_host(str(host))}:{port}{API_PATH}"
