"""Every metric family the exporter declares, and the few rules for writing sample lines.

A family's name, type and HELP live here once; the renderers beside this module write the
sample lines. The lines are written directly: client_python's encoders cost several seconds of
CPU at 50,000 tasks, about thirty times as much. The rules are client_python's: label values
escape backslash, double quote and newline; values are formatted by its `floatToGoString`. A
gauge's sample lines are the same in Prometheus text 0.0.4 and OpenMetrics 1.0: only the HELP
and TYPE lines of counters and info metrics differ, and OpenMetrics ends with `# EOF`. The tests
check the output byte for byte against client_python's own encoders, and with its parsers and
promtool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

CACHED = " (cached from the latest poll)"


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
LINE_RESULTS = Family(
    "aivoice_line_call_results",
    "counter",
    "Calls by the line they went out on (tenantPhoneNumberId) and how they ended; each counted "
    "once, summing to aivoice_call_results_total",
)
LINE_COST = Family(
    "aivoice_line_call_cost",
    "counter",
    "What the calls on each line cost (the push's pay), in push.currency",
)
LINE_INFO = Family("aivoice_line", "info", "The line's name (phoneNumber), as channelList gives it")
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
    LINE_RESULTS,
    LINE_COST,
    LINE_INFO,
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
WINDOWS_SELECT_BY = Family(
    "aivoice_call_windows_select_by",
    "gauge",
    "With calls.enabled: 1 for the time of a call recordQuery's windows select by, as the "
    "records have shown it (unknown until they do; neither when they fit no time), else 0",
)
PUSH_REQUESTS = Family(
    "aivoice_push_requests",
    "counter",
    "Requests to the push listener by sender (vendor, or peer: another exporter forwarding a "
    "push) and HTTP status answered",
)
PUSH_FORWARDS = Family(
    "aivoice_push_forwards",
    "counter",
    "Pushes handed on to the processes that own them, by result (success, failure), and "
    "pushes for another shard dropped for want of push.peers (dropped)",
)
SHARD = Family(
    "aivoice_exporter_shard", "gauge", "The shard this process serves: --shard mod --total-shards"
)
TOTAL_SHARDS = Family(
    "aivoice_exporter_total_shards", "gauge", "How many shards the accounts are spread over"
)
STORAGE_WRITES = Family(
    "aivoice_storage_writes",
    "counter",
    "Writes of the call state to --storage.path, by result (success, failure)",
)

# One family's sample lines, as UTF-8 pieces sent one after the other (see _task_lines).
Lines = tuple[bytes, ...]
Fragments = tuple[Lines, ...]  # One app's lines for each family of a group.


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


def encode(lines: Iterable[str]) -> Lines:
    # A lone surrogate cannot be UTF-8; the client cleans them, and this keeps a miss harmless.
    text = "".join(lines)
    return (text.encode("utf-8", "replace"),) if text else ()


Section = tuple[Family, Lines]  # A family and all its sample lines.


def result_counter(family: Family, results: Mapping[str, int], openmetrics: bool) -> bytes:
    """A counter of the process's own, labelled `result` only, with its header: rendered at
    every scrape, as it moves between polls."""
    lines = encode(
        f'{family.name}_total{{result="{escape(result)}"}} {value_text(count)}\n'
        for result, count in sorted(results.items())
    )
    return family.header(openmetrics) + b"".join(lines)


def by_family(families: Sequence[Family], per_app: Sequence[Fragments]) -> list[Section]:
    """Per-app fragments regrouped per family, as the formats want each family in one block."""
    return [
        (family, tuple(piece for fragments in per_app for piece in fragments[index]))
        for index, family in enumerate(families)
    ]
