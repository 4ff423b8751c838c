"""The dashboard and the rules against the real programs: simulator -> exporter -> Prometheus ->
Alertmanager, all on 127.0.0.1 with ephemeral ports and temporary directories.

The exporter polls recordQuery (`calls.enabled`) and runs its push listener, which the
simulator pushes every call to, so the call panels and rules see both sources.

Prometheus (Debian's 2.42 here) scrapes the exporter every second with rules.yml and a copy of
alerts.yml whose `for:` is shortened, and alerts to Alertmanager. The stack starts once for the
module; every wait polls with a deadline, and every process is killed at the end.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.mixin import (
    ALERTS,
    EXPORTED_METRICS,
    FLEET_ONLY_METRICS,
    MAY_BE_EMPTY,
    PROMETHEUS_SERIES,
    RULES,
    load_dashboard,
    recorded_names,
    targets,
    used_metric_names,
    variable_queries,
    variable_selector,
)
from tests.support.processes import Process, start_exporter_process, start_simulator_process
from tests.support.prometheus import (
    DATA_TIMEOUT,
    STARTUP_TIMEOUT,
    PrometheusAPI,
    start_prometheus,
    substitute,
    wait_for,
    wait_ready,
)
from tests.support.tools import free_port, require_tool

pytestmark = pytest.mark.slow

API_KEY = "e2eKey01"
API_SECRET = "e2e-secret-value"
APP_IDS = ("APP1", "APP2")
PUSH_TOKEN = "e2e-push-token-0123456789"
JOB = "aivoice"
# What Grafana would put in place of the dashboard's variables ("All" apps and statuses).
VARIABLES = {
    "job": JOB,
    "app_id": "|".join(APP_IDS),
    "status": ".*",
    "__rate_interval": "1m",
    "__interval": "1s",
    "__range": "5m",
}
ALERT_TIMEOUT = 180.0


def push_url(port: int, token: str = PUSH_TOKEN) -> str:
    return f"http://127.0.0.1:{port}/push/call-record/{token}"


@dataclass
class Stack:
    simulator_url: str
    exporter_url: str
    prometheus: PrometheusAPI
    alertmanager_url: str
    push_port: int
    processes: dict[str, Process]

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{p.log()}" for name, p in self.processes.items())

    def set_faults(self, **faults: Any) -> None:
        response = requests.post(f"{self.simulator_url}/-/faults", json=faults, timeout=5)
        response.raise_for_status()


def shortened_alerts(path: Path) -> Path:
    """A copy of alerts.yml with every `for:` cut to 1s, so the test waits seconds, not minutes."""
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = require_tool("prometheus")
    alertmanager = require_tool("prometheus-alertmanager", "alertmanager")
    work = tmp_path_factory.mktemp("e2e")
    processes: dict[str, Process] = {}
    # The simulator needs the push URL before the exporter exists: the port is picked here.
    push_port = free_port()
    try:
        processes["simulator"], base_url = start_simulator_process(
            "--api-key",
            API_KEY,
            "--api-secret",
            API_SECRET,
            "--app-ids",
            ",".join(APP_IDS),
            "--seed",
            "3",
            "--push-url",
            push_url(push_port),
            # pushes made before the exporter listens are retried soon
            "--push-retry-delay",
            "0.5",
            cwd=work,
            timeout=STARTUP_TIMEOUT,
        )
        config = {
            "api": {"base_url": base_url, "timeout_seconds": 2, "max_requests_per_second": 100},
            "poll": {"interval_seconds": 1, "stale_after_seconds": 60},
            "accounts": [{"api_key": API_KEY, "api_secret": API_SECRET, "app_ids": list(APP_IDS)}],
            "calls": {"enabled": True},
            "push": {"listen_address": f"127.0.0.1:{push_port}", "token": PUSH_TOKEN},
            # The account's balance, read often so that its rules and panels get data.
            "balance": {"enabled": True, "interval_seconds": 5},
        }
        (work / "exporter.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        # With every optional part on, so that every family the rules and panels use is served.
        processes["exporter"] = exporter = start_exporter_process(
            "--config.file",
            str(work / "exporter.yaml"),
            "--storage.path",
            str(work / "state"),
            wait=False,
            cwd=work,
        )
        exporter_address = exporter.wait_until_listening(STARTUP_TIMEOUT)

        am_port = free_port()
        (work / "alertmanager.yml").write_text(
            yaml.safe_dump(
                {
                    "route": {"receiver": "nobody", "group_wait": "1s", "group_interval": "1s"},
                    "receivers": [{"name": "nobody"}],
                }
            ),
            encoding="utf-8",
        )
        processes["alertmanager"] = Process.start(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={work / 'alertmanager.yml'}",
                f"--storage.path={work / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            cwd=work,
        )

        shutil.copy(RULES, work / "rules.yml")
        shortened_alerts(work / "alerts.yml")
        processes["prometheus"], api = start_prometheus(
            prometheus,
            work,
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["rules.yml", "alerts.yml"],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {"job_name": JOB, "static_configs": [{"targets": [exporter_address]}]}
                ],
            },
        )
        running = Stack(
            simulator_url=base_url.removesuffix("/aivoice"),
            exporter_url=f"http://{exporter_address}",
            prometheus=api,
            alertmanager_url=f"http://127.0.0.1:{am_port}",
            push_port=push_port,
            processes=processes,
        )
        wait_ready(processes["alertmanager"], running.alertmanager_url)
        wait_ready(processes["prometheus"], api.url)
        wait_for(
            lambda: running.prometheus.query(f'up{{job="{JOB}"}} == 1'),
            STARTUP_TIMEOUT,
            "the first scrape",
        )
        yield running
    finally:
        for process in reversed(processes.values()):
            process.kill()


def test_prometheus_loads_every_rule_and_evaluates_it_without_error(stack: Stack) -> None:
    found = wait_for(stack.prometheus.evaluated_rules, DATA_TIMEOUT, "every rule to be evaluated")
    assert {r["name"] for r in found if r["type"] == "recording"} == recorded_names()
    broken = {r["name"]: r.get("lastError") for r in found if r["health"] != "ok"}
    assert not broken, broken


def test_every_dashboard_query_runs_and_each_panel_shows_data(stack: Stack) -> None:
    pending = {}
    for panel, target in targets(load_dashboard()):
        promql = substitute(target["expr"], VARIABLES)
        stack.prometheus.query_range(promql)  # a query that does not parse fails here
        stack.prometheus.query(promql)
        if panel["title"] not in MAY_BE_EMPTY:
            pending[f"{panel['title']} {target['refId']}"] = promql
    pending = stack.prometheus.without_data(pending, DATA_TIMEOUT)
    assert not pending, "queries without data:\n" + "\n".join(
        f"{name}: {q}" for name, q in pending.items()
    )


def test_template_variables_list_the_stacks_job_apps_and_statuses(stack: Stack) -> None:
    expected = {"job": {JOB}, "app_id": set(APP_IDS), "status": {"IN_PROCESS", "COMPLETED"}}
    for name, query in variable_queries(load_dashboard()).items():
        selector, label = variable_selector(query)
        values = stack.prometheus.label_values(label, substitute(selector, VARIABLES))
        assert values >= expected[name], (name, values)


def test_every_metric_the_dashboard_and_rules_use_is_on_the_exporters_metrics(
    stack: Stack,
) -> None:
    text = requests.get(f"{stack.exporter_url}/metrics", timeout=10).text
    served = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    used = set(used_metric_names()) - recorded_names() - PROMETHEUS_SERIES
    assert used <= EXPORTED_METRICS  # the promise, as tests/mixin/test_dashboard.py checks it
    missing = sorted(used - served - FLEET_ONLY_METRICS)
    assert not missing, f"used by the dashboard or rules but not served: {missing}"


def firing_alerts(stack: Stack, name: str) -> list[dict[str, Any]]:
    response = requests.get(f"{stack.prometheus.url}/api/v1/alerts", timeout=10)
    return [
        a
        for a in response.json()["data"]["alerts"]
        if a["labels"]["alertname"] == name and a["state"] == "firing"
    ]


def every_app(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts once there is one for every app, else nothing (to wait on)."""
    return alerts if {a["labels"]["app_id"] for a in alerts} == set(APP_IDS) else []


def test_authentication_failure_fires_in_prometheus_and_reaches_alertmanager(stack: Stack) -> None:
    stack.set_faults(api_code="-1")
    try:
        # Each app is published as its own poll ends, so the apps' alerts may start a scrape
        # apart: wait for every app's.
        alerts = wait_for(
            lambda: every_app(firing_alerts(stack, "AivoiceAuthenticationFailing")),
            ALERT_TIMEOUT,
            "AivoiceAuthenticationFailing to fire",
        )
        assert {a["labels"]["app_id"] for a in alerts} == set(APP_IDS)
        assert {a["labels"]["code"] for a in alerts} == {"-1"}
        assert all(a["labels"]["severity"] == "critical" for a in alerts)

        def received() -> list[dict[str, Any]]:
            response = requests.get(
                f"{stack.alertmanager_url}/api/v2/alerts",
                params={"filter": 'alertname="AivoiceAuthenticationFailing"'},
                timeout=10,
            )
            return [a for a in response.json() if a["status"]["state"] == "active"]

        delivered = wait_for(
            lambda: every_app(received()), ALERT_TIMEOUT, "the alert to reach Alertmanager"
        )
        assert {a["labels"]["app_id"] for a in delivered} == set(APP_IDS)
        for alert in delivered:
            assert alert["labels"]["job"] == JOB
            assert alert["annotations"]["runbook_url"].endswith("#aivoiceauthenticationfailing")
            assert "code -1" in alert["annotations"]["summary"]

        # The dashboard's errors panel, empty while healthy, now shows the code.
        errors = next(t for p, t in targets(load_dashboard()) if p["title"] == "API errors by code")
        result = wait_for(
            lambda: stack.prometheus.query(substitute(errors["expr"], VARIABLES)),
            DATA_TIMEOUT,
            "errors",
        )
        assert {r["metric"]["code"] for r in result} == {"-1"}
    finally:
        stack.set_faults()


def test_calls_from_both_sources_reach_the_call_rules(stack: Stack) -> None:
    # A call is counted by whichever source sees it first: the other one reads a duplicate.
    def sources() -> set[str]:
        result = stack.prometheus.query(
            f"sum by (source) (aivoice_call_records_total"
            f'{{job="{JOB}", outcome=~"counted|duplicate"}}) > 0'
        )
        return {r["metric"]["source"] for r in result} if len(result) == 2 else set()

    assert wait_for(sources, DATA_TIMEOUT, "call records from polls and pushes") == {
        "poll",
        "push",
    }
    ratios = wait_for(
        lambda: stack.prometheus.query("app_id:aivoice_call_results_answered:ratio_increase1h"),
        DATA_TIMEOUT,
        "the answer ratio",
    )
    assert {r["metric"]["app_id"] for r in ratios} == set(APP_IDS)
    assert all(0 <= float(r["value"][1]) <= 1 for r in ratios)


def test_pushes_with_a_wrong_token_fire_push_rejected(stack: Stack) -> None:
    for _ in range(6):
        response = requests.post(
            push_url(stack.push_port, "not-the-token-0123456"), data=b"{}", timeout=5
        )
        assert response.status_code == 404
    alerts = wait_for(
        lambda: firing_alerts(stack, "AivoicePushRejected"), ALERT_TIMEOUT, "AivoicePushRejected"
    )
    assert [a["labels"]["reason"] for a in alerts] == ["not_found"]
    assert alerts[0]["annotations"]["runbook_url"].endswith("#aivoicepushrejected")


def test_the_balance_reaches_the_spend_and_runway_rules(stack: Stack) -> None:
    balances = wait_for(
        lambda: stack.prometheus.query(f'aivoice_account_balance{{job="{JOB}", kind="balance"}}'),
        DATA_TIMEOUT,
        "the account's balance",
    )
    assert [r["metric"]["account"] for r in balances] == [API_KEY]  # no name: the api_key
    info = stack.prometheus.query(f'aivoice_app_info{{job="{JOB}"}}')
    assert {r["metric"]["app_id"]: r["metric"]["account"] for r in info} == dict.fromkeys(
        APP_IDS, API_KEY
    )
    runway = wait_for(
        lambda: stack.prometheus.query("account:aivoice_account_runway_seconds:rate1h"),
        DATA_TIMEOUT,
        "the runway (a balance and a spend above zero)",
    )
    assert [r["metric"]["account"] for r in runway] == [API_KEY]
    assert float(runway[0]["value"][1]) > 0
    # Earlier tests' faults fail getBalance too: the next read after they end succeeds.
    assert wait_for(
        lambda: stack.prometheus.query(f'aivoice_account_balance_up{{job="{JOB}"}} == 1'),
        DATA_TIMEOUT,
        "a successful balance read",
    )
