"""Fixtures for every layer: the simulator in-process, hostile API servers, the real exporter as
a subprocess, and certificates for TLS. The tools behind them live in tests/support.

Everything listens on 127.0.0.1 with ports the kernel picks, and everything started here is
stopped when its test (or, for the certificates, the session) ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from exporter.simulator import Simulator
from tests.support.configs import API_KEY, API_SECRET, APP_IDS
from tests.support.hostile_api import HostileApi
from tests.support.processes import ExporterProcess, start_exporter_process
from tests.support.tls import Certs, make_certs
from tests.support.tools import require_tool


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator(API_KEY, API_SECRET, APP_IDS, seed=7).start("127.0.0.1", 0)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def api() -> Iterator[HostileApi]:
    """A scripted hostile API server (see tests/support/hostile_api.py)."""
    with HostileApi() as server:
        yield server


@pytest.fixture
def elsewhere() -> Iterator[HostileApi]:
    """A second one, for where a redirect points: it must never be asked anything."""
    with HostileApi() as server:
        yield server


@pytest.fixture
def start_exporter() -> Iterator[Callable[..., ExporterProcess]]:
    """Start the exporter CLI with the given flags; waits until it says where it listens."""
    started: list[ExporterProcess] = []

    def start(*args: str, wait: bool = True, env: dict[str, str] | None = None) -> ExporterProcess:
        exporter = start_exporter_process(*args, wait=wait, env=env)
        started.append(exporter)
        return exporter

    yield start
    for exporter in started:
        exporter.kill()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, a server certificate for 127.0.0.1, and client certificates, made by openssl."""
    require_tool("openssl")
    return make_certs(tmp_path_factory.mktemp("certs"))
