"""The account's balance end to end: the real exporter process reads the simulator's
getBalance and serves it, falling as calls end and rising with a top-up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.simulator import Simulator
from tests.support.configs import API_KEY, API_SECRET, APP_IDS, config_for, write_config
from tests.support.exposition import sample_values, scraped
from tests.support.processes import ExporterProcess
from tests.support.tools import scrape, wait_until

pytestmark = pytest.mark.slow

ACCOUNT = (("account", API_KEY), ("kind", "balance"))  # No `name`: the api_key is the label.


def served_balance(url: str) -> float | None:
    return scraped(url, "aivoice_account_balance").get(ACCOUNT)


def test_the_served_balance_falls_as_calls_end_and_rises_with_a_top_up(
    tmp_path: Path, start_exporter: Callable[..., ExporterProcess]
) -> None:
    # At twenty times the speed, calls end every second or so.
    with Simulator(API_KEY, API_SECRET, APP_IDS, seed=7, speed=20) as sim:
        document = config_for(sim, balance={"enabled": True, "interval_seconds": 1})
        exporter = start_exporter("--config.file", str(write_config(tmp_path / "c.yaml", document)))
        first = wait_until(lambda: served_balance(exporter.url), what="a first balance")
        fallen = wait_until(
            lambda: (b := served_balance(exporter.url)) is not None and b < first and b,
            what=f"the balance to fall below {first}",
        )
        sim.balance.top_up(1000)
        wait_until(
            lambda: (b := served_balance(exporter.url)) is not None and b > fallen + 900,
            what=f"the top-up of 1000 on {fallen}",
        )
        text = scrape(f"{exporter.url}/metrics").text
    assert sample_values(text, "aivoice_account_balance_up") == {(("account", API_KEY),): 1.0}
    assert sample_values(text, "aivoice_app_info") == {
        (("account", API_KEY), ("app_id", app)): 1.0 for app in APP_IDS
    }
