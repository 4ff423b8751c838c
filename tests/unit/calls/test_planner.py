"""The read plan: every call reported within the lookback counted once, for less than reading
the whole lookback, whichever time the API's windows select by.

The exporter's parts (client, ledger, plan) read the simulator over HTTP in this process; the
simulator's app answers from scripted calls (start, end, when reported), and the test moves a
clock both share, one poll at a time. The truth is the script itself.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.api.client import ApiClient
from exporter.api.stats import RequestRecorder
from exporter.api.transport import Transport
from exporter.calls.counts import POLL
from exporter.calls.known import END, START
from exporter.calls.ledger import CallLedger
from exporter.calls.planner import CallReads, ReadSummary
from exporter.calls.selection import UNKNOWN
from exporter.config.load import parse_config
from exporter.process.workers import WorkerPool
from exporter.simulator import Simulator
from exporter.simulator.reporting import ScriptedCall
from tests.support.clock import FakeClock
from tests.support.configs import API_KEY, API_SECRET, APP_IDS, config_for

APP = APP_IDS[0]
T0 = 1_700_000_000.0


@dataclass
class Harness:
    """The simulator, the shared clock, and one app's call reads into a ledger."""

    simulator: Simulator
    clock: FakeClock
    client: ApiClient
    ledger: CallLedger
    reads: CallReads

    def poll(self) -> ReadSummary:
        return self.reads.read(self.client, APP, time.monotonic() + 60)

    def counted(self) -> int:
        (app,) = [a for a in self.ledger.snapshot().apps if a.app_id == APP]
        return sum(app.results.values())

    def received(self) -> int:
        (app,) = [a for a in self.ledger.snapshot().apps if a.app_id == APP]
        return sum(n for (source, _), n in app.records.items() if source == POLL)


@pytest.fixture
def harness() -> Iterator[Any]:
    opened: list[tuple[Simulator, WorkerPool, Transport]] = []

    def make(
        select_by: str, lookback: float = 60, zone: str = "+08:00", **simulator: Any
    ) -> Harness:
        clock = FakeClock(T0)
        sim = Simulator(
            API_KEY,
            API_SECRET,
            APP_IDS,
            tasks_per_app=0,
            clock=clock,
            select_by=select_by,
            **simulator,
        ).start()
        document = config_for(sim, calls={"enabled": True, "lookback_seconds": lookback})
        document["api"].update(timeout_seconds=15, create_time_zone=zone)
        config = parse_config(document, {})
        transport = Transport(
            config.api.base_url,
            timeout_seconds=15,
            max_response_bytes=config.api.max_response_bytes,
            pool_size=4,
        )
        pool = WorkerPool(4, "test-request")
        opened.append((sim, pool, transport))
        client = ApiClient(
            config.accounts[0],
            config.api,
            transport=transport,
            pool=pool,
            recorder=RequestRecorder(),
            stop=threading.Event(),
            clock=clock,
        )
        ledger = CallLedger(config, clock=clock)
        return Harness(sim, clock, client, ledger, CallReads(ledger))

    yield make
    for sim, pool, transport in opened:
        pool.close()
        transport.close()
        sim.stop()


def workload(
    rng: random.Random, start: float, seconds: int, per_second: float, late: float = 0.03
) -> list[ScriptedCall]:
    """Calls ending in (start, start + seconds]: durations 0-8 s, one in twenty 9-20 s; most
    reported within a second, `late` of them 5-40 s late."""
    calls = []
    for n in range(int(seconds * per_second)):
        end = start + rng.uniform(0, seconds)
        duration = rng.uniform(9, 20) if rng.random() < 0.05 else rng.uniform(0, 8)
        lag = rng.uniform(5, 40) if rng.random() < late else rng.uniform(0, 1)
        calls.append(ScriptedCall(str(10**6 + n), end - duration, end, end + lag))
    return calls


def run_until_counted(h: Harness, calls: Sequence[ScriptedCall], interval: float) -> int:
    """Poll every `interval` until the last call has been reported and two more polls ran."""
    last = max(c.reported for c in calls)
    while h.clock.now <= last + 2 * interval:
        h.clock.now += interval
        h.poll()
    return h.counted()


@pytest.mark.parametrize("select_by", [START, END])
def test_every_call_reported_within_the_lookback_counts_once(harness: Any, select_by: str) -> None:
    h = harness(select_by)
    h.poll()  # The first read: nothing yet.
    calls = workload(random.Random(select_by), h.clock.now, 40, 10)
    h.simulator.shown.script(APP, calls)
    assert run_until_counted(h, calls, 4) == len(calls)
    assert h.reads.selection.trusted() == select_by
    assert h.reads.selection.selects_by == select_by != UNKNOWN


@pytest.mark.parametrize("select_by", [START, END])
def test_the_plan_receives_fewer_records_than_whole_lookback_reads(
    harness: Any, select_by: str
) -> None:
    h = harness(select_by)
    h.poll()
    calls = workload(random.Random(1), h.clock.now, 60, 10)
    h.simulator.shown.script(APP, calls)
    run_until_counted(h, calls, 4)
    # Reading the whole 60 s lookback every 4 s receives each call about 15 times.
    assert h.counted() == len(calls) and h.received() < 5 * len(calls)


@pytest.mark.parametrize("select_by", [START, END])
def test_calls_already_reported_at_the_first_read_are_only_remembered(
    harness: Any, select_by: str
) -> None:
    h = harness(select_by)
    before = workload(random.Random(2), h.clock.now - 30, 20, 5, late=0)
    h.simulator.shown.script(APP, before)
    h.clock.now += 5
    h.poll()
    after = workload(random.Random(3), h.clock.now, 20, 5)
    h.simulator.shown.script(APP, [replace(c, call_id="x" + c.call_id) for c in after])
    assert run_until_counted(h, after, 4) == len(after)


def test_a_zone_set_wrong_still_counts_every_call(harness: Any) -> None:
    # The exporter writes its windows in UTC, the API reads them in +08:00: windows and
    # records move by the same 8 hours, so the plan still holds.
    h = harness(END, zone="+00:00")
    h.poll()
    shift = 8 * 3600
    calls = [
        ScriptedCall(str(n), T0 - shift + n / 2 - 3, T0 - shift + n / 2, T0 + n / 2)
        for n in range(60)
    ]
    h.simulator.shown.script(APP, calls)
    assert run_until_counted(h, calls, 4) == len(calls)


@pytest.mark.parametrize("select_by", [START, END])
def test_calls_that_show_while_the_pages_are_read_count_once(harness: Any, select_by: str) -> None:
    # Newest first and 20 a page: every call that shows mid-read pushes the others down a
    # page, so a read sees some twice and misses others; the next poll finds those.
    h = harness(select_by, newest_first=True, server_page_size=20)
    h.poll()
    calls = workload(random.Random(4), h.clock.now, 60, 10)
    h.simulator.shown.script(APP, calls)
    stop = threading.Event()

    def move_time() -> None:
        while not stop.wait(0.005):
            h.clock.now += 0.25

    mover = threading.Thread(target=move_time)
    mover.start()
    try:
        while h.clock.now < max(c.reported for c in calls):
            h.poll()
    finally:
        stop.set()
        mover.join()
    h.clock.now = float(int(h.clock.now)) + 2
    h.poll()  # Windows that hold still.
    h.clock.now += 2
    h.poll()
    assert h.counted() == len(calls)


@pytest.mark.slow
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    select_by=st.sampled_from([START, END]),
    seed=st.integers(0, 2**32 - 1),
    per_second=st.sampled_from([0.5, 3.0, 12.0]),
    late=st.sampled_from([0.0, 0.03, 0.3]),
    interval=st.sampled_from([1.0, 4.0, 7.0]),
)
def test_any_workload_is_counted_exactly(
    harness: Any, select_by: str, seed: int, per_second: float, late: float, interval: float
) -> None:
    h = harness(select_by)
    h.poll()
    calls = workload(random.Random(seed), h.clock.now, 30, per_second, late)
    h.simulator.shown.script(APP, calls)
    assert run_until_counted(h, calls, interval) == len(calls)
