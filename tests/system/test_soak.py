"""The soak: the real exporter process under random API faults and continuous scrapes.

For about a minute (`AIVOICE_SOAK_SECONDS` makes it longer) the simulator fails a fifth of its
requests at random with jittered latency (HTTP 5xx, timeouts, garbage, API codes, and the
hostile answers: redirects, dripped bodies, oversize bodies, gzip bombs, too many records,
poison values, odd statuses, Retry-After) and creates and deletes tasks while the exporter
pages; the exporter polls every second, and several threads scrape `/metrics` in every format.
At the end the counters must agree exactly with what the simulator injected: nothing lost, nothing
counted twice. The summary line is printed (see it with `pytest -s`) and, when
`AIVOICE_SOAK_REPORT` names a file, written there too.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.simulator import ALL_FAULT_KINDS, Faults
from tests.support.configs import API_KEY, API_SECRET, config_for, write_config
from tests.support.processes import ExporterProcess
from tests.support.simulator_process import SimulatorProcess

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("AIVOICE_SOAK_SECONDS", "60"))
SOAK_APPS = ("SOAK_A", "SOAK_B", "SOAK_C")
TASKS_PER_APP = 240
PAGE_SIZE = 40  # 6 pages per app: every poll is 18 requests at least.
SCRAPERS = 4
# Every hostile answer is refused well within it, on a loaded machine too: an answer that took
# longer would be counted as a timeout, not as the fault the simulator injected.
API_TIMEOUT_SECONDS = 6.0
RSS_GROWTH_LIMIT = 0.10
OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
FAULTS = Faults(
    random_fail_ratio=0.2,
    random_kinds=ALL_FAULT_KINDS,  # The documented faults and the hostile answers alike.
    churn_ratio=0.02,  # And tasks created and deleted while the exporter pages.
    random_api_codes=("-5", "-6"),
    latency_jitter_seconds=0.05,
    timeout_hang_seconds=API_TIMEOUT_SECONDS + 1.0,  # The exporter gives up first: a timeout.
)


@dataclass
class ScrapeTally:
    """What the scraper threads saw; shared by them, so updated under `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    parsed: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.parsed.values())


def scrape_and_parse(
    get: Callable[..., requests.Response], url: str, openmetrics: bool, gzipped: bool
) -> str:
    """One scrape in one of the four formats; raises unless it is valid exposition."""
    headers = {
        "Accept": OPENMETRICS if openmetrics else "text/plain",
        "Accept-Encoding": "gzip" if gzipped else "identity",
    }
    response = get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.status_code
    content_type = response.headers["Content-Type"]
    expected_type = "application/openmetrics-text" if openmetrics else "text/plain"
    assert content_type.startswith(expected_type), content_type
    assert response.headers.get("Content-Encoding") == ("gzip" if gzipped else None)
    families = list((parse_om if openmetrics else parse_text)(response.text))
    names = {sample.name for family in families for sample in family.samples}
    assert "aivoice_exporter_build_info" in names, "no build info"
    return f"{'openmetrics' if openmetrics else 'text'}+{'gzip' if gzipped else 'plain'}"


def scrape_continuously(url: str, index: int, stop: threading.Event, tally: ScrapeTally) -> None:
    """Cycle through every format; even threads keep their connection alive, odd ones don't."""
    session = requests.Session() if index % 2 == 0 else None
    count = index
    try:
        while not stop.is_set():
            openmetrics, gzipped = bool(count % 2), bool(count // 2 % 2)
            count += 1
            try:
                if session is not None:
                    kind = scrape_and_parse(session.get, url, openmetrics, gzipped)
                else:
                    with requests.Session() as once:
                        kind = scrape_and_parse(once.get, url, openmetrics, gzipped)
            except Exception as err:  # Every failure is a finding: keep it for the assertion.
                with tally.lock:
                    tally.failures.append(f"{type(err).__name__}: {err}")
                continue
            with tally.lock:
                tally.parsed[kind] += 1
    finally:
        if session is not None:
            session.close()


@contextlib.contextmanager
def scrapers(url: str, tally: ScrapeTally) -> Iterator[None]:
    stop = threading.Event()
    threads = [
        threading.Thread(target=scrape_continuously, args=(url, i, stop, tally), daemon=True)
        for i in range(SCRAPERS)
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def sample_sums(text: str) -> tuple[dict[str, float], dict[str, float], int]:
    """(requests by app, errors by code summed over apps, number of apps up) from a scrape."""
    requests_by_app: dict[str, float] = {}
    errors: Counter[str] = Counter()
    up = 0
    for family in parse_text(text):
        for sample in family.samples:
            if sample.name == "aivoice_api_requests_total":  # Summed over the endpoints.
                app_id = sample.labels["app_id"]
                requests_by_app[app_id] = requests_by_app.get(app_id, 0.0) + sample.value
            elif sample.name == "aivoice_api_errors_total" and sample.value:
                errors[sample.labels["code"]] += int(sample.value)
            elif sample.name == "aivoice_up" and sample.value == 1:
                up += 1
    return requests_by_app, dict(errors), up


@dataclass(frozen=True)
class Settled:
    stats: dict[str, Any]
    requests_by_app: dict[str, float]
    errors: dict[str, float]


def settled(simulator: SimulatorProcess, url: str) -> Settled | None:
    """The counters at a moment with no request in flight and every app up, else None.

    The published counters are taken at the end of a poll. If the simulator's request count is
    the same just before and just after a scrape, and equals the scrape's total, then every
    request it received has been recorded by the exporter and nothing is on its way.
    """
    before = simulator.stats()
    text = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=10).text
    after = simulator.stats()
    requests_by_app, errors, up = sample_sums(text)
    quiet = before == after and sum(requests_by_app.values()) == before["requests"]
    if not quiet or up != len(SOAK_APPS):
        return None
    return Settled(dict(after), requests_by_app, errors)


def fault_summary(kinds: dict[str, int]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))


@pytest.fixture
def soak_simulator() -> Iterator[SimulatorProcess]:
    """In a process of its own: the scrapers here keep this one's GIL busy."""
    with SimulatorProcess(
        API_KEY, API_SECRET, list(SOAK_APPS), tasks_per_app=TASKS_PER_APP, seed=11
    ) as sim:
        yield sim


def test_soak_under_random_faults_loses_and_double_counts_nothing(
    soak_simulator: SimulatorProcess, tmp_path: Path, start_exporter: Callable[..., ExporterProcess]
) -> None:
    simulator = soak_simulator
    document = config_for(
        simulator,
        api={
            "page_size": PAGE_SIZE,
            "timeout_seconds": API_TIMEOUT_SECONDS,
            "max_retries": 2,
            # Above the simulator's 1 MiB odd statuses, below its 16 MiB oversize body, and
            # small enough that the busy in-process simulator gets an oversize body or a bomb
            # refused well within the timeout.
            "max_response_bytes": 2 * 1024 * 1024,
        },
        poll={"interval_seconds": 1, "concurrency": 4, "stale_after_seconds": 30},
        accounts=[{"api_key": API_KEY, "api_secret": API_SECRET, "app_ids": list(SOAK_APPS)}],
    )
    simulator.set_faults(FAULTS)
    exporter = start_exporter("--config.file", str(write_config(tmp_path / "c.yaml", document)))
    url = exporter.url + "/metrics"
    pid = exporter.popen.pid
    tally = ScrapeTally()

    with scrapers(url, tally):
        deadline = time.monotonic() + 120  # Every app's first poll, through random faults.
        while requests.get(exporter.url + "/-/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the first poll never finished"
            time.sleep(0.1)
        scrapes_start, started = tally.total, time.monotonic()
        rss_timeline = [rss_kib(pid)]
        while (elapsed := time.monotonic() - started) < SOAK_SECONDS:
            assert exporter.popen.poll() is None, exporter.log()[-3000:]
            rss_timeline.append(rss_kib(pid))
            time.sleep(min(1.0, SOAK_SECONDS - elapsed))
        scrapes_held = tally.total - scrapes_start
        elapsed = time.monotonic() - started
    simulator.set_faults(Faults())

    deadline = time.monotonic() + 120
    while (end := settled(simulator, url)) is None:
        assert time.monotonic() < deadline, "the counters never settled after the faults stopped"
        time.sleep(0.2)
    # A leak raises the floor the resident size comes back to, from one stretch of the same
    # load to the next. The first seconds only fill the working set, so they are left out, and
    # the floor, not the median, is compared: a hostile answer read up to max_response_bytes
    # lifts the resident size for a few seconds at random, and a 60 s run has few samples.
    warm = rss_timeline[len(rss_timeline) // 4 :]
    rss_start = min(warm[: len(warm) // 3])
    rss_end = min(warm[-(len(warm) // 3) :])

    assert exporter.popen.poll() is None, "the exporter died during the soak"
    assert tally.failures == [], f"{len(tally.failures)} bad scrapes, e.g. {tally.failures[:5]}"
    assert set(tally.parsed) == {"text+plain", "text+gzip", "openmetrics+plain", "openmetrics+gzip"}
    stats = end.stats
    assert set(stats["answered"]) == {"0"}, "requests rejected for real: not faults"
    assert stats["faults_total"] > 0
    assert sum(end.errors.values()) == stats["faults_total"]
    assert end.errors == stats["fault_codes"]
    assert sum(end.requests_by_app.values()) == stats["requests"]
    growth = (rss_end - rss_start) / rss_start
    summary = (
        f"soak: {elapsed:.0f} s, {scrapes_held} scrapes parsed ({scrapes_held / elapsed:.1f}/s by "
        f"{SCRAPERS} threads, 0 invalid), {stats['faults_total']} faults survived of "
        f"{stats['requests']} API requests ({fault_summary(stats['faults'])}), every one counted "
        f"once; RSS {rss_timeline[0] / 1024:.1f} MiB after the first poll, then a floor of "
        f"{rss_start / 1024:.1f} MiB once warm -> {rss_end / 1024:.1f} MiB at the end "
        f"({growth:+.1%}, peak {max(rss_timeline) / 1024:.1f} MiB)"
    )
    print("\n" + summary)
    if report := os.environ.get("AIVOICE_SOAK_REPORT"):
        Path(report).write_text(summary + "\n", encoding="utf-8")
    assert exporter.stop() == 0
    assert growth < RSS_GROWTH_LIMIT, f"{summary}; RSS KiB each second: {rss_timeline}"
