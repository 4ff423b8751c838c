"""The account's ``GET /sms/getBalance`` as the vendor documents it, and the balance behind it.

The balance starts at ``initial`` and falls by each generated call's ``pay`` as the call ends
(the same amount the push sends: billed minutes x ``PRICE_PER_MINUTE``); ``top_up`` adds to
it. Calls are a pure function of the seed and the clock (see ``calls``), so the spend is worked
out on demand, from the calls the account's ``EndedCalls`` hands on (drawn once for the
record index, the push and the balance): nothing runs in the background.

The answer is at the top level, not in ``data``: ``{"status": "0", "reason": "success",
"balance": "12.50", "gift": "0.00", "credit": "0.00"}``, amounts as strings. The endpoint is
listed with the SMS API, whose codes differ from aivoice's: -1 authentication error (a bad or
empty header), -16 timestamp expired, and -2, -13, -18 (restricted IP, user locked, system
error) through faults. Faults apply to it as to the other endpoints (``endpoints=["getBalance"]``
or ``fail_next(endpoint="getBalance")``); those that rewrite a page here rewrite the amounts.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from exporter.simulator.answers import fault_reply
from exporter.simulator.api import Query, Reply, json_bytes
from exporter.simulator.calls import PRICE_PER_MINUTE, Call
from exporter.simulator.campaigns import Plan
from exporter.simulator.ended import EndedCalls
from exporter.simulator.faults import Fault, Faults
from exporter.simulator.hostile import dripped, padded

DEFAULT_BALANCE = 25000.0
"""What the account holds at start-up: at ``--demo``'s pace, a few hours of calling."""
SMS_REASONS: Mapping[str, str] = {
    "0": "success",
    "-1": "Authentication error",
    "-2": "Restricted IP access",
    "-13": "User locked",
    "-16": "Timestamp expired",
    "-18": "System error",
}
# aivoice's header rejections, as the SMS API numbers them.
_SMS_CODES = {"-1": "-1", "-4": "-16", "-57": "-1", "-58": "-1", "-59": "-1"}
# What a ``poison`` fault puts in ``balance``: each must be refused, none is a number to trust.
POISON_AMOUNTS: tuple[object, ...] = (
    "12,50",
    "abc",
    "1e400",
    "NaN",
    "Infinity",
    "9" * 400,
    True,
    None,
    [1],
)
_POISON_NUMBERS = ("1e400", "NaN", "Infinity", "-Infinity", "9" * 400)  # raw JSON tokens


class BalanceBook:
    """One account's balance, falling as calls end; thread-safe."""

    def __init__(self, initial: float, feed: EndedCalls) -> None:
        self._feed = feed
        self._lock = threading.Lock()
        self._added = initial
        self._spent = 0.0
        feed.subscribe(self._pay)  # every call that ends from now on

    def balance(self) -> float:
        """What is left now: the start, plus top-ups, less every call ended since start-up."""
        self._feed.catch_up()
        with self._lock:
            return round(self._added - self._spent, 2)

    def top_up(self, amount: float) -> float:
        """Add ``amount`` (> 0) and return the new balance."""
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount > 0:
            raise ValueError(f"amount: must be a number > 0, got {amount!r}")
        with self._lock:
            self._added += amount
        return self.balance()

    def _pay(
        self,
        plans: Mapping[str, tuple[Plan, ...]],
        calls: Mapping[str, list[Call]],
        after: float,
        until: float,
    ) -> None:
        """The feed's reader: each ended call's cost leaves the balance."""
        minutes = sum(ended.billed // 60 for app_calls in calls.values() for ended in app_calls)
        with self._lock:
            self._spent += minutes * PRICE_PER_MINUTE


def balance_answer(balance: float) -> bytes:
    """A successful answer: at the top level, amounts as strings."""
    return json_bytes(
        {
            "status": "0",
            "reason": "success",
            "balance": f"{balance:.2f}",
            "gift": "0.00",
            "credit": "0.00",
        }
    )


def balance_fault_reply(
    fault: Fault, faults: Faults, now: float, balance: float, draw: int, location: str
) -> Reply:
    """How ``fault`` answers a getBalance request; those that rewrite a page here rewrite the
    amounts (picked by ``draw``)."""
    if fault.kind in ("poison", "too_many_records"):
        return Reply(body=poisoned(draw))
    if fault.kind == "drip":
        return dripped(balance_answer(balance), faults.drip_interval_seconds)
    if fault.kind == "oversize":
        return padded(balance_answer(balance), faults.oversize_bytes)
    return fault_reply(fault, faults, _NO_QUERY, now, dict, False, location)  # no page in it


def sms_code(code: str) -> str:
    """An aivoice header rejection as the SMS API numbers it."""
    return _SMS_CODES.get(code, code)


def sms_error(code: str) -> bytes:
    return json_bytes({"status": code, "reason": SMS_REASONS.get(code, "error")})


def poisoned(draw: int) -> bytes:
    """A success answer whose balance no client should believe (picked by ``draw``)."""
    options = len(POISON_AMOUNTS) + len(_POISON_NUMBERS) + 2
    pick = draw % options
    if pick < len(POISON_AMOUNTS):
        return json_bytes({"status": "0", "reason": "success", "balance": POISON_AMOUNTS[pick]})
    pick -= len(POISON_AMOUNTS)
    if pick < len(_POISON_NUMBERS):
        token = _POISON_NUMBERS[pick]
        return f'{{"status": "0", "reason": "success", "balance": {token}}}'.encode()
    if pick == len(_POISON_NUMBERS):
        return b'{"status": "0", "reason": "success", "balance": "1.00"'  # cut short
    return b'{"status": "0", "reason": "success", "gift": "1.00"}'  # no balance


_NO_QUERY = Query(app_id="", current=1, size=1)
