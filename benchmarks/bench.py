"""Measure the exporter against straightforward baselines, in one run, and print the ratios.

1. Scrape latency with 50,000 tasks held: the exporter's cached exposition against labelled
   prometheus_client `Gauge`s rendered at every scrape (what most Python exporters do).
   Both are asked the way Prometheus asks (OpenMetrics preferred, gzip).
2. One poll's wall time over 4 apps x 1,000 tasks behind 100 ms of API latency: the exporter's
   poll against a sequential one (one request at a time, the same client).
3. Resident memory of a real exporter process holding 50,000 tasks, after one scrape, and its
   peak (the first poll's), which is what a container's memory limit must allow.

Targets (issue 2): scrape <= 1/20 of the baseline's time, poll <= 0.35 of the sequential one,
RSS < 150 MB. Run with `make bench` or `python benchmarks/bench.py [--quick]`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import MappingProxyType

import requests
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from exporter.client import ApiClient
from exporter.config import Account, ApiConfig, MetricsConfig
from exporter.metrics import ReloadStatus, render
from exporter.server import MetricsServer, Published, Routes
from exporter.simulator import Faults, Simulator
from exporter.snapshot import KNOWN_STATUSES, AppSnapshot, Snapshot, Task
from exporter.stats import RequestRecorder

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
HEADERS = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
KEY, SECRET = "benchKey", "bench-secret"


def fake_tasks(app_id: str, count: int) -> tuple[Task, ...]:
    return tuple(
        Task(
            job_id=str(100_000 + n),
            name=f"{app_id} campaign {n}",
            status=KNOWN_STATUSES[n % len(KNOWN_STATUSES)],
            calls=1000 + n,
            calls_completed=n,
            robots=1 + n % 5,
            mode="AUTO",
            dialog_flow=f"flow {n % 40}",
            line=f"line{n % 9}",
            hangup_sms=n % 2 == 0,
            dialog_flow_unbound=False,
            created_seconds=1_700_000_000.0 + n,
        )
        for n in range(count)
    )


def time_scrapes(url: str, count: int) -> float:
    """Median seconds for one full scrape, body read and decompressed."""
    session = requests.Session()
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        response = session.get(url, headers=HEADERS, timeout=120)
        response.raise_for_status()
        _ = response.content
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def bench_scrape(tasks: int, scrapes: int) -> tuple[float, float]:
    apps = [f"app{i}" for i in range(4)]
    per_app = {app: fake_tasks(app, tasks // len(apps)) for app in apps}

    snapshot = Snapshot(
        apps=tuple(AppSnapshot(a, True, t, 1.0, time.time()) for a, t in per_app.items()),
        requests=MappingProxyType({}),
    )
    published = Published(render(snapshot, MetricsConfig(), ReloadStatus(True, time.time())))
    server = MetricsServer("127.0.0.1", 0, Routes("/metrics", published))
    server.start()
    host, port = server.address
    ours = time_scrapes(f"http://{host}:{port}/metrics", scrapes)
    server.stop()

    registry = CollectorRegistry()
    job = ["app_id", "job_id"]
    gauges = {
        "calls": Gauge("aivoice_task_calls", "calls", job, registry=registry),
        "completed": Gauge("aivoice_task_calls_completed", "done", job, registry=registry),
        "robots": Gauge("aivoice_task_robots", "robots", job, registry=registry),
        "created": Gauge("aivoice_task_created_timestamp_seconds", "c", job, registry=registry),
    }
    info_labels = [*job, "name", "status", "mode", "dialog_flow", "line", "hangup_sms", "unbound"]
    info = Gauge("aivoice_task_info", "info", info_labels, registry=registry)
    for app, app_tasks in per_app.items():
        for t in app_tasks:
            gauges["calls"].labels(app, t.job_id).set(t.calls)
            gauges["completed"].labels(app, t.job_id).set(t.calls_completed)
            gauges["robots"].labels(app, t.job_id).set(t.robots)
            gauges["created"].labels(app, t.job_id).set(t.created_seconds or 0)
            info.labels(
                app, t.job_id, t.name, t.status, t.mode, t.dialog_flow, t.line, "false", "false"
            ).set(1)
    baseline_server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    baseline = time_scrapes(
        f"http://127.0.0.1:{baseline_server.server_address[1]}/metrics", max(3, scrapes // 5)
    )
    baseline_server.shutdown()
    baseline_server.server_close()
    return ours, baseline


def poll_seconds(sim: Simulator, apps: list[str], concurrency: int) -> float:
    api = ApiConfig(base_url=sim.base_url, timeout_seconds=10, max_requests_per_second=1000)
    client = ApiClient(
        Account(KEY, SECRET, tuple(apps)),
        api,
        session=requests.Session(),
        recorder=RequestRecorder(),
        in_flight=threading.Semaphore(concurrency),
        workers=concurrency,
        stop=threading.Event(),
    )
    started = time.perf_counter()
    if concurrency == 1:
        for app in apps:
            client.fetch_tasks(app)
    else:
        threads = [threading.Thread(target=client.fetch_tasks, args=(app,)) for app in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return time.perf_counter() - started


def bench_poll(tasks_per_app: int, latency: float) -> tuple[float, float]:
    apps = [f"app{i}" for i in range(4)]
    with Simulator(KEY, SECRET, apps, tasks_per_app=tasks_per_app) as sim:
        sim.set_faults(Faults(latency_seconds=latency))
        poll_seconds(sim, apps[:1], 4)  # Warm up the connection pool and the simulator.
        ours = poll_seconds(sim, apps, concurrency=4)
        sequential = poll_seconds(sim, apps, concurrency=1)
    return ours, sequential


def bench_rss(tasks: int) -> tuple[float, float]:
    """MB resident in a real exporter process polling `tasks` tasks after one gzip scrape, and
    the most it ever held (VmHWM)."""
    apps = [f"app{i}" for i in range(4)]
    with Simulator(KEY, SECRET, apps, tasks_per_app=tasks // len(apps)) as sim:
        config = {
            "api": {"base_url": sim.base_url, "max_requests_per_second": 1000},
            "poll": {"interval_seconds": 3600},
            "accounts": [{"api_key": KEY, "api_secret": SECRET, "app_ids": apps}],
        }
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "config.yaml"
            path.write_text(yaml.safe_dump(config))
            path.chmod(0o600)  # It holds a secret.
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "exporter", "--config.file", str(path)),
                    *("--web.listen-address", "127.0.0.1:0", "--log.level", "warning"),
                ],
            )
            try:
                # Logs are at warning level, so find the bound port in /proc, not in the log.
                url = _wait_for_ready(process.pid)
                time_scrapes(url + "/metrics", 1)
                return _status_mb(process.pid, "VmRSS"), _status_mb(process.pid, "VmHWM")
            finally:
                process.terminate()
                process.wait(10)


def _listening_port(pid: int) -> int | None:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = str(fd.readlink()) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
            return int(fields[1].split(":")[1], 16)
    return None


def _wait_for_ready(pid: int, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        port = _listening_port(pid)
        if port is not None:
            url = f"http://127.0.0.1:{port}"
            try:
                if requests.get(url + "/-/ready", timeout=5).status_code == 200:
                    return url
            except requests.ConnectionError:
                pass
        time.sleep(0.2)
    raise TimeoutError("the exporter never became ready")


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer repetitions.")
    args = parser.parse_args()
    scrapes = 5 if args.quick else 20

    ours, baseline = bench_scrape(50_000, scrapes)
    scrape_ratio = ours / baseline
    print(
        f"scrape, 50,000 tasks: {ours * 1000:8.1f} ms   baseline Gauges {baseline * 1000:8.1f} ms"
    )
    print(f"  ratio {scrape_ratio:.4f} (1/{1 / scrape_ratio:.0f})   target <= 1/20")

    ours, sequential = bench_poll(1000, 0.1)
    poll_ratio = ours / sequential
    print(
        f"poll, 4 apps x 1,000 tasks, 100 ms latency: {ours:.2f} s   sequential {sequential:.2f} s"
    )
    print(f"  ratio {poll_ratio:.3f}   target <= 0.35")

    rss, peak = bench_rss(50_000)
    print(f"RSS, 50,000 tasks, after a scrape: {rss:6.1f} MB   target < 150 MB")
    print(f"  peak {peak:.1f} MB (the first poll): what a memory limit must allow")

    met = scrape_ratio <= 1 / 20 and poll_ratio <= 0.35 and rss < 150
    print("all targets met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
