"""The balance schedule: one request per account per interval however many apps, counted on the
simulator; the stale rule; reloads. Clocks are the test's: nothing waits in real time."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from exporter.api.client import ApiClient
from exporter.api.stats import GET_BALANCE, RequestRecorder
from exporter.api.transport import Transport
from exporter.balance.poller import BalancePoller
from exporter.balance.read import Balance, BalanceSnapshot
from exporter.config.model import Account, ApiConfig, BalanceConfig, Config, PollConfig
from exporter.process.workers import WorkerPool
from exporter.simulator import Simulator
from tests.support.clock import FakeClock
from tests.support.configs import API_KEY, API_SECRET

APPS = ("A1", "A2", "A3", "A4", "A5")
INTERVAL = 300.0
STALE_AFTER = 600.0


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(API_KEY, API_SECRET, APPS, speed=0, balance=750.0)
    simulator.start("127.0.0.1", 0)
    try:
        yield simulator
    finally:
        simulator.stop()


class Harness:
    """A BalancePoller on the test's clocks, with one real client per account."""

    def __init__(self, sim: Simulator, config: Config) -> None:
        self.sim = sim
        self.wall = FakeClock()
        self.mono = FakeClock(1000.0)
        self.published: list[BalanceSnapshot] = []
        self._transport = Transport(
            sim.base_url, timeout_seconds=2.0, max_response_bytes=1 << 20, pool_size=2
        )
        self._pool = WorkerPool(2, "test-balance")
        self.clients: dict[str, ApiClient] = {}
        self.configure(config)
        self.poller = BalancePoller(
            config,
            borrow=lambda app_id: contextlib.nullcontext(self.clients.get(app_id)),
            publish=self.published.append,
            stop=threading.Event(),
            clock=self.wall,
            monotonic=self.mono,
        )

    def configure(self, config: Config) -> None:
        self.clients.clear()
        for account in config.accounts:
            client = ApiClient(
                account,
                config.api,
                transport=self._transport,
                pool=self._pool,
                recorder=RequestRecorder(),
                stop=threading.Event(),
            )
            self.clients.update(dict.fromkeys(account.app_ids, client))

    def requests(self) -> int:
        return self.sim.stats()["requests"]

    def close(self) -> None:
        self._pool.close()
        self._transport.close()


def config(sim: Simulator, *accounts: Account, enabled: bool = True) -> Config:
    return Config(
        accounts=accounts or (Account(API_KEY, API_SECRET, APPS),),
        api=ApiConfig(base_url=sim.base_url, timeout_seconds=2.0, max_retries=0),
        poll=PollConfig(stale_after_seconds=STALE_AFTER),
        balance=BalanceConfig(enabled=enabled, interval_seconds=INTERVAL),
    )


@pytest.fixture
def make(sim: Simulator) -> Iterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for harness in made:
        harness.close()


def harness(sim: Simulator, made: list[Harness], cfg: Config) -> Harness:
    h = Harness(sim, cfg)
    made.append(h)
    return h


def test_one_request_per_account_per_interval_however_many_apps(
    sim: Simulator, make: list[Harness]
) -> None:
    h = harness(sim, make, config(sim))
    next_due = h.poller.read_due()
    assert h.requests() == 1
    assert next_due == 1000.0 + INTERVAL
    for _ in range(5):  # Asked again and again within the interval: nothing is sent.
        h.mono.now += INTERVAL / 6
        h.poller.read_due()
    assert h.requests() == 1
    h.mono.now = 1000.0 + INTERVAL
    h.poller.read_due()
    assert h.requests() == 2
    h.mono.now += 3.5 * INTERVAL  # Missed rounds are skipped, not caught up.
    assert h.poller.read_due() == 1000.0 + 5 * INTERVAL
    assert h.requests() == 3
    (account,) = h.poller.snapshot().accounts
    assert account.up and account.balance == Balance(750.0, 0.0, 0.0)


def test_two_accounts_two_requests_each_under_its_own_label(
    sim: Simulator, make: list[Harness]
) -> None:
    accounts = (
        Account(API_KEY, API_SECRET, APPS[:2], name="east"),
        Account(API_KEY, API_SECRET, APPS[2:], name="west"),
    )
    h = harness(sim, make, config(sim, *accounts))
    h.poller.read_due()
    h.mono.now += INTERVAL
    h.poller.read_due()
    assert h.requests() == 4
    snapshot = h.poller.snapshot()
    assert [a.account for a in snapshot.accounts] == ["east", "west"]
    assert {label: s.endpoints[GET_BALANCE].requests for label, s in snapshot.requests.items()} == {
        "east": 2,
        "west": 2,
    }
    assert dict(snapshot.apps) == {
        "A1": "east",
        "A2": "east",
        "A3": "west",
        "A4": "west",
        "A5": "west",
    }


def test_disabled_sends_nothing_and_publishes_nothing(sim: Simulator, make: list[Harness]) -> None:
    h = harness(sim, make, config(sim, enabled=False))
    h.poller.read_due()
    h.poller.read_all()
    assert h.requests() == 0
    assert h.poller.snapshot() == BalanceSnapshot()


def test_a_failing_account_keeps_its_balance_until_stale_then_drops_it(
    sim: Simulator, make: list[Harness]
) -> None:
    h = harness(sim, make, config(sim))
    h.poller.read_all()
    sim.fail_next(3, "api_code", api_code="-18", endpoint=GET_BALANCE)
    h.wall.now += STALE_AFTER  # Exactly at the limit: still kept.
    h.poller.read_all()
    (account,) = h.poller.snapshot().accounts
    assert not account.up and account.balance == Balance(750.0, 0.0, 0.0)
    h.wall.now += 1
    h.poller.read_all()
    (account,) = h.poller.snapshot().accounts
    assert not account.up and account.balance is None
    assert account.last_success_seconds == h.wall.now - STALE_AFTER - 1
    errors = h.poller.snapshot().requests[API_KEY].endpoints[GET_BALANCE].errors
    assert errors["-18"] == 2
    h.poller.read_all()  # The third fault; then it recovers.
    h.poller.read_all()
    (account,) = h.poller.snapshot().accounts
    assert account.up and account.balance is not None


def test_an_account_whose_first_read_fails_is_down_with_no_balance(
    sim: Simulator, make: list[Harness]
) -> None:
    sim.fail_next(1, "garbage", endpoint=GET_BALANCE)
    h = harness(sim, make, config(sim))
    h.poller.read_all()
    (account,) = h.poller.snapshot().accounts
    assert not account.up and account.balance is None and account.last_success_seconds is None


def test_a_reload_reads_a_new_account_at_once_and_forgets_a_removed_one(
    sim: Simulator, make: list[Harness]
) -> None:
    h = harness(sim, make, config(sim, Account(API_KEY, API_SECRET, APPS[:2], name="east")))
    h.poller.read_due()
    new = config(
        sim,
        Account(API_KEY, API_SECRET, APPS[:1], name="west"),
        Account(API_KEY, API_SECRET, APPS[1:], name="north"),
    )
    h.configure(new)
    h.poller.reconfigure(new)
    assert [a.account for a in h.poller.snapshot().accounts] == []  # Not read yet.
    h.mono.now += 1  # Well before east's interval would have come round.
    h.poller.read_due()
    snapshot = h.poller.snapshot()
    assert [a.account for a in snapshot.accounts] == ["west", "north"]
    assert set(snapshot.requests) == {"west", "north"}
    assert h.requests() == 3


def test_each_read_publishes_a_snapshot(sim: Simulator, make: list[Harness]) -> None:
    h = harness(sim, make, config(sim))
    h.poller.read_all()
    assert h.published and h.published[-1].accounts[0].up
