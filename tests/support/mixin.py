"""The monitoring mixin as files: the dashboard, the rules and alerts, and what they select.

The mixin's own tests read them structurally; the end-to-end test runs them on Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "grafana" / "aivoice-dashboard.json"
RULES = ROOT / "prometheus" / "rules.yml"
ALERTS = ROOT / "prometheus" / "alerts.yml"

# The metrics the README's table promises (names as they appear on /metrics), written out here
# on purpose: the dashboard must follow the promise, not whatever the code emits today.
_HISTOGRAMS = ("aivoice_api_request_duration_seconds", "aivoice_call_talk_duration_seconds")
EXPORTED_METRICS = frozenset(
    {
        "aivoice_up",
        "aivoice_tasks",
        "aivoice_calls",
        "aivoice_calls_completed",
        "aivoice_task_calls",
        "aivoice_task_calls_completed",
        "aivoice_task_robots",
        "aivoice_task_created_timestamp_seconds",
        "aivoice_task_info",
        "aivoice_api_requests_total",
        "aivoice_api_errors_total",
        "aivoice_poll_duration_seconds",
        "aivoice_poll_last_success_timestamp_seconds",
        "aivoice_exporter_build_info",
        # The shard a process serves (--shard mod --total-shards) and the shard count.
        "aivoice_exporter_shard",
        "aivoice_exporter_total_shards",
        # The outcome of the latest config load or reload.
        "aivoice_config_last_reload_successful",
        "aivoice_config_last_reload_success_timestamp_seconds",
        # Call outcomes, from recordQuery polls and the push (calls.enabled, push.listen_address).
        "aivoice_calls_up",
        "aivoice_call_results_total",
        "aivoice_call_billed_seconds_total",
        "aivoice_call_cost_total",
        "aivoice_call_hangups_total",
        "aivoice_call_intents_total",
        "aivoice_task_call_results_total",
        "aivoice_call_records_total",
        # Calls by line, and the lines' names (channelList).
        "aivoice_line_call_results_total",
        "aivoice_line_call_cost_total",
        "aivoice_line_info",
        "aivoice_push_requests_total",
        # Pushes handed on to the processes that own them (push.peers, or shards).
        "aivoice_push_forwards_total",
        "aivoice_call_windows_select_by",
        # The call state kept with --storage.path.
        "aivoice_storage_writes_total",
        # The account's balance (balance.enabled).
        "aivoice_account_balance",
        "aivoice_account_balance_up",
        "aivoice_app_info",
    }
    | {f"{name}_{suffix}" for name in _HISTOGRAMS for suffix in ("bucket", "sum", "count")}
)
# Series Prometheus itself makes for every scrape target.
PROMETHEUS_SERIES = frozenset({"up"})
# Exported only by a process among several (push.peers, or --total-shards above 1): one
# exporter alone serves none of these.
FLEET_ONLY_METRICS = frozenset({"aivoice_push_forwards_total"})
# Panels whose every query may legitimately be empty on a healthy stack.
MAY_BE_EMPTY = frozenset(
    {"API errors by code", "Running tasks with no completed call in 30 minutes"}
)
# The mixin's settings for a setup unlike the default one: the exporter's series are job
# "voice", a `replica` label tells its replicas apart, and one Prometheus holds two clusters.
CONFIGURED = {
    "aivoiceSelector": 'job="voice"',
    "replicaLabels": ["instance", "pod", "replica"],
    "showMultiCluster": True,
}
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and labels dropped)."""
    text = _VARIABLE.sub("1", expr)
    text = _STRING.sub('""', text)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = _GROUPING.sub("", text)
    return {
        match.group(1)
        for match in _IDENTIFIER.finditer(text)
        if not match.group(2) and match.group(1) not in _KEYWORDS
    }


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels nested in (collapsed) rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def variable_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """name -> query string of the dashboard's query variables."""
    queries = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries[variable["name"]] = query["query"] if isinstance(query, dict) else query
    return queries


def variable_selector(query: str) -> tuple[str, str]:
    """The selector and the label of a variable's `label_values(selector, label)`."""
    match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
    assert match, f"expected label_values(selector, label), got {query}"
    return match.group(1), match.group(2)


def rule_exprs() -> dict[str, str]:
    """rule name (record or alert) -> expr, over rules.yml and alerts.yml."""
    exprs = {}
    for path in (RULES, ALERTS):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                exprs[rule.get("record") or rule["alert"]] = rule["expr"]
    return exprs


def recorded_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["record"] for group in groups for rule in group["rules"]}


def used_metric_names() -> dict[str, set[str]]:
    """metric name -> where it is used, over dashboard queries, variables and rules."""
    dashboard = load_dashboard()
    used: dict[str, set[str]] = {}
    for panel, target in targets(dashboard):
        for name in metric_names(target["expr"]):
            used.setdefault(name, set()).add(f"panel {panel['title']!r} {target['refId']}")
    for name, query in variable_queries(dashboard).items():
        selector, _ = variable_selector(query)
        for metric in metric_names(selector):
            used.setdefault(metric, set()).add(f"variable {name}")
    for rule, expr in rule_exprs().items():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(f"rule {rule}")
    return used
