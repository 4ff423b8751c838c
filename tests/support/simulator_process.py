"""The simulator in a process of its own, driven over its HTTP control endpoints.

For tests whose own process is busy (the soak's scrapers) or whose threads are counted: an
in-process simulator would share the GIL, and its threads, with what is being measured.
"""

from __future__ import annotations

import subprocess
import sys
from types import TracebackType
from typing import Any

import requests

from exporter.simulator import Faults


class SimulatorProcess:
    """`python -m exporter.simulator` on a free loopback port; stopped on `stop()` or exit."""

    def __init__(self, api_key: str, api_secret: str, app_ids: list[str], **options: int) -> None:
        flags = [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter.simulator",
                "--listen-address=127.0.0.1:0",
                f"--api-key={api_key}",
                f"--api-secret={api_secret}",
                f"--app-ids={','.join(app_ids)}",
                *flags,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.base_url = line.strip().removeprefix("listening on ")
        self._control = self.base_url.removesuffix("/aivoice")

    def stats(self) -> dict[str, Any]:
        response = requests.get(f"{self._control}/-/stats", timeout=10)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def set_faults(self, faults: Faults) -> None:
        response = requests.post(f"{self._control}/-/faults", json=faults.to_dict(), timeout=10)
        response.raise_for_status()

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
