"""The status page's lines: each app's lines with their calls and answered share, worst first,
every value from the network escaped."""

from __future__ import annotations

from types import MappingProxyType

from exporter.calls.counts import AppCalls, CallsSnapshot
from exporter.calls.lines import OTHER, LineCalls
from exporter.web.status import ConfiguredApp, StatusInputs, render_status
from tests.support.browser import Element, parse

NOW = 1_790_000_000.0
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def app_calls(app_id: str, results: dict[str, dict[str, int]], names: dict[str, str]) -> AppCalls:
    empty: MappingProxyType[str, int] = MappingProxyType({})
    lines = LineCalls(
        results=MappingProxyType({k: MappingProxyType(v) for k, v in results.items()}),
        names=MappingProxyType(names),
        cost=MappingProxyType({}),
    )
    return AppCalls(
        app_id,
        True,
        empty,
        (0,),
        0.0,
        0.0,
        empty,
        empty,
        empty,
        MappingProxyType({}),
        MappingProxyType({}),
        lines,
    )


def lines_table(*apps: AppCalls) -> list[list[str]]:
    status = StatusInputs(
        version="9.9.9",
        apps=tuple(ConfiguredApp("main", calls.app_id) for calls in apps),
        calls=CallsSnapshot(apps=apps),
        calls_enabled=True,
    )
    root = parse(render_status(status, NOW).decode())
    (table,) = root.find_all("table", "lines")
    (body,) = table.find_all("tbody")
    return [[td.text for td in row.find_all("td")] for row in body.find_all("tr")]


def test_each_apps_lines_come_worst_answered_share_first() -> None:
    calls = app_calls(
        "APP",
        {
            "11": {"ANSWERED": 45, "NO_ANSWER": 55},
            "12": {"ANSWERED": 15, "REFUSED": 80, "FROM_PHONE_ERROR": 5},
            "13": {"TRANSFER_ARTIFICIAL": 30, "BUSY": 70},
        },
        {"11": "+1 555 0111", "12": "+1 555 0112", "13": "+1 555 0113", "14": "+1 555 0114"},
    )
    assert lines_table(calls) == [
        ["APP", "12", "+1 555 0112", "100", "15%", "5"],
        ["APP", "13", "+1 555 0113", "100", "30%", "0"],
        ["APP", "11", "+1 555 0111", "100", "45%", "0"],
        ["APP", "14", "+1 555 0114", "0", "no calls", "0"],
    ]


def test_unlisted_lines_and_other_say_so() -> None:
    calls = app_calls("APP", {"99": {"ANSWERED": 1}, OTHER: {"ANSWERED": 2}}, {})
    rows = {row[1]: row[2] for row in lines_table(calls)}
    assert rows == {"99": "not listed", OTHER: "beyond the cap, or no line id"}


def test_a_hostile_line_name_and_id_are_text_not_markup() -> None:
    calls = app_calls("APP", {HOSTILE[:40]: {"ANSWERED": 1}}, {HOSTILE[:40]: HOSTILE})
    status = StatusInputs(
        version="9.9.9", apps=(ConfiguredApp("main", "APP"),), calls=CallsSnapshot(apps=(calls,))
    )
    root: Element = parse(render_status(status, NOW).decode())
    assert not root.find_all("script") and not root.find_all("img")
    ((_, line, name, *_),) = lines_table(calls)
    assert (line, name) == (HOSTILE[:40], HOSTILE)


def test_no_lines_no_section() -> None:
    status = StatusInputs(
        version="9.9.9",
        apps=(ConfiguredApp("main", "APP"),),
        calls=CallsSnapshot(apps=(app_calls("APP", {}, {}),)),
    )
    assert b"<h2>Lines</h2>" not in render_status(status, NOW)
