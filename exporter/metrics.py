"""From a `Snapshot` to exposition text: one small collector per concern, rendered once per poll.

A scrape never calls the API and never walks the tasks: the poller renders each snapshot into an
`Exposition` (Prometheus text and OpenMetrics, gzipped) and the HTTP server hands out those
bytes. So HELP strings say the values are cached from the latest poll.
"""

from __future__ import annotations

import gzip
import platform
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter import __version__
from exporter.config import MetricsConfig
from exporter.snapshot import KNOWN_STATUSES, AppSnapshot, Snapshot, Task
from exporter.stats import DURATION_BOUNDS

CACHED = " (cached from the latest poll)"
TASK_INFO_LABELS = (
    "app_id",
    "job_id",
    "name",
    "status",
    "mode",
    "dialog_flow",
    "line",
    "hangup_sms",
    "dialog_flow_unbound",
)


class BuildInfoCollector:
    """The exporter's own version, for dashboards that join on it.

    # HELP aivoice_exporter_build_info The exporter's version and the Python running it
    # TYPE aivoice_exporter_build_info gauge
    aivoice_exporter_build_info{python_version="3.11.7",version="0.1.0"} 1.0
    """

    def collect(self) -> Iterator[Metric]:
        yield InfoMetricFamily(
            "aivoice_exporter_build",
            "The exporter's version and the Python running it",
            value={"version": __version__, "python_version": platform.python_version()},
        )


@dataclass(frozen=True)
class AppHealthCollector:
    """Whether each app's latest poll worked, how long it took, and when one last did.

    # TYPE aivoice_up gauge
    aivoice_up{app_id="LILIN888"} 1.0
    # TYPE aivoice_poll_duration_seconds gauge
    aivoice_poll_duration_seconds{app_id="LILIN888"} 0.41
    # TYPE aivoice_poll_last_success_timestamp_seconds gauge
    aivoice_poll_last_success_timestamp_seconds{app_id="LILIN888"} 1.7644e+09
    """

    apps: Sequence[AppSnapshot]

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "aivoice_up", "1 if the app's latest poll succeeded, else 0" + CACHED, labels=["app_id"]
        )
        duration = GaugeMetricFamily(
            "aivoice_poll_duration_seconds",
            "Wall time of the app's latest poll, all pages and retries" + CACHED,
            labels=["app_id"],
        )
        success = GaugeMetricFamily(
            "aivoice_poll_last_success_timestamp_seconds",
            "When the app was last polled without error, in Unix seconds" + CACHED,
            labels=["app_id"],
        )
        for app in self.apps:
            up.add_metric([app.app_id], 1.0 if app.up else 0.0)
            duration.add_metric([app.app_id], app.poll_duration_seconds)
            if app.last_success_seconds is not None:
                success.add_metric([app.app_id], app.last_success_seconds)
        yield from (up, duration, success)


@dataclass(frozen=True)
class StatusCollector:
    """Per app and task status: how many tasks, and their calls. Every known status is present.

    # TYPE aivoice_tasks gauge
    aivoice_tasks{app_id="LILIN888",status="IN_PROCESS"} 3.0
    aivoice_tasks{app_id="LILIN888",status="COMPLETED"} 0.0
    # TYPE aivoice_calls gauge
    aivoice_calls{app_id="LILIN888",status="IN_PROCESS"} 1500.0
    # TYPE aivoice_calls_completed gauge
    aivoice_calls_completed{app_id="LILIN888",status="IN_PROCESS"} 620.0
    """

    apps: Sequence[AppSnapshot]

    def collect(self) -> Iterator[Metric]:
        labels = ["app_id", "status"]
        tasks = GaugeMetricFamily("aivoice_tasks", "Tasks in each status" + CACHED, labels=labels)
        calls = GaugeMetricFamily(
            "aivoice_calls", "Sum of the tasks' total calls (taskTotal)" + CACHED, labels=labels
        )
        completed = GaugeMetricFamily(
            "aivoice_calls_completed",
            "Sum of the tasks' successful calls (taskCompleted)" + CACHED,
            labels=labels,
        )
        for app in self.apps:
            if app.tasks is None:
                continue  # Nothing known is not the same as zero tasks.
            sums = {status: [0, 0, 0] for status in KNOWN_STATUSES}
            for task in app.tasks:
                counts = sums.setdefault(task.status, [0, 0, 0])
                counts[0] += 1
                counts[1] += task.calls
                counts[2] += task.calls_completed
            for status, (count, total, done) in sums.items():
                tasks.add_metric([app.app_id, status], count)
                calls.add_metric([app.app_id, status], total)
                completed.add_metric([app.app_id, status], done)
        yield from (tasks, calls, completed)


@dataclass(frozen=True)
class TaskCollector:
    """One series per task and figure, for the campaigns table; `metrics.per_task` turns it off.

    # TYPE aivoice_task_calls gauge
    aivoice_task_calls{app_id="LILIN888",job_id="20"} 500.0
    # TYPE aivoice_task_calls_completed gauge
    aivoice_task_calls_completed{app_id="LILIN888",job_id="20"} 212.0
    # TYPE aivoice_task_robots gauge
    aivoice_task_robots{app_id="LILIN888",job_id="20"} 1.0
    # TYPE aivoice_task_created_timestamp_seconds gauge
    aivoice_task_created_timestamp_seconds{app_id="LILIN888",job_id="20"} 1.66366422e+09
    # TYPE aivoice_task_info gauge
    aivoice_task_info{app_id="LILIN888",dialog_flow="name8.12",dialog_flow_unbound="false",
      hangup_sms="false",job_id="20",line="line63",mode="AUTO",name="name8",status="IN_PROCESS"} 1.0
    """

    apps: Sequence[AppSnapshot]
    settings: MetricsConfig

    def collect(self) -> Iterator[Metric]:
        labels = ["app_id", "job_id"]
        calls = GaugeMetricFamily(
            "aivoice_task_calls", "The task's total calls (taskTotal)" + CACHED, labels=labels
        )
        completed = GaugeMetricFamily(
            "aivoice_task_calls_completed",
            "The task's successful calls (taskCompleted)" + CACHED,
            labels=labels,
        )
        robots = GaugeMetricFamily(
            "aivoice_task_robots",
            "AI concurrency the task uses (robotCount)" + CACHED,
            labels=labels,
        )
        created = GaugeMetricFamily(
            "aivoice_task_created_timestamp_seconds",
            "When the task was created, in Unix seconds" + CACHED,
            labels=labels,
        )
        info = InfoMetricFamily(
            "aivoice_task", "The task's name, status and set-up" + CACHED, labels=TASK_INFO_LABELS
        )
        for app_id, task in self._selected():
            key = [app_id, task.job_id]
            calls.add_metric(key, task.calls)
            completed.add_metric(key, task.calls_completed)
            robots.add_metric(key, task.robots)
            if task.created_seconds is not None:
                created.add_metric(key, task.created_seconds)
            info.add_metric(key + _info_values(task), {})
        yield from (calls, completed, robots, created, info)

    def _selected(self) -> Iterator[tuple[str, Task]]:
        if not self.settings.per_task:
            return
        wanted = frozenset(self.settings.per_task_statuses)
        for app in self.apps:
            for task in app.tasks or ():
                if not wanted or task.status in wanted:
                    yield app.app_id, task


def _info_values(task: Task) -> list[str]:
    return [
        task.name,
        task.status,
        task.mode,
        task.dialog_flow,
        task.line,
        str(task.hangup_sms).lower(),
        str(task.dialog_flow_unbound).lower(),
    ]


@dataclass(frozen=True)
class ApiRequestCollector:
    """Every request the exporter sent, how each failed, and how long each took.

    # TYPE aivoice_api_requests_total counter
    aivoice_api_requests_total{app_id="LILIN888"} 42.0
    # TYPE aivoice_api_errors_total counter
    aivoice_api_errors_total{app_id="LILIN888",code="-4"} 0.0
    aivoice_api_errors_total{app_id="LILIN888",code="timeout"} 1.0
    # TYPE aivoice_api_request_duration_seconds histogram
    aivoice_api_request_duration_seconds_bucket{app_id="LILIN888",le="0.05"} 12.0
    """

    snapshot: Snapshot

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "aivoice_api_requests",
            "API requests sent, retries included" + CACHED,
            labels=["app_id"],
        )
        errors = CounterMetricFamily(
            "aivoice_api_errors",
            "Failed API requests by the API's status code or the transport failure" + CACHED,
            labels=["app_id", "code"],
        )
        duration = HistogramMetricFamily(
            "aivoice_api_request_duration_seconds",
            "API request latency" + CACHED,
            labels=["app_id"],
        )
        bounds = [*(_le(bound) for bound in DURATION_BOUNDS), "+Inf"]
        for app_id, stats in self.snapshot.requests.items():
            requests.add_metric([app_id], stats.requests)
            for code, count in sorted(stats.errors.items()):
                errors.add_metric([app_id, code], count)
            duration.add_metric(
                [app_id], list(zip(bounds, stats.duration_buckets, strict=True)), stats.duration_sum
            )
        yield from (requests, errors, duration)


@dataclass(frozen=True)
class ReloadStatus:
    successful: bool
    success_seconds: float


@dataclass(frozen=True)
class ReloadCollector:
    """Whether the latest config reload worked, as the Prometheus server itself reports it.

    # TYPE aivoice_config_last_reload_successful gauge
    aivoice_config_last_reload_successful 1.0
    # TYPE aivoice_config_last_reload_success_timestamp_seconds gauge
    aivoice_config_last_reload_success_timestamp_seconds 1.7644e+09
    """

    status: ReloadStatus

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "aivoice_config_last_reload_successful",
            "1 if the latest config reload succeeded (start-up counts as one), else 0",
            value=1.0 if self.status.successful else 0.0,
        )
        yield GaugeMetricFamily(
            "aivoice_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully, in Unix seconds",
            value=self.status.success_seconds,
        )


def _le(bound: float) -> str:
    return repr(float(bound))


class _Collectors:
    """The one method `generate_latest` needs, over a fixed list of collectors."""

    def __init__(self, collectors: Iterable[object]) -> None:
        self._collectors = tuple(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()  # type: ignore[attr-defined]


class Exposition:
    """One poll, rendered in both formats and kept gzipped.

    Prometheus always asks for gzip, so the compressed bytes are what a scrape sends as they
    are, and they are a tenth of the size. A plain body is decompressed the first time a client
    asks for it and kept until the next poll, so plain scrapes allocate nothing large either.
    """

    def __init__(self, text: bytes, openmetrics: bytes) -> None:
        self._gzipped = {
            False: gzip.compress(text, compresslevel=6),
            True: gzip.compress(openmetrics, compresslevel=6),
        }
        self._plain: dict[bool, bytes] = {}
        self._lock = threading.Lock()

    def body(self, openmetrics: bool, gzipped: bool) -> bytes:
        if gzipped:
            return self._gzipped[openmetrics]
        with self._lock:
            if openmetrics not in self._plain:
                self._plain[openmetrics] = gzip.decompress(self._gzipped[openmetrics])
            return self._plain[openmetrics]

    @property
    def text(self) -> bytes:
        return self.body(openmetrics=False, gzipped=False)

    @property
    def openmetrics(self) -> bytes:
        return self.body(openmetrics=True, gzipped=False)


def render(snapshot: Snapshot, settings: MetricsConfig, reload: ReloadStatus) -> Exposition:
    """Render a snapshot in both text formats, with the process's own metrics alongside."""
    source = _Collectors(
        (
            BuildInfoCollector(),
            ReloadCollector(reload),
            AppHealthCollector(snapshot.apps),
            StatusCollector(snapshot.apps),
            TaskCollector(snapshot.apps, settings),
            ApiRequestCollector(snapshot),
            ProcessCollector(registry=None),
            PlatformCollector(registry=None),
        )
    )
    return Exposition(generate_latest(source), generate_openmetrics(source))
