"""Shared fixtures: the simulator in-process, and the real exporter as a subprocess.

Everything listens on 127.0.0.1 with ports the kernel picks, and everything started here is
stopped when its test ends.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.simulator import Simulator
from tests.support.simulator_process import SimulatorProcess

API_KEY = "testKey1"
API_SECRET = "test-secret-value"
APP_IDS = ("APP_A", "APP_B")
_ADDRESS = re.compile(r"msg=Listening address=(\S+)")


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator(API_KEY, API_SECRET, APP_IDS, seed=7).start("127.0.0.1", 0)
    try:
        yield sim
    finally:
        sim.stop()


def config_for(sim: Simulator | SimulatorProcess, **sections: dict[str, Any]) -> dict[str, Any]:
    """A valid config document aimed at the simulator; `sections` override parts of it."""
    config: dict[str, Any] = {
        "api": {"base_url": sim.base_url, "timeout_seconds": 2, "max_requests_per_second": 200},
        "poll": {"interval_seconds": 1, "concurrency": 4, "stale_after_seconds": 30},
        "accounts": [{"api_key": API_KEY, "api_secret": API_SECRET, "app_ids": list(APP_IDS)}],
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values} if isinstance(values, dict) else values
    return config


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class ExporterProcess:
    """A running `python -m exporter`, with its log lines collected as they come."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    address: str = ""

    @property
    def url(self) -> str:
        scheme = "https" if "--web.config.file" in self.process.args else "http"  # type: ignore[operator]
        return f"{scheme}://{self.address}"

    def log_text(self) -> str:
        return "\n".join(self.lines)

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = self.process.poll() is not None
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            if exited:
                break
            time.sleep(0.05)
        raise AssertionError(f"no log line matching {pattern!r} in:\n{self.log_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def _collect(stream: Any, lines: list[str]) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))


@pytest.fixture
def start_exporter() -> Iterator[Callable[..., ExporterProcess]]:
    """Start the exporter CLI with the given flags; waits until it says where it listens."""
    started: list[ExporterProcess] = []

    def start(*args: str, wait: bool = True, env: dict[str, str] | None = None) -> ExporterProcess:
        command = [sys.executable, "-m", "exporter", "--web.listen-address", "127.0.0.1:0", *args]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            env={**os.environ, **(env or {})},
        )
        exporter = ExporterProcess(process)
        started.append(exporter)
        threading.Thread(
            target=_collect, args=(process.stdout, exporter.lines), daemon=True
        ).start()
        if wait:
            line = exporter.wait_for_log(r"msg=Listening ")
            exporter.address = _ADDRESS.search(line).group(1)  # type: ignore[union-attr]
        return exporter

    yield start
    for exporter in started:
        if exporter.process.poll() is None:
            exporter.process.kill()
            exporter.process.wait()


def require_tool(*names: str) -> str:
    """The first of these commands found; in CI a missing one fails (`make test` installs them).

    Commands installed into this Python's environment (the venv's bin/) count too.
    """
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), str(Path(sys.executable).parent)])
    for name in names:
        path = shutil.which(name, path=search)
        if path:
            return path
    message = f"{' or '.join(names)} not found on PATH (`make test` installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def wait_until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; fail with the last result otherwise."""
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last result: {result!r}")


def scrape(url: str, **kwargs: Any) -> requests.Response:
    response = requests.get(url, timeout=10, **kwargs)
    response.raise_for_status()
    return response
