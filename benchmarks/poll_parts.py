"""Where a poll's CPU goes: the exporter's own steps, one after the other, timed apart.

Unlike bench.py this one is white-box: it imports the exporter's modules and runs the steps of
one app's poll in this process, in order and on one thread, against the simulator running as a
process of its own (so its CPU is not counted here):

- requests: every page's request and answer through the exporter's transport (signing
  included), per request;
- decoding: `json.loads` of every page's body;
- checking: the rest of reading a page into `Task`s (every field checked and cleaned);
- snapshot: one read's tasks, each once, and the app's `AppSnapshot`;
- rendering: the app's lines, every family's;
- first scrape: the gzipped OpenMetrics body the first scrape after a poll gets.

What the daemon adds (its threads, the rate limiter, the recorder) is the difference between
bench.py's figure and the sum here. Process CPU (`time.process_time`), median of the rounds.

    python benchmarks/poll_parts.py [--tasks 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from exporter.api.reads import task_read
from exporter.api.transport import Transport
from exporter.api.wire import page_request, parse_page, sign_headers
from exporter.config.model import ApiConfig, MetricsConfig
from exporter.exposition.exposition import ReloadStatus, Renderer
from exporter.snapshot import AppSnapshot, Snapshot

KEY, SECRET, APP = "benchKey", "bench-secret", "BENCH_APP"
PAGE_SIZE = 100


@contextmanager
def simulator(tasks: int) -> Iterator[str]:
    """The simulator in a process of its own; yields its base URL."""
    command = [sys.executable, "-m", "exporter.simulator", "--listen-address", "127.0.0.1:0"]
    command += ["--api-key", KEY, "--api-secret", SECRET, "--app-ids", APP]
    command += ["--tasks-per-app", str(tasks)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "listening on " in line:
                yield line.split("listening on ", 1)[1].split()[0]
                break
        else:
            raise RuntimeError("the simulator did not start")
    finally:
        process.terminate()
        process.wait(10)


def timed(step: Callable[[], Any]) -> tuple[float, Any]:
    started = time.process_time()
    result = step()
    return time.process_time() - started, result


def one_round(transport: Transport, base_url: str, api: ApiConfig) -> dict[str, float]:
    zone = api.create_time_zone

    def fetch(current: int) -> bytes:
        headers = sign_headers(KEY, SECRET, time.time())
        body = page_request(APP, current, PAGE_SIZE)
        return transport.send("POST", f"{base_url}/taskList", headers, body)

    first_cpu, first = timed(lambda: fetch(1))
    pages_count = json.loads(first)["data"]["pages"]
    rest_cpu, rest = timed(lambda: [fetch(n) for n in range(2, pages_count + 1)])
    bodies = [first, *rest]
    decode_cpu, _ = timed(lambda: [json.loads(body) for body in bodies])
    parse_cpu, pages = timed(lambda: [parse_page(body, zone) for body in bodies])

    def snapshot() -> Snapshot:
        read = task_read(pages)
        app = AppSnapshot(APP, True, read.tasks, 1.0, time.time())
        return Snapshot(apps=(app,), requests={})

    snapshot_cpu, built = timed(snapshot)
    renderer = Renderer(MetricsConfig())
    reload = ReloadStatus(True, time.time())
    render_cpu, exposition = timed(lambda: renderer.render(built, reload))
    gzip_cpu, _ = timed(lambda: exposition.body(openmetrics=True, gzipped=True))
    return {
        "requests": first_cpu + rest_cpu,
        "per request (ms)": (first_cpu + rest_cpu) / len(bodies) * 1000,
        "decoding": decode_cpu,
        "checking": parse_cpu - decode_cpu,
        "snapshot": snapshot_cpu,
        "rendering": render_cpu,
        "first scrape": gzip_cpu,
        "tasks": len(built.apps[0].tasks or ()),
        "pages": len(bodies),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with simulator(args.tasks) as base_url:
        api = ApiConfig(base_url=base_url)
        transport = Transport(
            base_url,
            timeout_seconds=api.timeout_seconds,
            max_response_bytes=api.max_response_bytes,
            pool_size=1,
        )
        rounds = [one_round(transport, base_url, api) for _ in range(args.rounds)]
        transport.close()
    first = rounds[0]
    print(f"{first['tasks']:,} tasks in {first['pages']} pages; median of {args.rounds} rounds:")
    steps = ("requests", "decoding", "checking", "snapshot", "rendering", "first scrape")
    medians = {
        key: statistics.median(r[key] for r in rounds) for key in (*steps, "per request (ms)")
    }
    total = sum(medians[step] for step in steps)
    for step in steps:
        print(f"  {step:<12} {medians[step]:6.3f} s CPU  {medians[step] / total:4.0%}")
    print(f"  {'total':<12} {total:6.3f} s CPU")
    print(f"  per request {medians['per request (ms)']:.2f} ms CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
