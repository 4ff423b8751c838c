"""The committed rules, alerts and dashboards, linted as mixtool lints a monitoring mixin.

mixtool (`mixtool lint`, with grafana/dashboard-linter for dashboards) holds alerts to the
guidelines of monitoring.mixins.dev and dashboards to a few rules that keep them portable. This
file applies the same rules to the generated files users load (the Kubernetes copies included):

- every alert: a severity label of critical, warning or info; a summary; a description that uses
  templates; a runbook_url whose anchor is a heading of docs/runbook.md; a CamelCase name of at
  most 40 characters, in a group named in at most 40;
- every recording rule: a name of the form level:metric:operations;
- every dashboard: a uid and a title, a datasource variable that every panel, every query and
  every query variable reads, and panel ids that are unique, nested panels included.

Two of mixtool's alert rules are left out on purpose (a mixtool `.lint` file would exclude them):
summaries without templates that end with a period, because ours name the app or task at fault,
which is what a notification's subject line needs; and at most 20 rules a group, because the
promtool unit tests name the two groups (`group_eval_order`) that hold 38 and 23 rules.

Each check returns its findings, one line naming the file, the alert or panel, and the key; the
tests at the end inject one fault each into a copy and see the check report it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.bundle import dashboards, rule_groups
from tests.support.mixin import ROOT

RUNBOOK = ROOT / "docs" / "runbook.md"
SEVERITIES = frozenset({"critical", "warning", "info"})
# mixtool's own patterns: CamelCase words, a Go template anywhere.
CAMEL_CASE = re.compile(r"(?:[A-Z]+[a-z0-9]+)+")
TEMPLATE = re.compile(r"\{\{.+\}\}")
MAX_NAME = 40
# level:metric:operations, the naming of Prometheus's recording rule practices.
RECORD_NAME = re.compile(
    # level: the labels the result keeps beyond job, joined by _ (app_id_job_id)
    r"(?P<level>[a-z][a-z0-9]*(?:_[a-z0-9]+)*)"
    # metric: the exporter's metric it derives from (_total dropped once rated or increased)
    r":(?P<metric>aivoice_[a-z0-9]+(?:_[a-z0-9]+)*)"
    # operations: what was applied, the last first, joined by _ (ratio_rate5m)
    r":(?P<operations>[a-z0-9]+(?:_[a-z0-9]+)*)"
)

DASHBOARDS = dashboards()
RULE_GROUPS = rule_groups()


# --- the checks -----------------------------------------------------------------------------


def _rules(groups: list[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    """The rules of a kind ("alert" or "record") over the groups."""
    return (rule for group in groups for rule in group["rules"] if kind in rule)


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the Markdown's headings (fenced code skipped, repeats numbered)."""
    anchors: set[str] = set()
    fence = ""
    for line in markdown.splitlines():
        marker = re.match(r"\s*(```|~~~)", line)
        if marker:
            fence = "" if fence == marker.group(1) else fence or marker.group(1)
            continue
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fence or not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1)).lower()
        anchor = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        repeat = 0
        while (f"{anchor}-{repeat}" if repeat else anchor) in anchors:
            repeat += 1
        anchors.add(f"{anchor}-{repeat}" if repeat else anchor)
    return anchors


def severity_findings(name: str, groups: list[dict[str, Any]]) -> list[str]:
    return [
        f"{name}: alert {rule['alert']}: labels.severity is {severity!r}, "
        f"not one of {sorted(SEVERITIES)}"
        for rule in _rules(groups, "alert")
        if (severity := (rule.get("labels") or {}).get("severity")) not in SEVERITIES
    ]


def annotation_findings(name: str, groups: list[dict[str, Any]]) -> list[str]:
    findings = []
    for rule in _rules(groups, "alert"):
        annotations = rule.get("annotations") or {}
        for key in ("summary", "description"):
            if not str(annotations.get(key, "")).strip():
                findings.append(f"{name}: alert {rule['alert']}: annotations.{key} is missing")
        description = str(annotations.get("description", ""))
        if description and not TEMPLATE.search(description):
            findings.append(
                f"{name}: alert {rule['alert']}: annotations.description uses no template "
                "({{ $labels... }} or {{ $value }}): it cannot say which series fired"
            )
    return findings


def runbook_findings(name: str, groups: list[dict[str, Any]], anchors: set[str]) -> list[str]:
    findings = []
    for rule in _rules(groups, "alert"):
        url = (rule.get("annotations") or {}).get("runbook_url", "")
        where = f"{name}: alert {rule['alert']}: annotations.runbook_url"
        parts = urlsplit(url)
        if not parts.path.endswith("docs/runbook.md"):
            findings.append(f"{where} {url!r} does not point into docs/runbook.md")
        elif parts.fragment not in anchors:
            findings.append(f"{where}: docs/runbook.md has no heading #{parts.fragment}")
    return findings


def alert_name_findings(name: str, groups: list[dict[str, Any]]) -> list[str]:
    findings = [
        f"{name}: alert {rule['alert']}: the name is not CamelCase of at most {MAX_NAME} letters"
        for rule in _rules(groups, "alert")
        if not CAMEL_CASE.fullmatch(rule["alert"]) or len(rule["alert"]) > MAX_NAME
    ]
    findings += [
        f"{name}: group {group['name']}: the name is longer than {MAX_NAME} characters"
        for group in groups
        if len(group["name"]) > MAX_NAME
    ]
    return findings


def record_name_findings(name: str, groups: list[dict[str, Any]]) -> list[str]:
    findings = []
    for rule in _rules(groups, "record"):
        match = RECORD_NAME.fullmatch(rule["record"])
        if not match:
            findings.append(f"{name}: record {rule['record']}: not level:metric:operations")
        elif match.group("metric").endswith("_total"):
            findings.append(f"{name}: record {rule['record']}: metric keeps _total")
    return findings


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, the panels nested in (collapsed) rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _datasource_uids(dashboard: dict[str, Any]) -> set[str]:
    """The ways to name the dashboard's datasource variables: $name and ${name}."""
    names = [
        variable["name"]
        for variable in dashboard.get("templating", {}).get("list", [])
        if variable.get("type") == "datasource"
    ]
    return {form for name in names for form in (f"${name}", f"${{{name}}}")}


def datasource_findings(name: str, dashboard: dict[str, Any]) -> list[str]:
    uids = _datasource_uids(dashboard)
    if not uids:
        return [f"{name}: templating.list has no variable of type datasource"]
    findings = []

    def check(where: str, datasource: Any) -> None:
        uid = datasource.get("uid") if isinstance(datasource, dict) else datasource
        if uid not in uids:
            findings.append(
                f"{name}: {where}: datasource.uid is {uid!r}, not one of {sorted(uids)}"
            )

    for variable in dashboard["templating"]["list"]:
        if variable.get("type") == "query":
            check(f"variable {variable['name']!r}", variable.get("datasource"))
    for panel in _panels(dashboard):
        if panel.get("type") == "row":
            continue
        where = f"panel {panel.get('title')!r} (id {panel.get('id')})"
        check(where, panel.get("datasource"))
        for target in panel.get("targets", []):
            check(f"{where} target {target.get('refId')}", target.get("datasource"))
    return findings


def identity_findings(name: str, dashboard: dict[str, Any]) -> list[str]:
    findings = [f"{name}: {key} is missing" for key in ("uid", "title") if not dashboard.get(key)]
    seen: dict[Any, str] = {}
    for panel in _panels(dashboard):
        title = f"panel {panel.get('title')!r}"
        if not isinstance(panel.get("id"), int):
            findings.append(f"{name}: {title}: id is {panel.get('id')!r}, not an integer")
        elif panel["id"] in seen:
            findings.append(f"{name}: {title}: id {panel['id']} is also {seen[panel['id']]}'s")
        else:
            seen[panel["id"]] = title
    return findings


# --- the committed files pass ---------------------------------------------------------------


@pytest.fixture(scope="module")
def anchors() -> set[str]:
    return github_anchors(RUNBOOK.read_text(encoding="utf-8"))


def test_the_bundle_has_alerts_recording_rules_and_dashboards() -> None:
    groups = [group for groups in RULE_GROUPS.values() for group in groups]
    assert any(_rules(groups, "alert")) and any(_rules(groups, "record"))
    assert DASHBOARDS


@pytest.mark.parametrize("name", RULE_GROUPS)
def test_every_alert_has_a_severity_label(name: str) -> None:
    findings = severity_findings(name, RULE_GROUPS[name])
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("name", RULE_GROUPS)
def test_every_alert_has_a_summary_and_a_templated_description(name: str) -> None:
    findings = annotation_findings(name, RULE_GROUPS[name])
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("name", RULE_GROUPS)
def test_every_alert_links_to_a_heading_of_the_runbook(name: str, anchors: set[str]) -> None:
    findings = runbook_findings(name, RULE_GROUPS[name], anchors)
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("name", RULE_GROUPS)
def test_alert_and_group_names_are_short_and_alerts_camel_case(name: str) -> None:
    findings = alert_name_findings(name, RULE_GROUPS[name])
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("name", RULE_GROUPS)
def test_every_recording_rule_is_named_level_metric_operations(name: str) -> None:
    findings = record_name_findings(name, RULE_GROUPS[name])
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_panel_query_and_variable_reads_the_datasource_variable(name: str) -> None:
    findings = datasource_findings(name, DASHBOARDS[name])
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_has_a_uid_a_title_and_unique_panel_ids(name: str) -> None:
    findings = identity_findings(name, DASHBOARDS[name])
    assert not findings, "\n".join(findings)


# --- each check finds the fault it is for ---------------------------------------------------


def test_github_anchors_follow_githubs_rules() -> None:
    markdown = (
        "# Alert runbook\n## AivoiceExporterDown\n```sh\n# not a heading\n```\n"
        "### The [API](api.md), `code` -1!\n## Alert runbook ##\n"
    )
    assert github_anchors(markdown) == {
        "alert-runbook",
        "aivoiceexporterdown",
        "the-api-code--1",
        "alert-runbook-1",
    }


def _alert_groups() -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """A copy of the first rule file with alerts, and its first alert."""
    name, groups = next(
        (name, groups) for name, groups in RULE_GROUPS.items() if any(_rules(groups, "alert"))
    )
    groups = copy.deepcopy(groups)
    return name, groups, next(_rules(groups, "alert"))


def test_a_missing_or_unknown_severity_is_found() -> None:
    name, groups, alert = _alert_groups()
    alert["labels"]["severity"] = "page"
    assert severity_findings(name, groups) == [
        f"{name}: alert {alert['alert']}: labels.severity is 'page', "
        "not one of ['critical', 'info', 'warning']"
    ]
    del alert["labels"]["severity"]
    assert "labels.severity is None" in severity_findings(name, groups)[0]


def test_a_missing_summary_or_an_untemplated_description_is_found() -> None:
    name, groups, alert = _alert_groups()
    del alert["annotations"]["summary"]
    alert["annotations"]["description"] = "Something is wrong."
    findings = annotation_findings(name, groups)
    assert findings[0] == f"{name}: alert {alert['alert']}: annotations.summary is missing"
    assert findings[1].startswith(f"{name}: alert {alert['alert']}: annotations.description uses")
    assert len(findings) == 2


def test_a_runbook_url_to_a_missing_heading_or_another_page_is_found(anchors: set[str]) -> None:
    name, groups, alert = _alert_groups()
    url = alert["annotations"]["runbook_url"]
    alert["annotations"]["runbook_url"] = url.split("#")[0] + "#aivoicenosuchalert"
    assert runbook_findings(name, groups, anchors) == [
        f"{name}: alert {alert['alert']}: annotations.runbook_url: "
        "docs/runbook.md has no heading #aivoicenosuchalert"
    ]
    alert["annotations"]["runbook_url"] = "https://example.com/wiki#x"
    assert "does not point into docs/runbook.md" in runbook_findings(name, groups, anchors)[0]


def test_a_snake_case_or_long_alert_name_and_a_long_group_name_are_found() -> None:
    name, groups, alert = _alert_groups()
    alert["alert"] = "aivoice_exporter_down"
    groups[0]["name"] = "g" * (MAX_NAME + 1)
    assert alert_name_findings(name, groups) == [
        f"{name}: alert aivoice_exporter_down: the name is not CamelCase of at most 40 letters",
        f"{name}: group {'g' * 41}: the name is longer than 40 characters",
    ]
    alert["alert"] = "Aivoice" * 6
    assert len(alert_name_findings(name, groups)) == 2


@pytest.mark.parametrize(
    "record",
    [
        "aivoice_calls_completed:sum",  # no level
        "app_id:calls_completed:sum",  # not an exporter metric
        "app_id:aivoice_calls_completed",  # no operations
        "app_id:aivoice_api_requests_total:rate5m",  # _total kept once rated
        "App_id:aivoice_calls_completed:sum",
    ],
)
def test_a_recording_rule_name_not_level_metric_operations_is_found(record: str) -> None:
    groups = [{"name": "g", "rules": [{"record": record, "expr": "1"}]}]
    assert record_name_findings("f", groups) == [
        f"f: record {record}: "
        + ("metric keeps _total" if "_total" in record else "not level:metric:operations")
    ]


def _dashboard() -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """A copy of the first dashboard, and its panels that are not rows."""
    name, dashboard = next(iter(DASHBOARDS.items()))
    dashboard = copy.deepcopy(dashboard)
    return name, dashboard, [p for p in _panels(dashboard) if p["type"] != "row"]


def test_a_panel_target_or_variable_off_the_datasource_variable_is_found() -> None:
    name, dashboard, panels = _dashboard()
    panels[0]["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
    del panels[1]["targets"][0]["datasource"]
    variable = next(v for v in dashboard["templating"]["list"] if v["type"] == "query")
    variable["datasource"] = "Prometheus"
    findings = datasource_findings(name, dashboard)
    assert [finding.split(": datasource.uid is ")[1].split(",")[0] for finding in findings] == [
        "'Prometheus'",
        "'P1809F7CD0C75ACF3'",
        "None",
    ]
    first, second = (f"panel {p['title']!r} (id {p['id']})" for p in panels[:2])
    assert findings[0].startswith(f"{name}: variable {variable['name']!r}: ")
    assert findings[1].startswith(f"{name}: {first}: ")
    target = panels[1]["targets"][0]["refId"]
    assert findings[2].startswith(f"{name}: {second} target {target}: ")


def test_a_panel_nested_in_a_collapsed_row_is_checked_too() -> None:
    name, dashboard, panels = _dashboard()
    row = next(p for p in dashboard["panels"] if p["type"] == "row")
    nested = copy.deepcopy(panels[0]) | {"id": 999, "datasource": {"uid": "default"}}
    row |= {"collapsed": True, "panels": [nested]}
    (finding,) = datasource_findings(name, dashboard)
    assert finding.startswith(f"{name}: panel {nested['title']!r} (id 999): datasource.uid")


def test_a_dashboard_with_no_datasource_variable_is_found() -> None:
    name, dashboard, _ = _dashboard()
    dashboard["templating"]["list"] = [
        v for v in dashboard["templating"]["list"] if v["type"] != "datasource"
    ]
    assert datasource_findings(name, dashboard) == [
        f"{name}: templating.list has no variable of type datasource"
    ]


def test_a_missing_uid_and_a_repeated_panel_id_are_found() -> None:
    name, dashboard, panels = _dashboard()
    del dashboard["uid"]
    panels[1]["id"] = panels[0]["id"]
    assert identity_findings(name, dashboard) == [
        f"{name}: uid is missing",
        f"{name}: panel {panels[1]['title']!r}: id {panels[0]['id']} is also "
        f"panel {panels[0]['title']!r}'s",
    ]
