"""Reads every account's balance once per `balance.interval_seconds`, however many apps it has.

One thread of its own (`run()`), off the scrape path and apart from the app polls: a slow
getBalance never delays a task poll, nor the other way round. Each request goes through the
account's `ApiClient` (its rate limiter and retries), borrowed for each read, so a reload's new
client is used from the next read on, and the read under way keeps the old one open to its end.

A failing account keeps its last good balance, with `aivoice_account_balance_up 0`, for
`poll.stale_after_seconds`; then its balance series are dropped until a read succeeds. A failure
is logged once when it starts or changes, with what the code means; the recovery is logged.
Each change is published as an immutable `BalanceSnapshot`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from types import MappingProxyType

from exporter.api.client import ApiClient
from exporter.api.paging import Stopped
from exporter.api.stats import GET_BALANCE, RequestRecorder
from exporter.balance.read import AccountBalance, Balance, BalanceSnapshot, read_balance
from exporter.codes import INVALID_RESPONSE, PollError, explain_balance
from exporter.config.model import Account, Config, balance_url

# A short name, not the module's path: every log line carries it (`logger`), and filters match it.
log = logging.getLogger("exporter.balance_poller")


@dataclass(frozen=True)
class _State:
    """What one account's previous reads left behind."""

    balance: Balance | None = None
    last_success_seconds: float | None = None
    last_error: str | None = None
    up: bool = False
    read: bool = False  # Read at least once (an account never read has no series).


class BalancePoller:
    """Owns the balance schedule for one config at a time; `run()` reads until `stop` is set.

    `borrow(app_id)` holds the `ApiClient` polling that app (one per account) for the length of
    a `with` block; `clock` gives Unix seconds (the stale rule), `monotonic` the schedule: both
    injectable for tests.
    """

    def __init__(
        self,
        config: Config,
        *,
        borrow: Callable[[str], AbstractContextManager[ApiClient | None]],
        publish: Callable[[BalanceSnapshot], None],
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._borrow = borrow
        self._publish = publish
        self._stop = stop
        self._clock = clock
        self._monotonic = monotonic
        self._recorder = RequestRecorder()  # Outlives reloads, as the app counters do.
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()  # One read of the accounts at a time.
        self._wake = threading.Event()
        self._config = config
        self._states: dict[str, _State] = {}
        self._due: dict[str, float] = {}
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """Take a new config: new accounts are read at once, removed ones leave the metrics."""
        accounts = _accounts(config)
        now = self._monotonic()
        with self._lock:
            self._config = config
            self._states = {a.label: self._states.get(a.label, _State()) for a in accounts}
            self._due = {a.label: self._due.get(a.label, now) for a in accounts}
        self._recorder.track([a.label for a in accounts], (GET_BALANCE,))
        self._wake.set()  # The caller takes `snapshot()`: it may hold the publisher's lock.

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        """Read each account at its due time until `stop` is set."""
        while not self._stop.is_set():
            next_due = self.read_due()
            self._wake.wait(max(next_due - self._monotonic(), 0.0))
            self._wake.clear()

    def read_due(self) -> float:
        """Read the accounts whose turn has come; return when the next one is due (monotonic).

        A round missed (a read that outlasted the interval) is skipped, not caught up.
        """
        with self._read_lock:
            with self._lock:
                config = self._config
                due = [
                    a for a in _accounts(config) if self._due.get(a.label, 0.0) <= self._monotonic()
                ]
            interval = config.balance.interval_seconds
            for account in due:
                if self._stop.is_set():
                    break
                self._read(config, account)
                with self._lock:
                    if account.label in self._due:
                        when, now = self._due[account.label], self._monotonic()
                        self._due[account.label] = when + interval * (
                            1 + int(max(now - when, 0.0) // interval)
                        )
            with self._lock:
                return min(self._due.values(), default=self._monotonic() + interval)

    def read_all(self) -> BalanceSnapshot:
        """Read every account now (for `--once`), whatever the schedule; return the result."""
        with self._read_lock:
            with self._lock:
                config = self._config
            for account in _accounts(config):
                self._read(config, account)
        return self.snapshot()

    def snapshot(self) -> BalanceSnapshot:
        with self._lock:
            config = self._config
            states = dict(self._states)
        if not config.balance.enabled:
            return BalanceSnapshot()
        accounts = tuple(
            AccountBalance(label, state.up, state.balance, state.last_success_seconds)
            for label, state in states.items()
            if state.read
        )
        apps = {app_id: a.label for a in config.accounts for app_id in a.app_ids}
        return BalanceSnapshot(
            accounts=accounts,
            requests=self._recorder.snapshot(states),
            apps=MappingProxyType(apps),
        )

    def _read(self, config: Config, account: Account) -> None:
        """One account's read, its state updated and the snapshot published."""
        with self._borrow(account.app_ids[0]) as client:
            if client is None:  # A reload removed it meanwhile.
                return
            deadline = time.monotonic() + config.poll.timeout_seconds
            try:
                balance = read_balance(
                    client, balance_url(config), account.label, self._recorder, deadline
                )
            except Stopped:
                return
            except PollError as err:
                self._failed(account.label, err, config.poll.stale_after_seconds)
            except Exception as err:  # A bug must cost this read, never the thread.
                log.exception("Balance read crashed", extra={"account": account.label})
                failure = PollError(INVALID_RESPONSE, f"unexpected {type(err).__name__}")
                self._failed(account.label, failure, config.poll.stale_after_seconds)
            else:
                self._succeeded(account.label, balance)
        self._publish(self.snapshot())

    def _succeeded(self, label: str, balance: Balance) -> None:
        with self._lock:
            previous = self._states.get(label)
            if previous is None:
                return
            self._states[label] = _State(balance, self._clock(), None, up=True, read=True)
        if previous.last_error is not None:
            log.info("Balance reads recovered", extra={"account": label})

    def _failed(self, label: str, err: PollError, stale_after: float) -> None:
        with self._lock:
            previous = self._states.get(label)
            if previous is None:
                return
            balance = previous.balance
            age = self._clock() - (previous.last_success_seconds or 0.0)
            dropped = balance is not None and age > stale_after
            if dropped:
                balance = None
            self._states[label] = replace(
                previous, balance=balance, last_error=err.code, up=False, read=True
            )
        fields = {"account": label, "code": err.code, "explanation": explain_balance(err.code)}
        if err.detail:
            fields["detail"] = err.detail
        level = logging.DEBUG if err.code == previous.last_error else logging.WARNING
        log.log(level, "Balance read failed", extra=fields)
        if dropped:
            log.warning(
                "Dropping the stale balance",
                extra={"account": label, "seconds_since_success": round(age)},
            )


def _accounts(config: Config) -> tuple[Account, ...]:
    """The accounts whose balance is read: all of them with `balance.enabled`, else none."""
    return config.accounts if config.balance.enabled else ()
