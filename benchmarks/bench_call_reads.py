"""What recordQuery costs per call counted: records transferred and requests per poll, for the
read plan (exporter.calls.planner) against reading the whole lookback at every poll, the way
the exporter read before it (kept here as the baseline: the ledger's window, every page).

The workload, on the simulator (scripted calls: exporter.simulator.reporting):

* after the first reads, CALLS_PER_SECOND calls a second for `seconds` (60 s at interval 4 s,
  lookback 60 s; 900 s at the defaults, 60 s and 900 s: the same ratio, a longer run);
* durations 0 to 8 s, one in twenty 9 to 20 s;
* most calls reported within a second of their end, 3% 5 to 40 s late;
* the API's windows selecting by start time, then by end time.

The figure counts the records of every recordQuery answer from the end of the first reads
until every call is counted, over the calls counted. Each poll is one step of a clock the
simulator and the exporter share, so the default-interval run takes seconds of wall time, not
fifteen minutes. The exporter's parts run in this process over real HTTP; the rate limit is
lifted, since requests are counted, not timed. Targets (the plan): at most 1.5 records per
call when windows select by end time, at most 4 by start time.

Run with `make bench-calls` or `python benchmarks/bench_call_reads.py`.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from exporter.api.client import ApiClient
from exporter.api.stats import RequestRecorder
from exporter.api.transport import Transport
from exporter.calls.counts import POLL
from exporter.calls.ledger import CallLedger
from exporter.calls.planner import CallReads, poll_budget
from exporter.config.load import parse_config
from exporter.config.model import ApiConfig
from exporter.process.workers import WorkerPool
from exporter.simulator import Simulator
from exporter.simulator.reporting import ScriptedCall, report_lag

KEY, SECRET, APP = "benchKey", "bench-secret", "BENCH_APP"
CALLS_PER_SECOND = 20
TARGETS = {"end": 1.5, "start": 4.0}
MAX_POLLS_AFTER = 40  # Polls after the last call ends before giving up on a missing one.
# The request budget the daemon gives a poll's call read at the default rate limit (the rate
# itself is lifted here: requests are counted, not timed).
DEFAULT_RATE = ApiConfig().max_requests_per_second


class Clock:
    """The clock the simulator and the exporter share; each poll moves it on."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def workload(start: float, seconds: int, seed: int = 1) -> list[ScriptedCall]:
    """CALLS_PER_SECOND calls a second ending in (start, start + seconds]."""
    rng = random.Random(seed)
    calls = []
    for n in range(CALLS_PER_SECOND * seconds):
        end = start + (n + 1) / CALLS_PER_SECOND
        duration = rng.uniform(9, 20) if rng.random() < 0.05 else rng.uniform(0, 8)
        reported = end + report_lag(seed, APP, str(n))
        calls.append(ScriptedCall(str(10**9 + n), end - duration, end, reported))
    return calls


@dataclass(frozen=True)
class Figures:
    records: int
    counted: int
    polls: int
    requests: int
    missing: int

    @property
    def per_call(self) -> float:
        return self.records / max(self.counted, 1)


def run(plan: str, select_by: str, interval: int, lookback: int, seconds: int) -> Figures:
    clock = Clock(1_700_000_000.0)
    sim = Simulator(KEY, SECRET, [APP], tasks_per_app=0, clock=clock, select_by=select_by)
    sim.start()
    config = parse_config(
        {
            "api": {"base_url": sim.base_url, "max_requests_per_second": 1000},
            "poll": {"interval_seconds": interval, "timeout_seconds": 600},
            "accounts": [{"api_key": KEY, "api_secret": SECRET, "app_ids": [APP]}],
            "calls": {"enabled": True, "lookback_seconds": lookback},
        },
        {},
    )
    transport = Transport(
        config.api.base_url,
        timeout_seconds=30,
        max_response_bytes=config.api.max_response_bytes,
        pool_size=4,
    )
    pool = WorkerPool(4, "bench-request")
    recorder = RequestRecorder()
    client = ApiClient(
        config.accounts[0],
        config.api,
        transport=transport,
        pool=pool,
        recorder=recorder,
        stop=threading.Event(),
        clock=clock,
    )
    ledger = CallLedger(config, clock=clock)
    poll = _planned(client, ledger, interval) if plan == "planned" else _whole(client, ledger)
    try:
        poll()  # The first reads: they only remember.
        primed = _records(ledger)
        calls = workload(clock.now, seconds)
        sim.shown.script(APP, calls)
        last_report = max(c.reported for c in calls)
        polls, before = 0, _requests(recorder)
        while _counted(ledger) < len(calls):
            clock.now += interval
            poll()
            polls += 1
            if clock.now > last_report + MAX_POLLS_AFTER * interval:
                break
        sent = _requests(recorder) - before
        counted = _counted(ledger)
        return Figures(_records(ledger) - primed, counted, polls, sent, len(calls) - counted)
    finally:
        pool.close()
        transport.close()
        sim.stop()


def _planned(client: ApiClient, ledger: CallLedger, interval: int) -> Callable[[], None]:
    reads = CallReads(ledger)
    budget = poll_budget(interval, DEFAULT_RATE, 1)

    def poll() -> None:
        reads.read(client, APP, time.monotonic() + 600, budget)

    return poll


def _whole(client: ApiClient, ledger: CallLedger) -> Callable[[], None]:
    def poll() -> None:
        start, end = ledger.window(APP)
        read = client.read_calls(APP, start, end, time.monotonic() + 600)
        ledger.read_succeeded(APP, end, read.records, read.rejected)

    return poll


def _requests(recorder: RequestRecorder) -> int:
    stats = recorder.snapshot([APP]).get(APP)
    return 0 if stats is None else sum(e.requests for e in stats.endpoints.values())


def _records(ledger: CallLedger) -> int:
    (app,) = ledger.snapshot().apps
    return sum(count for (source, _), count in app.records.items() if source == POLL)


def _counted(ledger: CallLedger) -> int:
    (app,) = ledger.snapshot().apps
    return sum(app.results.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 4 s / 60 s workload only")
    args = parser.parse_args()
    scenes = [(4, 60, 60)] + ([] if args.quick else [(60, 900, 900)])
    exact = True
    for interval, lookback, seconds in scenes:
        print(
            f"\nrecordQuery per call counted: interval {interval} s, lookback {lookback} s, "
            f"{CALLS_PER_SECOND} calls a second for {seconds} s"
        )
        print(f"{'windows select by':20}{'plan':>10}{'records/call':>14}{'requests/poll':>15}")
        for select_by in ("end", "start"):
            figures = {plan: run(plan, select_by, interval, lookback, seconds) for plan in PLANS}
            for plan, f in figures.items():
                missing = f"  <- {f.missing} calls NOT counted" if f.missing else ""
                print(
                    f"{select_by:20}{plan:>10}{f.per_call:14.2f}"
                    f"{f.requests / max(f.polls, 1):15.1f}{missing}"
                )
            planned, whole = figures["planned"], figures["whole"]
            target = TARGETS[select_by]
            met = planned.per_call <= target and not planned.missing
            exact &= not planned.missing and not whole.missing
            if interval == 4:
                verdict = "met" if met else "MISSED"
                fewer = whole.per_call / planned.per_call
                print(f"{'':20}target <= {target}: {verdict} ({fewer:.1f}x fewer than whole)")
    return 0 if exact else 1  # A target missed is a figure to read; a call missed is a bug.


PLANS = ("whole", "planned")

if __name__ == "__main__":
    sys.exit(main())
