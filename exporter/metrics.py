"""From a `Snapshot` to exposition bytes: rendered once per change, served as cached bytes.

A scrape never calls the API and never walks the tasks. The daemon hands each new `Snapshot` to
a `Renderer`, which keeps every app's rendered lines and renders again only the apps whose
`AppSnapshot` changed (the poller shares the unchanged ones between snapshots). The result is an
`Exposition`: the API's part is joined and gzipped once per format, the first time a client asks
for that format; the process's own metrics are collected at every scrape and appended.

The sample lines are written here directly: client_python's encoders cost several seconds of
CPU at 50,000 tasks, about thirty times as much. The rules are client_python's: label values
escape backslash, double quote and newline; values are formatted by its `floatToGoString`. A
gauge's sample lines are the same in Prometheus text 0.0.4 and OpenMetrics 1.0: only the HELP
and TYPE lines of counters and info metrics differ, and OpenMetrics ends with `# EOF`. The tests
check the output byte for byte against client_python's own encoders, and with its parsers and
promtool.
"""

from __future__ import annotations

import platform
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.utils import floatToGoString

from exporter import __version__
from exporter.balance import KINDS, BalanceSnapshot
from exporter.calls import TALK_BUCKETS, AppCalls, CallsSnapshot
from exporter.config import MetricsConfig
from exporter.snapshot import (
    KNOWN_STATUSES,
    AppSnapshot,
    EndpointStats,
    RequestStats,
    Snapshot,
    Task,
)
from exporter.stats import DURATION_BOUNDS
from exporter.storage import StorageStats

CACHED = " (cached from the latest poll)"
# Statuses beyond the known ones that get their own series in the per-status families, per app;
# the API's `status` is a free string, so the rest are summed under OTHER_STATUS.
MAX_OTHER_STATUSES = 20
OTHER_STATUS = "other"
# Level 1 is about three times faster than the default 6 on this text and about 15% larger.
GZIP_LEVEL = 1
GZIP_WBITS = 31  # zlib's gzip wrapper: a header, raw deflate, CRC32 and length.
OPENMETRICS_EOF = b"# EOF\n"
_BUCKET_BOUNDS = (*(repr(float(bound)) for bound in DURATION_BOUNDS), "+Inf")
_TALK_BOUNDS = (*(repr(float(bound)) for bound in TALK_BUCKETS), "+Inf")


@dataclass(frozen=True)
class ReloadStatus:
    successful: bool
    success_seconds: float


@dataclass(frozen=True)
class Family:
    """A metric family's name, type and help; its samples are rendered elsewhere.

    `name` is the OpenMetrics family name: a counter's samples add `_total`, an info's `_info`.
    """

    name: str
    kind: str  # gauge, counter, info or histogram
    help: str

    def header(self, openmetrics: bool) -> bytes:
        name, kind = self.name, self.kind
        if not openmetrics and kind == "counter":
            name += "_total"
        elif not openmetrics and kind == "info":
            name, kind = name + "_info", "gauge"
        return f"# HELP {name} {self.help}\n# TYPE {name} {kind}\n".encode()


BUILD_INFO = Family(
    "aivoice_exporter_build", "info", "The exporter's version and the Python running it"
)
RELOAD_SUCCESSFUL = Family(
    "aivoice_config_last_reload_successful",
    "gauge",
    "1 if the latest config reload succeeded (start-up counts as one), else 0",
)
RELOAD_TIMESTAMP = Family(
    "aivoice_config_last_reload_success_timestamp_seconds",
    "gauge",
    "When the config was last loaded successfully, in Unix seconds",
)
# Rendered per app from its AppSnapshot, in this order.
UP = Family("aivoice_up", "gauge", "1 if the app's latest poll succeeded, else 0" + CACHED)
POLL_DURATION = Family(
    "aivoice_poll_duration_seconds",
    "gauge",
    "Wall time of the app's latest poll, all pages and retries" + CACHED,
)
LAST_SUCCESS = Family(
    "aivoice_poll_last_success_timestamp_seconds",
    "gauge",
    "When the app was last polled without error, in Unix seconds" + CACHED,
)
TASKS = Family("aivoice_tasks", "gauge", "Tasks in each status" + CACHED)
CALLS = Family("aivoice_calls", "gauge", "Sum of the tasks' total calls (taskTotal)" + CACHED)
CALLS_COMPLETED = Family(
    "aivoice_calls_completed",
    "gauge",
    "Sum of the tasks' successful calls (taskCompleted)" + CACHED,
)
TASK_CALLS = Family("aivoice_task_calls", "gauge", "The task's total calls (taskTotal)" + CACHED)
TASK_CALLS_COMPLETED = Family(
    "aivoice_task_calls_completed",
    "gauge",
    "The task's successful calls (taskCompleted)" + CACHED,
)
TASK_ROBOTS = Family(
    "aivoice_task_robots", "gauge", "AI concurrency the task uses (robotCount)" + CACHED
)
TASK_CREATED = Family(
    "aivoice_task_created_timestamp_seconds",
    "gauge",
    "When the task was created, in Unix seconds" + CACHED,
)
TASK_INFO = Family("aivoice_task", "info", "The task's name, status and set-up" + CACHED)
APP_FAMILIES = (
    UP,
    POLL_DURATION,
    LAST_SUCCESS,
    TASKS,
    CALLS,
    CALLS_COMPLETED,
    TASK_CALLS,
    TASK_CALLS_COMPLETED,
    TASK_ROBOTS,
    TASK_CREATED,
    TASK_INFO,
)
# Rendered per app from its RequestStats, in this order.
API_REQUESTS = Family(
    "aivoice_api_requests", "counter", "API requests sent, retries included" + CACHED
)
API_ERRORS = Family(
    "aivoice_api_errors",
    "counter",
    "Failed API requests by the API's status code or the transport failure" + CACHED,
)
API_DURATION = Family(
    "aivoice_api_request_duration_seconds", "histogram", "API request latency" + CACHED
)
POLL_READS = Family(
    "aivoice_poll_reads",
    "counter",
    "Reads of the app's task list by outcome: consistent, reread or inconsistent" + CACHED,
)
REQUEST_FAMILIES = (API_REQUESTS, API_ERRORS, API_DURATION, POLL_READS)
# Rendered per app from its AppCalls at every scrape that finds them changed, in this order.
CALLS_UP = Family(
    "aivoice_calls_up", "gauge", "1 if the app's latest read of its call records succeeded, else 0"
)
CALL_RESULTS = Family(
    "aivoice_call_results", "counter", "Calls by how they ended (resultStatus), each counted once"
)
CALL_TALK = Family(
    "aivoice_call_talk_duration_seconds",
    "histogram",
    "Talk time of answered calls (chatDuration)",
)
CALL_BILLED = Family(
    "aivoice_call_billed_seconds",
    "counter",
    "Billed call time (recordQuery chargedDuration, push billingTime)",
)
CALL_COST = Family(
    "aivoice_call_cost", "counter", "What the calls cost (the push's pay), in push.currency"
)
CALL_HANGUPS = Family("aivoice_call_hangups", "counter", "Calls by who hung up (hangupBy)")
CALL_INTENTS = Family(
    "aivoice_call_intents", "counter", "Calls by intent tag (intentLevelDetailName)"
)
TASK_CALL_RESULTS = Family(
    "aivoice_task_call_results", "counter", "The task's calls by how they ended (resultStatus)"
)
CALL_RECORDS = Family(
    "aivoice_call_records",
    "counter",
    "Call records received, by source (poll, push) and outcome (counted, duplicate, rejected)",
)
CALL_FAMILIES = (
    CALLS_UP,
    CALL_RESULTS,
    CALL_TALK,
    CALL_BILLED,
    CALL_COST,
    CALL_HANGUPS,
    CALL_INTENTS,
    TASK_CALL_RESULTS,
    CALL_RECORDS,
)
# Rendered from the BalanceSnapshot (balance.enabled), in this order.
BALANCE_UP = Family(
    "aivoice_account_balance_up",
    "gauge",
    "1 if the account's latest balance read (getBalance) succeeded, else 0" + CACHED,
)
BALANCE = Family(
    "aivoice_account_balance",
    "gauge",
    "The account's balance, gift and credit (kind), in the account's currency" + CACHED,
)
APP_INFO = Family("aivoice_app", "info", "The account each app belongs to" + CACHED)
BALANCE_FAMILIES = (BALANCE_UP, BALANCE, APP_INFO)
PUSH_REQUESTS = Family(
    "aivoice_push_requests", "counter", "Requests to the push listener by the HTTP status answered"
)
STORAGE_WRITES = Family(
    "aivoice_storage_writes",
    "counter",
    "Writes of the call state to --storage.path, by result (success, failure)",
)

# One family's sample lines, as UTF-8 pieces sent one after the other (see _task_lines).
Lines = tuple[bytes, ...]
Fragments = tuple[Lines, ...]  # One app's lines for each family of a group.
PIECE_TASKS = 2_000  # Tasks whose lines are encoded together: pieces of about 100-200 kB.


def value_text(number: float) -> str:
    """client_python's `floatToGoString`, quicker for the small counts most values are.

    A count too big for a float (only sums can get there) is `+Inf` rather than an exception.
    """
    if type(number) is int and 0 <= number < 1_000_000:
        return f"{number}.0"
    try:
        return str(floatToGoString(number))
    except OverflowError:
        return "+Inf" if number > 0 else "-Inf"


def escape(value: str) -> str:
    """A label value as both text formats write it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _encode(lines: Iterable[str]) -> Lines:
    # A lone surrogate cannot be UTF-8; the client cleans them, and this keeps a miss harmless.
    text = "".join(lines)
    return (text.encode("utf-8", "replace"),) if text else ()


def render_app(app: AppSnapshot, settings: MetricsConfig) -> Fragments:
    """One app's lines for each of APP_FAMILIES.

    # TYPE aivoice_up gauge
    aivoice_up{app_id="LILIN888"} 1.0
    # TYPE aivoice_tasks gauge
    aivoice_tasks{app_id="LILIN888",status="IN_PROCESS"} 3.0
    # TYPE aivoice_task_calls gauge
    aivoice_task_calls{app_id="LILIN888",job_id="20"} 500.0
    # TYPE aivoice_task_info gauge
    aivoice_task_info{app_id="LILIN888",dialog_flow="name8.12",dialog_flow_unbound="false",
      hangup_sms="false",job_id="20",line="line63",mode="AUTO",name="name8",status="IN_PROCESS"} 1.0
    """
    app_label = f'app_id="{escape(app.app_id)}"'
    health = _health_lines(app_label, app)
    if app.tasks is None:  # Nothing known is not the same as zero tasks.
        return health + ((),) * (len(APP_FAMILIES) - len(health))
    return (
        health + _status_lines(app_label, app.tasks) + _task_lines(app_label, app.tasks, settings)
    )


def _health_lines(app_label: str, app: AppSnapshot) -> Fragments:
    labels = f"{{{app_label}}} "
    up = f"aivoice_up{labels}{1.0 if app.up else 0.0}\n"
    duration = f"aivoice_poll_duration_seconds{labels}{value_text(app.poll_duration_seconds)}\n"
    success = []
    if app.last_success_seconds is not None:
        seconds = value_text(app.last_success_seconds)
        success.append(f"aivoice_poll_last_success_timestamp_seconds{labels}{seconds}\n")
    return _encode([up]), _encode([duration]), _encode(success)


def status_sums(tasks: Iterable[Task]) -> dict[str, tuple[int, int, int]]:
    """Tasks, calls and completed calls per status, every known status present.

    At most MAX_OTHER_STATUSES unknown statuses keep their own entry (those with the most tasks,
    then by name); the rest, and a status that is literally OTHER_STATUS, go under OTHER_STATUS.
    """
    sums = {status: [0, 0, 0] for status in KNOWN_STATUSES}
    for task in tasks:
        counts = sums.setdefault(task.status, [0, 0, 0])
        counts[0] += 1
        counts[1] += task.calls
        counts[2] += task.calls_completed
    unknown = [status for status in sums if status not in KNOWN_STATUSES]
    if len(unknown) > MAX_OTHER_STATUSES or OTHER_STATUS in unknown:
        ranked = sorted(
            (status for status in unknown if status != OTHER_STATUS),
            key=lambda status: (-sums[status][0], status),
        )
        other = [0, 0, 0]
        for status in [OTHER_STATUS, *ranked[MAX_OTHER_STATUSES:]]:
            for index, count in enumerate(sums.pop(status, (0, 0, 0))):
                other[index] += count
        sums[OTHER_STATUS] = other
    return {status: (count, calls, done) for status, (count, calls, done) in sums.items()}


def _status_lines(app_label: str, tasks: Iterable[Task]) -> Fragments:
    tasks_lines, calls_lines, completed_lines = [], [], []
    for status, (count, calls, done) in status_sums(tasks).items():
        labels = f'{{{app_label},status="{escape(status)}"}} '
        tasks_lines.append(f"aivoice_tasks{labels}{value_text(count)}\n")
        calls_lines.append(f"aivoice_calls{labels}{value_text(calls)}\n")
        completed_lines.append(f"aivoice_calls_completed{labels}{value_text(done)}\n")
    return _encode(tasks_lines), _encode(calls_lines), _encode(completed_lines)


def _task_lines(app_label: str, tasks: Sequence[Task], settings: MetricsConfig) -> Fragments:
    """The per-task families, encoded every PIECE_TASKS tasks.

    Joining 50,000 tasks' lines in one go would hold them twice over, as a str per line and as
    the joined text, about 130 MB at the peak; in pieces the peak is the result and one piece.
    """
    if not settings.per_task:
        return ((),) * 5
    wanted = frozenset(settings.per_task_statuses)
    seen: set[str] = set()  # The poller never publishes a jobId twice; if it did, once here.
    pending: list[list[str]] = [[], [], [], [], []]
    pieces: list[list[bytes]] = [[], [], [], [], []]
    calls, completed, robots, created, info = pending
    for task in tasks:
        if (wanted and task.status not in wanted) or task.job_id in seen:
            continue
        seen.add(task.job_id)
        if len(seen) % PIECE_TASKS == 0:
            _move_encoded(pending, pieces)
        job_id = escape(task.job_id)
        key = f'{{{app_label},job_id="{job_id}"}} '
        calls.append(f"aivoice_task_calls{key}{value_text(task.calls)}\n")
        completed.append(f"aivoice_task_calls_completed{key}{value_text(task.calls_completed)}\n")
        robots.append(f"aivoice_task_robots{key}{value_text(task.robots)}\n")
        if task.created_seconds is not None:
            created.append(
                f"aivoice_task_created_timestamp_seconds{key}{value_text(task.created_seconds)}\n"
            )
        info.append(
            f'aivoice_task_info{{{app_label},dialog_flow="{escape(task.dialog_flow)}",'
            f'dialog_flow_unbound="{_flag(task.dialog_flow_unbound)}",'
            f'hangup_sms="{_flag(task.hangup_sms)}",job_id="{job_id}",line="{escape(task.line)}",'
            f'mode="{escape(task.mode)}",name="{escape(task.name)}",'
            f'status="{escape(task.status)}"}} 1.0\n'
        )
    _move_encoded(pending, pieces)
    return tuple(tuple(family) for family in pieces)


def _move_encoded(pending: list[list[str]], pieces: list[list[bytes]]) -> None:
    for lines, encoded in zip(pending, pieces, strict=True):
        encoded.extend(_encode(lines))
        lines.clear()


def _flag(value: bool) -> str:
    return "true" if value else "false"


def render_requests(app_id: str, stats: RequestStats, label: str = "app_id") -> Fragments:
    """One app's lines for each of REQUEST_FAMILIES, each endpoint's after the other.

    # TYPE aivoice_api_requests_total counter
    aivoice_api_requests_total{app_id="LILIN888",endpoint="taskList"} 42.0
    # TYPE aivoice_api_errors_total counter
    aivoice_api_errors_total{app_id="LILIN888",code="-4",endpoint="taskList"} 0.0
    # TYPE aivoice_api_request_duration_seconds histogram
    aivoice_api_request_duration_seconds_count{app_id="LILIN888",endpoint="taskList"} 42.0
    # TYPE aivoice_poll_reads_total counter
    aivoice_poll_reads_total{app_id="LILIN888",result="consistent"} 5.0

    `label` is `account` for getBalance, which is counted per account: `app_id` is then the
    account's label value (the names sort alike before `code` and `endpoint`).
    """
    app_label = f'{label}="{escape(app_id)}"'
    requests, errors, duration = [], [], []
    for endpoint, counts in sorted(stats.endpoints.items()):
        endpoint_label = f'endpoint="{escape(endpoint)}"'
        labels = f"{app_label},{endpoint_label}"
        requests.append(f"aivoice_api_requests_total{{{labels}}} {value_text(counts.requests)}\n")
        errors += [  # Label names in order, as client_python writes them.
            f'aivoice_api_errors_total{{{app_label},code="{escape(code)}",{endpoint_label}}} '
            f"{value_text(count)}\n"
            for code, count in sorted(counts.errors.items())
        ]
        duration += _duration_lines(labels, counts)
    reads = [
        f'aivoice_poll_reads_total{{{app_label},result="{escape(result)}"}} {value_text(count)}\n'
        for result, count in sorted(stats.reads.items())
    ]
    return _encode(requests), _encode(errors), _encode(duration), _encode(reads)


def _duration_lines(labels: str, counts: EndpointStats) -> list[str]:
    """The latency histogram of one app's endpoint; none when nothing was recorded."""
    if len(counts.duration_buckets) != len(_BUCKET_BOUNDS):
        return []
    name = "aivoice_api_request_duration_seconds"
    lines = [
        f'{name}_bucket{{{labels},le="{bound}"}} {value_text(count)}\n'
        for bound, count in zip(_BUCKET_BOUNDS, counts.duration_buckets, strict=True)
    ]
    lines.append(f"{name}_count{{{labels}}} {value_text(counts.duration_buckets[-1])}\n")
    lines.append(f"{name}_sum{{{labels}}} {value_text(counts.duration_sum)}\n")
    return lines


def render_balance(snapshot: BalanceSnapshot) -> Fragments:
    """The lines of BALANCE_FAMILIES.

    # TYPE aivoice_account_balance_up gauge
    aivoice_account_balance_up{account="main"} 1.0
    # TYPE aivoice_account_balance gauge
    aivoice_account_balance{account="main",kind="balance"} 1234.5
    # TYPE aivoice_app_info gauge
    aivoice_app_info{account="main",app_id="LILIN888"} 1.0
    """
    up, amounts = [], []
    for account in snapshot.accounts:
        label = f'account="{escape(account.account)}"'
        up.append(f"aivoice_account_balance_up{{{label}}} {1.0 if account.up else 0.0}\n")
        if account.balance is None:  # Nothing known is not a balance of zero.
            continue
        values = account.balance.amounts()
        amounts += [
            f'aivoice_account_balance{{{label},kind="{kind}"}} {value_text(values[kind])}\n'
            for kind in KINDS
            if kind in values
        ]
    info = [
        f'aivoice_app_info{{account="{escape(account)}",app_id="{escape(app_id)}"}} 1.0\n'
        for app_id, account in snapshot.apps.items()
    ]
    return _encode(up), _encode(amounts), _encode(info)


def render_reload(status: ReloadStatus) -> tuple[Lines, Lines]:
    """# TYPE aivoice_config_last_reload_successful gauge
    aivoice_config_last_reload_successful 1.0
    # TYPE aivoice_config_last_reload_success_timestamp_seconds gauge
    aivoice_config_last_reload_success_timestamp_seconds 1.7644e+09
    """
    successful = f"aivoice_config_last_reload_successful {1.0 if status.successful else 0.0}\n"
    timestamp = (
        "aivoice_config_last_reload_success_timestamp_seconds "
        f"{value_text(status.success_seconds)}\n"
    )
    return _encode([successful]), _encode([timestamp])


def render_build_info() -> Lines:
    """aivoice_exporter_build_info{python_version="3.11.7",version="0.1.0"} 1.0"""
    labels = f'python_version="{escape(platform.python_version())}",version="{escape(__version__)}"'
    return _encode([f"aivoice_exporter_build_info{{{labels}}} 1.0\n"])


def render_calls(calls: AppCalls) -> Fragments:
    """One app's lines for each of CALL_FAMILIES.

    # TYPE aivoice_calls_up gauge
    aivoice_calls_up{app_id="LILIN888"} 1.0
    # TYPE aivoice_call_results_total counter
    aivoice_call_results_total{app_id="LILIN888",result="ANSWERED"} 412.0
    # TYPE aivoice_call_talk_duration_seconds histogram
    aivoice_call_talk_duration_seconds_bucket{app_id="LILIN888",le="5.0"} 3.0
    # TYPE aivoice_call_cost_total counter
    aivoice_call_cost_total{app_id="LILIN888",currency="USD"} 20.55
    # TYPE aivoice_task_call_results_total counter
    aivoice_task_call_results_total{app_id="LILIN888",job_id="20",result="BUSY"} 7.0
    # TYPE aivoice_call_records_total counter
    aivoice_call_records_total{app_id="LILIN888",outcome="counted",source="push"} 430.0
    """
    app_label = f'app_id="{escape(calls.app_id)}"'
    up = (
        []
        if calls.up is None
        else [f"aivoice_calls_up{{{app_label}}} {1.0 if calls.up else 0.0}\n"]
    )
    talk = []
    name = "aivoice_call_talk_duration_seconds"
    for bound, count in zip(_TALK_BOUNDS, calls.talk_buckets, strict=True):
        talk.append(f'{name}_bucket{{{app_label},le="{bound}"}} {value_text(count)}\n')
    talk.append(f"{name}_count{{{app_label}}} {value_text(calls.talk_buckets[-1])}\n")
    talk.append(f"{name}_sum{{{app_label}}} {value_text(calls.talk_sum)}\n")
    billed = (
        f"aivoice_call_billed_seconds_total{{{app_label}}} {value_text(calls.billed_seconds)}\n"
    )
    tasks = [
        f'aivoice_task_call_results_total{{{app_label},job_id="{escape(job_id)}",'
        f'result="{escape(result)}"}} {value_text(count)}\n'
        for job_id, counts in calls.task_results.items()
        for result, count in sorted(counts.items())
    ]
    return (
        _encode(up),
        _labelled("aivoice_call_results_total", app_label, "result", calls.results),
        _encode(talk),
        _encode([billed]),
        _labelled("aivoice_call_cost_total", app_label, "currency", calls.cost),
        _labelled("aivoice_call_hangups_total", app_label, "hangup_by", calls.hangups),
        _labelled("aivoice_call_intents_total", app_label, "intent", calls.intents),
        _encode(tasks),
        _record_lines(app_label, calls.records),
    )


def _labelled(name: str, app_label: str, label: str, counts: Mapping[str, float]) -> Lines:
    return _encode(
        f'{name}{{{app_label},{label}="{escape(value)}"}} {value_text(count)}\n'
        for value, count in sorted(counts.items())
    )


def _record_lines(app_label: str, records: Mapping[tuple[str, str], int]) -> Lines:
    """Records by source and outcome; `app_label` is empty for records of no configured app."""
    prefix = f"{app_label}," if app_label else ""
    return _encode(
        f'aivoice_call_records_total{{{prefix}outcome="{outcome}",source="{source}"}} '
        f"{value_text(count)}\n"
        for (source, outcome), count in sorted(records.items())
    )


def render_storage(stats: StorageStats, openmetrics: bool) -> bytes:
    """# TYPE aivoice_storage_writes_total counter
    aivoice_storage_writes_total{result="failure"} 0.0
    aivoice_storage_writes_total{result="success"} 12.0
    """
    lines = (
        f'aivoice_storage_writes_total{{result="{escape(result)}"}} {value_text(count)}\n'
        for result, count in sorted(stats.writes.items())
    )
    return STORAGE_WRITES.header(openmetrics) + "".join(lines).encode()


def render_push_requests(codes: Mapping[str, int]) -> Lines:
    """aivoice_push_requests_total{code="404"} 2.0"""
    return _encode(
        f'aivoice_push_requests_total{{code="{escape(code)}"}} {value_text(count)}\n'
        for code, count in sorted(codes.items())
    )


class CallMetrics:
    """The call families, rendered from the ledger's snapshot when a scrape finds it changed.

    Pushes arrive between polls, so these are not part of the cached exposition; each app's
    lines are kept with the `AppCalls` they came from (compared by identity), so a push to one
    app re-renders that app only.
    """

    def __init__(self, source: Callable[[], CallsSnapshot]) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._apps: dict[str, tuple[AppCalls, Fragments]] = {}
        self._rendered: tuple[CallsSnapshot, Sequence[Section]] | None = None

    def render(self, openmetrics: bool) -> bytes:
        return b"".join(
            part
            for family, lines in self._sections()
            if lines
            for part in (family.header(openmetrics), *lines)
        )

    def _sections(self) -> Sequence[Section]:
        snapshot = self._source()
        with self._lock:
            if self._rendered is not None and self._rendered[0] is snapshot:
                return self._rendered[1]
            self._apps = {calls.app_id: (calls, self._fragments(calls)) for calls in snapshot.apps}
            per_app = [fragments for _, fragments in self._apps.values()]
            sections = _by_family(CALL_FAMILIES, per_app)
            if snapshot.unattributed:
                family, lines = sections[-1]
                sections[-1] = (family, lines + _record_lines("", snapshot.unattributed))
            if snapshot.push_requests is not None:
                sections.append((PUSH_REQUESTS, render_push_requests(snapshot.push_requests)))
            self._rendered = (snapshot, sections)
            return sections

    def _fragments(self, calls: AppCalls) -> Fragments:
        kept = self._apps.get(calls.app_id)
        if kept is not None and kept[0] is calls:
            return kept[1]
        return render_calls(calls)


class LiveMetrics:
    """What is collected at every scrape: the call families (when a ledger is given), the state
    writes (with `--storage.path`) and the process's own metrics: CPU, memory, file
    descriptors, GC.

    client_python's collectors render the latter, on a registry of their own (no global one).
    """

    def __init__(
        self,
        calls: CallMetrics | None = None,
        storage: Callable[[], StorageStats] | None = None,
    ) -> None:
        self._calls = calls
        self._storage = storage
        self._registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._registry)
        PlatformCollector(registry=self._registry)
        GCCollector(registry=self._registry)

    def render(self, openmetrics: bool) -> bytes:
        calls = self._calls.render(openmetrics) if self._calls is not None else b""
        if self._storage is not None:
            calls += render_storage(self._storage(), openmetrics)
        if openmetrics:  # Without its `# EOF`: the exposition puts that at the very end.
            text: bytes = generate_openmetrics(self._registry)
            return calls + text.removesuffix(OPENMETRICS_EOF)
        plain: bytes = generate_latest(self._registry)
        return calls + plain


Section = tuple[Family, Lines]  # A family and all its sample lines.


class Exposition:
    """One snapshot's metrics, ready to serve in either format, gzipped or not.

    The API's part of a format is built the first time a client asks for it and kept: gzipped
    as a gzip stream left open (flushed to a byte boundary, the compressor kept), or joined
    plain. A scrape adds the live process metrics: for gzip it compresses them with a copy of
    the kept compressor and closes the stream, so the cached prefix and the small tail are one
    valid gzip member and the big part is never compressed twice.
    """

    def __init__(self, sections: Sequence[Section], live: LiveMetrics) -> None:
        self._sections = tuple(sections)
        self._live = live
        self._lock = threading.Lock()
        self._gzipped: dict[bool, tuple[bytes, zlib._Compress]] = {}
        self._plain: dict[bool, bytes] = {}

    def parts(self, openmetrics: bool, gzipped: bool) -> tuple[bytes, bytes]:
        """The body as two pieces to send one after the other: the cached part, the live tail."""
        tail = self._live.render(openmetrics)
        if openmetrics:
            tail += OPENMETRICS_EOF
        if not gzipped:
            return self._plain_prefix(openmetrics), tail
        prefix, compressor = self._gzip_prefix(openmetrics)
        closing = compressor.copy()
        return prefix, closing.compress(tail) + closing.flush(zlib.Z_FINISH)

    def body(self, openmetrics: bool, gzipped: bool) -> bytes:
        return b"".join(self.parts(openmetrics, gzipped))

    @property
    def text(self) -> bytes:
        return self.body(openmetrics=False, gzipped=False)

    @property
    def openmetrics(self) -> bytes:
        return self.body(openmetrics=True, gzipped=False)

    def _chunks(self, openmetrics: bool) -> Iterator[bytes]:
        for family, pieces in self._sections:
            yield family.header(openmetrics)
            yield from pieces

    def _plain_prefix(self, openmetrics: bool) -> bytes:
        with self._lock:
            if openmetrics not in self._plain:
                self._plain[openmetrics] = b"".join(self._chunks(openmetrics))
            return self._plain[openmetrics]

    def _gzip_prefix(self, openmetrics: bool) -> tuple[bytes, zlib._Compress]:
        with self._lock:
            if openmetrics not in self._gzipped:
                compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
                compressed = [compressor.compress(chunk) for chunk in self._chunks(openmetrics)]
                compressed.append(compressor.flush(zlib.Z_SYNC_FLUSH))
                self._gzipped[openmetrics] = (b"".join(compressed), compressor)
            return self._gzipped[openmetrics]


class Renderer:
    """Renders snapshots for one metrics config, re-rendering only what changed.

    Each app's lines are kept with the `AppSnapshot` (compared by identity) and the
    `RequestStats` (compared by value) they came from. Only what the latest snapshot holds is
    kept, so an app removed by a reload takes its lines with it. Calls are serialised.
    """

    def __init__(
        self,
        settings: MetricsConfig,
        calls: Callable[[], CallsSnapshot] | None = None,
        storage: Callable[[], StorageStats] | None = None,
    ) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._apps: dict[str, tuple[AppSnapshot, Fragments]] = {}
        self._requests: dict[str, tuple[RequestStats, Fragments]] = {}
        self._build_info = render_build_info()
        self._live = LiveMetrics(CallMetrics(calls) if calls is not None else None, storage)

    def render(
        self, snapshot: Snapshot, reload: ReloadStatus, balance: BalanceSnapshot | None = None
    ) -> Exposition:
        """`balance` adds the getBalance request counts, by account, and BALANCE_FAMILIES."""
        balance = balance or BalanceSnapshot()
        with self._lock:
            self._apps = {app.app_id: (app, self._app_fragments(app)) for app in snapshot.apps}
            self._requests = {
                app_id: (stats, self._request_fragments(app_id, stats))
                for app_id, stats in snapshot.requests.items()
            }
            app_pieces = [fragments for _, fragments in self._apps.values()]
            request_pieces = [fragments for _, fragments in self._requests.values()]
        request_pieces += [
            render_requests(account, stats, label="account")
            for account, stats in balance.requests.items()
        ]
        reload_successful, reload_timestamp = render_reload(reload)
        sections: list[Section] = [
            (BUILD_INFO, self._build_info),
            (RELOAD_SUCCESSFUL, reload_successful),
            (RELOAD_TIMESTAMP, reload_timestamp),
        ]
        sections += _by_family(APP_FAMILIES, app_pieces)
        sections += _by_family(REQUEST_FAMILIES, request_pieces)
        if balance.accounts or balance.apps:
            sections += zip(BALANCE_FAMILIES, render_balance(balance), strict=True)
        return Exposition(sections, self._live)

    def _app_fragments(self, app: AppSnapshot) -> Fragments:
        kept = self._apps.get(app.app_id)
        if kept is not None and kept[0] is app:
            return kept[1]
        return render_app(app, self._settings)

    def _request_fragments(self, app_id: str, stats: RequestStats) -> Fragments:
        kept = self._requests.get(app_id)
        if kept is not None and kept[0] == stats:
            return kept[1]
        return render_requests(app_id, stats)


def _by_family(families: Sequence[Family], per_app: Sequence[Fragments]) -> list[Section]:
    """Per-app fragments regrouped per family, as the formats want each family in one block."""
    return [
        (family, tuple(piece for fragments in per_app for piece in fragments[index]))
        for index, family in enumerate(families)
    ]


def render(
    snapshot: Snapshot,
    settings: MetricsConfig,
    reload: ReloadStatus,
    balance: BalanceSnapshot | None = None,
) -> Exposition:
    """One snapshot rendered from scratch, with nothing kept for the next one."""
    return Renderer(settings).render(snapshot, reload, balance)
