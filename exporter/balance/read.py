"""The account's balance: `GET /sms/getBalance` read, parsed and kept as immutable records.

The endpoint belongs to the account (one balance per API key), not to the aivoice product: it
answers at the top level (`{"status": "0", "balance": "12.50", "gift": "0", "credit": "0"}`),
not inside `data`, and its status codes are the SMS API's (`exporter/codes.py`). A request goes
through the account's `ApiClient` (`ApiClient.request`): the same signing, rate limiter and
retries as taskList, counted under the `getBalance` endpoint in a recorder keyed by account.

`parse_balance` is the gate: an amount is a decimal string or a JSON number; letters, `NaN`,
`Infinity`, `1e400` and 400-digit numbers are refused, so no NaN or Inf can reach a metric. A
refused answer is a failed request (`invalid_response`), like any answer out of shape.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from exporter.api.client import ApiClient
from exporter.api.paging import Endpoint
from exporter.api.stats import GET_BALANCE, RequestRecorder
from exporter.api.wire import read_document
from exporter.codes import INVALID_RESPONSE, PollError, explain_balance
from exporter.snapshot import RequestStats

# The amounts of the answer, in the order the `kind` label lists them.
KINDS = ("balance", "gift", "credit")
# A trillion in the account's currency: a larger amount is not a balance, and every amount
# under it keeps its cents exactly as a float.
MAX_AMOUNT = 1e12
_AMOUNT = re.compile(r"[+-]?[0-9]{1,13}(?:\.[0-9]{1,12})?")  # ASCII digits only.


@dataclass(frozen=True)
class Balance:
    """One answer's amounts; an amount the answer left out is None (its series is left out)."""

    balance: float
    gift: float | None = None
    credit: float | None = None

    @property
    def pages(self) -> int:
        """One answer, no paging: what `ApiClient.request` asks of whatever it reads."""
        return 1

    def amounts(self) -> dict[str, float]:
        """`kind` -> amount, for the amounts the answer gave."""
        values = {"balance": self.balance, "gift": self.gift, "credit": self.credit}
        return {kind: value for kind, value in values.items() if value is not None}


@dataclass(frozen=True)
class AccountBalance:
    """The latest that is known of one account's balance.

    `balance` is None when there is nothing fit to serve: no read has succeeded yet, or the
    last success is older than `poll.stale_after_seconds`.
    """

    account: str
    up: bool
    balance: Balance | None
    last_success_seconds: float | None = None


@dataclass(frozen=True)
class BalanceSnapshot:
    """Every account's balance, the getBalance request counts by account, and which account
    each app belongs to (`aivoice_app_info`). Empty while `balance.enabled` is off."""

    accounts: tuple[AccountBalance, ...] = ()
    requests: Mapping[str, RequestStats] = field(default_factory=lambda: MappingProxyType({}))
    apps: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def parse_balance(body: bytes) -> Balance:
    """Read one getBalance answer; raises `PollError` and nothing else.

    A non-zero status is that status's code, explained with the SMS table.
    """
    try:
        document = read_document(body)
    except PollError as err:
        raise PollError(err.code, err.detail, explanation=explain_balance(err.code)) from None
    if "balance" not in document:
        raise _invalid("no balance field")
    return Balance(
        balance=_amount(document["balance"], "balance"),
        gift=_optional_amount(document.get("gift"), "gift"),
        credit=_optional_amount(document.get("credit"), "credit"),
    )


def _optional_amount(value: Any, name: str) -> float | None:
    return None if value is None else _amount(value, name)


def _amount(value: Any, name: str) -> float:
    """A finite amount of at most `MAX_AMOUNT`, from a decimal string or a JSON number."""
    if isinstance(value, bool):
        raise _invalid(f"{name} is a boolean")
    if isinstance(value, str):
        text = value.strip()
        if not _AMOUNT.fullmatch(text):
            raise _invalid(f"{name} is not a decimal amount")
        number = float(text)
    elif isinstance(value, int):
        if abs(value) > MAX_AMOUNT:  # Compared as ints: a 400-digit int never becomes a float.
            raise _invalid(f"{name} is out of range")
        number = float(value)
    elif isinstance(value, float):
        number = value
    else:
        raise _invalid(f"{name} is {type(value).__name__}")
    if not math.isfinite(number) or abs(number) > MAX_AMOUNT:  # json reads 1e400 as inf.
        raise _invalid(f"{name} is not a finite amount")
    return number + 0.0  # -0.0 is 0.


def _invalid(detail: str) -> PollError:
    return PollError(INVALID_RESPONSE, detail, explanation=explain_balance(INVALID_RESPONSE))


def read_balance(
    client: ApiClient,
    url: str,
    account: str,
    recorder: RequestRecorder,
    deadline: float = float("inf"),
) -> Balance:
    """One account's balance through its client, counted under `account` in `recorder`."""
    endpoint = Endpoint(
        GET_BALANCE, url, lambda _: b"", parse_balance, method="GET", recorder=recorder
    )
    return client.request(endpoint, account, deadline)
