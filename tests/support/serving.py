"""The real `MetricsServer` in-process, serving a snapshot the test renders."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from exporter.exposition.exposition import Exposition
from exporter.web.server import MetricsServer, Published, Routes, WebSecurity
from tests.support.exposition import app, rendered, snapshot, task


@contextlib.contextmanager
def serving(
    exposition: Exposition | None = None,
    *,
    security: WebSecurity | None = None,
    telemetry_path: str = "/metrics",
) -> Iterator[tuple[str, int]]:
    """(host, port) of a server on 127.0.0.1 holding `exposition` (by default one app, one
    task), with `security` (a `WebConfig`) for TLS and basic auth; stopped on leaving."""
    exposition = exposition or rendered(snapshot(app("A", (task("1"),))))
    server = MetricsServer(
        "127.0.0.1", 0, Routes(telemetry_path, Published(exposition), security=security)
    )
    server.start()
    try:
        yield server.address
    finally:
        server.stop()
