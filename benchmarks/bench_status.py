"""Measure the status page at `/` for 200 apps: its size, its render time, and the time to
serve it over HTTP, against rendering the same snapshot's metrics from scratch in the same run.

Two scenes, each 200 apps of 50 tasks (10 in progress) with call records, push and balance on:

1. healthy: every app up, 20 successful polls in its history;
2. failing: every app down with an API reason of 160 characters, its last 20 polls failed and
   20 older failures kept as well (the most the history holds: 40 rows per app).

For each: the page's bytes, plain and gzipped, the median and the 95th percentile of
`render_status` over the renders, the median time of `GET /` from the real `MetricsServer` on
127.0.0.1 (a fresh connection each, the whole body read), gzipped and not, and the ratio of
the render to the baseline, the `/metrics` exposition of the same snapshot rendered from
nothing (`exporter.exposition.exposition.render`, which the exporter does once a poll, not per
scrape).

Targets, for a page an operator reloads by hand: at most MAX_PAGE_BYTES, a median render of
at most MAX_RENDER_SECONDS, and a median GET of at most MAX_GET_SECONDS. Run with
`make bench-status` or `python benchmarks/bench_status.py [--quick]`. The machine may be
shared: timings vary between runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from types import MappingProxyType

import requests

from exporter import __version__
from exporter.api.stats import TASK_LIST, RequestRecorder
from exporter.balance.read import AccountBalance, Balance, BalanceSnapshot
from exporter.calls.counts import PUSH, REJECTED, AppCalls, CallsSnapshot
from exporter.config.model import MetricsConfig
from exporter.exposition.exposition import ReloadStatus, gzipped, render
from exporter.snapshot import AppSnapshot, Snapshot, Task
from exporter.tasks.history import HISTORY_LENGTH, AppHistory, CallsRead, PollOutcome
from exporter.web.server import MetricsServer, Published, Routes
from exporter.web.status import ConfiguredApp, StatusInputs, render_status

APPS = 200
TASKS = 50
RUNNING = 10
MAX_PAGE_BYTES = 1_000_000
MAX_RENDER_SECONDS = 0.1
MAX_GET_SECONDS = 0.2
NOW = time.time()
REASON = "the application is not quoted yet; " * 5


def task(n: int) -> Task:
    status = "IN_PROCESS" if n < RUNNING else "COMPLETED"
    return Task(
        f"{n}", f"campaign {n:03} of the autumn survey", status, 1000, 400, 2, "AUTO", "flow",
        "line1", False, False, NOW - 86400,
    )  # fmt: skip


def history(failing: bool) -> AppHistory:
    result = AppHistory()
    if failing:  # Older failures first, pushed out of the recent polls by newer ones.
        outcomes = [
            PollOutcome(NOW - 60 * n, 0.2, error="-50", detail=REASON[:160])
            for n in range(2 * HISTORY_LENGTH, 0, -1)
        ]
    else:
        outcomes = [PollOutcome(NOW - 60 * n, 0.4, pages=1) for n in range(HISTORY_LENGTH, 0, -1)]
    for outcome in outcomes:
        result = result.record(outcome)
    return result.record_calls(CallsRead(NOW - 30))


def scene(failing: bool) -> tuple[StatusInputs, Snapshot]:
    ids = [f"APP_{n:03}" for n in range(APPS)]
    tasks = tuple(task(n) for n in range(TASKS))
    apps = tuple(AppSnapshot(i, not failing, tasks, 0.4, NOW - 60) for i in ids)
    recorder = RequestRecorder()
    recorder.track(ids, (TASK_LIST,))
    snapshot = Snapshot(apps=apps, requests=recorder.snapshot(ids))
    calls = tuple(
        AppCalls(i, True, {}, (), 0.0, 0.0, {}, {}, {}, {}, {(PUSH, REJECTED): 2}) for i in ids
    )
    inputs = StatusInputs(
        version=__version__,
        apps=tuple(ConfiguredApp("main", i) for i in ids),
        snapshot=snapshot,
        history=MappingProxyType({i: history(failing) for i in ids}),
        calls=CallsSnapshot(apps=calls),
        calls_enabled=True,
        push_enabled=True,
        balance=BalanceSnapshot(
            accounts=(AccountBalance("main", True, Balance(25_000.0), NOW - 90),),
            apps=MappingProxyType(dict.fromkeys(ids, "main")),
        ),
        reload=ReloadStatus(True, NOW - 3600),
    )
    return inputs, snapshot


def timed(work: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return times


def served_get_seconds(page: Callable[[], bytes], runs: int, encoding: str) -> float:
    snapshot = Snapshot(apps=(), requests=MappingProxyType({}))
    exposition = render(snapshot, MetricsConfig(), ReloadStatus(True, NOW))
    routes = Routes("/metrics", Published(exposition), status_page=page)
    server = MetricsServer("127.0.0.1", 0, routes)
    server.start()
    host, port = server.address
    try:
        url = f"http://{host}:{port}/"
        headers = {"Connection": "close", "Accept-Encoding": encoding}
        warm = requests.get(url, timeout=30, headers=headers)  # Warm up.
        warm.raise_for_status()
        assert warm.headers.get("Content-Encoding", "identity") == encoding, warm.headers
        return statistics.median(
            timed(lambda: requests.get(url, timeout=30, headers=headers), runs)
        )
    finally:
        server.stop()


def measure(name: str, failing: bool, runs: int) -> bool:
    inputs, snapshot = scene(failing)
    body = render_status(inputs, NOW)
    renders = sorted(timed(lambda: render_status(inputs, NOW), runs))
    reload = ReloadStatus(True, NOW)
    metrics = timed(lambda: render(snapshot, MetricsConfig(), reload).text, max(3, runs // 4))
    median, p95 = statistics.median(renders), renders[int(0.95 * (len(renders) - 1))]
    baseline = statistics.median(metrics)
    gets = {
        encoding: served_get_seconds(lambda: render_status(inputs), max(5, runs // 2), encoding)
        for encoding in ("gzip", "identity")
    }
    zipped = len(gzipped(body))
    rows = [
        ("page size", f"{len(body) / 1000:,.0f} kB", f"<= {MAX_PAGE_BYTES / 1000:,.0f} kB",
         len(body) <= MAX_PAGE_BYTES),
        ("  per app", f"{len(body) / APPS / 1000:.1f} kB", "", None),
        ("  gzipped (as sent)", f"{zipped / 1000:,.0f} kB", "", None),
        ("render, median", f"{median * 1000:.1f} ms", f"<= {MAX_RENDER_SECONDS * 1000:.0f} ms",
         median <= MAX_RENDER_SECONDS),
        ("render, p95", f"{p95 * 1000:.1f} ms", "", None),
        ("metrics render (baseline)", f"{baseline * 1000:.1f} ms", "", None),
        ("page / metrics render", f"{median / baseline:.2f}", "", None),
    ] + [
        (f"GET /, {encoding}, median", f"{get * 1000:.1f} ms",
         f"<= {MAX_GET_SECONDS * 1000:.0f} ms", get <= MAX_GET_SECONDS)
        for encoding, get in gets.items()
    ]  # fmt: skip
    print(f"{name}: {APPS} apps, {TASKS} tasks each, {runs} renders")
    line = "  {:<28}{:>12}  {:<12}{}"
    for label, value, target, met in rows:
        print(line.format(label, value, target, "" if met is None else "yes" if met else "NO"))
    return all(met is not False for *_, met in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 renders a scene instead of 50")
    runs = 10 if parser.parse_args().quick else 50
    met = [measure("healthy", False, runs), measure("failing", True, runs)]
    print("\nall targets met" if all(met) else "\nTARGET MISSED")
    return 0 if all(met) else 1


if __name__ == "__main__":
    raise SystemExit(main())
