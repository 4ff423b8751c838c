"""One day of the exporter's series, as promtool unit tests take them.

The data set the mixin's replica and settings tests write into promtool: two apps in two
accounts, with calls, pushes and a balance, each series as one process exports it; a replica
restarted half-way has a gap and counters that start again from 0.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.tools import require_tool

# Panels that show one series per process, on purpose: the scrape targets themselves.
PER_TARGET_PANELS = frozenset({"Exporter scrape"})
# Equal up to the last digits: a least-squares slope over the restarted replica's fewer samples
# may differ from its twin's in the 16th.
TOLERANCE = 1e-9
MINUTES = 90
RESTART_AT, RESTART_GAP = 30, 3  # replica r1 is down from minute 30 to 33
EVAL_MINUTES = (RESTART_AT + RESTART_GAP + 3, MINUTES - 5)  # right after it, and long after


@dataclass(frozen=True)
class Series:
    """One series as one process exports it; `start`/`step` per minute (step 0: a gauge)."""

    metric: str
    labels: dict[str, str]
    start: float
    step: float = 0
    counter: bool = False
    # Counted by the process a request lands on (the push listener's answers): one replica has
    # them, the other none, so that the sum over processes is what one process counts.
    landed: bool = False
    # Counted by a process a push was handed on to (its answers to a peer): only among
    # several processes; one process alone never has it.
    forwarded: bool = False


def app_series(app: str, account: str, scale: int) -> list[Series]:
    a = {"app_id": app}
    series = [
        Series("aivoice_up", a, 1),
        Series("aivoice_calls_up", a, 1),
        Series("aivoice_poll_last_success_timestamp_seconds", a, 0, 60),
        Series("aivoice_poll_duration_seconds", a, 0.4 * scale),
        Series("aivoice_app_info", {**a, "account": account}, 1),
        Series("aivoice_tasks", {**a, "status": "IN_PROCESS"}, 2),
        Series("aivoice_tasks", {**a, "status": "COMPLETED"}, 1),
        Series("aivoice_calls", {**a, "status": "IN_PROCESS"}, 5000),
        Series("aivoice_calls", {**a, "status": "COMPLETED"}, 300),
        Series("aivoice_calls_completed", {**a, "status": "IN_PROCESS"}, 100, 6 * scale),
        Series("aivoice_calls_completed", {**a, "status": "COMPLETED"}, 150),
    ]
    for endpoint, per_minute in (("taskList", 60), ("recordQuery", 30)):
        e = {**a, "endpoint": endpoint}
        series += [
            Series("aivoice_api_requests_total", e, 0, per_minute, counter=True),
            Series("aivoice_api_errors_total", {**e, "code": "-1"}, 0, scale, counter=True),
            Series("aivoice_api_errors_total", {**e, "code": "timeout"}, 0, 0, counter=True),
        ]
        for le, share in (("0.1", 0.5), ("0.5", 0.9), ("1", 1.0), ("+Inf", 1.0)):
            labels = {**e, "le": le}
            series.append(
                Series(
                    "aivoice_api_request_duration_seconds_bucket",
                    labels,
                    0,
                    share * per_minute,
                    counter=True,
                )
            )
    results = (
        ("ANSWERED", 24),
        ("TRANSFER_ARTIFICIAL", 6),
        ("NO_ANSWER", 18),
        ("FROM_PHONE_ERROR", 3),
        ("CALL_LOSS", 3),
    )
    for result, per_minute in results:
        r = {**a, "result": result}
        series += [
            Series("aivoice_call_results_total", r, 0, per_minute * scale, counter=True),
            Series(
                "aivoice_task_call_results_total",
                {**r, "job_id": "101"},
                0,
                per_minute * scale,
                counter=True,
            ),
        ]
    # The same calls by line: line 7301 answers as the app does, line 7302 a third as often.
    by_line = (
        ("7301", (("ANSWERED", 20), ("NO_ANSWER", 10), ("FROM_PHONE_ERROR", 2))),
        (
            "7302",
            (
                ("ANSWERED", 4),
                ("TRANSFER_ARTIFICIAL", 6),
                ("NO_ANSWER", 8),
                ("FROM_PHONE_ERROR", 1),
                ("CALL_LOSS", 3),
            ),
        ),
    )
    for line_id, line_results in by_line:
        labels = {**a, "line_id": line_id}
        series += [
            Series("aivoice_line_info", {**labels, "line": f"+1 555 0{line_id}"}, 1),
            Series(
                "aivoice_line_call_cost_total", {**labels, "currency": "USD"}, 0, 0.3, counter=True
            ),
        ]
        series += [
            Series(
                "aivoice_line_call_results_total",
                {**labels, "result": result},
                0,
                n * scale,
                counter=True,
            )
            for result, n in line_results
        ]
    for le, per_minute in (("30", 10), ("60", 25), ("+Inf", 30)):
        series.append(
            Series(
                "aivoice_call_talk_duration_seconds_bucket",
                {**a, "le": le},
                0,
                per_minute,
                counter=True,
            )
        )
    series += [
        Series("aivoice_call_billed_seconds_total", a, 0, 900, counter=True),
        Series("aivoice_call_cost_total", {**a, "currency": "USD"}, 0, 0.6, counter=True),
        Series(
            "aivoice_call_records_total",
            {**a, "source": "poll", "outcome": "counted"},
            0,
            30,
            counter=True,
        ),
        Series(
            "aivoice_call_records_total",
            {**a, "source": "push", "outcome": "duplicate"},
            0,
            30,
            counter=True,
        ),
    ]
    # Task 101 makes progress; task 102 is stalled from the start, with calls left.
    for job_id, completed, step in (("101", 100, 6 * scale), ("102", 40, 0)):
        t = {**a, "job_id": job_id}
        series += [
            Series("aivoice_task_calls", t, 2500),
            Series("aivoice_task_calls_completed", t, completed, step),
            Series("aivoice_task_robots", t, 5),
            Series("aivoice_task_created_timestamp_seconds", t, 1.7e9),
            Series(
                "aivoice_task_info",
                {**t, "name": f"Task {job_id}", "status": "IN_PROCESS", "mode": "AUTO"},
                1,
            ),
        ]
    return series


VENDOR_200 = {"sender": "vendor", "code": "200"}
VENDOR_404 = {"sender": "vendor", "code": "404"}
PEER_200 = {"sender": "peer", "code": "200"}


def exporter_series() -> list[Series]:
    """A day's work of one exporter: two apps in two accounts, calls, pushes, a balance."""
    series = app_series("APP1", "main", 1) + app_series("APP2", "other", 2)
    series += [
        Series("up", {}, 1),
        Series("aivoice_push_requests_total", VENDOR_200, 0, 50, counter=True, landed=True),
        Series("aivoice_push_requests_total", VENDOR_404, 0, 1, counter=True, landed=True),
        Series("aivoice_push_requests_total", PEER_200, 0, 50, counter=True, forwarded=True),
        Series("aivoice_account_balance", {"account": "main", "kind": "balance"}, 900, -0.6),
        Series("aivoice_account_balance", {"account": "main", "kind": "gift"}, 50),
        Series("aivoice_account_balance", {"account": "other", "kind": "balance"}, 400, -1.2),
        Series("aivoice_account_balance_up", {"account": "main"}, 1),
        Series("aivoice_account_balance_up", {"account": "other"}, 1),
    ]
    return series


def series_selector(metric: str, labels: dict[str, str]) -> str:
    pairs = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return f"{metric}{{{pairs}}}"


def expand_values(start: float, step: float, count: int) -> str:
    """promtool's expanding notation: `a+bxN` (or `a-bxN`), N + 1 values a minute apart."""
    return f"{start:g}{'-' if step < 0 else '+'}{abs(step):g}x{count}"


def series_values(series: Series, restarted: bool) -> str:
    """The series' values, with a restart's stale marker and gap if `restarted`."""
    if not restarted:
        return expand_values(series.start, series.step, MINUTES)
    before = expand_values(series.start, series.step, RESTART_AT - 1)
    after_start = 0 if series.counter else series.start + series.step * (RESTART_AT + RESTART_GAP)
    after = expand_values(after_start, series.step, MINUTES - RESTART_AT - RESTART_GAP)
    return f"{before} stale _x{RESTART_GAP - 1} {after}"


def dashboard_query(expr: str, job: str) -> str:
    values = {"job": job, "app_id": "APP1|APP2", "status": ".*", "__rate_interval": "5m"}
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${name}", values[name])
    assert "$" not in expr, expr
    return expr


def equal_answer_cases(left: str, right: str, ignoring: str) -> list[dict[str, Any]]:
    """promtool cases at every EVAL_MINUTES: `left` has as many series as `right`, each equal to
    its twin (labels but those `ignoring` names), and `right` has at least one."""
    matching = f"ignoring ({ignoring})"
    cases = []
    for minute in EVAL_MINUTES:
        at = f"{minute}m"
        cases += [
            {
                "expr": f"(count({left}) or vector(0)) - (count({right}) or vector(0))",
                "eval_time": at,
                "exp_samples": [{"labels": "{}", "value": 0}],
            },
            {
                "expr": (
                    f"count(abs(({left}) - {matching} ({right}))"
                    f" <= {matching} (abs({right}) * {TOLERANCE} + {TOLERANCE}))"
                    f" - count({right})"
                ),
                "eval_time": at,
                "exp_samples": [{"labels": "{}", "value": 0}],
            },
            {
                "expr": f"clamp_max(count({right}), 1)",
                "eval_time": at,
                "exp_samples": [{"labels": "{}", "value": 1}],
            },
        ]
    return cases


def assert_promtool_passes(
    test_file: Path,
    rule_files: list[str],
    input_series: list[dict[str, str]],
    cases: list[dict[str, Any]],
    timeout: float,
) -> None:
    """Write one promtool unit test of `cases` on `input_series` and run it: it must pass."""
    document = {
        "rule_files": rule_files,
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input_series, "promql_expr_test": cases}],
    }
    test_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [require_tool("promtool"), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-20000:]
