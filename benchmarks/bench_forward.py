"""Measure what forwarding pushes along `push.peers` costs, and print figures and ratios.

Black-box, like bench_calls.py: exporters run as `python -m exporter`, their CPU is read from
/proc, their counts from /metrics. The same PUSHES call records (bench_calls.push_bodies: about
1.5 kB each, one in twenty sent twice) go from SENDERS threads, a new connection each, to:

1. one exporter alone (no shards, no peers): the baseline;
2. the first of two replicas of one shard (`push.peers` lists both): it counts each push and
   forwards it to the other before it answers;
3. a process of shard 0 of two, for an account of shard 1 (one replica each): it only
   forwards.

Figures: pushes a second as the vendor sees them, CPU per push of each process, the ratios
against the baseline, and that every owner counted each call once. No target: the figures size
a deployment (docs/operations.md, "More than one process"). Run with
`python benchmarks/bench_forward.py [--quick]`. Timings vary on a shared machine.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml
from bench import cpu_seconds
from bench_calls import APP, KEY, SECRET, SENDERS, TOKEN, push_bodies, samples, send_all

from exporter.config.shard import shard_of
from exporter.simulator import Simulator

PATH = f"/push/call-record/{TOKEN}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def account_on(shard: int, total: int) -> str:
    """An account name that the hash puts on `shard` of `total`."""
    return next(f"bench-{i}" for i in range(1000) if shard_of(f"bench-{i}", total) == shard)


@contextmanager
def exporter(
    folder: Path, sim: Simulator, push_port: int, peers: list[str], shard: int, total: int
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """An exporter process with the push on `push_port`; yields it and its metrics URL."""
    config: dict[str, Any] = {
        "api": {"base_url": sim.base_url, "max_requests_per_second": 1000},
        "poll": {"interval_seconds": 60},
        "accounts": [
            {"name": account_on(1 % total, total), "api_key": KEY, "api_secret": SECRET},
        ],
        "push": {"listen_address": f"127.0.0.1:{push_port}", "token": TOKEN},
    }
    config["accounts"][0]["app_ids"] = [APP]
    if peers:
        config["push"]["peers"] = peers
    path = folder / f"config-{push_port}.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    command = [sys.executable, "-m", "exporter", "--config.file", str(path)]
    command += ["--web.listen-address", "127.0.0.1:0"]
    command += ["--shard", str(shard), "--total-shards", str(total)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        address = ""
        for line in process.stderr:
            match = re.search(r'msg="?Listening"? address=(\S+)', line)
            if match:
                address = match.group(1)
                break
        threading.Thread(target=process.stderr.read, daemon=True).start()  # Drain.
        yield process, f"http://{address}/metrics"
    finally:
        process.terminate()
        process.wait(10)


def counted(url: str) -> float:
    records = samples(url, "aivoice_call_records_total")
    return records.get((("app_id", APP), ("outcome", "counted"), ("source", "push")), 0.0)


def scene(
    sim: Simulator, bodies: list[bytes], total: int, replicas: int
) -> tuple[float, list[float], list[float]]:
    """Pushes a second, and CPU per push and calls counted of each process (the first gets
    every push)."""
    ports = [free_port() for _ in range(total * replicas)]
    peers = [f"http://127.0.0.1:{port}" for port in ports] if len(ports) > 1 else []
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        started = [
            stack.enter_context(exporter(Path(folder), sim, port, peers, ordinal, total))
            for ordinal, port in enumerate(ports)
        ]
        time.sleep(1)
        before = [cpu_seconds(process.pid) for process, _ in started]
        wall = send_all(ports[0], PATH, bodies)
        cpu = [
            cpu_seconds(process.pid) - b for (process, _), b in zip(started, before, strict=True)
        ]
        counts = [counted(url) for _, url in started]
    return len(bodies) / wall, [c / len(bodies) for c in cpu], counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pushes")
    args = parser.parse_args()
    pushes = 2000 if args.quick else 10000
    bodies = push_bodies(pushes)
    sim = Simulator(KEY, SECRET, [APP], tasks_per_app=0).start()
    try:
        alone = scene(sim, bodies, total=1, replicas=1)
        replicas = scene(sim, bodies, total=1, replicas=2)
        other = scene(sim, bodies, total=2, replicas=1)
    finally:
        sim.stop()
    print(f"Forwarding pushes: {len(bodies)} pushes ({pushes} calls), {SENDERS} senders")
    print(f"{'':44}{'pushes/s':>10}{'ratio':>8}{'CPU/push ms':>18}{'counted':>16}")
    rows = (
        ("1. one exporter alone", alone),
        ("2. replica: counts and forwards to 1 peer", replicas),
        ("3. other shard: only forwards", other),
    )
    ok = True
    for name, (rate, cpu, counts) in rows:
        shown_cpu = " + ".join(f"{c * 1e3:.3f}" for c in cpu)
        shown_counts = " + ".join(f"{c:.0f}" for c in counts)
        print(f"{name:44}{rate:10.0f}{rate / alone[0]:8.2f}{shown_cpu:>18}{shown_counts:>16}")
    expected = ([pushes], [pushes, pushes], [0, pushes])
    for (name, (_, _, counts)), want in zip(rows, expected, strict=True):
        if counts != want:
            print(f"{name}: counted {counts}, expected {want}  <- NOT each once by each owner")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
