"""Measure what call outcomes cost a real exporter process, and print figures and ratios.

Black-box, like bench.py: the exporter runs as `python -m exporter`, its CPU is read from
/proc, its counts from /metrics. Two scenes:

1. The push. PUSHES call records, each about 1.5 kB with a transcript and personal data as the
   vendor sends them, one in twenty sent twice, go from SENDERS threads, a new connection each
   as the vendor does, to the exporter's push listener, then to `naive_push.py` (json.loads, a
   labelled Counter, no token, no bounds, no de-duplication). Figures: pushes a second and CPU
   per push of each receiver, and that the exporter counted each call once.
2. recordQuery. The exporter polls an app whose window holds thousands of calls, with
   `calls.enabled` off and then on: CPU per poll each way, and CPU per call record read.
3. The simulator's recordQuery pages. A window of PAGE_SCENE_CALLS calls is read whole, page by
   page over HTTP, as the clock and the window move five seconds a read (as an exporter polls):
   the median and 90th percentile time of a page of 100, against drawing the window afresh for
   a page (what the simulator did before its CallIndex). Target: a median of 10 ms or less.

Scenes 1 and 2 have no targets: their figures size a deployment (docs/operations.md,
"Sizing"). Run with
`make bench-calls` or `python benchmarks/bench_calls.py [--quick]`. Timings vary on a shared
machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import yaml
from bench import HERE, cpu_seconds
from prometheus_client.parser import text_string_to_metric_families

from exporter.api.records import WINDOW_FORMAT, record_query_request
from exporter.api.wire import sign_headers
from exporter.simulator import Simulator
from exporter.simulator.campaigns import CREATE_TIME_ZONE

KEY, SECRET, APP = "benchKey", "bench-secret", "BENCH_APP"
TOKEN = "bench-push-token-0123456789"
SENDERS = 4
PAGE_SCENE_CALLS = 20_000
PAGE_TARGET_SECONDS = 0.010
RESULTS = ("ANSWERED", "NO_ANSWER", "BUSY", "POWER_OFF", "CALL_LOSS", "FROM_PHONE_ERROR")


def push_bodies(count: int) -> list[bytes]:
    """`count` pushes of distinct calls, one in twenty followed later by a second copy."""
    rng = random.Random(0)
    bodies = []
    for index in range(count):
        talk = rng.randint(0, 300)
        record = {
            "callId": str(10**17 + index),
            "appId": APP,
            "robotCallJobId": rng.randint(1, 500),
            "resultStatus": rng.choice(RESULTS),
            "hangupBy": "REMOTE_HANGUP",
            "chatDuration": talk,
            "billingTime": -(-talk // 60) * 60,
            "pay": f"{-(-talk // 60) * 0.05:.2f}",
            "intentLevelDetailName": rng.choice(("A", "B", "C", "")),
            "calledPhoneNumber": f"1555{rng.randrange(10**6, 10**7)}",
            "customerPersonName": "Ada Lovelace",
            "callDetailList": [{"role": "ROBOT", "text": "Hello there " * 8}] * 10,
            "fullAudioUrl": f"https://audio.example.invalid/{index}.wav",
            "properties": json.dumps({"segment": "retail", "phone": "15550000000"}),
        }
        bodies.append(json.dumps(record).encode())
    repeats = bodies[::20]
    return bodies + repeats


def send_all(port: int, path: str, bodies: list[bytes]) -> float:
    """Send every body on its own connection from SENDERS threads; the wall time taken."""

    def send(body: bytes) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            if answer.status != 200 or answer.read() != b"success":
                raise RuntimeError(f"push answered {answer.status}")
        finally:
            connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(SENDERS) as senders:
        list(senders.map(send, bodies))
    return time.perf_counter() - started


@contextmanager
def exporter(sim: Simulator, calls: bool, push: bool, lookback: float = 300) -> Iterator[Any]:
    """The exporter process; yields (process, metrics URL, push port or None)."""
    config: dict[str, Any] = {
        "api": {"base_url": sim.base_url, "max_requests_per_second": 1000, "timeout_seconds": 30},
        "poll": {"interval_seconds": 5, "timeout_seconds": 60},
        "accounts": [{"api_key": KEY, "api_secret": SECRET, "app_ids": [APP]}],
        "calls": {"enabled": calls, "lookback_seconds": lookback},
    }
    if push:
        config["push"] = {"listen_address": "127.0.0.1:0", "token": TOKEN}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        command = [sys.executable, "-m", "exporter", "--config.file", str(path)]
        command += ["--web.listen-address", "127.0.0.1:0"]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        try:
            found: dict[str, str] = {}
            assert process.stderr is not None
            for line in process.stderr:
                for name in ("Listening", "Push listener started"):
                    match = re.search(rf'msg="?{name}"? address=(\S+)', line)
                    if match:
                        found[name] = match.group(1)
                if "Listening" in found and (not push or "Push listener started" in found):
                    break
            threading.Thread(target=process.stderr.read, daemon=True).start()  # Drain.
            push_port = int(found["Push listener started"].rsplit(":", 1)[1]) if push else None
            yield process, f"http://{found['Listening']}/metrics", push_port
        finally:
            process.terminate()
            process.wait(10)


def samples(url: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = requests.get(url, timeout=30).text
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def push_scene(pushes: int) -> None:
    bodies = push_bodies(pushes)
    sim = Simulator(KEY, SECRET, [APP], tasks_per_app=0).start()
    try:
        with exporter(sim, calls=False, push=True) as (process, url, port):
            time.sleep(1)
            before = cpu_seconds(process.pid)
            ours_wall = send_all(port, f"/push/call-record/{TOKEN}", bodies)
            ours_cpu = cpu_seconds(process.pid) - before
            records = samples(url, "aivoice_call_records_total")
            results = samples(url, "aivoice_call_results_total")
    finally:
        sim.stop()
    counted = records[(("app_id", APP), ("outcome", "counted"), ("source", "push"))]
    duplicates = records[(("app_id", APP), ("outcome", "duplicate"), ("source", "push"))]
    naive = subprocess.Popen(
        [sys.executable, str(HERE / "naive_push.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert naive.stdout is not None
        port = int(naive.stdout.readline().split()[-1])
        before = cpu_seconds(naive.pid)
        naive_wall = send_all(port, "/", bodies)
        naive_cpu = cpu_seconds(naive.pid) - before
    finally:
        naive.terminate()
        naive.wait(10)
    sent = len(bodies)
    print(f"\n1. The push: {sent} pushes ({pushes} calls, {sent - pushes} sent twice)")
    print(f"{'':28}{'exporter':>12}{'naive':>12}{'ratio':>8}")
    print(
        f"{'pushes per second':28}{sent / ours_wall:12.0f}{sent / naive_wall:12.0f}"
        f"{(sent / ours_wall) / (sent / naive_wall):8.2f}"
    )
    print(
        f"{'CPU per push (ms)':28}{ours_cpu / sent * 1e3:12.3f}{naive_cpu / sent * 1e3:12.3f}"
        f"{ours_cpu / naive_cpu:8.2f}"
    )
    print(
        f"exporter counted {counted:.0f} calls, {duplicates:.0f} duplicates, "
        f"{sum(results.values()):.0f} in aivoice_call_results_total"
        + ("" if counted == pushes and duplicates == sent - pushes else "  <- NOT each once")
    )


def poll_scene(polls: int) -> None:
    # At ten times the speed, the app's 12 campaigns end about 40 calls a second.
    sim = Simulator(KEY, SECRET, [APP], speed=10.0).start()
    figures = {}
    try:
        for calls in (False, True):
            with exporter(sim, calls=calls, push=False) as (process, url, _):
                time.sleep(7)  # Start-up and the first poll (which only remembers the calls).
                before, started = (
                    cpu_seconds(process.pid),
                    samples(url, "aivoice_call_records_total"),
                )
                time.sleep(5 * polls)
                cpu = cpu_seconds(process.pid) - before
                ended = samples(url, "aivoice_call_records_total")
            read = sum(ended.values()) - sum(started.values())
            figures[calls] = (cpu / polls, read / polls)
    finally:
        sim.stop()
    (off, _), (on, records) = figures[False], figures[True]
    print(f"\n2. recordQuery: one app, 12 campaigns, a 300 s window, {polls} polls of 5 s each way")
    print(f"CPU per poll, calls off: {off * 1e3:8.1f} ms")
    print(f"CPU per poll, calls on:  {on * 1e3:8.1f} ms  ({records:.0f} call records read a poll)")
    if records:
        print(f"CPU per call record read: {(on - off) / records * 1e6:.1f} µs")


class SteppedClock:
    """The simulator's clock, moved by the scene: every read sees the next poll's time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def window_text(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, CREATE_TIME_ZONE).strftime(WINDOW_FORMAT)


def page_scene(reads: int) -> bool:
    """Time recordQuery pages of a window of PAGE_SCENE_CALLS calls; True if on target."""
    clock = SteppedClock(1_700_000_000.0)
    sim = Simulator(KEY, SECRET, [APP], tasks_per_app=60, clock=clock).start()
    clock.now += 3600  # an hour in: the campaigns run at their full rate
    span = 60
    while len(sim.calls(APP, clock.now - span, clock.now)) < PAGE_SCENE_CALLS:
        span += 60
    url = f"{sim.base_url}/recordQuery"
    times: list[float] = []
    fresh: list[float] = []
    in_window = 0
    try:
        with requests.Session() as session:
            for _ in range(reads):
                clock.now += 5
                start, end = window_text(clock.now - span), window_text(clock.now)
                current, pages = 1, 1
                while current <= pages:
                    body = record_query_request(APP, start, end, current, 100)
                    headers = sign_headers(KEY, SECRET, clock.now)
                    began = time.perf_counter()
                    answer = session.post(url, data=body, headers=headers, timeout=60)
                    times.append(time.perf_counter() - began)
                    data = answer.json()["data"]
                    pages, in_window = int(data["pages"]), int(data["total"])
                    current += 1
                for _ in range(3):  # baseline: the whole window drawn again for a page
                    began = time.perf_counter()
                    json.dumps(sim.calls(APP, clock.now - span, clock.now)[:100])
                    fresh.append(time.perf_counter() - began)
    finally:
        sim.stop()
    median, p90 = statistics.median(times), statistics.quantiles(times, n=10)[-1]
    baseline = statistics.median(fresh)
    print(f"\n3. recordQuery pages: {in_window} calls in a {span} s window, {reads} reads")
    print(
        f"{len(times)} pages of 100: median {median * 1e3:.1f} ms, "
        f"90th percentile {p90 * 1e3:.1f} ms"
    )
    print(
        f"drawing the window afresh for a page: {baseline * 1e3:.1f} ms ({baseline / median:.0f}x)"
    )
    on_target = median <= PAGE_TARGET_SECONDS
    print(
        f"target: median <= {PAGE_TARGET_SECONDS * 1e3:.0f} ms: {'met' if on_target else 'MISSED'}"
    )
    return on_target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pushes and polls")
    args = parser.parse_args()
    push_scene(2000 if args.quick else 10000)
    poll_scene(3 if args.quick else 6)
    return 0 if page_scene(3 if args.quick else 10) else 1


if __name__ == "__main__":
    sys.exit(main())
