"""The Grafana dashboard and its provisioning, checked structurally (no Grafana needed).

The end-to-end test (tests/system/test_prometheus_e2e.py) runs the same queries through a real
Prometheus; this file checks what can be seen from the JSON alone: fixed uid, unique ids, the
datasource variable everywhere, a grid that fits, and that every metric name the dashboard and
the rules use is one the exporter promises (the README's metric table) or a recording rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.mixin import (
    DASHBOARD,
    EXPORTED_METRICS,
    MAY_BE_EMPTY,
    PROMETHEUS_SERIES,
    ROOT,
    all_panels,
    load_dashboard,
    metric_names,
    recorded_names,
    targets,
    used_metric_names,
    variable_queries,
)

PROVISIONING = ROOT / "grafana" / "provisioning"
MOUNTED_DASHBOARD = "/var/lib/grafana/dashboards/aivoice-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ROW_TITLES = (
    "Exporter and API health",
    "Account at a glance",
    "Calls",
    "Lines",
    "Account",
    "Campaigns",
    "Running tasks making no progress",
)
VISUAL_TYPES = frozenset({"stat", "timeseries", "table", "bargauge", "gauge"})


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


def test_campaigns_table_shows_task_status_progress_rate_answer_rate_and_eta(
    dashboard: dict[str, Any],
) -> None:
    panel = next(p for p in all_panels(dashboard) if p["title"] == "Campaign progress")
    organize = next(t for t in panel["transformations"] if t["id"] == "organize")
    columns = set(organize["options"]["renameByName"].values())
    assert {"Task", "Status", "Completed", "Total", "Progress", "Calls/min", "ETA"} <= columns
    assert "Answer rate" in columns


def test_campaign_answer_rate_joins_the_per_task_rule_on_job_id(dashboard: dict[str, Any]) -> None:
    panel = next(p for p in all_panels(dashboard) if p["title"] == "Campaign progress")
    organize = next(t for t in panel["transformations"] if t["id"] == "organize")
    renamed = organize["options"]["renameByName"]
    (ref_id,) = [name.removeprefix("Value #") for name, v in renamed.items() if v == "Answer rate"]
    (target,) = [t for t in panel["targets"] if t["refId"] == ref_id]
    assert metric_names(target["expr"]) == {
        "app_id_job_id:aivoice_task_call_results_answered:ratio_increase1h",
        "aivoice_task_info",
    }
    assert "on (job, app_id, job_id) group_left (name, status)" in target["expr"]


def panels_in_row(dashboard: dict[str, Any], title: str) -> dict[str, dict[str, Any]]:
    """title -> panel, for the panels between the row and the next one down."""
    rows = sorted(p["gridPos"]["y"] for p in dashboard["panels"] if p["type"] == "row")
    top = next(p["gridPos"]["y"] for p in dashboard["panels"] if p["title"] == title)
    bottom = next((y for y in rows if y > top), float("inf"))
    return {
        p["title"]: p
        for p in all_panels(dashboard)
        if p["type"] != "row" and top < p["gridPos"]["y"] < bottom
    }


def test_calls_row_shows_answers_outcomes_talk_time_and_spend(dashboard: dict[str, Any]) -> None:
    panels = panels_in_row(dashboard, "Calls")
    exprs = {title: " ".join(t["expr"] for t in p["targets"]) for title, p in panels.items()}
    assert "app_id:aivoice_call_results_answered:ratio_increase1h" in exprs["Answer rate (1h)"]
    assert "aivoice_calls_up" in exprs["Call record polls"]
    outcomes = panels["Call outcomes"]
    assert "by (result)" in exprs["Call outcomes"]
    assert outcomes["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    talk = panels["Talk time p50 / p95"]["targets"]
    assert [t["expr"].split(",")[0] for t in talk] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
    ]
    assert all("aivoice_call_talk_duration_seconds_bucket" in t["expr"] for t in talk)
    assert "aivoice_call_billed_seconds_total" in exprs["Billed minutes per hour"]
    assert "by (app_id, currency)" in exprs["Spend per hour"]
    assert "by (source, outcome)" in exprs["Call records by source and outcome"]


# Metrics that carry no app_id: a query of only these cannot follow the App variable.
NO_APP_ID = frozenset(
    {
        "up",
        "aivoice_push_requests_total",
        # The balance is the account's: its panels follow $job, and show every account.
        "aivoice_account_balance",
        "account:aivoice_account_spend:rate1h",
        "account:aivoice_account_runway_seconds:rate1h",
    }
)


def test_every_query_follows_the_job_and_app_variables(dashboard: dict[str, Any]) -> None:
    for panel, target in targets(dashboard):
        where = (panel["title"], target["refId"])
        assert 'job=~"$job"' in target["expr"], where
        if metric_names(target["expr"]) - NO_APP_ID:
            assert 'app_id=~"$app_id"' in target["expr"], where


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
