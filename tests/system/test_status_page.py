"""The status page at `/` of the real exporter process against the simulator, opened in
headless Chromium: the rows, a failing app's code and meaning, markup from the API kept as
text, no secret on the page, and an answer in time while an app's poll hangs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from exporter.codes import explain
from exporter.simulator import Faults, Simulator
from exporter.simulator.lines import Degrade, app_lines
from tests.support.browser import Element, dump_dom, parse, screenshot
from tests.support.configs import API_KEY, API_SECRET, APP_IDS, config_for, write_config
from tests.support.processes import ExporterProcess
from tests.support.tools import scrape, wait_until

pytestmark = pytest.mark.slow

A, B = APP_IDS
TOKEN = "status-page-push-token-0123456789"
HOSTILE_NAME = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def app_rows(root: Element) -> dict[str, list[str]]:
    """Each row of the apps table as its cells' text, by app id, in page order."""
    (table,) = root.find_all("table", "apps")
    (body,) = table.find_all("tbody")
    rows = {}
    for row in body.find_all("tr"):
        texts = [cell.text for cell in row.find_all("td")]
        rows[texts[1]] = texts
    return rows


def test_the_page_in_a_browser_shows_every_app_and_the_failing_ones_code_and_meaning(
    tmp_path: Path, start_exporter: Callable[..., ExporterProcess]
) -> None:
    with Simulator(API_KEY, API_SECRET, APP_IDS, seed=7) as sim:
        sim.add_task(A, {"name": HOSTILE_NAME, "status": "IN_PROCESS"})
        sim.set_faults(Faults(api_code="-50", app_ids=(B,), endpoints=("taskList",)))
        document = config_for(
            sim,
            calls={"enabled": True},
            push={"listen_address": "127.0.0.1:0", "token": TOKEN},
            balance={"enabled": True},
        )
        exporter = start_exporter("--config.file", str(write_config(tmp_path / "c.yaml", document)))
        page = wait_until(
            lambda: (text := scrape(exporter.url + "/").text).count("failing since") and text,
            what="B's failure on the page",
        )
        dom = parse(dump_dom(exporter.url + "/", tmp_path))
        shot = screenshot(exporter.url + "/", tmp_path / "status-page.png")

    rows = app_rows(dom)
    assert list(rows) == [B, A]  # One row per app, the failing one first.
    b_row, a_row = rows[B], rows[A]
    assert b_row[0] == API_KEY  # The account.
    assert "down" in b_row
    assert any("-50" in cell and explain("-50") in cell for cell in b_row)
    assert "up" in a_row
    assert any(HOSTILE_NAME in cell for cell in a_row)  # Shown as text...
    assert not dom.find_all("script")  # ...and no element of it made it into the DOM.
    assert not dom.find_all("img")
    assert not [e for e in dom.iter() if any(name.startswith("on") for name in e.attrs)]
    for secret in (API_SECRET, TOKEN):
        assert secret not in page
        assert secret not in dom.text
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert shot.stat().st_size > 10_000  # A drawn page, not an empty window.


def test_the_page_answers_within_seconds_while_an_apps_poll_hangs(
    tmp_path: Path, start_exporter: Callable[..., ExporterProcess]
) -> None:
    with Simulator(API_KEY, API_SECRET, APP_IDS, seed=7) as sim:
        sim.set_faults(Faults(latency_seconds=20, app_ids=(B,)))  # B's every request hangs 20 s.
        document = config_for(sim, api={"timeout_seconds": 60}, poll={"timeout_seconds": 120})
        exporter = start_exporter("--config.file", str(write_config(tmp_path / "c.yaml", document)))
        wait_until(
            lambda: "1 up" in scrape(exporter.url + "/").text, what="A polled, B still hanging"
        )
        response = requests.get(exporter.url + "/", timeout=5)  # Far below the 20 s hang.
    assert response.status_code == 200
    rows = app_rows(parse(response.text))
    assert "not polled yet" in rows[B]
    assert "up" in rows[A]


def test_the_page_shows_each_apps_lines_the_degraded_one_first_by_name(
    tmp_path: Path, start_exporter: Callable[..., ExporterProcess]
) -> None:
    lines = app_lines(7, A).lines
    degraded = Degrade(A, line=0, after=0.0, answered_share=0.0)
    with Simulator(API_KEY, API_SECRET, APP_IDS, seed=7, speed=20, degrade=degraded) as sim:
        document = config_for(sim, calls={"enabled": True, "lookback_seconds": 60})
        exporter = start_exporter("--config.file", str(write_config(tmp_path / "c.yaml", document)))

        def counted() -> bool:
            per_line = scrape(exporter.url + "/metrics").text.count(f'line_id="{lines[1].line_id}"')
            return per_line > 0 and f"{lines[0].name}" in scrape(exporter.url + "/").text

        wait_until(counted, what="calls counted by line, and the lines named")
        wait_until(
            lambda: all(_calls(exporter.url, A, line.line_id) >= 20 for line in lines),
            what="20 calls on each of A's lines",
        )
        dom = parse(dump_dom(exporter.url + "/", tmp_path))

    (table,) = dom.find_all("table", "lines")
    (body,) = table.find_all("tbody")
    rows = [[cell.text for cell in row.find_all("td")] for row in body.find_all("tr")]
    a_rows = [row for row in rows if row[0] == A]
    assert {row[1] for row in a_rows} == {line.line_id for line in lines}
    assert a_rows[0][1:3] == [lines[0].line_id, lines[0].name]  # answers nothing: first
    assert a_rows[0][4] == "0%"


def _calls(url: str, app_id: str, line_id: str) -> float:
    total = 0.0
    for line in scrape(url + "/metrics").text.splitlines():
        if line.startswith("aivoice_line_call_results_total{") and (
            f'app_id="{app_id}"' in line and f'line_id="{line_id}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total
