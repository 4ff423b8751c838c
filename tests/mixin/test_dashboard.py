"""The Grafana dashboard and its provisioning, checked structurally (no Grafana needed).

The end-to-end test (tests/system/test_prometheus_e2e.py) runs the same queries through a real
Prometheus; this file checks what can be seen from the JSON alone: fixed uid, unique ids, the
datasource variable everywhere, a grid that fits, and that every metric name the dashboard and
the rules use is one the exporter promises (issue 2's table) or a recording rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "grafana" / "aivoice-dashboard.json"
PROVISIONING = ROOT / "grafana" / "provisioning"
RULES = ROOT / "prometheus" / "rules.yml"
ALERTS = ROOT / "prometheus" / "alerts.yml"
MOUNTED_DASHBOARD = "/var/lib/grafana/dashboards/aivoice-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# The metrics contract of issue 2 (names as they appear on /metrics), copied from the issue's
# table on purpose: the dashboard must follow the contract, not whatever the code emits today.
_HISTOGRAMS = ("aivoice_api_request_duration_seconds",)
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
        # Issue 4's reload metrics.
        "aivoice_config_last_reload_successful",
        "aivoice_config_last_reload_success_timestamp_seconds",
    }
    | {f"{name}_{suffix}" for name in _HISTOGRAMS for suffix in ("bucket", "sum", "count")}
)
# Series Prometheus itself makes for every scrape target.
PROMETHEUS_SERIES = frozenset({"up"})
# Panels whose every query may legitimately be empty on a healthy stack.
MAY_BE_EMPTY = frozenset(
    {"API errors by code", "Running tasks with no completed call in 30 minutes"}
)
ROW_TITLES = (
    "Exporter and API health",
    "Account at a glance",
    "Campaigns",
    "Running tasks making no progress",
)
VISUAL_TYPES = frozenset({"stat", "timeseries", "table", "bargauge", "gauge"})

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
        match = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
        assert match, f"variable {name}: expected label_values(selector, label), got {query}"
        for metric in metric_names(match.group(1)):
            used.setdefault(metric, set()).add(f"variable {name}")
    for rule, expr in rule_exprs().items():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(f"rule {rule}")
    return used


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def test_metric_names_finds_selected_metrics_and_skips_functions_labels_and_keywords() -> None:
    expr = (
        '60 * sum by (app_id, code) (rate(aivoice_api_errors_total{job=~"$job", code="-1"}'
        "[$__rate_interval])) > 0 and on (job) up offset 30m\n"
        "/ ignoring (le) histogram_quantile(0.95, app_id_le:x_bucket:rate5m) unless foo == 1e3"
    )
    assert metric_names(expr) == {
        "aivoice_api_errors_total",
        "up",
        "app_id_le:x_bucket:rate5m",
        "foo",
    }


def test_dashboard_has_fixed_uid_and_no_import_inputs(dashboard: dict[str, Any]) -> None:
    text = DASHBOARD.read_text(encoding="utf-8")
    assert dashboard["uid"] == "aivoice-exporter"
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert "__inputs" not in dashboard
    assert "DS_PROMETHEUS" not in text
    assert dashboard.get("id") is None


def test_panel_ids_are_unique_including_panels_nested_in_rows(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in all_panels(dashboard)]
    assert all(isinstance(i, int) for i in ids)
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate panel ids: {duplicates}"


def test_every_panel_and_target_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            assert "targets" not in panel, panel["title"]
            continue
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']}: no queries"
        for target in panel["targets"]:
            assert target.get("datasource") == DATASOURCE, (panel["title"], target["refId"])
            assert target["expr"].strip(), (panel["title"], target["refId"])


def test_no_datasource_anywhere_is_hard_coded(dashboard: dict[str, Any]) -> None:
    def walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "datasource":
                    yield path, value
                yield from walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, f"{path}[{index}]")

    found = list(walk(dashboard, "$"))
    assert found
    for path, value in found:
        assert value == DATASOURCE, f"{path}: {value!r}"


def test_template_variables_are_datasource_job_app_id_and_status(
    dashboard: dict[str, Any],
) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "app_id", "status"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    queries = variable_queries(dashboard)
    assert queries["app_id"] == 'label_values(aivoice_up{job=~"$job"}, app_id)'
    assert variables["app_id"]["multi"] is True
    assert variables["app_id"]["includeAll"] is True
    assert queries["status"].startswith("label_values(") and queries["status"].endswith("status)")
    for name in ("job", "app_id", "status"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE


def test_grid_positions_fit_in_24_columns_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels(dashboard):
        pos = panel["gridPos"]
        x, y, w, h = pos["x"], pos["y"], pos["w"], pos["h"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0, panel["title"]
        assert x + w <= 24, f"{panel['title']}: x {x} + w {w} > 24"
        for cx in range(x, x + w):
            for cy in range(y, y + h):
                other = cells.setdefault((cx, cy), panel["title"])
                assert other == panel["title"], f"{panel['title']!r} overlaps {other!r}"


def test_rows_come_in_the_order_an_operator_reads_them(dashboard: dict[str, Any]) -> None:
    rows = sorted(
        (p["gridPos"]["y"], p["title"]) for p in dashboard["panels"] if p["type"] == "row"
    )
    assert tuple(title for _, title in rows) == ROW_TITLES


def test_every_panel_has_a_description_unit_and_thresholds(dashboard: dict[str, Any]) -> None:
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["type"] in VISUAL_TYPES, panel["title"]
        assert len(panel.get("description", "")) >= 40, f"{panel['title']}: description"
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), f"{panel['title']}: no unit"
        steps = defaults.get("thresholds", {}).get("steps")
        assert steps and steps[0]["value"] is None, f"{panel['title']}: thresholds"


def test_campaigns_table_has_every_column_the_issue_asks_for(dashboard: dict[str, Any]) -> None:
    panel = next(p for p in all_panels(dashboard) if p["title"] == "Campaign progress")
    organize = next(t for t in panel["transformations"] if t["id"] == "organize")
    columns = set(organize["options"]["renameByName"].values())
    assert {"Task", "Status", "Completed", "Total", "Progress", "Calls/min", "ETA"} <= columns


def test_table_columns_name_only_queries_that_exist(dashboard: dict[str, Any]) -> None:
    for panel in all_panels(dashboard):
        if panel["type"] != "table":
            continue
        ref_ids = {target["refId"] for target in panel["targets"]}
        assert all(target.get("format") == "table" for target in panel["targets"])
        organize = next(t for t in panel["transformations"] if t["id"] == "organize")
        values = {
            name.removeprefix("Value #")
            for name in organize["options"]["renameByName"]
            if name.startswith("Value #")
        }
        assert values == ref_ids, panel["title"]


def test_every_metric_in_dashboard_and_rules_is_exported_or_recorded() -> None:
    known = EXPORTED_METRICS | PROMETHEUS_SERIES | recorded_names()
    unknown = {name: sorted(where) for name, where in used_metric_names().items()}
    unknown = {name: where for name, where in unknown.items() if name not in known}
    assert not unknown, f"metric names neither exported nor recorded: {unknown}"


def test_panels_that_may_be_empty_exist(dashboard: dict[str, Any]) -> None:
    titles = {panel["title"] for panel in all_panels(dashboard)}
    assert titles >= MAY_BE_EMPTY


def test_dashboard_provider_loads_the_mounted_dashboard_file() -> None:
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "aivoice.yml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == str(Path(MOUNTED_DASHBOARD).parent)
    assert Path(MOUNTED_DASHBOARD).name == DASHBOARD.name


def test_datasource_provisioning_points_at_the_compose_prometheus() -> None:
    document = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert document["apiVersion"] == 1
    (source,) = document["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["access"] == "proxy"
    assert source["isDefault"] is True
