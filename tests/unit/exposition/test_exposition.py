"""The rendered exposition: what it says, that it is client_python's own encoding, the cache.

The renderer writes sample lines itself, so the main property checks it against client_python:
for random snapshots its bytes equal `generate_latest` of the equivalent MetricFamily objects,
in both formats, and client_python's parsers read them back.
"""

from __future__ import annotations

import datetime as dt
import gc
import gzip
import json
import platform
import subprocess
import weakref
import zlib
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter import __version__
from exporter.api.stats import DURATION_BOUNDS, ENDPOINTS, RECORD_QUERY, TASK_LIST, RequestRecorder
from exporter.api.wire import Page, parse_page
from exporter.calls.counts import TALK_BUCKETS, AppCalls, CallsSnapshot
from exporter.calls.lines import LineCalls
from exporter.calls.selection import SELECTIONS
from exporter.codes import TASK_LIST_CODES, TRANSPORT_CODES, PollError
from exporter.config.model import MetricsConfig
from exporter.config.shard import Shard
from exporter.exposition import calls as call_exposition
from exporter.exposition import exposition as exposition_module
from exporter.exposition import families as declared_families
from exporter.exposition.calls import CallMetrics
from exporter.exposition.exposition import ReloadStatus, Renderer, render
from exporter.exposition.families import BALANCE_FAMILIES, CACHED, Family
from exporter.exposition.tasks import MAX_OTHER_STATUSES, OTHER_STATUS, PIECE_TASKS, status_sums
from exporter.snapshot import (
    KNOWN_STATUSES,
    AppSnapshot,
    EndpointStats,
    RequestStats,
    Snapshot,
    Task,
)
from tests.support.exposition import (
    ODD_NAMES,
    RELOAD,
    api_samples,
    app,
    rendered,
    samples,
    snapshot,
    task,
)
from tests.support.strategies import NEAR_VALID_PAGES
from tests.support.tools import require_tool

UTC8 = dt.timezone(dt.timedelta(hours=8))
TASK_INFO_LABELS = ("name", "status", "mode", "dialog_flow", "line", "hangup_sms")
TASK_INFO_LABELS += ("dialog_flow_unbound",)


# ---------------------------------------------------------------------------------- what it says


def test_aggregates_sum_tasks_per_status() -> None:
    tasks = (task("1", calls=100, done=40), task("2", calls=50, done=50), task("3", "COMPLETED"))
    got = samples(rendered(snapshot(app("A", tasks))))
    key = (("app_id", "A"), ("status", "IN_PROCESS"))
    assert got[("aivoice_tasks", key)] == 2
    assert got[("aivoice_calls", key)] == 150
    assert got[("aivoice_calls_completed", key)] == 90


def test_every_known_status_is_present_at_zero() -> None:
    got = samples(rendered(snapshot(app("A", (task("1"),)))))
    for status in KNOWN_STATUSES:
        assert (("aivoice_tasks", (("app_id", "A"), ("status", status)))) in got
    assert got[("aivoice_tasks", (("app_id", "A"), ("status", "COMPLETED")))] == 0


def test_unknown_status_gets_its_own_series() -> None:
    got = samples(rendered(snapshot(app("A", (task("1", "ARCHIVED"),)))))
    assert got[("aivoice_tasks", (("app_id", "A"), ("status", "ARCHIVED")))] == 1


def test_unknown_statuses_beyond_the_limit_are_summed_under_other() -> None:
    # Status Sn has n+1 tasks, so the ones with the fewest tasks are the ones folded.
    extra = 5
    tasks = tuple(
        task(f"{n}-{k}", f"S{n:02}", calls=10, done=1)
        for n in range(MAX_OTHER_STATUSES + extra)
        for k in range(n + 1)
    )
    got = samples(rendered(snapshot(app("A", tasks))))
    statuses = {dict(labels)["status"] for name, labels in got if name == "aivoice_tasks"}
    kept = {f"S{n:02}" for n in range(extra, MAX_OTHER_STATUSES + extra)}
    assert statuses == {*KNOWN_STATUSES, *kept, OTHER_STATUS}
    other = (("app_id", "A"), ("status", OTHER_STATUS))
    folded_tasks = sum(n + 1 for n in range(extra))
    assert got[("aivoice_tasks", other)] == folded_tasks
    assert got[("aivoice_calls", other)] == 10 * folded_tasks
    assert got[("aivoice_calls_completed", other)] == folded_tasks


def test_known_statuses_never_count_towards_the_limit() -> None:
    tasks = tuple(task(f"k{n}", status) for n, status in enumerate(KNOWN_STATUSES))
    tasks += tuple(task(f"u{n}", f"U{n:02}") for n in range(MAX_OTHER_STATUSES))
    sums = status_sums(tasks)
    assert OTHER_STATUS not in sums
    assert len(sums) == len(KNOWN_STATUSES) + MAX_OTHER_STATUSES


def test_a_status_named_other_joins_the_other_series() -> None:
    sums = status_sums((task("1", OTHER_STATUS, calls=7), task("2", "ARCHIVED", calls=5)))
    assert sums[OTHER_STATUS] == (1, 7, 40)
    assert sums["ARCHIVED"] == (1, 5, 40)


def test_per_task_series_carry_the_task_figures() -> None:
    got = samples(rendered(snapshot(app("A", (task("20", calls=500, done=212),)))))
    key = (("app_id", "A"), ("job_id", "20"))
    assert got[("aivoice_task_calls", key)] == 500
    assert got[("aivoice_task_calls_completed", key)] == 212
    assert got[("aivoice_task_robots", key)] == 2
    assert got[("aivoice_task_created_timestamp_seconds", key)] == 1663664224.0


def test_task_info_carries_the_metadata() -> None:
    got = samples(rendered(snapshot(app("A", (task("20", hangup_sms=True),)))))
    labels = {
        "app_id": "A",
        "job_id": "20",
        "name": "task 20",
        "status": "IN_PROCESS",
        "mode": "AUTO",
        "dialog_flow": "flow",
        "line": "line63",
        "hangup_sms": "true",
        "dialog_flow_unbound": "false",
    }
    assert got[("aivoice_task_info", tuple(sorted(labels.items())))] == 1


def test_many_tasks_are_all_rendered() -> None:
    """More tasks than one encoded piece holds, so several pieces join up in order."""
    count = 2 * PIECE_TASKS + 3
    tasks = tuple(task(str(n), calls=n) for n in range(count))
    got = samples(rendered(snapshot(app("A", tasks))), openmetrics=True)
    calls = {dict(lb)["job_id"]: v for (name, lb), v in got.items() if name == "aivoice_task_calls"}
    assert calls == {str(n): n for n in range(count)}


def test_a_repeated_job_id_is_rendered_once() -> None:
    got = samples(rendered(snapshot(app("A", (task("1", calls=5), task("1", calls=6))))))
    assert [v for (name, _), v in got.items() if name == "aivoice_task_calls"] == [5]


@pytest.mark.parametrize("name", ODD_NAMES)
@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_odd_task_names_survive_escaping(name: str, openmetrics: bool) -> None:
    exposition = rendered(snapshot(app("A", (task("1", name=name),))))
    names = [
        dict(labels)["name"]
        for (metric, labels) in samples(exposition, openmetrics)
        if metric == "aivoice_task_info"
    ]
    assert names == [name]


def test_a_lone_surrogate_becomes_a_question_mark() -> None:
    exposition = rendered(snapshot(app("A", (task("1", name="bad \ud800 name", status="\udfff"),))))
    got = samples(exposition, openmetrics=True)
    (labels,) = [dict(lb) for name, lb in got if name == "aivoice_task_info"]
    assert (labels["name"], labels["status"]) == ("bad ? name", "?")


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_values_too_big_for_a_float_render_as_infinity(openmetrics: bool) -> None:
    huge = 10**400
    got = samples(rendered(snapshot(app("A", (task("1", calls=huge, done=-huge),)))), openmetrics)
    key = (("app_id", "A"), ("job_id", "1"))
    assert got[("aivoice_task_calls", key)] == float("inf")
    assert got[("aivoice_task_calls_completed", key)] == float("-inf")
    assert got[("aivoice_calls", (("app_id", "A"), ("status", "IN_PROCESS")))] == float("inf")


def test_empty_strings_render() -> None:
    empty = task("", "", name="", mode="", dialog_flow="", line="")
    got = samples(rendered(snapshot(app("A", (empty,)))), openmetrics=True)
    assert got[("aivoice_task_calls", (("app_id", "A"), ("job_id", "")))] == 100
    assert got[("aivoice_tasks", (("app_id", "A"), ("status", "")))] == 1


def test_per_task_off_leaves_only_aggregates() -> None:
    got = samples(rendered(snapshot(app("A", (task("1"),))), MetricsConfig(per_task=False)))
    assert not [name for name, _ in got if name.startswith("aivoice_task_")]
    assert got[("aivoice_tasks", (("app_id", "A"), ("status", "IN_PROCESS")))] == 1


def test_per_task_statuses_filters_per_task_series_only() -> None:
    tasks = (task("1", "IN_PROCESS"), task("2", "COMPLETED"))
    settings = MetricsConfig(per_task_statuses=("IN_PROCESS",))
    got = samples(rendered(snapshot(app("A", tasks)), settings))
    jobs = {dict(labels)["job_id"] for name, labels in got if name == "aivoice_task_calls"}
    assert jobs == {"1"}
    assert got[("aivoice_tasks", (("app_id", "A"), ("status", "COMPLETED")))] == 1


def test_app_without_data_has_health_but_no_task_series() -> None:
    got = samples(rendered(snapshot(app("A", None, up=False))))
    assert got[("aivoice_up", (("app_id", "A"),))] == 0
    assert not [name for name, labels in got if name == "aivoice_tasks"]
    assert not [name for name, _ in got if name == "aivoice_poll_last_success_timestamp_seconds"]


TASK_LIST_A = (("app_id", "A"), ("endpoint", TASK_LIST))
RECORD_QUERY_A = (("app_id", "A"), ("endpoint", RECORD_QUERY))


def with_code(labels: tuple[tuple[str, str], ...], code: str) -> tuple[tuple[str, str], ...]:
    """The labels of an error sample, sorted as `samples` keys them."""
    return tuple(sorted((*labels, ("code", code))))


def test_error_codes_start_at_zero() -> None:
    got = samples(rendered(snapshot(app("A", ()))))
    for code in TASK_LIST_CODES + TRANSPORT_CODES:
        assert got[("aivoice_api_errors_total", with_code(TASK_LIST_A, code))] == 0


def test_request_counts_and_histogram() -> None:
    recorder = RequestRecorder()
    recorder.observe("A", 0.07, None)
    recorder.observe("A", 3.0, "timeout")
    got = samples(rendered(snapshot(app("A", ()), recorder=recorder)))
    assert got[("aivoice_api_requests_total", TASK_LIST_A)] == 2
    assert got[("aivoice_api_errors_total", with_code(TASK_LIST_A, "timeout"))] == 1
    bucket = "aivoice_api_request_duration_seconds_bucket"
    assert got[(bucket, (*TASK_LIST_A, ("le", "0.1")))] == 1
    assert got[(bucket, (*TASK_LIST_A, ("le", "5.0")))] == 2
    assert got[(bucket, (*TASK_LIST_A, ("le", "+Inf")))] == 2
    assert got[("aivoice_api_request_duration_seconds_sum", TASK_LIST_A)] == 3.07


def test_request_stats_without_buckets_have_no_histogram() -> None:
    endpoints = MappingProxyType({TASK_LIST: EndpointStats(requests=3)})
    snap = Snapshot((app("A", ()),), MappingProxyType({"A": RequestStats(endpoints=endpoints)}))
    got = samples(rendered(snap), openmetrics=True)
    assert got[("aivoice_api_requests_total", TASK_LIST_A)] == 3
    assert not [name for name, _ in got if name.startswith("aivoice_api_request_duration")]


def test_record_query_series_are_absent_while_it_is_not_tracked() -> None:
    got = samples(rendered(snapshot(app("A", ()))))
    endpoints = {dict(labels).get("endpoint") for name, labels in got if "aivoice_api_" in name}
    assert endpoints == {TASK_LIST}


def test_tracked_record_query_series_start_at_zero() -> None:
    got = samples(rendered(snapshot(app("A", ()), endpoints=ENDPOINTS)))
    assert got[("aivoice_api_requests_total", RECORD_QUERY_A)] == 0
    for code in TASK_LIST_CODES + TRANSPORT_CODES:
        assert got[("aivoice_api_errors_total", with_code(RECORD_QUERY_A, code))] == 0
    assert got[("aivoice_api_request_duration_seconds_count", RECORD_QUERY_A)] == 0


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_requests_are_counted_per_endpoint(openmetrics: bool) -> None:
    recorder = RequestRecorder()
    recorder.observe("A", 0.07, None)
    recorder.observe("A", 0.3, "-5", endpoint=RECORD_QUERY)
    recorder.observe("A", 2.0, None, endpoint=RECORD_QUERY)
    got = samples(
        rendered(snapshot(app("A", ()), recorder=recorder, endpoints=ENDPOINTS)), openmetrics
    )
    requests = "aivoice_api_requests_total"
    assert (got[(requests, TASK_LIST_A)], got[(requests, RECORD_QUERY_A)]) == (1, 2)
    errors = "aivoice_api_errors_total"
    assert got[(errors, with_code(RECORD_QUERY_A, "-5"))] == 1
    task_list_errors = [v for (n, lb), v in got.items() if n == errors and TASK_LIST_A[1] in lb]
    assert task_list_errors and not any(task_list_errors)
    count = "aivoice_api_request_duration_seconds_count"
    assert (got[(count, TASK_LIST_A)], got[(count, RECORD_QUERY_A)]) == (1, 2)


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_poll_reads_are_counted_by_result(openmetrics: bool) -> None:
    reads = MappingProxyType({"consistent": 7, "reread": 2, "inconsistent": 0})
    snap = Snapshot((app("A", ()),), MappingProxyType({"A": RequestStats(reads=reads)}))
    got = samples(rendered(snap), openmetrics)
    counted = {
        dict(labels)["result"]: value
        for (name, labels), value in got.items()
        if name == "aivoice_poll_reads_total"
    }
    assert counted == {"consistent": 7, "reread": 2, "inconsistent": 0}


def test_help_says_values_are_cached() -> None:
    text = rendered(snapshot(app("A", (task("1"),)))).text.decode()
    helps = [line for line in text.splitlines() if line.startswith("# HELP aivoice_")]
    own = ("build_info", "config_last_reload", "exporter_shard", "exporter_total_shards")
    per_poll = [h for h in helps if not any(name in h for name in own)]
    assert per_poll
    assert all("cached from the latest poll" in line for line in per_poll)


def test_no_sample_carries_a_timestamp() -> None:
    text = rendered(snapshot(app("A", (task("1"),)))).text.decode()
    samples_lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all(len(line.rsplit("} ", 1)[-1].split()) <= 2 for line in samples_lines)
    assert all(len(line.split(" ")) == 2 for line in samples_lines if "{" not in line)


def test_build_info_names_the_version() -> None:
    got = samples(rendered(Snapshot(apps=(), requests=MappingProxyType({}))))
    (labels,) = [dict(lb) for name, lb in got if name == "aivoice_exporter_build_info"]
    assert labels == {"version": __version__, "python_version": platform.python_version()}


def test_text_format_passes_promtool_check_metrics(tmp_path) -> None:
    # promtool reads the Prometheus text format only; OpenMetrics is checked by the parsers.
    recorder = RequestRecorder()
    recorder.observe("A", 0.3, "-6")
    tasks = tuple(task(str(n), name=name) for n, name in enumerate(ODD_NAMES))
    snap = snapshot(app("A", tasks), app("B", None, up=False), recorder=recorder)
    result = subprocess.run(
        [require_tool("promtool"), "check", "metrics"],
        input=rendered(snap).text,
        capture_output=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


# ---------------------------------------------------------------------- client_python's encoding


def reference(snap: Snapshot, settings: MetricsConfig, reload: ReloadStatus) -> list[Metric]:
    """The same metrics as MetricFamily objects, the way client_python's users build them."""
    m = declared_families
    build = InfoMetricFamily(
        m.BUILD_INFO.name,
        m.BUILD_INFO.help,
        value={"version": __version__, "python_version": platform.python_version()},
    )
    successful = GaugeMetricFamily(
        m.RELOAD_SUCCESSFUL.name, m.RELOAD_SUCCESSFUL.help, value=float(reload.successful)
    )
    reloaded = GaugeMetricFamily(
        m.RELOAD_TIMESTAMP.name, m.RELOAD_TIMESTAMP.help, value=reload.success_seconds
    )
    per_app = {f.name: GaugeMetricFamily(f.name, f.help, labels=["app_id"]) for f in m.APP_FAMILIES}
    for family in (m.TASKS, m.CALLS, m.CALLS_COMPLETED):
        per_app[family.name] = GaugeMetricFamily(
            family.name, family.help, labels=["app_id", "status"]
        )
    for family in (m.TASK_CALLS, m.TASK_CALLS_COMPLETED, m.TASK_ROBOTS, m.TASK_CREATED):
        per_app[family.name] = GaugeMetricFamily(
            family.name, family.help, labels=["app_id", "job_id"]
        )
    per_app[m.TASK_INFO.name] = InfoMetricFamily(
        m.TASK_INFO.name, m.TASK_INFO.help, labels=["app_id", "job_id", *TASK_INFO_LABELS]
    )
    for item in snap.apps:
        a = item.app_id
        per_app["aivoice_up"].add_metric([a], 1.0 if item.up else 0.0)
        per_app["aivoice_poll_duration_seconds"].add_metric([a], item.poll_duration_seconds)
        if item.last_success_seconds is not None:
            last = "aivoice_poll_last_success_timestamp_seconds"
            per_app[last].add_metric([a], item.last_success_seconds)
        if item.tasks is None:
            continue
        for status, (count, calls, done) in status_sums(item.tasks).items():
            per_app["aivoice_tasks"].add_metric([a, status], count)
            per_app["aivoice_calls"].add_metric([a, status], calls)
            per_app["aivoice_calls_completed"].add_metric([a, status], done)
        wanted = set(settings.per_task_statuses)
        for t in item.tasks if settings.per_task else ():
            if wanted and t.status not in wanted:
                continue
            per_app["aivoice_task_calls"].add_metric([a, t.job_id], t.calls)
            per_app["aivoice_task_calls_completed"].add_metric([a, t.job_id], t.calls_completed)
            per_app["aivoice_task_robots"].add_metric([a, t.job_id], t.robots)
            if t.created_seconds is not None:
                created = "aivoice_task_created_timestamp_seconds"
                per_app[created].add_metric([a, t.job_id], t.created_seconds)
            flags = [str(t.hangup_sms).lower(), str(t.dialog_flow_unbound).lower()]
            info = [t.name, t.status, t.mode, t.dialog_flow, t.line, *flags]
            per_app["aivoice_task"].add_metric([a, t.job_id, *info], {})
    per_endpoint = ["app_id", "endpoint"]
    requests = CounterMetricFamily(m.API_REQUESTS.name, m.API_REQUESTS.help, labels=per_endpoint)
    errors = CounterMetricFamily(
        m.API_ERRORS.name, m.API_ERRORS.help, labels=[*per_endpoint, "code"]
    )
    duration = HistogramMetricFamily(m.API_DURATION.name, m.API_DURATION.help, labels=per_endpoint)
    reads = CounterMetricFamily(m.POLL_READS.name, m.POLL_READS.help, labels=["app_id", "result"])
    bounds = [*(repr(float(b)) for b in DURATION_BOUNDS), "+Inf"]
    for a, stats in snap.requests.items():
        for endpoint, counts in sorted(stats.endpoints.items()):
            requests.add_metric([a, endpoint], counts.requests)
            for code, count in sorted(counts.errors.items()):
                errors.add_metric([a, endpoint, code], count)
            if len(counts.duration_buckets) == len(bounds):
                buckets = list(zip(bounds, counts.duration_buckets, strict=True))
                duration.add_metric([a, endpoint], buckets, counts.duration_sum)
        for result, count in sorted(stats.reads.items()):
            reads.add_metric([a, result], count)
    shard = GaugeMetricFamily(m.SHARD.name, m.SHARD.help, value=0)
    total = GaugeMetricFamily(m.TOTAL_SHARDS.name, m.TOTAL_SHARDS.help, value=1)
    return [
        build,
        successful,
        reloaded,
        shard,
        total,
        *per_app.values(),
        requests,
        errors,
        duration,
        reads,
    ]


class Source:
    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


LABEL_TEXT = st.text(max_size=8) | st.sampled_from(ODD_NAMES)
COUNTS = st.integers(min_value=-(2**53), max_value=2**53) | st.integers(0, 2_000_000)
SECONDS = st.floats(allow_nan=True, allow_infinity=True) | st.floats(1e9, 2e9)
TASKS = st.builds(
    Task,
    job_id=LABEL_TEXT,
    name=LABEL_TEXT,
    status=st.sampled_from(KNOWN_STATUSES) | LABEL_TEXT,
    calls=COUNTS,
    calls_completed=COUNTS,
    robots=COUNTS,
    mode=LABEL_TEXT,
    dialog_flow=LABEL_TEXT,
    line=LABEL_TEXT,
    hangup_sms=st.booleans(),
    dialog_flow_unbound=st.booleans(),
    created_seconds=st.none() | SECONDS,
)


COUNTS_SENT = st.integers(0, 2**53)


@st.composite
def endpoint_stats(draw: st.DrawFn) -> EndpointStats:
    steps = draw(st.lists(st.integers(0, 1000), min_size=len(DURATION_BOUNDS) + 1))
    buckets = tuple(sum(steps[: n + 1]) for n in range(len(steps)))
    return EndpointStats(
        requests=draw(COUNTS_SENT),
        errors=MappingProxyType(draw(st.dictionaries(LABEL_TEXT, COUNTS_SENT, max_size=4))),
        duration_buckets=draw(st.just(buckets) | st.just(())),
        duration_sum=draw(st.floats(0, 1e9)),
    )


@st.composite
def request_stats(draw: st.DrawFn) -> RequestStats:
    counts = COUNTS_SENT
    endpoints = draw(st.dictionaries(st.sampled_from(ENDPOINTS), endpoint_stats()))
    return RequestStats(
        endpoints=MappingProxyType(endpoints),
        reads=MappingProxyType(
            draw(st.dictionaries(st.sampled_from(["consistent", "reread", "inconsistent"]), counts))
        ),
    )


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    app_ids = draw(st.lists(LABEL_TEXT, max_size=3, unique=True))
    apps = []
    for app_id in app_ids:
        tasks = draw(st.none() | st.lists(TASKS, max_size=6, unique_by=lambda t: t.job_id))
        apps.append(
            AppSnapshot(
                app_id=app_id,
                up=draw(st.booleans()),
                tasks=None if tasks is None else tuple(tasks),
                poll_duration_seconds=draw(st.floats(0, 1e6)),
                last_success_seconds=draw(st.none() | SECONDS),
            )
        )
    stats = {app_id: draw(request_stats()) for app_id in draw(st.permutations(app_ids))}
    return Snapshot(tuple(apps), MappingProxyType(stats))


METRICS_CONFIGS = st.builds(
    MetricsConfig,
    per_task=st.booleans(),
    per_task_statuses=st.lists(st.sampled_from(KNOWN_STATUSES), max_size=2).map(tuple),
)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PARSED_PAGES = settings(PROPERTY, max_examples=300)


@pytest.mark.slow
@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
@PROPERTY
@given(snap=snapshots(), settings=METRICS_CONFIGS)
def test_output_is_byte_for_byte_client_pythons_own(
    snap: Snapshot, settings: MetricsConfig, openmetrics: bool
) -> None:
    cached, _ = render(snap, settings, RELOAD).parts(openmetrics, gzipped=False)
    encode = generate_openmetrics if openmetrics else generate_latest
    expected = encode(Source(reference(snap, settings, RELOAD)))  # type: ignore[arg-type]
    assert cached == expected.removesuffix(b"# EOF\n")


@pytest.mark.slow
@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
@PROPERTY
@given(snap=snapshots(), settings=METRICS_CONFIGS)
def test_output_parses_with_client_pythons_parsers(
    snap: Snapshot, settings: MetricsConfig, openmetrics: bool
) -> None:
    exposition = render(snap, settings, RELOAD)
    plain = exposition.body(openmetrics, gzipped=False)
    families = list((parse_om if openmetrics else parse_text)(plain.decode("utf-8")))
    names = [family.name for family in families]
    assert len(names) == len(set(names))
    assert "process_open_fds" in names
    assert api_samples(plain, openmetrics) == api_samples(
        gzip.decompress(exposition.body(openmetrics, gzipped=True)), openmetrics
    )


# ---------------------------------------------------------------------------- cached and live


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_gzip_body_is_one_gzip_member_of_the_plain_body(openmetrics: bool) -> None:
    exposition = rendered(snapshot(app("A", (task("1"),))))
    body = exposition.body(openmetrics, gzipped=True)
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    plain = decompressor.decompress(body)
    assert decompressor.eof
    assert decompressor.unused_data == b""
    assert api_samples(plain, openmetrics) == api_samples(
        exposition.body(openmetrics, False), openmetrics
    )
    assert plain.endswith(b"# EOF\n") == openmetrics


def test_live_metrics_follow_the_process_between_scrapes() -> None:
    exposition = rendered(snapshot(app("A", (task("1"),))))
    open_fds = ("process_open_fds", ())
    before = samples(exposition, openmetrics=True)[open_fds]
    files = [open(__file__, "rb") for _ in range(30)]  # noqa: SIM115
    try:
        after = samples(exposition, openmetrics=True)
    finally:
        for file in files:
            file.close()
    assert after[open_fds] >= before + 30
    assert after[("aivoice_up", (("app_id", "A"),))] == 1


def test_cached_part_is_built_once_per_format() -> None:
    exposition = rendered(snapshot(app("A", (task("1"),))))
    first, _ = exposition.parts(openmetrics=True, gzipped=True)
    again, _ = exposition.parts(openmetrics=True, gzipped=True)
    assert first is again
    plain, _ = exposition.parts(openmetrics=True, gzipped=False)
    assert plain is exposition.parts(openmetrics=True, gzipped=False)[0]


class CountingRenders:
    """Wraps `render_app` to record which apps it rendered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.apps: list[str] = []
        original = exposition_module.render_app

        def counting(item: AppSnapshot, settings: MetricsConfig):  # type: ignore[no-untyped-def]
            self.apps.append(item.app_id)
            return original(item, settings)

        monkeypatch.setattr(exposition_module, "render_app", counting)


def test_renderer_renders_only_apps_whose_snapshot_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    renders = CountingRenders(monkeypatch)
    a, b = app("A", (task("1"),)), app("B", (task("2", calls=5),))
    renderer = Renderer(MetricsConfig())
    renderer.render(snapshot(a, b), RELOAD)
    b_again = app("B", (task("2", calls=6),))
    second = renderer.render(snapshot(a, b_again), RELOAD)
    assert renders.apps == ["A", "B", "B"]
    got = samples(second)
    assert got[("aivoice_task_calls", (("app_id", "A"), ("job_id", "1")))] == 100
    assert got[("aivoice_task_calls", (("app_id", "B"), ("job_id", "2")))] == 6


def test_renderer_output_equals_a_fresh_render(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = app("A", (task("1"),)), app("B", (task("2"),))
    renderer = Renderer(MetricsConfig())
    renderer.render(snapshot(a, b), RELOAD)
    later = snapshot(app("C", (task("3"),)), a)
    cached, _ = renderer.render(later, RELOAD).parts(openmetrics=True, gzipped=False)
    fresh, _ = rendered(later).parts(openmetrics=True, gzipped=False)
    assert cached == fresh


def test_renderer_lets_go_of_an_app_the_snapshot_no_longer_holds() -> None:
    removed = app("B", (task("2"),))
    alive = weakref.ref(removed)
    renderer = Renderer(MetricsConfig())
    renderer.render(snapshot(app("A", ()), removed), RELOAD)
    del removed
    exposition = renderer.render(snapshot(app("A", ())), RELOAD)
    gc.collect()
    assert alive() is None
    assert not [labels for _, labels in samples(exposition) if ("app_id", "B") in labels]


# ----------------------------------------------------------------- whatever the parser accepts


@PARSED_PAGES
@given(NEAR_VALID_PAGES)
def test_every_page_the_parser_accepts_renders(document: Any) -> None:
    """A page that parses must render too, or the poller thread dies on publishing it."""
    try:
        page = parse_page(json.dumps(document).encode(), UTC8)
    except PollError:
        return
    event(f"rendered {min(len(page.tasks), 2)}+ tasks")
    render_tasks(page)


def render_tasks(page: Page) -> bytes:
    app = AppSnapshot(
        "A", up=True, tasks=page.tasks, poll_duration_seconds=0.1, last_success_seconds=1.7e9
    )
    snapshot = Snapshot(apps=(app,), requests=MappingProxyType({}))
    exposition = render(snapshot, MetricsConfig(), ReloadStatus(True, 1.7e9))
    return exposition.text


def test_page_with_a_lone_surrogate_renders() -> None:
    body = b'{"status": "0", "data": {"records": [{"jobId": 1, "name": "bad \\ud800 name"}]}}'
    assert b'job_id="1"' in render_tasks(parse_page(body, UTC8))


# ---------------------------------------------------------------------------- call outcomes


def call_reference(snap: CallsSnapshot) -> list[Metric]:
    """The call families as client_python's users would build them (empty families left out)."""
    m = declared_families
    up = GaugeMetricFamily(m.CALLS_UP.name, m.CALLS_UP.help, labels=["app_id"])
    results = counter(m.CALL_RESULTS, "result")
    talk = HistogramMetricFamily(m.CALL_TALK.name, m.CALL_TALK.help, labels=["app_id"])
    billed = counter(m.CALL_BILLED)
    cost = counter(m.CALL_COST, "currency")
    hangups = counter(m.CALL_HANGUPS, "hangup_by")
    intents = counter(m.CALL_INTENTS, "intent")
    tasks = counter(m.TASK_CALL_RESULTS, "job_id", "result")
    records = counter(m.CALL_RECORDS, "outcome", "source")
    line_results = counter(m.LINE_RESULTS, "line_id", "result")
    line_cost = counter(m.LINE_COST, "currency", "line_id")
    line_info = InfoMetricFamily(m.LINE_INFO.name, m.LINE_INFO.help, labels=["app_id", "line"])
    bounds = [*(repr(float(b)) for b in TALK_BUCKETS), "+Inf"]
    for calls in snap.apps:
        a = calls.app_id
        if calls.up is not None:
            up.add_metric([a], float(calls.up))
        for labelled, values in (
            (results, calls.results),
            (cost, calls.cost),
            (hangups, calls.hangups),
            (intents, calls.intents),
        ):
            for value, count in sorted(values.items()):
                labelled.add_metric([a, value], count)
        talk.add_metric([a], list(zip(bounds, calls.talk_buckets, strict=True)), calls.talk_sum)
        billed.add_metric([a], calls.billed_seconds)
        for job_id, counts in calls.task_results.items():
            for result, count in sorted(counts.items()):
                tasks.add_metric([a, job_id, result], count)
        for (source, outcome), count in sorted(calls.records.items()):
            records.add_metric([a, outcome, source], count)
        for line, counts in sorted(calls.lines.results.items()):
            for result, count in sorted(counts.items()):
                line_results.add_metric([a, line, result], count)
        for line, costs in sorted(calls.lines.cost.items()):
            for currency, amount in sorted(costs.items()):
                line_cost.add_metric([a, currency, line], amount)
        for line, name in sorted(calls.lines.names.items()):
            line_info.add_metric([a, name], {"line_id": line})
    families: list[Metric] = [up, results, talk, billed, cost, hangups, intents, tasks]
    families += [line_results, line_cost, line_info, records]
    if snap.unattributed:
        unknown = counter(m.CALL_RECORDS, "outcome", "source", app=False)
        for (source, outcome), count in sorted(snap.unattributed.items()):
            unknown.add_metric([outcome, source], count)
        records.samples += unknown.samples
    if snap.push_requests is not None:
        pushes = CounterMetricFamily(
            m.PUSH_REQUESTS.name, m.PUSH_REQUESTS.help, labels=["sender", "code"]
        )
        for (sender, code), count in sorted(snap.push_requests.items()):
            pushes.add_metric([sender, code], count)
        families.append(pushes)
    if snap.selects_by is not None:
        window = m.WINDOWS_SELECT_BY
        selection = GaugeMetricFamily(window.name, window.help, labels=["time"])
        for name in SELECTIONS:
            selection.add_metric([name], 1.0 if name == snap.selects_by else 0.0)
        families.append(selection)
    return [family for family in families if family.samples]


def counter(family: Family, *labels: str, app: bool = True) -> CounterMetricFamily:
    names = ["app_id", *labels] if app else list(labels)
    return CounterMetricFamily(family.name, family.help, labels=names)


CALL_COUNTS = st.dictionaries(LABEL_TEXT, st.integers(0, 2**53), max_size=3)


@st.composite
def app_calls(draw: st.DrawFn, app_id: str) -> AppCalls:
    size = len(TALK_BUCKETS) + 1
    steps = draw(st.lists(st.integers(0, 1000), min_size=size, max_size=size))
    sources = st.sampled_from(["poll", "push"])
    outcomes = st.sampled_from(["counted", "duplicate", "rejected"])
    return AppCalls(
        app_id=app_id,
        up=draw(st.none() | st.booleans()),
        results=MappingProxyType(draw(CALL_COUNTS)),
        talk_buckets=tuple(sum(steps[: n + 1]) for n in range(len(steps))),
        talk_sum=draw(st.floats(0, 1e9)),
        billed_seconds=draw(st.floats(0, 1e12)),
        cost=MappingProxyType(draw(st.dictionaries(LABEL_TEXT, st.floats(0, 1e9), max_size=1))),
        hangups=MappingProxyType(draw(CALL_COUNTS)),
        intents=MappingProxyType(draw(CALL_COUNTS)),
        task_results=MappingProxyType(draw(st.dictionaries(LABEL_TEXT, CALL_COUNTS, max_size=3))),
        records=MappingProxyType(
            draw(st.dictionaries(st.tuples(sources, outcomes), st.integers(0, 99)))
        ),
        lines=LineCalls(
            results=MappingProxyType(draw(st.dictionaries(LABEL_TEXT, CALL_COUNTS, max_size=3))),
            names=MappingProxyType(draw(st.dictionaries(LABEL_TEXT, LABEL_TEXT, max_size=3))),
            cost=MappingProxyType(
                draw(
                    st.dictionaries(
                        LABEL_TEXT,
                        st.dictionaries(LABEL_TEXT, st.floats(0, 1e9), max_size=1),
                        max_size=2,
                    )
                )
            ),
        ),
    )


@st.composite
def call_snapshots(draw: st.DrawFn) -> CallsSnapshot:
    app_ids = draw(st.lists(LABEL_TEXT, max_size=3, unique=True))
    unattributed = draw(st.dictionaries(st.just(("push", "rejected")), st.integers(0, 99)))
    codes = st.dictionaries(
        st.tuples(st.sampled_from(["vendor", "peer"]), st.sampled_from(["200", "404", "421"])),
        st.integers(0, 99),
    )
    return CallsSnapshot(
        apps=tuple(draw(app_calls(app_id)) for app_id in app_ids),
        unattributed=MappingProxyType(unattributed),
        push_requests=draw(st.none() | codes.map(MappingProxyType)),
        selects_by=draw(st.none() | st.sampled_from(SELECTIONS)),
    )


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
@PROPERTY
@given(snap=call_snapshots())
def test_call_families_are_byte_for_byte_client_pythons_own(
    snap: CallsSnapshot, openmetrics: bool
) -> None:
    rendered = CallMetrics(lambda: snap).render(openmetrics)
    encode = generate_openmetrics if openmetrics else generate_latest
    expected = encode(Source(call_reference(snap)))  # type: ignore[arg-type]
    assert rendered == expected.removesuffix(b"# EOF\n")


def test_call_families_come_with_every_scrape_between_polls() -> None:
    pushed = {("vendor", "200"): 3}
    snapshots = [CallsSnapshot(), CallsSnapshot(push_requests=MappingProxyType(pushed))]
    exposition = Renderer(MetricsConfig(), lambda: snapshots[-1]).render(snapshot(), RELOAD)
    assert b'aivoice_push_requests_total{code="200",sender="vendor"} 3.0' in exposition.text
    snapshots.append(CallsSnapshot(push_requests=MappingProxyType({("vendor", "200"): 4})))
    assert b'aivoice_push_requests_total{code="200",sender="vendor"} 4.0' in exposition.text
    assert b'{code="200",sender="vendor"} 4.0' in gzip.decompress(
        exposition.body(False, gzipped=True)
    )


def calls_of(app_id: str, results: dict[str, int] | None = None) -> AppCalls:
    empty: MappingProxyType[Any, Any] = MappingProxyType({})
    return AppCalls(
        app_id=app_id,
        up=True,
        results=MappingProxyType(results or {"ANSWERED": 0}),
        talk_buckets=(0,) * (len(TALK_BUCKETS) + 1),
        talk_sum=0.0,
        billed_seconds=0.0,
        cost=empty,
        hangups=empty,
        intents=empty,
        task_results=empty,
        records=empty,
    )


def test_an_unchanged_app_is_not_rendered_again(monkeypatch: pytest.MonkeyPatch) -> None:
    first = CallsSnapshot(apps=(calls_of("A"), calls_of("B")))
    second = CallsSnapshot(apps=(first.apps[0], calls_of("B", results={"BUSY": 1})))
    current = [first]
    live = CallMetrics(lambda: current[-1])
    live.render(False)
    rendered: list[str] = []
    original = call_exposition.render_calls
    monkeypatch.setattr(
        call_exposition, "render_calls", lambda c: rendered.append(c.app_id) or original(c)
    )
    current.append(second)
    assert b'result="BUSY"} 1.0' in live.render(False)
    assert rendered == ["B"]


# ---- the account's balance (balance.enabled) ---------------------------------------------------


def balance_snapshot() -> Any:
    from exporter.balance.read import AccountBalance, Balance, BalanceSnapshot

    recorder = RequestRecorder()
    recorder.track(["main", "other"], ["getBalance"])
    recorder.observe("main", 0.2, None, endpoint="getBalance")
    recorder.observe("other", 0.3, "-13", endpoint="getBalance")
    return BalanceSnapshot(
        accounts=(
            AccountBalance("main", True, Balance(1234.5, 0.0, -20.0), 1.7e9),
            AccountBalance("other", False, None, None),
        ),
        requests=recorder.snapshot(["main", "other"]),
        apps=MappingProxyType({"A": "main", 'q"b': "other"}),
    )


@pytest.mark.parametrize("openmetrics", [False, True])
def test_balance_families_render_valid_and_in_one_block_each(openmetrics: bool) -> None:
    app = AppSnapshot("A", True, (), 0.1, 1.7e9)
    recorder = RequestRecorder()
    recorder.observe("A", 0.1, None)
    snap = Snapshot(apps=(app,), requests=recorder.snapshot(["A"]))
    exposition = render(snap, MetricsConfig(), ReloadStatus(True, 1.0), balance_snapshot())
    text = (exposition.openmetrics if openmetrics else exposition.text).decode()
    parse = parse_om if openmetrics else parse_text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parse(text)
        for s in family.samples
    }
    assert samples[("aivoice_account_balance_up", (("account", "main"),))] == 1.0
    assert samples[("aivoice_account_balance_up", (("account", "other"),))] == 0.0
    kinds = {
        dict(labels)["kind"]: value
        for (name, labels), value in samples.items()
        if name == "aivoice_account_balance"
    }
    assert kinds == {"balance": 1234.5, "gift": 0.0, "credit": -20.0}  # none for `other`
    assert samples[("aivoice_app_info", (("account", "other"), ("app_id", 'q"b')))] == 1.0
    requests = ("aivoice_api_requests_total", (("account", "main"), ("endpoint", "getBalance")))
    assert samples[requests] == 1.0
    locked = (("account", "other"), ("code", "-13"), ("endpoint", "getBalance"))
    assert samples[("aivoice_api_errors_total", locked)] == 1.0
    assert samples[("aivoice_api_errors_total", (*locked[:1], ("code", "-2"), locked[2]))] == 0
    assert ("aivoice_api_requests_total", (("app_id", "A"), ("endpoint", "taskList"))) in samples
    assert text.count("# TYPE aivoice_api_requests") == 1


def test_no_balance_families_without_balance() -> None:
    from exporter.balance.read import BalanceSnapshot

    snap = Snapshot(apps=(), requests=MappingProxyType({}))
    text = render(snap, MetricsConfig(), ReloadStatus(True, 1.0), BalanceSnapshot()).text
    assert b"aivoice_account_balance" not in text and b"aivoice_app_info" not in text


def test_balance_helps_say_values_are_cached() -> None:
    for family in BALANCE_FAMILIES:
        assert family.help.endswith(CACHED)


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_the_shard_gauges_say_which_shard_of_how_many(openmetrics: bool) -> None:
    exposition = Renderer(MetricsConfig(), shard=Shard(ordinal=4, total=3)).render(
        snapshot(app("A", ())), RELOAD
    )
    got = samples(exposition, openmetrics)
    assert got[("aivoice_exporter_shard", ())] == 1
    assert got[("aivoice_exporter_total_shards", ())] == 3


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_forwards_are_rendered_live_by_result(openmetrics: bool) -> None:
    results = {"success": 5, "failure": 0, "dropped": 0}
    renderer = Renderer(MetricsConfig(), forwards=lambda: results)
    exposition = renderer.render(snapshot(app("A", ())), RELOAD)
    results["success"] = 6  # A push after the poll: the scrape sees it.
    got = samples(exposition, openmetrics)
    forwards = {
        dict(labels)["result"]: value
        for (name, labels), value in got.items()
        if name == "aivoice_push_forwards_total"
    }
    assert forwards == {"success": 6, "failure": 0, "dropped": 0}


def test_without_forwarding_no_forwards_family() -> None:
    text = Renderer(MetricsConfig()).render(snapshot(app("A", ())), RELOAD).text
    assert b"aivoice_push_forwards" not in text
