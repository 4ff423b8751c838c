"""Child processes with their output collected line by line: the exporter, Prometheus, ...

Output is read on a thread as it comes, so a test can wait for a line while the process runs
and show the log when something goes wrong. Whoever starts a process kills it when done.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Process:
    """A running child, stdout and stderr as one stream of lines."""

    name: str
    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        name: str,
        command: list[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Process:
        """Run `command`; `env` replaces the environment, which is inherited without it."""
        popen = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        process = cls(name, popen)
        threading.Thread(target=process._collect, daemon=True).start()
        return process

    def _collect(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first line matching `pattern`; fails with the log if none comes in time or the
        process exits without one."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = self.popen.poll() is not None
            found = next((m for m in map(regex.search, list(self.lines)) if m), None)
            if found:
                return found
            if exited:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no line matching {pattern!r} in:\n{self.log()}")

    def log(self, last: int | None = None) -> str:
        lines = self.lines if last is None else self.lines[-last:]
        return "\n".join(lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` and return the exit code; fails (after a kill) if it does not exit."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} still ran {timeout} s after {sig!r}") from None

    def kill(self) -> None:
        """Make sure it is gone, whatever state it is in."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()


@dataclass
class ExporterProcess(Process):
    """A running `python -m exporter`, with the address it listens on once it says so."""

    address: str = ""

    def wait_until_listening(self, timeout: float = 60.0) -> str:
        """The HOST:PORT it logs it listens on (logfmt logs), kept in `address`."""
        line = self.wait_for_line(r'msg="?Listening"? address=(\S+)', timeout)
        self.address = line.group(1)
        return self.address

    @property
    def url(self) -> str:
        scheme = "https" if "--web.config.file" in self.popen.args else "http"  # type: ignore[operator]
        return f"{scheme}://{self.address}"


def start_exporter_process(
    *args: str,
    wait: bool = True,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> ExporterProcess:
    """The exporter CLI on 127.0.0.1 and a free port, with the given flags and `env` added to
    the environment; unless `wait` is false, returns once it says where it listens."""
    command = [sys.executable, "-m", "exporter", "--web.listen-address", "127.0.0.1:0", *args]
    process = ExporterProcess.start("exporter", command, cwd=cwd, env={**os.environ, **(env or {})})
    assert isinstance(process, ExporterProcess)
    if wait:
        try:
            process.wait_until_listening()
        except BaseException:
            process.kill()
            raise
    return process


def start_simulator_process(
    *flags: str, cwd: Path | None = None, timeout: float = 120.0
) -> tuple[Process, str]:
    """`python -m exporter.simulator` on a free loopback port with the given flags, and the
    base URL of the API it serves, once it says so."""
    command = [sys.executable, "-m", "exporter.simulator", "--listen-address", "127.0.0.1:0"]
    process = Process.start("simulator", [*command, *flags], cwd=cwd)
    try:
        base_url = process.wait_for_line(r"listening on (\S+)", timeout).group(1)
    except BaseException:
        process.kill()
        raise
    return process, base_url
