"""Snapshots built by hand, rendered, and read back with client_python's parsers."""

from __future__ import annotations

import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.api.stats import TASK_LIST, RequestRecorder
from exporter.config.model import MetricsConfig
from exporter.exposition.exposition import Exposition, ReloadStatus, render
from exporter.snapshot import AppSnapshot, Snapshot, Task

# Task names that need escaping, or are multi-byte, or empty.
ODD_NAMES = (
    'say "hello"',
    "back\\slash",
    "two\nlines",
    "外呼任务",
    "📞 campaign 🚀",
    "",
)
RELOAD = ReloadStatus(True, 1_700_000_000.0)
# The process's own metrics: collected at each scrape, so they change from one to the next.
LIVE_PREFIXES = ("process_", "python_")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def sample_values(
    text: str, name: str, openmetrics: bool = False
) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples named `name` in a scraped exposition, by their sorted labels."""
    families = (parse_om if openmetrics else parse_text)(text)
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in families
        for s in family.samples
        if s.name == name
    }


def scraped(url: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """`sample_values` of the exporter's /metrics at `url` (its scheme, host and port)."""
    return sample_values(requests.get(f"{url}/metrics", timeout=30).text, name)


def call_results(url: str, app_id: str) -> dict[str, int]:
    """The app's non-zero `aivoice_call_results_total`, by result, at `url`."""
    counted = {
        dict(labels)["result"]: int(value)
        for labels, value in scraped(url, "aivoice_call_results_total").items()
        if dict(labels)["app_id"] == app_id
    }
    return {result: count for result, count in counted.items() if count}


def task(job_id: str, status: str = "IN_PROCESS", calls: int = 100, done: int = 40, **kw) -> Task:
    fields = {
        "name": f"task {job_id}",
        "robots": 2,
        "mode": "AUTO",
        "dialog_flow": "flow",
        "line": "line63",
        "hangup_sms": False,
        "dialog_flow_unbound": False,
        "created_seconds": 1663664224.0,
        **kw,
    }
    return Task(job_id=job_id, status=status, calls=calls, calls_completed=done, **fields)


def snapshot(
    *apps: AppSnapshot,
    recorder: RequestRecorder | None = None,
    endpoints: tuple[str, ...] = (TASK_LIST,),
) -> Snapshot:
    """The apps with their request counts, polled at `endpoints` (taskList only unless told)."""
    recorder = recorder or RequestRecorder()
    recorder.track((app.app_id for app in apps), endpoints)
    return Snapshot(apps=apps, requests=recorder.snapshot(app.app_id for app in apps))


def app(app_id: str, tasks: tuple[Task, ...] | None, up: bool = True) -> AppSnapshot:
    return AppSnapshot(app_id, up, tasks, 0.25, 1_700_000_000.0 if tasks is not None else None)


def rendered(snap: Snapshot, settings: MetricsConfig | None = None) -> Exposition:
    return render(snap, settings or MetricsConfig(), RELOAD)


def samples(exposition: Exposition, openmetrics: bool = False) -> Samples:
    """{(sample name, sorted label pairs): value} from the rendered text."""
    text = (exposition.openmetrics if openmetrics else exposition.text).decode("utf-8")
    families = parse_om(text) if openmetrics else parse_text(text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def api_samples(
    body: bytes, openmetrics: bool
) -> dict[tuple[str, tuple[tuple[str, str], ...]], str]:
    """Like `samples`, from a body, without the process metrics.

    Values are compared as text, where NaN equals NaN.
    """
    families = (parse_om if openmetrics else parse_text)(body.decode("utf-8"))
    return {
        (s.name, tuple(sorted(s.labels.items()))): repr(s.value)
        for f in families
        for s in f.samples
        if not f.name.startswith(LIVE_PREFIXES)
    }
