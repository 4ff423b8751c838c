"""The metrics endpoint over real sockets: cached API data, live process metrics, gzip in parts.

The body is sent as two parts, the cached API part and the process metrics collected for this
scrape; gzipped, the two are one gzip member. Every client must read it as one body.
"""

from __future__ import annotations

import gzip
import http.client
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.config import MetricsConfig
from exporter.metrics import render
from exporter.server import MetricsServer, Published, Routes
from exporter.simulator import Simulator
from tests.conftest import (
    ExporterProcess,
    config_for,
    require_tool,
    scrape,
    wait_until,
    write_config,
)
from tests.unit.test_metrics import ODD_NAMES, RELOAD, api_samples, app, snapshot, task

OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}
IDLE_CONNECTIONS = 30


@pytest.fixture
def served() -> Iterator[str]:
    """An in-process server holding one rendered snapshot; yields the metrics URL."""
    tasks = tuple(task(str(n), name=name) for n, name in enumerate(ODD_NAMES))
    exposition = render(snapshot(app("A", tasks)), MetricsConfig(), RELOAD)
    server = MetricsServer("127.0.0.1", 0, Routes("/metrics", Published(exposition)))
    server.start()
    host, port = server.address
    try:
        yield f"http://{host}:{port}/metrics"
    finally:
        server.stop()


def value(text: str, name: str, openmetrics: bool = True) -> float:
    families = parse_om(text) if openmetrics else parse_text(text)
    (found,) = [s.value for f in families for s in f.samples if s.name == name and not s.labels]
    return found


def test_open_fds_follow_idle_connections_without_a_poll(
    simulator: Simulator, start_exporter: Callable[..., ExporterProcess], tmp_path
) -> None:
    path = write_config(
        tmp_path / "config.yaml", config_for(simulator, poll={"interval_seconds": 3600})
    )
    exporter = start_exporter("--config.file", str(path))
    wait_until(lambda: requests.get(exporter.url + "/-/ready", timeout=5).status_code == 200)
    before = scrape(exporter.url + "/metrics", headers=OPENMETRICS).text
    with ExitStack() as stack:
        host, port = exporter.address.rsplit(":", 1)
        for _ in range(IDLE_CONNECTIONS):
            stack.enter_context(socket.create_connection((host, int(port)), timeout=5))
        # The server accepts in arrival order, so this scrape comes after all 30 are open.
        after = scrape(exporter.url + "/metrics", headers=OPENMETRICS).text
    success = "aivoice_poll_last_success_timestamp_seconds"
    assert (
        api_samples(after.encode(), True)[(success, (("app_id", "APP_A"),))]
        == api_samples(before.encode(), True)[(success, (("app_id", "APP_A"),))]
    )
    assert value(after, "process_open_fds") >= value(before, "process_open_fds") + IDLE_CONNECTIONS


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_gzip_body_reads_as_one_stream_with_python_gzip(served: str, openmetrics: bool) -> None:
    headers = {"Accept-Encoding": "gzip", **(OPENMETRICS if openmetrics else {})}
    response = requests.get(served, headers=headers, timeout=10, stream=True)
    assert response.headers["Content-Encoding"] == "gzip"
    raw = response.raw.read(decode_content=False)
    assert len(raw) == int(response.headers["Content-Length"])
    plain = scrape(served, headers={"Accept-Encoding": "identity", **headers}).content
    assert api_samples(gzip.decompress(raw), openmetrics) == api_samples(plain, openmetrics)


def test_gzip_body_reads_with_requests(served: str) -> None:
    response = scrape(served, headers={"Accept-Encoding": "gzip", **OPENMETRICS})
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.text.endswith("# EOF\n")
    assert value(response.text, "process_open_fds") > 0


def test_gzip_body_reads_with_curl(served: str) -> None:
    result = subprocess.run(
        [require_tool("curl"), "--silent", "--show-error", "--fail", "--compressed", served],
        capture_output=True,
        timeout=30,
        check=True,
    )
    text = result.stdout.decode("utf-8")
    assert value(text, "process_open_fds", openmetrics=False) > 0
    names = {
        dict(labels)["name"]
        for name, labels in api_samples(result.stdout, False)
        if name == "aivoice_task_info"
    }
    assert names == set(ODD_NAMES)


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_kept_alive_scrapes_get_whole_bodies(served: str, encoding: str) -> None:
    """Content-Length covers both parts, so the next answer on the connection starts clean."""
    host, port = served.removeprefix("http://").split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        bodies = []
        for method in ("GET", "HEAD", "GET"):
            connection.request(method, "/metrics", headers={"Accept-Encoding": encoding})
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200
            if method == "GET":
                assert len(body) == int(response.headers["Content-Length"])
                bodies.append(gzip.decompress(body) if encoding == "gzip" else body)
            else:
                assert body == b""
    finally:
        connection.close()
    first, second = (api_samples(body, openmetrics=False) for body in bodies)
    assert first == second
    assert first
