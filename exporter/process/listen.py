"""Listen addresses as the Go exporters write them: `:10188`, `127.0.0.1:10188`, `[::1]:10188`.

Shared by the exporter's command line and the simulator's, so it imports nothing of either.
"""

from __future__ import annotations


def parse_listen_address(value: str) -> tuple[str, int]:
    """(host, port); an empty host means every IPv4 address. Raises ValueError if malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"want HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)
