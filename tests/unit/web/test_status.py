"""The status page's renderer: what each app's row says, the order, the escaping, the policy."""

from __future__ import annotations

import base64
import hashlib
import re
from types import MappingProxyType

import pytest

from exporter.balance.read import AccountBalance, Balance, BalanceSnapshot
from exporter.calls.counts import PUSH, REJECTED, AppCalls, CallsSnapshot
from exporter.codes import explain
from exporter.exposition.exposition import ReloadStatus
from exporter.snapshot import Snapshot
from exporter.tasks.history import AppHistory, CallsRead, PollOutcome
from exporter.web.status import (
    CONTENT_SECURITY_POLICY,
    ConfiguredApp,
    StatusInputs,
    render_status,
)
from tests.support.browser import Element, parse
from tests.support.exposition import app, task

NOW = 1_790_000_000.0
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def inputs(*apps: ConfiguredApp, **parts: object) -> StatusInputs:
    fields: dict[str, object] = {
        "version": "9.9.9",
        "apps": apps,
        "reload": ReloadStatus(True, NOW - 600),
        **parts,
    }
    return StatusInputs(**fields)  # type: ignore[arg-type]


def history(*outcomes: PollOutcome) -> AppHistory:
    result = AppHistory()
    for outcome in outcomes:
        result = result.record(outcome)
    return result


def page(status: StatusInputs) -> Element:
    return parse(render_status(status, NOW).decode())


def rows(root: Element) -> dict[str, Element]:
    """The apps table's rows by app id, in page order (a dict keeps it)."""
    (table,) = root.find_all("table", "apps")
    (body,) = table.find_all("tbody")
    return {row.find_all("b", "id")[0].text: row for row in body.find_all("tr")}


def cells(root: Element, app_id: str) -> dict[str, str]:
    (table,) = root.find_all("table", "apps")
    headings = [th.text for th in table.find_all("th")]
    return dict(zip(headings, (td.text for td in rows(root)[app_id].find_all("td")), strict=True))


def facts_table(root: Element) -> tuple[list[Element], list[Element]]:
    """The headings and values of the table about the exporter, the page's last."""
    table = root.find_all("table")[-1]
    return table.find_all("th"), table.find_all("td")


def two_apps_one_failing() -> StatusInputs:
    return inputs(
        ConfiguredApp("main", "GOOD"),
        ConfiguredApp("main", "BAD"),
        snapshot=Snapshot(
            apps=(app("GOOD", (task("1"), task("2", status="COMPLETED"))), app("BAD", None, False)),
            requests=MappingProxyType({}),
        ),
        history=MappingProxyType(
            {
                "GOOD": history(PollOutcome(NOW - 5, 0.3, pages=1)),
                "BAD": history(
                    PollOutcome(NOW - 125, 0.2, error="-50", detail="app not quoted"),
                    PollOutcome(NOW - 5, 0.2, error="-50", detail="app not quoted"),
                ),
            }
        ),
    )


def test_every_configured_app_has_one_row_even_before_its_first_poll() -> None:
    status = inputs(*(ConfiguredApp("acct", f"APP{n}") for n in range(3)))
    found = rows(page(status))
    assert list(found) == ["APP0", "APP1", "APP2"]
    assert {cells(page(status), a)["State"] for a in found} == {"not polled yet"}


def test_failing_apps_come_first_and_stand_out() -> None:
    root = page(two_apps_one_failing())
    assert list(rows(root)) == ["BAD", "GOOD"]
    assert "failing" in rows(root)["BAD"].classes()
    assert "failing" not in rows(root)["GOOD"].classes()


def test_a_row_shows_state_last_poll_and_the_tasks_held_and_in_progress() -> None:
    row = cells(page(two_apps_one_failing()), "GOOD")
    assert row["Account"] == "main"
    assert row["State"] == "up"
    assert "(5 s ago)" in row["Last poll"]
    assert "took 300 ms" in row["Last poll"]
    assert row["Tasks held"] == "2"
    assert row["In progress"].startswith("1")
    assert "task 1" in row["In progress"]


def test_a_failing_row_shows_the_code_its_meaning_and_since_when() -> None:
    row = cells(page(two_apps_one_failing()), "BAD")
    assert row["State"] == "down"
    assert "-50" in row["Last error"]
    assert explain("-50") in row["Last error"]
    assert "app not quoted" in row["Last error"]
    assert "failing since" in row["Last error"]
    assert "(2 min ago)" in row["Last error"]  # The first failure of the run, not the latest.


def test_the_history_lists_each_apps_polls_with_pages_and_errors() -> None:
    root = page(two_apps_one_failing())
    tables = root.find_all("table", "history")
    assert len(tables) == 2
    bad = next(t for t in tables if "-50" in t.text)
    assert len(bad.find_all("tr")) == 1 + 2  # The heading and the two failures.
    good = next(t for t in tables if t is not bad)
    (_, poll) = good.find_all("tr")
    assert [td.text for td in poll.find_all("td")][2:4] == ["1", "ok"]


def test_markup_from_the_api_never_becomes_an_element() -> None:
    status = inputs(
        ConfiguredApp("main", "APP"),
        snapshot=Snapshot(
            apps=(app("APP", (task("1", name=HOSTILE),), False),), requests=MappingProxyType({})
        ),
        history=MappingProxyType(
            {"APP": history(PollOutcome(NOW, 1.0, error="-5", detail=HOSTILE))}
        ),
    )
    root = page(status)
    assert not root.find_all("script")
    assert not root.find_all("img")
    assert not [e for e in root.iter() if any(name.startswith("on") for name in e.attrs)]
    row = cells(root, "APP")
    assert "<script>alert(1)</script>" in row["In progress"]
    assert "<script>alert(1)</script>" in row["Last error"]


def test_call_records_push_rejections_and_balance_show_when_switched_on() -> None:
    calls = AppCalls("APP", True, {}, (), 0.0, 0.0, {}, {}, {}, {}, {(PUSH, REJECTED): 3})
    status = inputs(
        ConfiguredApp("main", "APP"),
        history=MappingProxyType({"APP": AppHistory().record_calls(CallsRead(NOW - 60, "-27"))}),
        calls=CallsSnapshot(
            apps=(calls,),
            unattributed=MappingProxyType({(PUSH, REJECTED): 4}),
            push_requests=MappingProxyType(
                {("vendor", "200"): 10, ("vendor", "404"): 2, ("vendor", "400"): 0}
            ),
        ),
        calls_enabled=True,
        push_enabled=True,
        balance=BalanceSnapshot(
            accounts=(AccountBalance("main", True, Balance(1234.5), NOW - 30),),
            apps=MappingProxyType({"APP": "main"}),
        ),
    )
    row = cells(page(status), "APP")
    assert "failed" in row["Call records"]
    assert "(1 min ago)" in row["Call records"]
    assert explain("-27") in row["Call records"]
    assert row["Push rejections"] == "3"
    facts = {th.text: td.text for th, td in zip(*facts_table(page(status)), strict=True)}
    assert facts["Push requests answered"] == "200 10, 404 2"
    assert facts["Pushed records for no configured app"] == "4"
    assert "1,234.50" in row["Balance"]
    assert "(30 s ago)" in row["Balance"]


def test_answers_to_forwarded_pushes_are_shown_apart_from_the_vendors() -> None:
    answers = {("vendor", "200"): 7, ("vendor", "503"): 0, ("peer", "200"): 5, ("peer", "421"): 0}
    status = inputs(
        ConfiguredApp("main", "APP"),
        calls=CallsSnapshot(push_requests=MappingProxyType(answers)),
        push_enabled=True,
    )
    facts = {th.text: td.text for th, td in zip(*facts_table(page(status)), strict=True)}
    assert facts["Push requests answered"] == "200 7"
    assert facts["Forwarded pushes answered"] == "200 5"


@pytest.mark.parametrize(
    ("selects_by", "shown"),
    [("end", "their end time"), ("start", "their start time"), ("unknown", "not known yet")],
)
def test_the_time_record_query_windows_select_by_shows_once_known(
    selects_by: str, shown: str
) -> None:
    status = inputs(
        ConfiguredApp("main", "APP"),
        calls=CallsSnapshot(selects_by=selects_by),
        calls_enabled=True,
    )
    facts = {th.text: td.text for th, td in zip(*facts_table(page(status)), strict=True)}
    assert facts["recordQuery windows select calls by"].startswith(shown)


def test_columns_of_what_is_switched_off_are_left_out() -> None:
    (table,) = page(inputs(ConfiguredApp("main", "APP"))).find_all("table", "apps")
    headings = {th.text for th in table.find_all("th")}
    assert not headings & {"Shard", "Call records", "Push rejections", "Balance"}


def test_the_shard_is_shown_only_when_set() -> None:
    status = inputs(ConfiguredApp("main", "A", shard="2/3"), ConfiguredApp("main", "B"))
    root = page(status)
    assert cells(root, "A")["Shard"] == "2/3"
    assert cells(root, "B")["Shard"] == ""


def test_the_page_links_the_telemetry_path_in_use_and_the_health_endpoints() -> None:
    root = page(inputs(telemetry_path="/custom/path"))
    hrefs = {a.attrs["href"] for a in root.find_all("a")}
    assert hrefs == {"custom/path", "-/healthy", "-/ready"}


def test_the_page_says_the_version_and_a_failed_reload() -> None:
    text = page(inputs(reload=ReloadStatus(False, NOW - 7200))).text
    assert "9.9.9" in text
    assert "the last reload failed" in text
    assert "(2 h ago)" in text


def test_the_policy_allows_exactly_the_pages_style_and_no_script() -> None:
    body = render_status(inputs(), NOW).decode()
    (style,) = re.findall(r"<style>(.*?)</style>", body, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "script" not in CONTENT_SECURITY_POLICY
    assert not parse(body).find_all("script")
    assert ' style="' not in body  # Inline style attributes would need 'unsafe-inline'.


def test_two_hundred_apps_stay_one_table_with_a_row_each() -> None:
    apps = tuple(ConfiguredApp("main", f"APP{n:03}") for n in range(200))
    root = page(inputs(*apps))
    assert len(root.find_all("table", "apps")) == 1
    assert len(rows(root)) == 200
