"""The collectors' exposition, parsed back with client_python's own parsers."""

from __future__ import annotations

import gzip
from types import MappingProxyType

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.codes import TASK_LIST_CODES, TRANSPORT_CODES
from exporter.config import MetricsConfig
from exporter.metrics import Exposition, ReloadStatus, render
from exporter.snapshot import KNOWN_STATUSES, AppSnapshot, Snapshot, Task
from exporter.stats import RequestRecorder

ODD_NAMES = (
    'say "hello"',
    "back\\slash",
    "two\nlines",
    "外呼任务",
    "📞 campaign 🚀",
    "",
)


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


def snapshot(*apps: AppSnapshot, recorder: RequestRecorder | None = None) -> Snapshot:
    recorder = recorder or RequestRecorder()
    recorder.track(app.app_id for app in apps)
    return Snapshot(apps=apps, requests=recorder.snapshot(app.app_id for app in apps))


def app(app_id: str, tasks: tuple[Task, ...] | None, up: bool = True) -> AppSnapshot:
    return AppSnapshot(app_id, up, tasks, 0.25, 1_700_000_000.0 if tasks is not None else None)


def samples(exposition: Exposition, openmetrics: bool = False) -> dict[tuple, float]:
    """{(sample name, sorted label pairs): value} from the rendered text."""
    text = (exposition.openmetrics if openmetrics else exposition.text).decode("utf-8")
    families = parse_om(text) if openmetrics else parse_text(text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def rendered(snap: Snapshot, settings: MetricsConfig | None = None) -> Exposition:
    return render(snap, settings or MetricsConfig(), ReloadStatus(True, 1_700_000_000.0))


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


def test_error_codes_start_at_zero() -> None:
    got = samples(rendered(snapshot(app("A", ()))))
    for code in TASK_LIST_CODES + TRANSPORT_CODES:
        assert got[("aivoice_api_errors_total", (("app_id", "A"), ("code", code)))] == 0


def test_request_counts_and_histogram() -> None:
    recorder = RequestRecorder()
    recorder.observe("A", 0.07, None)
    recorder.observe("A", 3.0, "timeout")
    got = samples(rendered(snapshot(app("A", ()), recorder=recorder)))
    assert got[("aivoice_api_requests_total", (("app_id", "A"),))] == 2
    assert got[("aivoice_api_errors_total", (("app_id", "A"), ("code", "timeout")))] == 1
    bucket = "aivoice_api_request_duration_seconds_bucket"
    assert got[(bucket, (("app_id", "A"), ("le", "0.1")))] == 1
    assert got[(bucket, (("app_id", "A"), ("le", "5.0")))] == 2
    assert got[(bucket, (("app_id", "A"), ("le", "+Inf")))] == 2
    assert got[("aivoice_api_request_duration_seconds_sum", (("app_id", "A"),))] == 3.07


def test_help_says_values_are_cached() -> None:
    text = rendered(snapshot(app("A", (task("1"),)))).text.decode()
    helps = [line for line in text.splitlines() if line.startswith("# HELP aivoice_")]
    per_poll = [h for h in helps if "build_info" not in h and "config_last_reload" not in h]
    assert per_poll
    assert all("cached from the latest poll" in line for line in per_poll)


def test_no_sample_carries_a_timestamp() -> None:
    text = rendered(snapshot(app("A", (task("1"),)))).text.decode()
    samples_lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all(len(line.rsplit("} ", 1)[-1].split()) <= 2 for line in samples_lines)
    assert all(len(line.split(" ")) == 2 for line in samples_lines if "{" not in line)


def test_gzip_body_decompresses_to_the_plain_one() -> None:
    exposition = rendered(snapshot(app("A", (task("1"),))))
    assert (
        gzip.decompress(exposition.body(openmetrics=True, gzipped=True)) == exposition.openmetrics
    )
    assert exposition.openmetrics.endswith(b"# EOF\n")


def test_build_info_names_the_version() -> None:
    got = samples(rendered(Snapshot(apps=(), requests=MappingProxyType({}))))
    (labels,) = [dict(lb) for name, lb in got if name == "aivoice_exporter_build_info"]
    assert set(labels) == {"version", "python_version"}
