"""Measure a real exporter process against a naive one, black-box, and print the ratios.

All poll the built-in simulator (in this process): `python -m exporter` with a config file,
`benchmarks/naive_poll.py` (the poll alone: `requests`, `json`, one page at a time, nothing kept
or rendered; the yardstick of the target) and `benchmarks/naive_exporter.py` (that poll into
labelled client_python Gauges, rendered at every scrape). Nothing of the exporter's internals
is imported: everything is read from /proc, the simulator's request count and HTTP scrapes, so
the figures stay comparable while the internals change. Where the exporter's CPU goes inside
a poll is benchmarks/poll_parts.py's. Two scenes:

1. One app of 50,000 tasks, 100 a page, the simulator answering at once: CPU, scrapes, memory.
2. Four apps of 1,000 tasks behind 100 ms of API latency: poll wall time, where paging in
   parallel counts.

In the first scene:

For each process:
- a poll is a burst of activity: it starts when the simulator sees requests or the process uses
  CPU, and ends when neither has moved for IDLE_SECONDS. CPU per poll is the process's
  utime+stime over the burst (/proc/PID/stat), wall time the burst's length;
- after each poll, one scrape as Prometheus makes it (OpenMetrics preferred, gzip), whose CPU
  is reported apart: the exporter compresses a new poll's metrics on the first request for
  them. Then a few more scrapes, for the latency of a cached scrape: from sending the request
  to the last byte of the compressed body (decompressing is the scraper's cost, not measured);
- RSS (VmRSS) after the 5th and the last poll, once that poll's scrapes are done.

The naive poll reports its own CPU (time.process_time around each poll, start-up left out).

Targets: CPU per poll, first scrape included, <= 0.35 of the naive poll's; a scrape <= 1/150
of the naive exporter's; RSS <= 150 MB after the 5th poll and no growth (<= GROWTH_TOLERANCE)
to the 15th; behind latency, poll wall time <= 0.35 of the naive exporter's. Run with
`make bench` or `python benchmarks/bench.py [--quick]`. The machine may be shared: CPU figures
hold, wall times vary between runs.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.simulator import Simulator

PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
KEY, SECRET, APP = "benchKey", "bench-secret", "BENCH_APP"
LATENCY_APPS = ("LAT_A", "LAT_B", "LAT_C", "LAT_D")
PAGE_SIZE = 100
IDLE_SECONDS = 0.8  # No CPU and no request for this long: the poll is over.
SAMPLE_SECONDS = 0.02
CACHED_SCRAPES = 4  # After each poll's first scrape (the naive exporter gets none: 2.5 s each).
GROWTH_TOLERANCE = 0.03  # RSS from the 5th poll to the last: "no growth" allows this much noise.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HERE = Path(__file__).resolve().parent


@dataclass
class Poll:
    cpu_seconds: float
    wall_seconds: float
    requests: int
    scrape_cpu_seconds: float = 0.0
    rss_mb: float = 0.0


@dataclass
class Result:
    polls: list[Poll] = field(default_factory=list)
    first_scrapes: list[float] = field(default_factory=list)  # seconds
    cached_scrapes: list[float] = field(default_factory=list)  # seconds
    cached_scrape_cpu: list[float] = field(default_factory=list)  # seconds
    peak_rss_mb: float = 0.0

    def steady(self) -> list[Poll]:
        """Polls after the first (which also pays for start-up), and only whole ones.

        On a busy machine a poll can run into the next, and two are seen as one, or one as two;
        their request count gives them away.
        """
        usual = statistics.mode(poll.requests for poll in self.polls)
        return [poll for poll in self.polls[1:] if poll.requests == usual] or self.polls

    def left_out(self) -> int:
        return len(self.polls) - 1 - len(self.steady())

    def cpu_per_poll(self) -> float:
        return statistics.median(poll.cpu_seconds for poll in self.steady())

    def first_scrape_cpu(self) -> float:
        return statistics.median(poll.scrape_cpu_seconds for poll in self.steady())

    def wall_per_poll(self) -> float:
        return statistics.median(poll.wall_seconds for poll in self.steady())

    def rss_after(self, poll: int) -> float:
        return self.polls[poll - 1].rss_mb


# ------------------------------------------------------------------------------ the processes


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / 1e6  # The kernel's "kB" are KiB; MB here.
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def listening_port(pid: int) -> int | None:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
            return int(fields[1].split(":")[1], 16)
    return None


@contextmanager
def exporter_process(
    sim: Simulator, interval: float, apps: Sequence[str] = (APP,)
) -> Iterator[subprocess.Popen[bytes]]:
    config = {
        "api": {
            "base_url": sim.base_url,
            "page_size": PAGE_SIZE,
            "max_requests_per_second": 1000,
            "timeout_seconds": 30,
        },
        "poll": {"interval_seconds": interval},
        "accounts": [{"api_key": KEY, "api_secret": SECRET, "app_ids": list(apps)}],
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)  # It holds a secret.
        command = [sys.executable, "-m", "exporter", "--config.file", str(path)]
        command += ["--web.listen-address", "127.0.0.1:0", "--log.level", "warning"]
        with _running(command) as process:
            yield process


@contextmanager
def naive_process(
    sim: Simulator, interval: float, apps: Sequence[str] = (APP,)
) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, str(HERE / "naive_exporter.py"), "--base-url", sim.base_url]
    command += ["--api-key", KEY, "--api-secret", SECRET, "--app-ids", ",".join(apps)]
    command += ["--page-size", str(PAGE_SIZE), "--interval-seconds", str(interval)]
    with _running(command) as process:
        yield process


def naive_polls(sim: Simulator, polls: int) -> list[float]:
    """CPU seconds of each of `polls` naive polls, one after the other in one process."""
    command = [sys.executable, str(HERE / "naive_poll.py"), "--base-url", sim.base_url]
    command += ["--api-key", KEY, "--api-secret", SECRET, "--app-ids", APP]
    command += ["--page-size", str(PAGE_SIZE), "--polls", str(polls)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    return [float(line.split()[1]) for line in output.stdout.splitlines()]


@contextmanager
def _running(command: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------------------ measuring


def control_url(sim: Simulator, path: str) -> str:
    """The simulator's documented control endpoints sit beside the API path."""
    return sim.base_url.rsplit("/aivoice", 1)[0] + path


def request_counter(sim: Simulator) -> Callable[[], int]:
    """Requests the simulator has received, from its /-/stats endpoint."""
    session = requests.Session()
    url = control_url(sim, "/-/stats")
    return lambda: int(session.get(url, timeout=10).json()["requests"])


def poll_walls(process: subprocess.Popen[bytes], sim: Simulator, polls: int) -> list[float]:
    """Wall time of each poll after the first (which also starts the process up)."""
    requests_seen = request_counter(sim)
    walls = [wait_for_poll(process.pid, requests_seen).wall_seconds for _ in range(polls)]
    return walls[1:]


def wait_for_poll(pid: int, requests_seen: Callable[[], int], timeout: float = 600) -> Poll:
    """Block until the process has run one poll (a burst of requests and CPU) and gone quiet."""
    deadline = time.monotonic() + timeout
    base_cpu, base_requests = cpu_seconds(pid), requests_seen()
    started = last_change = None
    cpu, seen = base_cpu, base_requests
    while time.monotonic() < deadline:
        time.sleep(SAMPLE_SECONDS)
        now, new_cpu, new_seen = time.monotonic(), cpu_seconds(pid), requests_seen()
        if (new_cpu, new_seen) != (cpu, seen):
            started = started or now - SAMPLE_SECONDS
            last_change, cpu, seen = now, new_cpu, new_seen
        elif last_change is not None and now - last_change >= IDLE_SECONDS:
            if seen == base_requests:  # Some housekeeping, not a poll: keep waiting.
                base_cpu, started, last_change = cpu, None, None
                continue
            assert started is not None
            return Poll(cpu - base_cpu, last_change - started, seen - base_requests)
    raise TimeoutError("no poll finished in time")


def timed_scrape(session: requests.Session, url: str) -> tuple[float, bytes]:
    """Seconds from the request to the last byte of the (still compressed) body."""
    started = time.perf_counter()
    with session.get(url, headers=PROMETHEUS_HEADERS, timeout=120, stream=True) as response:
        response.raise_for_status()
        body = response.raw.read(decode_content=False)
    return time.perf_counter() - started, body


def check_body(body: bytes) -> int:
    """The scrape is gzipped OpenMetrics that client_python's parser reads; its sample count."""
    families = text_string_to_metric_families(gzip.decompress(body).decode("utf-8"))
    return sum(len(family.samples) for family in families)


def measure(
    process: subprocess.Popen[bytes], sim: Simulator, polls: int, cached_scrapes: int
) -> Result:
    pid = process.pid
    result = Result()
    session = requests.Session()
    url = None
    requests_seen = request_counter(sim)
    for number in range(1, polls + 1):
        poll = wait_for_poll(pid, requests_seen)
        if url is None:
            port = listening_port(pid)
            assert port is not None, "the process listens nowhere"
            url = f"http://127.0.0.1:{port}/metrics"
        before = cpu_seconds(pid)
        seconds, body = timed_scrape(session, url)
        poll.scrape_cpu_seconds = cpu_seconds(pid) - before
        result.first_scrapes.append(seconds)
        for _ in range(cached_scrapes):
            before = cpu_seconds(pid)
            seconds, _ = timed_scrape(session, url)
            result.cached_scrape_cpu.append(cpu_seconds(pid) - before)
            result.cached_scrapes.append(seconds)
        poll.rss_mb = status_mb(pid, "VmRSS")
        result.polls.append(poll)
        print(
            f"    poll {number:2}: {poll.cpu_seconds:5.2f} s CPU, {poll.wall_seconds:5.2f} s wall, "
            f"{poll.requests} requests; first scrape {poll.scrape_cpu_seconds:5.2f} s CPU; "
            f"RSS {poll.rss_mb:6.1f} MB",
            flush=True,
        )
    result.peak_rss_mb = status_mb(pid, "VmHWM")
    samples = check_body(body)  # After the polls: parsing takes seconds, and would overlap one.
    print(f"    the last scrape parses: {samples:,} samples, {len(body) / 1e6:.1f} MB gzipped")
    return result


# ------------------------------------------------------------------------------ the report


def report(
    ours: Result,
    naive: Result,
    naive_poll: float,
    polls: int,
    latency_walls: tuple[float, float],
) -> bool:
    """Print the table; True if every target is met."""
    cpu = ours.cpu_per_poll() + ours.first_scrape_cpu()
    cpu_ratio = cpu / naive_poll
    scrape = statistics.median(ours.cached_scrapes)
    naive_scrape = statistics.median(naive.first_scrapes)
    scrape_ratio = scrape / naive_scrape
    rss5, rss_last = ours.rss_after(5), ours.rss_after(polls)
    growth = rss_last / rss5 - 1
    latency_ratio = latency_walls[0] / latency_walls[1]
    cpu_met = cpu_ratio <= 0.35
    scrape_met = scrape_ratio <= 1 / 150
    rss_met = rss5 <= 150
    growth_met = growth <= GROWTH_TOLERANCE
    latency_met = latency_ratio <= 0.35
    # what, exporter, naive, ratio, target, met (None: no target)
    rows: list[tuple[str, str, str, str, str, bool | None]] = [
        (
            "CPU per poll, its first scrape included",
            f"{cpu:.2f} s",
            f"{naive_poll:.2f} s",
            f"{cpu_ratio:.3f}",
            "<= 0.35",
            cpu_met,
        ),
        ("  (naive: the poll alone, nothing rendered)", "", "", "", "", None),
        (
            "CPU per poll: fetch, parse, render",
            f"{ours.cpu_per_poll():.2f} s",
            f"{naive.cpu_per_poll():.2f} s",
            f"{ours.cpu_per_poll() / naive.cpu_per_poll():.3f}",
            "",
            None,
        ),
        (
            "CPU of the first scrape after a poll",
            f"{ours.first_scrape_cpu():.2f} s",
            f"{naive.first_scrape_cpu():.2f} s",
            "",
            "",
            None,
        ),
        (
            "  the same against the naive exporter",
            f"{cpu:.2f} s",
            f"{naive.cpu_per_poll():.2f} s",
            f"{cpu / naive.cpu_per_poll():.3f}",
            "",
            None,
        ),
        (
            "poll wall time",
            f"{ours.wall_per_poll():.2f} s",
            f"{naive.wall_per_poll():.2f} s",
            f"{ours.wall_per_poll() / naive.wall_per_poll():.3f}",
            "",
            None,
        ),
        (
            "scrape, OpenMetrics + gzip (median)",
            f"{scrape * 1000:.1f} ms",
            f"{naive_scrape * 1000:.0f} ms",
            f"1/{1 / scrape_ratio:.0f}",
            "<= 1/150",
            scrape_met,
        ),
        (
            "  first scrape after a poll (median)",
            f"{statistics.median(ours.first_scrapes) * 1000:.1f} ms",
            "",
            "",
            "",
            None,
        ),
        (
            "  CPU per cached scrape (median)",
            f"{statistics.median(ours.cached_scrape_cpu) * 1000:.0f} ms",
            f"{naive.first_scrape_cpu() * 1000:.0f} ms",
            "",
            "",
            None,
        ),
        (
            "RSS after the 5th poll",
            f"{rss5:.1f} MB",
            f"{naive.rss_after(5):.1f} MB",
            "",
            "<= 150 MB",
            rss_met,
        ),
        (
            f"RSS after poll {polls} (growth from the 5th)",
            f"{rss_last:.1f} MB",
            f"{naive.rss_after(polls):.1f} MB",
            f"{growth:+.1%}",
            f"<= {GROWTH_TOLERANCE:+.0%}",
            growth_met,
        ),
        (
            "peak RSS (VmHWM)",
            f"{ours.peak_rss_mb:.1f} MB",
            f"{naive.peak_rss_mb:.1f} MB",
            "",
            "",
            None,
        ),
        (
            "poll wall, 4 apps x 1,000 tasks, 100 ms API",
            f"{latency_walls[0]:.2f} s",
            f"{latency_walls[1]:.2f} s",
            f"{latency_ratio:.3f}",
            "<= 0.35",
            latency_met,
        ),
    ]
    line = "{:<44}{:>12}{:>12}{:>10}  {:<20}{}"
    print()
    print(line.format("", "exporter", "naive", "ratio", "target", "met"))
    for *cells, met in rows:
        print(line.format(*cells, "" if met is None else "yes" if met else "NO"))
    for name, result in (("exporter", ours), ("naive", naive)):
        if result.left_out():
            print(f"{name}: {result.left_out()} poll(s) ran into another one, left out of medians")
    met = cpu_met and scrape_met and rss_met and growth_met and latency_met
    print("\nall targets met" if met else "\nTARGET MISSED")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 polls instead of 15.")
    parser.add_argument("--tasks", type=int, default=50_000, help="Tasks in the app.")
    args = parser.parse_args()
    polls = 6 if args.quick else 15
    print(
        f"One app of {args.tasks:,} tasks, {PAGE_SIZE} a page, {polls} polls per exporter; "
        f"{os.cpu_count()} CPUs (possibly shared with other work)."
    )
    with Simulator(KEY, SECRET, [APP], tasks_per_app=args.tasks) as sim:
        print("  exporter (python -m exporter):", flush=True)
        with exporter_process(sim, interval=8) as process:
            ours = measure(process, sim, polls, CACHED_SCRAPES)
        print("  naive poll (benchmarks/naive_poll.py):", flush=True)
        naive_cpu = naive_polls(sim, polls)
        print(f"    {', '.join(f'{cpu:.2f}' for cpu in naive_cpu)} s CPU", flush=True)
        print("  naive (benchmarks/naive_exporter.py):", flush=True)
        with naive_process(sim, interval=15) as process:
            naive = measure(process, sim, polls, cached_scrapes=0)
    latency_polls = 3 if args.quick else 5
    print(f"Four apps of 1,000 tasks, 100 ms API latency, {latency_polls} polls each:", flush=True)
    with Simulator(KEY, SECRET, LATENCY_APPS, tasks_per_app=1000) as sim:
        requests.post(control_url(sim, "/-/faults"), json={"latency_seconds": 0.1}, timeout=10)
        with exporter_process(sim, interval=4, apps=LATENCY_APPS) as process:
            ours_walls = poll_walls(process, sim, latency_polls)
        with naive_process(sim, interval=8, apps=LATENCY_APPS) as process:
            naive_walls = poll_walls(process, sim, latency_polls)
    print(f"  exporter: {', '.join(f'{wall:.2f}' for wall in ours_walls)} s")
    print(f"  naive:    {', '.join(f'{wall:.2f}' for wall in naive_walls)} s")
    walls = (statistics.median(ours_walls), statistics.median(naive_walls))
    naive_poll = statistics.median(naive_cpu)
    return 0 if report(ours, naive, naive_poll, polls, walls) else 1


if __name__ == "__main__":
    raise SystemExit(main())
