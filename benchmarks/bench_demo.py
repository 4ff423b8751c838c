"""Measure `--demo` as a newcomer runs it: its CPU in the first minute, its call volume and the
recordQuery records it reads, and print the figures.

Black-box: `python -m exporter --demo` runs as a process of its own (the simulator inside it),
its CPU is read from /proc, its counts from /metrics. Each run, with the demo's fixed seed:

- CPU: the process's utime+stime from its start to CPU_AT_SECONDS (the first minute);
- calls a second per app: `aivoice_call_results_total` over VOLUME_SECONDS after the first
  VOLUME_AFTER_SECONDS (each call is counted once, whichever source brings it first);
- recordQuery records a second: `aivoice_call_records_total{source="poll"}` over the same span,
  every record the reads transfer (counted and duplicate alike).

The counts above depend on when the first reads land, so on a loaded machine they wander. The
model scene gives the same figures exactly, from the demo's own simulator on a clock the scene
moves (no process, no load): the calls each app ends over the same 20 s, and the records a
recordQuery read of the demo's lookback window holds, a second of the demo's poll interval. The
replay scene gives the simulator's own share the same way: the calls it draws, and the CPU it
spends, in the demo's first minute.

No targets: the figures show what a change to the simulator or the demo's pace costs. Run with
`make bench-demo` or `python benchmarks/bench_demo.py [--runs N]`; the machine may be shared,
so compare runs made side by side.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
CPU_AT_SECONDS = 60.0
VOLUME_AFTER_SECONDS = 25.0
VOLUME_SECONDS = 20.0
_URL = re.compile(r"Demo: metrics at (http://\S+)")
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """The process's utime+stime. (bench.py has the same; importing it would import the
    exporter into this process, from wherever it is installed.)"""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def totals(url: str) -> tuple[dict[str, float], float]:
    """Calls counted per app, and recordQuery records read, as the exporter says now."""
    calls: dict[str, float] = {}
    records = 0.0
    text = requests.get(url, timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "aivoice_call_results_total":
                app = sample.labels["app_id"]
                calls[app] = calls.get(app, 0.0) + sample.value
            elif sample.name == "aivoice_call_records_total" and sample.labels["source"] == "poll":
                records += sample.value
    return calls, records


def one_run() -> tuple[float, dict[str, float], float]:
    """CPU seconds in the first minute, calls a second per app, records a second."""
    command = [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", "127.0.0.1:0"]
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            found = _URL.search(line)
            if found:
                url = found.group(1)
                break
        if not url:
            raise RuntimeError("the demo never said where its metrics are")
        time.sleep(max(0.0, VOLUME_AFTER_SECONDS - (time.monotonic() - started)))
        calls_before, records_before = totals(url)
        time.sleep(VOLUME_SECONDS)
        calls_after, records_after = totals(url)
        time.sleep(max(0.0, CPU_AT_SECONDS - (time.monotonic() - started)))
        cpu = cpu_seconds(process.pid)
    finally:
        process.kill()
        process.wait()
    rates = {
        app: (calls_after[app] - calls_before.get(app, 0.0)) / VOLUME_SECONDS
        for app in sorted(calls_after)
    }
    return cpu, rates, (records_after - records_before) / VOLUME_SECONDS


def model() -> tuple[dict[str, float], float]:
    """Calls a second per app and recordQuery records a second, from the demo's simulator on a
    clock this function moves: exact, whatever the machine's load."""
    from exporter import demo  # Here, not above: the runs measure the demo as a process.
    from exporter.simulator import Simulator

    clock = [1_800_000_000.0]
    options = {
        name: getattr(demo, constant)
        for name, constant in (("call_rate", "DEMO_CALL_RATE"), ("degrade", "DEMO_DEGRADE"))
        if hasattr(demo, constant)
    }
    start = clock[0]
    sim = Simulator(
        "k", "s", demo.DEMO_APPS, speed=demo.DEMO_SPEED, clock=lambda: clock[0], **options
    )
    clock[0] = start + 60.0
    rates = {}
    lookback = demo.DEMO_CALLS.lookback_seconds
    records = 0.0
    for app in demo.DEMO_APPS:
        ended = [_seconds(c["endTime"]) for c in sim.calls(app, start=start - 1000)]
        low = start + VOLUME_AFTER_SECONDS
        rates[app] = sum(low <= e < low + VOLUME_SECONDS for e in ended) / VOLUME_SECONDS
        records += len(sim.calls(app, start=clock[0] - lookback, end=clock[0]))
    return rates, records / demo.DEMO_POLL.interval_seconds


def replay() -> tuple[int, float, float]:
    """The simulator's own work in the demo's first minute, replayed on a clock this function
    moves (white-box: the account's push feed and recordQuery pages, no HTTP): a push collect
    every 0.05 s, a balance read every 10 s, every page of each app's lookback window every
    15 s. Returns the calls drawn, the CPU seconds spent drawing them, and the replay's CPU."""
    from exporter import demo
    from exporter.simulator import calls as drawn
    from exporter.simulator.account import Account
    from exporter.simulator.api import Query

    clock = [1_800_000_000.0]
    start = clock[0]
    account = Account(
        "k",
        "s",
        demo.DEMO_APPS,
        speed=demo.DEMO_SPEED,
        clock=lambda: clock[0],
        call_rate=demo.DEMO_CALL_RATE,
        degrade=demo.DEMO_DEGRADE,
    )
    draw, counted = drawn.call, [0, 0.0]

    def counting(*args: Any) -> Any:
        began = time.process_time()
        made = draw(*args)
        counted[0] += 1
        counted[1] += time.process_time() - began
        return made

    drawn.call = counting  # ended_in looks it up in the module at every draw
    try:
        account._to_push.start()
        began = time.process_time()
        for tick in range(1, 1201):
            clock[0] = start + tick * 0.05
            account._to_push.collect(100_000)
            if tick % 200 == 0:
                account.balance.balance()
            if tick % 300 == 0:
                _read_windows(account, Query, clock[0], demo.DEMO_CALLS.lookback_seconds)
        return int(counted[0]), float(counted[1]), time.process_time() - began
    finally:
        drawn.call = draw


def _read_windows(account: Any, query: Any, now: float, lookback: float) -> None:
    for app in account._indexes:
        window = {"start_time": int(now - lookback), "end_time": int(now)}
        pages = account._call_page(query(app, 1, 100, **window), now)["data"]["pages"]
        for n in range(2, pages + 1):
            account._call_page(query(app, n, 100, **window), now)


def _seconds(text: str) -> float:
    from datetime import datetime, timedelta, timezone

    moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    return moment.replace(tzinfo=timezone(timedelta(hours=8))).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    draws, drawing, work = replay()
    print(
        f"replay: {draws} calls drawn, {drawing:.2f} s CPU drawing, {work:.2f} s CPU in all, "
        "for the simulator's first minute",
        flush=True,
    )
    rates, records = model()
    per_app = ", ".join(f"{app} {rate:.1f}" for app, rate in rates.items())
    print(f"model: calls/s {per_app}; recordQuery records/s {records:.0f}", flush=True)
    cpus = []
    for run in range(args.runs):
        cpu, rates, records = one_run()
        cpus.append(cpu)
        per_app = ", ".join(f"{app} {rate:.1f}" for app, rate in rates.items())
        print(
            f"run {run + 1}: CPU {cpu:.2f} s in the first {CPU_AT_SECONDS:.0f} s;"
            f" calls/s {per_app}; recordQuery records/s {records:.0f}",
            flush=True,
        )
    if cpus:
        median = statistics.median(cpus)
        print(f"CPU in the first minute: median {median:.2f} s of {args.runs} runs")


if __name__ == "__main__":
    main()
