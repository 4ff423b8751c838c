"""The mixin rendered with other settings gives, per cluster, what the default render gives.

The settings are a setup unlike the default one: the exporter's series are those of job "voice"
(`aivoiceSelector`), its replicas are told apart by a `replica` label (`replicaLabels`; the two
replicas of a shard have the same `instance` and `pod`), and one Prometheus holds two clusters
(`showMultiCluster`). The same day of the exporter's series (tests/support/series.py) is
written once per cluster as that setup scrapes it, and once per cluster as the default setup
does (a job per cluster, replicas told apart by `instance` and `pod`), with a second shard whose
processes die early (so the shard rules have something to say). promtool then evaluates both
renders' recording rules and every panel query, and each configured answer in a cluster must be
the default answer for that cluster: as many series, every one equal, at least one.

Both renders' rules run in one promtool test, so the default render's recorded names get a
suffix, and its raw selectors leave out job "voice" (whose `replica` label it would not fold).
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixin import render
from tests.support.mixin import CONFIGURED, all_panels
from tests.support.series import (
    MINUTES,
    PER_TARGET_PANELS,
    Series,
    app_series,
    assert_promtool_passes,
    dashboard_query,
    equal_answer_cases,
    exporter_series,
    series_selector,
    series_values,
)
from tests.support.tools import require_tool

# The default render, kept off job "voice": its selectors are the only setting changed.
DEFAULT = {"aivoiceSelector": 'job!="voice"'}
SUFFIX = "_default"
# Each cluster's data: the same apps and accounts, at different scales, so that a rule that
# adds up two clusters (or takes the max across them) gives another answer than either alone.
CLUSTERS = ("east", "west")
SHARD_DIES_AT = 20  # minutes: shard 1's processes stop answering (before either evaluation)
ANSWERED_AT = (("east", 1, 2), ("west", 3, 1))  # cluster, APP1's scale, APP2's scale


def _cluster_series(cluster: str) -> list[Series]:
    """One cluster's exporter series as each process of shard 0 exports them (no `up`)."""
    scales = {name: (one, two) for name, one, two in ANSWERED_AT}[cluster]
    shared = [s for s in exporter_series() if "app_id" not in s.labels and s.metric != "up"]
    return app_series("APP1", "main", scales[0]) + app_series("APP2", "other", scales[1]) + shared


def _process_labels(cluster: str, index: int, configured: bool) -> dict[str, str]:
    """Process `index` (0, 1: shard 0; 2, 3: shard 1) of a cluster, as each setup labels it."""
    if configured:
        return {
            "job": "voice",
            "cluster": cluster,
            "instance": "voice:10188",
            "pod": "aivoice-exporter-0",
            "replica": "abcd"[index],
        }
    return {"job": cluster, "instance": f"r{index}:10188", "pod": f"aivoice-exporter-{index}"}


def input_series() -> list[dict[str, str]]:
    written = []
    for cluster in CLUSTERS:
        for configured in (False, True):
            for index in range(4):
                labels = _process_labels(cluster, index, configured)
                shard, restarted = index // 2, index == 1
                own = {"up": 1, "aivoice_exporter_shard": shard, "aivoice_exporter_total_shards": 2}
                for metric, value in own.items():
                    if shard:
                        values = f"{value}+0x{SHARD_DIES_AT} stale"
                    else:
                        values = series_values(
                            Series(metric, {}, value), restarted and metric != "up"
                        )
                    written.append({"series": series_selector(metric, labels), "values": values})
                if shard:
                    continue
                for series in _cluster_series(cluster):
                    values = series_values(series, restarted)
                    if (series.landed and index == 1) or (series.forwarded and index == 0):
                        values = f"0x{MINUTES}"
                    written.append(
                        {
                            "series": series_selector(series.metric, {**labels, **series.labels}),
                            "values": values,
                        }
                    )
    return written


@cache
def renders() -> tuple[dict[str, Any], dict[str, Any]]:
    """The configured render, and the default one with its recorded names suffixed."""
    configured = render.evaluate(CONFIGURED)
    default = render.evaluate(DEFAULT)
    names = [rule["record"] for group in default["rules"]["groups"] for rule in group["rules"]]
    pattern = re.compile(r"(?<![\w:])(" + "|".join(map(re.escape, names)) + r")(?![\w:])")

    def suffixed(text: str) -> str:
        return pattern.sub(lambda match: match.group(1) + SUFFIX, text)

    for group in default["rules"]["groups"]:
        for rule in group["rules"]:
            rule["record"] += SUFFIX
            rule["expr"] = suffixed(rule["expr"])
    for dashboard in default["dashboards"].values():
        for panel in all_panels(dashboard):
            for target in panel.get("targets", []):
                target["expr"] = suffixed(target["expr"])
    return configured, default


def configured_dashboard() -> dict[str, Any]:
    (dashboard,) = renders()[0]["dashboards"].values()
    return dashboard


def same_answers(configured: str, default: str) -> list[dict[str, Any]]:
    """promtool cases: as many series, each equal to its twin (labels but job and cluster)."""
    return equal_answer_cases(configured, default, "job, cluster")


def run_promtool(tmp_path: Path, cases: list[dict[str, Any]]) -> None:
    configured, default = renders()
    rule_files = []
    for name, rules in (("configured", configured["rules"]), ("default", default["rules"])):
        path = tmp_path / f"{name}_rules.yml"
        path.write_text(yaml.safe_dump(rules), encoding="utf-8")
        rule_files.append(str(path))
    test_file = tmp_path / "configured_test.yml"
    assert_promtool_passes(test_file, rule_files, input_series(), cases, timeout=600)


def groupings(expr: str) -> list[str]:
    """The label lists of every `by (...)` and `on (...)` of an expression."""
    return re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr)


def test_configured_rules_and_alerts_pass_promtool_check(tmp_path: Path) -> None:
    configured = renders()[0]
    for name in ("rules", "alerts"):
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump(configured[name]), encoding="utf-8")
        result = subprocess.run(
            [require_tool("promtool"), "check", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_with_multi_cluster_every_rule_and_alert_keeps_the_cluster_in_every_by_and_on() -> None:
    configured = renders()[0]
    for name in ("rules", "alerts"):
        for rule in configured[name]["groups"][0]["rules"]:
            where = rule.get("record") or rule["alert"]
            for labels in groupings(rule["expr"]):
                assert "cluster" in [label.strip() for label in labels.split(",")], (where, labels)


def test_every_rule_folds_the_configured_replica_labels_and_selects_the_configured_job() -> None:
    configured = renders()[0]
    for name in ("rules", "alerts"):
        for rule in configured[name]["groups"][0]["rules"]:
            expr = rule["expr"]
            for labels in re.findall(r"without\s*\(([^)]*)\)", expr):
                if "instance" in labels:
                    assert labels == "instance, pod, replica", rule
            for selector in re.findall(r"(?<![\w:])aivoice_[a-z_]+(\{[^}]*\})?", expr):
                assert selector.startswith('{job="voice"'), (rule, selector)


def test_with_multi_cluster_the_dashboard_selects_one_cluster_in_every_query() -> None:
    dashboard = configured_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "cluster", "job", "app_id", "status"]
    assert variables["cluster"]["multi"] is False
    for name in ("job", "app_id", "status"):
        assert 'cluster=~"$cluster"' in variables[name]["query"]["query"], name
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            assert 'cluster=~"$cluster"' in target["expr"], (panel["title"], target["refId"])


@pytest.mark.slow
def test_every_recording_rule_answers_per_cluster_as_the_default_render_does(
    tmp_path: Path,
) -> None:
    configured = renders()[0]
    names = [rule["record"] for rule in configured["rules"]["groups"][0]["rules"]]
    assert names
    cases = [
        case
        for name in names
        for cluster in CLUSTERS
        for case in same_answers(
            f'{name}{{job="voice", cluster="{cluster}"}}', f'{name}{SUFFIX}{{job="{cluster}"}}'
        )
    ]
    run_promtool(tmp_path, cases)


@pytest.mark.slow
def test_every_panel_query_answers_per_cluster_as_the_default_render_does(
    tmp_path: Path,
) -> None:
    (default_dashboard,) = renders()[1]["dashboards"].values()
    pairs = zip(
        [(p, t) for p in all_panels(configured_dashboard()) for t in p.get("targets", [])],
        [t for p in all_panels(default_dashboard) for t in p.get("targets", [])],
        strict=True,
    )
    cases = []
    for (panel, target), default_target in pairs:
        if panel["title"] in PER_TARGET_PANELS:
            continue
        for cluster in CLUSTERS:
            mine = dashboard_query(target["expr"].replace("$cluster", cluster), "voice")
            theirs = dashboard_query(default_target["expr"], cluster)
            cases += same_answers(mine, theirs)
    assert cases
    run_promtool(tmp_path, cases)


def test_another_cluster_label_is_selected_by_the_cluster_variable_and_kept_by_every_rule() -> None:
    rendered = render.evaluate({"showMultiCluster": True, "clusterLabel": "k8s_cluster"})
    (dashboard,) = rendered["dashboards"].values()
    cluster = next(v for v in dashboard["templating"]["list"] if v["name"] == "cluster")
    assert cluster["query"]["query"] == "label_values(aivoice_up, k8s_cluster)"
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            assert 'k8s_cluster=~"$cluster"' in target["expr"], panel["title"]
    for rule in rendered["rules"]["groups"][0]["rules"]:
        for labels in groupings(rule["expr"]):
            assert "k8s_cluster" in labels, rule["record"]
