"""The mixin rendered with other settings, on real Prometheus scraping real exporters.

The settings (`CONFIGURED`): the exporter's series are job "voice", a `replica` label tells its
replicas apart, and one Prometheus holds two clusters. Four exporter processes poll one
simulator: clusters a and b, each of two replicas that poll the same account (and get the
simulator's pushes, each push at one process of the four). Prometheus scrapes them every second
as job "voice", labels each target with its cluster and replica, and gives every target the same
`instance` (as if each were scraped through one Service address), so that only `replica` tells
two replicas apart. It loads the configured render's rules and alerts.

tests/mixin/test_configured.py shows on fed series, with promtool, that this render answers per
cluster exactly what the default render answers for one. Here the same render runs live: every
rule evaluates, records each cluster with its replicas merged, every panel query runs for each
cluster and shows its data, and what the processes cannot see differently (the tasks in each
status, the shard, the apps' polls) is per cluster what one exporter serves, not twice it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import yaml

from mixin import render
from tests.support.exposition import scraped
from tests.support.mixin import (
    CONFIGURED,
    MAY_BE_EMPTY,
    targets,
    variable_queries,
    variable_selector,
)
from tests.support.processes import (
    ExporterProcess,
    Process,
    start_exporter_process,
    start_simulator_process,
)
from tests.support.prometheus import (
    DATA_TIMEOUT,
    STARTUP_TIMEOUT,
    PrometheusAPI,
    start_prometheus,
    substitute,
    wait_for,
    wait_ready,
)
from tests.support.tools import free_ports, require_tool

pytestmark = pytest.mark.slow

API_KEY = "clusterKey01"
API_SECRET = "cluster-secret-value"
APP_IDS = ("APP1", "APP2")
PUSH_TOKEN = "cluster-push-token-0123456789"
JOB = "voice"
CLUSTERS = ("a", "b")
REPLICAS = ("0", "1")
# Every target's `instance`: the replicas differ by `replica` alone.
INSTANCE = "voice:10188"
# Recorded series that are empty while every process is healthy, so they may be here too:
# - the running tasks making no progress, which the panel that may be empty for the same
#   reason reads (MAY_BE_EMPTY);
# - the shards with no live process: every shard has two.
# (The errors by code are recorded at 0: the exporter writes every known code from the start.)
RULES_MAY_BE_EMPTY = frozenset(
    {
        "app_id_job_id:aivoice_task_calls_completed:stalled30m",
        "shard:aivoice_exporter_shard:missing",
    }
)


def variables(cluster: str) -> dict[str, str]:
    """What Grafana puts in place of the dashboard's variables, one cluster picked."""
    return {
        "cluster": cluster,
        "job": JOB,
        "app_id": "|".join(APP_IDS),
        "status": ".*",
        "__rate_interval": "1m",
        "__interval": "1s",
        "__range": "5m",
    }


@cache
def configured() -> dict[str, Any]:
    """The render's rules, alerts and dashboards (read, never changed)."""
    return render.evaluate(CONFIGURED)


def dashboard() -> dict[str, Any]:
    (only,) = configured()["dashboards"].values()
    result: dict[str, Any] = only
    return result


def recorded_names() -> list[str]:
    return [r["record"] for g in configured()["rules"]["groups"] for r in g["rules"]]


def panel_query(title: str, cluster: str) -> str:
    (expr,) = [t["expr"] for p, t in targets(dashboard()) if p["title"] == title]
    return substitute(expr, variables(cluster))


@dataclass
class Stack:
    prometheus: PrometheusAPI
    # cluster -> the URL of each of its exporter processes
    exporters: dict[str, list[str]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = require_tool("prometheus")
    work = tmp_path_factory.mktemp("configured")
    members = [(cluster, replica) for cluster in CLUSTERS for replica in REPLICAS]
    # The simulator pushes each call to one of the processes: their ports are picked here.
    push_ports = free_ports(len(members))
    processes: list[Process] = []
    try:
        simulator, base_url = start_simulator_process(
            "--api-key",
            API_KEY,
            "--api-secret",
            API_SECRET,
            "--app-ids",
            ",".join(APP_IDS),
            "--seed",
            "3",
            "--push-url",
            ",".join(f"http://127.0.0.1:{p}/push/call-record/{PUSH_TOKEN}" for p in push_ports),
            "--push-retry-delay",
            "0.5",
            cwd=work,
            timeout=STARTUP_TIMEOUT,
        )
        processes.append(simulator)
        exporters: list[ExporterProcess] = []
        for (cluster, replica), push_port in zip(members, push_ports, strict=True):
            name = f"{cluster}{replica}"
            config = {
                "api": {"base_url": base_url, "timeout_seconds": 2, "max_requests_per_second": 100},
                "poll": {"interval_seconds": 1, "stale_after_seconds": 60},
                "accounts": [
                    {"api_key": API_KEY, "api_secret": API_SECRET, "app_ids": list(APP_IDS)}
                ],
                "calls": {"enabled": True},
                "push": {"listen_address": f"127.0.0.1:{push_port}", "token": PUSH_TOKEN},
                "balance": {"enabled": True, "interval_seconds": 5},
            }
            (work / f"{name}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
            exporter = start_exporter_process(
                "--config.file",
                str(work / f"{name}.yaml"),
                "--storage.path",
                str(work / f"{name}-state"),
                wait=False,
                cwd=work,
            )
            processes.append(exporter)
            exporters.append(exporter)
        for exporter in exporters:
            exporter.wait_until_listening(STARTUP_TIMEOUT)

        rendered = configured()
        for name in ("rules", "alerts"):
            (work / f"{name}.yml").write_text(yaml.safe_dump(rendered[name]), encoding="utf-8")
        static_configs = [
            {
                "targets": [exporter.address],
                "labels": {"cluster": cluster, "replica": replica, "instance": INSTANCE},
            }
            for (cluster, replica), exporter in zip(members, exporters, strict=True)
        ]
        process, api = start_prometheus(
            prometheus,
            work,
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["rules.yml", "alerts.yml"],
                "scrape_configs": [{"job_name": JOB, "static_configs": static_configs}],
            },
        )
        processes.append(process)
        wait_ready(process, api.url)
        wait_for(
            lambda: len(api.query(f'up{{job="{JOB}"}} == 1')) == len(members),
            STARTUP_TIMEOUT,
            "every exporter scraped",
        )
        urls: dict[str, list[str]] = {cluster: [] for cluster in CLUSTERS}
        for (cluster, _), exporter in zip(members, exporters, strict=True):
            urls[cluster].append(exporter.url)
        yield Stack(api, urls)
    finally:
        for running in reversed(processes):
            running.kill()


def agree(first: Callable[[], Any], second: Callable[[], Any], what: str) -> Any:
    """Wait until `first()` and `second()` give the same answer, read again at each try (the
    exporters poll and Prometheus scrapes at their own moments); fail with both answers."""
    deadline = time.monotonic() + DATA_TIMEOUT
    while True:
        one, two = first(), second()
        if one == two:
            return one
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} differ after {DATA_TIMEOUT} s: {one} != {two}")
        time.sleep(0.5)


def test_prometheus_loads_every_configured_rule_and_alert_and_evaluates_each_without_error(
    stack: Stack,
) -> None:
    found = wait_for(stack.prometheus.evaluated_rules, DATA_TIMEOUT, "every rule evaluated")
    assert [r["name"] for r in found if r["type"] == "recording"] == recorded_names()
    alerts = [r["alert"] for g in configured()["alerts"]["groups"] for r in g["rules"]]
    assert [r["name"] for r in found if r["type"] == "alerting"] == alerts
    broken = {r["name"]: r.get("lastError") for r in found if r["health"] != "ok"}
    assert not broken, broken


def test_every_recording_rule_records_each_cluster_with_its_replicas_merged(stack: Stack) -> None:
    names = recorded_names()
    expected = {
        f"{name} in cluster {cluster}": f'{name}{{cluster="{cluster}"}}'
        for name in names
        if name not in RULES_MAY_BE_EMPTY
        for cluster in CLUSTERS
    }
    empty = stack.prometheus.without_data(expected, DATA_TIMEOUT)
    assert not empty, "recorded nothing:\n" + "\n".join(empty)
    for name in names:
        for series in stack.prometheus.query(name):
            labels = series["metric"]
            assert labels.get("cluster") in CLUSTERS, (name, labels)
            assert not set(labels) & set(CONFIGURED["replicaLabels"]), (name, labels)


def test_every_panel_query_runs_for_each_cluster_and_shows_its_data(stack: Stack) -> None:
    expected = {}
    for cluster in CLUSTERS:
        for panel, target in targets(dashboard()):
            promql = substitute(target["expr"], variables(cluster))
            stack.prometheus.query_range(promql)  # a query that does not parse fails here
            stack.prometheus.query(promql)
            if panel["title"] not in MAY_BE_EMPTY:
                expected[f"{panel['title']} {target['refId']} in cluster {cluster}"] = promql
    assert expected
    empty = stack.prometheus.without_data(expected, DATA_TIMEOUT)
    assert not empty, "queries without data:\n" + "\n".join(f"{n}: {q}" for n, q in empty.items())


def test_the_template_variables_list_both_clusters_and_each_ones_job_apps_and_statuses(
    stack: Stack,
) -> None:
    queries = {name: variable_selector(q) for name, q in variable_queries(dashboard()).items()}
    selector, label = queries.pop("cluster")
    assert stack.prometheus.label_values(label, selector) == set(CLUSTERS)
    expected = {"job": {JOB}, "app_id": set(APP_IDS), "status": {"IN_PROCESS", "COMPLETED"}}
    assert set(queries) == set(expected)
    for cluster in CLUSTERS:
        for name, (selector, label) in queries.items():
            values = stack.prometheus.label_values(label, substitute(selector, variables(cluster)))
            assert values >= expected[name], (cluster, name, values)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_each_clusters_tasks_per_status_are_one_exporters_not_a_sum_over_its_replicas(
    stack: Stack, cluster: str
) -> None:
    query = panel_query("Tasks by status now", cluster)

    def in_prometheus() -> dict[str, float]:
        return {r["metric"]["status"]: float(r["value"][1]) for r in stack.prometheus.query(query)}

    def in_exporter() -> dict[str, float]:
        counts: dict[str, float] = {}
        for labels, value in scraped(stack.exporters[cluster][0], "aivoice_tasks").items():
            status = dict(labels)["status"]
            counts[status] = counts.get(status, 0) + value
        return counts

    counts = agree(in_prometheus, in_exporter, "tasks per status")
    assert sum(counts.values()) > 0, counts


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_each_clusters_shard_rules_are_one_exporters_and_count_its_replicas_once(
    stack: Stack, cluster: str
) -> None:
    url = stack.exporters[cluster][0]
    (shard,) = scraped(url, "aivoice_exporter_shard").values()
    (total,) = scraped(url, "aivoice_exporter_total_shards").values()
    selector = f'{{cluster="{cluster}"}}'
    served = wait_for(
        lambda: stack.prometheus.query(f"shard:aivoice_exporter_shard:max{selector}"),
        DATA_TIMEOUT,
        "the shard",
    )
    assert [(r["metric"]["shard"], float(r["value"][1])) for r in served] == [(f"{shard:g}", shard)]
    (shards,) = stack.prometheus.query(f"job:aivoice_exporter_total_shards:max{selector}")
    assert float(shards["value"][1]) == total
    # The shard's live processes: the cluster's replicas, each once.
    (live,) = stack.prometheus.query(f"shard:aivoice_exporter_shard:count{selector}")
    assert (live["metric"]["shard"], float(live["value"][1])) == (f"{shard:g}", len(REPLICAS))


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_each_clusters_app_polls_are_one_exporters(stack: Stack, cluster: str) -> None:
    query = panel_query("App polls", cluster)
    url = stack.exporters[cluster][0]
    answered = agree(
        lambda: {
            r["metric"]["app_id"]: float(r["value"][1]) for r in stack.prometheus.query(query)
        },
        lambda: {
            dict(labels)["app_id"]: value for labels, value in scraped(url, "aivoice_up").items()
        },
        "the apps' polls",
    )
    assert answered == dict.fromkeys(APP_IDS, 1.0)
