"""Waiting, scraping, and the external programs some tests need."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest
import requests


def unavailable(reason: str) -> NoReturn:
    """Something a test needs is missing: a failure in CI (`make test` installs everything),
    a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def require_tool(*names: str) -> str:
    """The first of these commands found; see `unavailable` for when none is.

    Commands installed into this Python's environment (the venv's bin/) count too.
    """
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), str(Path(sys.executable).parent)])
    for name in names:
        path = shutil.which(name, path=search)
        if path:
            return path
    unavailable(f"{' or '.join(names)} not found on PATH (`make test` installs it)")


def wait_until(
    check: Callable[[], Any],
    timeout: float = 60.0,
    interval: float = 0.1,
    *,
    ignoring: tuple[type[Exception], ...] = (),
    what: str = "condition",
) -> Any:
    """Poll `check` until it returns something truthy, and return that; fail with the last
    result otherwise. Exceptions of the `ignoring` types count as a falsy result."""
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        with contextlib.suppress(*ignoring):
            result = check()
            if result:
                return result
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s; last result: {result!r}")


def free_ports(count: int) -> list[int]:
    """`count` different loopback ports free now, for programs that cannot report the one they
    bound (Prometheus, Alertmanager), or whose port another program needs before they start.

    They are drawn below the kernel's ephemeral range: a port from that range is also what the
    suite's outgoing connections are given, and one of those could take it between this check
    and the program's bind (seen on a loaded machine). Below it, only a concurrent draw of this
    function could, at random among thousands. Each stays bound until all are drawn, so they
    differ."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    draw = random.SystemRandom()
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", draw.randrange(max(1024, low // 2), low)))
            except OSError:  # Taken: draw again.
                sock.close()
                continue
            held.append(sock)
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()


def free_port() -> int:
    """One port as `free_ports` draws them."""
    return free_ports(1)[0]


def scrape(url: str, **kwargs: Any) -> requests.Response:
    """GET that fails the test unless the answer is a 2xx."""
    response = requests.get(url, **{"timeout": 30, **kwargs})
    response.raise_for_status()
    return response


def read_until_closed(sock: socket.socket) -> bytes:
    """All the server sends on `sock` until it hangs up (with a goodbye or a reset)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received
