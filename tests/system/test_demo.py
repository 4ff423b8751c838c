"""`make demo` on a busy machine: the demo process shares one core with a busy loop and stays
healthy, as a newcomer on a loaded laptop or a small CI runner would see it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from exporter.demo import DEMO_APPS
from tests.support.exposition import sample_values
from tests.support.processes import ExporterProcess
from tests.support.tools import require_tool, scrape, wait_until

HEALTHY_WITHIN_SECONDS = 45
WATCHED_SECONDS = 150
SCRAPE_EVERY_SECONDS = 5
MEAN_RECORD_QUERY_SECONDS = 0.25


@pytest.fixture
def demo_on_half_a_core() -> Iterator[tuple[ExporterProcess, float]]:
    """`--demo` and a busy loop pinned to the same core (`taskset -c 0`), and when it started."""
    taskset = require_tool("taskset")
    busy = subprocess.Popen([taskset, "-c", "0", sys.executable, "-c", "while True: pass"])
    command = [taskset, "-c", "0", sys.executable, "-m", "exporter", "--demo"]
    command += ["--web.listen-address", "127.0.0.1:0"]
    started = time.monotonic()
    demo = ExporterProcess.start("demo", command)
    try:
        yield demo, started
    finally:
        demo.kill()
        busy.kill()
        busy.wait()


def per_app(text: str, name: str, **labels: str) -> dict[str, float]:
    """The family's values by app_id, summed over the other labels, for samples with `labels`."""
    values: dict[str, float] = {}
    for key, value in sample_values(text, name).items():
        found = dict(key)
        if all(found.get(k) == v for k, v in labels.items()) and "app_id" in found:
            values[found["app_id"]] = values.get(found["app_id"], 0.0) + value
    return values


def unhealthy(text: str) -> dict[str, dict[str, float]]:
    """The demo apps whose `aivoice_up` or `aivoice_calls_up` is not 1, by family."""
    found = {}
    for name in ("aivoice_up", "aivoice_calls_up"):
        values = per_app(text, name)
        bad = {app: values.get(app, float("nan")) for app in DEMO_APPS if values.get(app) != 1.0}
        if bad:
            found[name] = bad
    return found


@pytest.mark.slow
def test_demo_stays_healthy_sharing_one_core_with_a_busy_loop(
    demo_on_half_a_core: tuple[ExporterProcess, float],
) -> None:
    demo, started = demo_on_half_a_core
    url = demo.wait_for_line(r"Demo: metrics at (http://\S+)", HEALTHY_WITHIN_SECONDS).group(1)
    left = HEALTHY_WITHIN_SECONDS - (time.monotonic() - started)
    wait_until(
        lambda: not unhealthy(scrape(url).text),
        timeout=left,
        interval=0.5,
        what="aivoice_up 1 and aivoice_calls_up 1 for every demo app",
    )
    scrapes = 0
    while time.monotonic() - started < WATCHED_SECONDS:
        text = scrape(url, timeout=30).text
        assert not unhealthy(text), f"scrape {scrapes}: {unhealthy(text)}\n{demo.log(40)}"
        scrapes += 1
        time.sleep(SCRAPE_EVERY_SECONDS)

    text = scrape(url, timeout=30).text
    # A call is counted by the source that brings it first; the other reads a duplicate.
    for source in ("poll", "push"):
        read = per_app(text, "aivoice_call_records_total", source=source)
        rejected = per_app(text, "aivoice_call_records_total", source=source, outcome="rejected")
        assert rejected == dict.fromkeys(DEMO_APPS, 0.0), (source, rejected)
        assert all(read.get(app, 0) > 0 for app in DEMO_APPS), (source, read)
    took = per_app(text, "aivoice_api_request_duration_seconds_sum", endpoint="recordQuery")
    reads = per_app(text, "aivoice_api_request_duration_seconds_count", endpoint="recordQuery")
    mean = sum(took.values()) / sum(reads.values())
    assert mean < MEAN_RECORD_QUERY_SECONDS, f"{sum(reads.values()):.0f} reads, mean {mean:.3f} s"
    complaints = [
        line for line in demo.lines if re.search(r"level=(warning|error|critical)|Traceback", line)
    ]
    assert complaints == [], "\n".join(complaints)
    assert scrapes >= (WATCHED_SECONDS - HEALTHY_WITHIN_SECONDS) // (SCRAPE_EVERY_SECONDS + 1)


@pytest.mark.slow
def test_demo_balance_falls_as_its_calls_end(start_exporter) -> None:
    demo = start_exporter("--demo")
    url = demo.wait_for_line(r"Demo: metrics at (http://\S+)").group(1)

    def balance() -> float | None:
        values = sample_values(scrape(url).text, "aivoice_account_balance")
        return next((v for k, v in values.items() if ("kind", "balance") in k), None)

    first = wait_until(balance, what="the demo account's balance")
    wait_until(
        lambda: (b := balance()) is not None and b < first,
        timeout=120,  # read every 10 s: a few reads
        what=f"the demo's balance to fall below {first}",
    )
