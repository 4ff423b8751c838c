"""The Prometheus rules and example configs, checked by promtool and amtool themselves.

`promtool test rules prometheus/tests/*.yml` holds the behaviour (each alert fires when it must,
with its labels and annotations, and stays quiet when it must not); this file runs it, and checks
the conventions promtool cannot: every alert covered both ways, severities, runbook links.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.support.mixin import ALERTS, ROOT, RULES
from tests.support.tools import require_tool

PROMETHEUS_DIR = ROOT / "prometheus"
UNIT_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
RUNBOOK_BASE = "https://github.com/aivoice-exporter/aivoice-exporter/blob/main/docs/runbook.md#"
# The alerts the project promises its users; more may come, none of these may go.
REQUIRED_ALERTS = frozenset(
    {
        "AivoiceExporterDown",
        "AivoiceAppPollsFailing",
        "AivoiceDataStale",
        "AivoiceAuthenticationFailing",
        "AivoiceClockSkew",
        "AivoiceIpNotAllowed",
        "AivoiceAppMissing",
        "AivoiceApiErrorRatioHigh",
        "AivoiceTaskStalled",
        "AivoiceTaskFinishedLowCompletion",
        "AivoiceCallRecordsFailing",
        "AivoiceAnswerRateLow",
        "AivoiceLineFailing",
        "AivoiceLineAnswerRateLow",
        "AivoiceCallLoss",
        "AivoicePushRejected",
        "AivoicePushForwardsFailing",
        "AivoiceStorageWritesFailing",
        "AivoiceBalanceRunningOut",
        "AivoiceBalanceExhausted",
        "AivoiceBalanceUnavailable",
        "AivoiceShardMissing",
        "AivoiceShardingMismatch",
        "AivoiceShardDegraded",
    }
)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def alerting_rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def unit_test_cases() -> list[dict[str, Any]]:
    """Every alert_rule_test entry of every promtool unit test file."""
    cases = []
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_recording_rules_pass_promtool_check() -> None:
    assert_ok(run(require_tool("promtool"), "check", "rules", str(RULES)))


def test_alerting_rules_pass_promtool_check() -> None:
    assert_ok(run(require_tool("promtool"), "check", "rules", str(ALERTS)))


@pytest.mark.slow
def test_promtool_unit_tests_pass() -> None:
    assert UNIT_TESTS
    assert_ok(run(require_tool("promtool"), "test", "rules", *map(str, UNIT_TESTS)))


def test_example_prometheus_config_is_valid_and_loads_both_rule_files() -> None:
    result = run(
        require_tool("promtool"), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")
    )
    assert_ok(result)
    assert "2 rule files found" in result.stdout + result.stderr


def test_example_alertmanager_config_is_valid() -> None:
    amtool = require_tool("amtool")
    assert_ok(run(amtool, "check-config", str(PROMETHEUS_DIR / "alertmanager.yml")))


def test_alerts_include_every_required_alert() -> None:
    assert set(alerting_rules()) >= REQUIRED_ALERTS


def test_every_alert_links_to_its_own_section_of_this_repositorys_runbook() -> None:
    """The lint (test_lint.py) checks the labels and annotations mixtool asks for; this pins
    what the default render promises on top: exactly those three annotations, and each
    runbook_url to the alert's own section of this repository's runbook."""
    for name, rule in alerting_rules().items():
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert annotations["runbook_url"] == RUNBOOK_BASE + github_anchor(name), name


def test_every_alert_has_a_unit_test_that_fires_and_one_that_does_not() -> None:
    cases = unit_test_cases()
    for name, rule in alerting_rules().items():
        mine = [case for case in cases if case["alertname"] == name]
        firing = [alert for case in mine for alert in case.get("exp_alerts") or []]
        assert firing, f"{name}: no unit test where it fires"
        assert any(not case.get("exp_alerts") for case in mine), f"{name}: no quiet case"
        for alert in firing:
            assert alert["exp_labels"]["severity"] == rule["labels"]["severity"], name
            assert set(alert["exp_annotations"]) == set(rule["annotations"]), name
