"""Two replicas of a shard give what one process gives, in every recording rule and panel query.

One data set of the exporter's series is written twice into one promtool unit test: as job
"one", scraped from one process, and as job "two", scraped from two replicas (`instance` and
`pod` differ) that export the same series, one of them restarted half-way (its series stop for
3 minutes, its counters start again from 0). promtool then evaluates every recording rule and
every dashboard query (its variables set to each job) both ways, and each must give the same
series with the same values: as many series, every one equal, and at least one. The alerts'
own replica cases are in prometheus/tests/replicas_test.yml and shard_alerts_test.yml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.mixin import RULES, load_dashboard, recorded_names, targets
from tests.support.series import (
    MINUTES,
    PER_TARGET_PANELS,
    Series,
    assert_promtool_passes,
    dashboard_query,
    equal_answer_cases,
    exporter_series,
    series_selector,
    series_values,
)

SOLO = {"instance": "solo:10188"}
REPLICAS = (
    {"instance": "r0:10188", "pod": "aivoice-exporter-0"},
    {"instance": "r1:10188", "pod": "aivoice-exporter-3"},
)


def input_series() -> list[dict[str, str]]:
    written = []
    for series in exporter_series():
        solo = {"job": "one", **SOLO, **series.labels}
        if not series.forwarded:
            values = series_values(series, False)
            written.append({"series": series_selector(series.metric, solo), "values": values})
        for index, replica in enumerate(REPLICAS):
            labels = {"job": "two", **replica, **series.labels}
            values = series_values(series, restarted=index == 1)
            if (series.landed and index == 1) or (series.forwarded and index == 0):
                values = f"0x{MINUTES}"
            written.append({"series": series_selector(series.metric, labels), "values": values})
    return written


def same_both_ways(one: str, two: str) -> list[dict[str, Any]]:
    """promtool cases: as many series, each equal to its twin (labels but `job`), at least one."""
    return equal_answer_cases(two, one, "job")


def run_promtool(tmp_path: Path, cases: list[dict[str, Any]]) -> None:
    test_file = tmp_path / "replicas_test.yml"
    assert_promtool_passes(test_file, [str(RULES)], input_series(), cases, timeout=300)


def test_the_data_set_has_a_restarted_replica_whose_counters_start_again_from_zero() -> None:
    counter = Series("c_total", {}, 0, 2, counter=True)
    assert series_values(counter, False) == f"0+2x{MINUTES}"
    assert series_values(counter, True) == f"0+2x29 stale _x2 0+2x{MINUTES - 33}"
    assert series_values(Series("g", {}, 5, 1), True) == f"5+1x29 stale _x2 38+1x{MINUTES - 33}"


@pytest.mark.slow
def test_every_recording_rule_gives_the_same_with_two_replicas_as_with_one_process(
    tmp_path: Path,
) -> None:
    names = sorted(name for name in recorded_names() if ":aivoice_exporter_" not in name)
    assert names
    cases = [
        case for n in names for case in same_both_ways(f'{n}{{job="one"}}', f'{n}{{job="two"}}')
    ]
    run_promtool(tmp_path, cases)


@pytest.mark.slow
def test_every_dashboard_query_gives_the_same_with_two_replicas_as_with_one_process(
    tmp_path: Path,
) -> None:
    cases = []
    for panel, target in targets(load_dashboard()):
        if panel["title"] in PER_TARGET_PANELS:
            continue
        one, two = (dashboard_query(target["expr"], job) for job in ("one", "two"))
        cases += same_both_ways(one, two)
    assert cases
    run_promtool(tmp_path, cases)
