"""A built-in simulator of the ITNIO AI-voice API's ``POST /aivoice/taskList``.

Why it exists: the exporter polls a paid vendor API that has no sandbox. The tests, the
benchmarks and ``aivoice-exporter --demo`` need something that behaves the way the vendor's page
(``shared/api/aivoice-taskList.txt``) and ``NOTES.md`` say the API behaves, and that can be made to
fail on demand with every injected fault counted, so a soak test can prove that the exporter
neither loses nor double counts errors.

What it does, as documented by the vendor:

* checks ``Api-Key``, ``Timestamp`` and ``Sign = md5(apiKey + apiSecret + Timestamp)`` (lowercase
  hex) and answers the documented codes as HTTP 200 with ``{"status": "-N", "reason": ...}``;
* pages like the real API: it may ignore the asked ``size`` (``server_page_size``), a page past the
  end is empty, and records are newest first, so a task created while a client pages through
  pushes every later record down a place (the same ``jobId`` then shows on two pages);
* holds campaigns whose progress and statuses move with the clock, deterministic from a seed.

What it does beyond that, for tests: tasks created or deleted between two page reads, pages
built in the order a test chooses (``change_before_page``, ``delay_page``,
``Faults.churn_ratio``), the documented faults, and hostile answers a broken or malicious server
might send (redirects, dripped, oversized and gzip-bomb bodies, pages with too many records or
poison values, odd statuses, ``Retry-After``). See ``Faults``.

Standard library only, so ``--demo`` needs nothing beyond the exporter's own dependencies. It is a
test tool: its control endpoints (``/-/faults``, ``/-/fail-next``, ``/-/change-before-page``,
``/-/delay-page``, ``/-/stats``) have no authentication, so bind it to loopback.

Run it as ``python -m exporter.simulator --listen-address 127.0.0.1:8080 --api-key K
--api-secret S --app-ids A,B``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import hashlib
import hmac
import json
import logging
import math
import random
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, MappingProxyType, TracebackType
from typing import Any, TypedDict, TypeGuard
from urllib.parse import urlsplit

from exporter.listen import parse_listen_address

__all__ = [
    "ALL_FAULT_KINDS",
    "API_PATH",
    "CHURN_ACTIONS",
    "FAULT_KINDS",
    "FAULT_VARIANTS",
    "HOSTILE_FAULT_KINDS",
    "KNOWN_STATUSES",
    "MAX_TIMESTAMP_SKEW_SECONDS",
    "Faults",
    "Simulator",
    "Stats",
    "expected_status_code",
    "gzip_bomb",
    "main",
    "odd_valid_records",
]

log = logging.getLogger(__name__)

API_PATH = "/aivoice/taskList"
MAX_TIMESTAMP_SKEW_SECONDS = 300
"""The vendor does not publish its tolerance; issue 2 asks for 5 minutes."""
MAX_BODY_BYTES = 1 << 20
KNOWN_STATUSES = (
    "NOT_STARTED",
    "IN_PROCESS",
    "COMPLETED",
    "RUNNABLE",
    "USER_PAUSE",
    "SYSTEM_SUSPENDED",
    "TERMINATE",
    "IN_QUEUE",
)
FAULT_KINDS = ("http_5xx", "timeout", "garbage", "api_code")
"""The documented faults: ``Faults.random_kinds``' default, and what the soak has always mixed."""
HOSTILE_FAULT_KINDS = (
    "redirect",
    "drip",
    "oversize",
    "gzip_bomb",
    "too_many_records",
    "poison",
    "odd_status",
    "retry_after",
)
"""Answers a broken or malicious server might send; never injected unless asked for."""
ALL_FAULT_KINDS = FAULT_KINDS + HOSTILE_FAULT_KINDS
"""Every kind ``Faults.random_kinds`` and ``Simulator.fail_next`` accept."""
FAULT_VARIANTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "garbage": ("html", "truncated_json", "no_data", "empty"),
        "poison": ("superscript_digit", "huge_integer", "float_overflow", "records_false"),
        "odd_status": ("undocumented_code", "word", "lone_surrogate", "huge_status", "huge_reason"),
        "retry_after": ("seconds", "http_date"),
    }
)
"""The forms a kind comes in; random faults pick one (seeded), ``fail_next(variant=)`` pins one."""
CHURN_ACTIONS = ("create", "delete")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
RETRY_AFTER_STATUSES = (429, 503)

_STATS_KINDS = ("http_status", "timeout", "garbage", "api_code", *HOSTILE_FAULT_KINDS)
# The server's own words, so answers read like the real API's. Kept here on purpose: the
# exporter's code table (exporter/codes.py) explains codes to operators, this one imitates them.
_REASONS = {
    "0": "success",
    "-1": "Authentication error",
    "-4": "Timestamp expires",
    "-5": "System exception",
    "-6": "Restricted IP access",
    "-27": "Parameter validation failed",
    "-37": "Application does not exist",
    "-57": "The Sign cannot be empty",
    "-58": "The Timestamp cannot be empty",
    "-59": "The Api-Key cannot be empty",
}
_JSON = "application/json;charset=UTF-8"
_CREATE_TIME_ZONE = timezone(timedelta(hours=8))
_ODD_NAMES = (
    'Say "hello" campaign',
    "C:\\campaigns\\spring",
    "回访客户 第二批",
    "Launch 🚀 week 🎉",
    "two\nlines",
)
_NAMES = (
    "renewal reminder",
    "payment follow-up",
    "satisfaction survey",
    "welcome call",
    "appointment confirmation",
    "win-back offer",
    "delivery notice",
    "event invitation",
)
# Bodies a broken proxy or server might send: none of them is a page the client may accept.
_GARBAGE = {
    "html": ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "truncated_json": (_JSON, b'{"status":"0","reason":"success","data":{"records":[{"jobId":1,'),
    "no_data": (_JSON, b'{"status":"0","reason":"success"}'),
    "empty": (_JSON, b""),
}
_MIB = 1 << 20


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True, kw_only=True)
class Faults:
    """What the simulator gets wrong on purpose; the defaults are a healthy API.

    Faults touch only requests that are otherwise valid: a request rejected for a real reason
    (a bad sign, say) gets its real answer and is never a fault. With ``app_ids`` set, faults
    (latency and churn included) apply only to requests for those apps. Precedence:
    ``fail_next`` first, then ``hang_seconds``, ``http_status``, ``api_code``, ``malformed``, then
    the random ones.

    Fault kinds for ``random_kinds`` and ``Simulator.fail_next``, each counted once in
    ``Stats.faults`` (by kind) and ``Stats.fault_codes`` (by the code the exporter must count):

    * ``http_5xx``: an HTML error page with an HTTP error status (random: 500, 502, 503 or 504;
      ``fail_next``: 503 unless told); ``http_<N>``.
    * ``timeout``: hang ``timeout_hang_seconds``, then drop the connection; ``timeout``.
    * ``garbage``: 200 with a body that is no page (variants ``html``, ``truncated_json``,
      ``no_data``, ``empty``); ``invalid_response``.
    * ``api_code``: 200 with ``{"status": code}`` (``random_api_codes``); the code itself.

    The hostile kinds (``HOSTILE_FAULT_KINDS``), never injected unless asked for:

    * ``redirect``: a 3xx (``redirect_statuses``; ``fail_next`` takes 301, 302, 303, 307 or 308)
      whose ``Location`` points at a capture listener the simulator owns on another loopback
      port. The listener answers a valid, empty page and counts every request that reaches it
      (``Stats.redirect_followed``) and those carrying ``Api-Key``, ``Sign`` or ``Timestamp``
      (``Stats.redirect_credentials``): both must stay 0. ``http_<N>``.
    * ``drip``: 200 with valid headers and ``Content-Length``, then the real page one byte every
      ``drip_interval_seconds``: each read gets data, the whole body takes far longer than any
      client timeout (even an empty page is over 100 bytes). ``timeout``.
    * ``oversize``: 200 with a body of ``oversize_bytes``: whitespace then the real page, so it is
      valid JSON and only a size cap stops it; streamed, never held in memory. ``invalid_response``.
    * ``gzip_bomb``: 200, ``Content-Encoding: gzip``, about 1/1000 of ``gzip_bomb_bytes`` on the
      wire inflating to ``gzip_bomb_bytes`` (whitespace, then a valid empty page); built once
      per size and cached. ``invalid_response``.
    * ``too_many_records``: a valid page holding ``too_many_records`` distinct records, whatever
      was asked. ``invalid_response``.
    * ``poison``: the real page with one value no exporter may accept (variants:
      ``superscript_digit``, taskTotal ``"²"``, which passes ``str.isdigit()`` but not ``int()``;
      ``huge_integer``, a 400-digit taskTotal; ``float_overflow``, two tasks of one status with
      taskTotal 1.7976931348623157e308, whose sum overflows a float; ``records_false``,
      ``records: false`` with ``total: 5``). ``invalid_response``. Odd values a client must
      accept are no fault: serve them with ``set_tasks`` (see ``odd_valid_records``).
    * ``odd_status``: an API error with an odd ``status`` (variants: ``undocumented_code``
      ``"-77"``; ``word`` ``"MAINTENANCE"``; ``lone_surrogate`` ``"\\ud800"`` as a JSON escape;
      ``huge_status``, 1 MiB of digits; ``huge_reason``, status ``"-5"`` with a 1 MiB
      ``reason``). The status itself if it matches ``-?[0-9]{1,9}``, else ``other`` (see
      ``expected_status_code``).
    * ``retry_after``: an HTTP 429 or 503 (``retry_after_statuses``) with ``Retry-After``
      ``retry_after_seconds`` from now, in seconds or as an HTTP date (variants ``seconds``,
      ``http_date``; the date is rounded up to a whole second of the simulator's clock).
      ``http_429`` or ``http_503``.
    """

    latency_seconds: float = 0.0
    """Added before every answer; not a fault."""
    latency_jitter_seconds: float = 0.0
    """Up to this much more latency, uniformly at random (seeded)."""
    api_code: str | None = None
    """Answer every request with this API status (HTTP 200), e.g. ``"-6"``."""
    http_status: int | None = None
    """Answer every request with this HTTP status, e.g. 503 or 429."""
    malformed: bool = False
    """Answer every request with a body that is not JSON or is JSON without ``data``."""
    hang_seconds: float = 0.0
    """Hang every request this long, then drop the connection without an answer."""
    timeout_hang_seconds: float = 15.0
    """How long a random or ``fail_next`` ``timeout`` hangs before dropping the connection:
    set it above the client's timeout, or the client sees a dropped connection instead."""
    random_fail_ratio: float = 0.0
    """Fail this share of requests with one of ``random_kinds``, chosen by a seeded RNG."""
    random_kinds: tuple[str, ...] = FAULT_KINDS
    """Kinds a random fault picks from: any of ``ALL_FAULT_KINDS``."""
    random_api_codes: tuple[str, ...] = ("-5",)
    """Codes a random ``api_code`` fault picks from."""
    redirect_statuses: tuple[int, ...] = (302,)
    """Statuses a random ``redirect`` picks from (301, 302, 303, 307, 308)."""
    drip_interval_seconds: float = 1.0
    """The pause before each byte of a ``drip``: keep it below the client's timeout, so that
    only a bound on the whole request can end it."""
    oversize_bytes: int = 16 * _MIB
    """The body size of an ``oversize`` answer."""
    gzip_bomb_bytes: int = 1 << 30
    """What a ``gzip_bomb`` inflates to."""
    too_many_records: int = 5000
    """Records on a ``too_many_records`` page."""
    retry_after_seconds: int = 1
    """The ``Retry-After`` of a ``retry_after`` answer."""
    retry_after_statuses: tuple[int, ...] = (429,)
    """Statuses a random ``retry_after`` picks from (429, 503)."""
    churn_ratio: float = 0.0
    """Before this share of valid page requests (seeded), create a task or delete the newest
    one, as ``Simulator.change_before_page`` does: creates and deletes alternate, starting with
    a create, so an app holds its start count or one more. Counted in ``Stats.churn``."""
    app_ids: tuple[str, ...] = ()
    """Only these apps suffer the faults above; empty means every app."""

    def __post_init__(self) -> None:
        for name in ("random_kinds", "random_api_codes", "app_ids"):
            object.__setattr__(self, name, _str_tuple(name, getattr(self, name)))
        for name, allowed in (
            ("redirect_statuses", REDIRECT_STATUSES),
            ("retry_after_statuses", RETRY_AFTER_STATUSES),
        ):
            object.__setattr__(self, name, _status_tuple(name, getattr(self, name), allowed))
        for name in (
            "latency_seconds",
            "latency_jitter_seconds",
            "hang_seconds",
            "timeout_hang_seconds",
        ):
            _check_number(name, getattr(self, name), 0.0, float("inf"))
        _check_number("random_fail_ratio", self.random_fail_ratio, 0.0, 1.0)
        _check_number("churn_ratio", self.churn_ratio, 0.0, 1.0)
        _check_number("drip_interval_seconds", self.drip_interval_seconds, 0.001, 3600.0)
        _check_int("oversize_bytes", self.oversize_bytes, 1, 1 << 34)
        _check_int("gzip_bomb_bytes", self.gzip_bomb_bytes, 1, 1 << 34)
        _check_int("too_many_records", self.too_many_records, 1, 1_000_000)
        _check_int("retry_after_seconds", self.retry_after_seconds, 0, 10**9)
        if self.api_code is not None:
            _check_api_code("api_code", self.api_code)
        for code in self.random_api_codes:
            _check_api_code("random_api_codes", code)
        if self.http_status is not None:
            _check_http_status("http_status", self.http_status)
        if not isinstance(self.malformed, bool):
            raise ValueError("malformed: must be true or false")
        unknown = set(self.random_kinds) - set(ALL_FAULT_KINDS)
        if unknown:
            raise ValueError(
                f"random_kinds: unknown {sorted(unknown)}, known {list(ALL_FAULT_KINDS)}"
            )
        if self.random_fail_ratio > 0 and not self.random_kinds:
            raise ValueError("random_kinds: empty while random_fail_ratio > 0")
        for kind, choices in (
            ("api_code", "random_api_codes"),
            ("redirect", "redirect_statuses"),
            ("retry_after", "retry_after_statuses"),
        ):
            if kind in self.random_kinds and not getattr(self, choices):
                raise ValueError(f"{choices}: empty while random_kinds has {kind}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        """Build from JSON (``POST /-/faults``); missing fields take their defaults."""
        if not isinstance(data, Mapping):
            raise ValueError("faults: must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown field, known {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, which ``from_dict`` reads back."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def applies_to(self, app_id: str | None) -> bool:
        """Whether a request for ``app_id`` (None: unknown) is in the faults' scope."""
        return not self.app_ids or app_id in self.app_ids


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name}: must be a number in [{low}, {high}], got {value!r}")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not _is_int(value) or not low <= value <= high:
        raise ValueError(f"{name}: must be an integer in [{low}, {high}], got {value!r}")


def _status_tuple(name: str, value: object, allowed: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name}: must be a list of HTTP statuses out of {list(allowed)}")
    if not all(_is_int(item) and item in allowed for item in value):
        raise ValueError(f"{name}: must be a list of HTTP statuses out of {list(allowed)}")
    return tuple(value)


def _str_tuple(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise ValueError(f"{name}: must be a list of strings")
    if not all(isinstance(item, str) for item in value):
        raise ValueError(f"{name}: must be a list of strings")
    return tuple(value)


def _check_api_code(name: str, code: object) -> None:
    if not isinstance(code, str) or not re.fullmatch(r"-[1-9][0-9]*", code):
        raise ValueError(f"{name}: must be a negative code as a string like '-5', got {code!r}")


def _check_http_status(name: str, status: object) -> None:
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"{name}: must be an HTTP error status 400..599, got {status!r}")


@dataclass(frozen=True)
class _Fault:
    """One injected fault, decided (and counted) before its answer is built."""

    kind: str  # one of ALL_FAULT_KINDS
    code: str  # what the exporter should count: "http_503", "timeout", "invalid_response", "-5"
    status: int = 0  # the HTTP status of http_5xx, redirect and retry_after
    api_code: str = ""  # of api_code
    variant: str = ""  # one of FAULT_VARIANTS[kind], where the kind has variants
    hang: float = 0.0  # of timeout


@dataclass(frozen=True)
class _Pending:
    """A ``fail_next`` entry waiting for a request."""

    kind: str
    app_id: str | None
    api_code: str
    http_status: int | None
    variant: str | None


@dataclass(frozen=True)
class _Change:
    """A ``change_before_page`` trigger waiting for its page."""

    app_id: str
    page: int
    action: str
    count: int


class Stats(TypedDict):
    """Counters since start-up, for tests that compare the client's view with the server's."""

    requests: int
    """Every POST to the API path, whatever its answer."""
    answered: dict[str, int]
    """Real (not injected) answers by API status: ``{"0": 10, "-1": 1}``."""
    faults_total: int
    """Requests answered with an injected fault, each once."""
    faults: dict[str, int]
    """Injected faults by kind: http_status (for ``http_5xx``), timeout, garbage, api_code and
    the hostile kinds, each present from the start."""
    fault_codes: dict[str, int]
    """Injected faults by the error code the exporter should count for them
    (``http_503``, ``timeout``, ``invalid_response``, ``-5``, ``other``)."""
    churn: dict[str, int]
    """Tasks created and deleted by ``change_before_page`` and ``churn_ratio``:
    ``{"create": n, "delete": n}``."""
    redirect_followed: int
    """Requests that reached the redirect capture listener: a client that follows redirects."""
    redirect_credentials: int
    """Of those, the ones carrying ``Api-Key``, ``Sign`` or ``Timestamp``."""


# --------------------------------------------------------------------------- campaigns


@dataclass(frozen=True)
class _Plan:
    """A generated task whose progress is a pure function of simulated time.

    Times are simulated seconds relative to the simulator's start (``speed`` scales them).
    Calling starts at ``start`` (``inf``: never), runs at ``rate`` calls a second and ends
    COMPLETED at ``total``, unless it stops in ``stop_status`` after ``stop_after`` calls.
    """

    job_id: int
    name: str
    dialog_flow: str
    line: str
    robots: int
    mode: str
    hangup_sms: bool
    unbound: bool
    create_time: str  # already formatted: it never changes
    total: int
    start: float
    rate: float
    waiting_status: str
    stop_after: int | None = None
    stop_status: str = "COMPLETED"

    def state_at(self, elapsed: float) -> tuple[str, int]:
        """The task's (status, taskCompleted) ``elapsed`` simulated seconds after start-up."""
        if elapsed < self.start:
            return self.waiting_status, 0
        done = min(self.total, int((elapsed - self.start) * self.rate))
        if self.stop_after is not None and done >= self.stop_after:
            return self.stop_status, self.stop_after
        return ("COMPLETED" if done >= self.total else "IN_PROCESS"), done

    def record_at(self, elapsed: float) -> dict[str, Any]:
        """The task as the API shows it, field for field as the vendor's example."""
        status, done = self.state_at(elapsed)
        return {
            "jobId": self.job_id,
            "name": self.name,
            "dialogFlowName": self.dialog_flow,
            "jobPhoneNumberName": self.line,
            "robotCount": self.robots,
            "mode": self.mode,
            "hangupSms": self.hangup_sms,
            "taskTotal": self.total,
            "taskCompleted": done,
            "status": status,
            "isDialogFlowUnbind": self.unbound,
            "createTime": self.create_time,
        }


# One fate per task index, cycled, so a default app of 12 tasks shows every known status at
# start-up and several change within a minute at speed 1.
_FATES = (
    "done",
    "finishing",
    "scheduled",
    "queued",
    "USER_PAUSE",
    "RUNNABLE",
    "SYSTEM_SUSPENDED",
    "TERMINATE",
    "long",
    "manual",
    "pausing",
    "done",
)


def _plan_timing(fate: str, rng: random.Random) -> dict[str, Any]:
    """Total, start, rate and stop of a task with this fate (simulated seconds)."""
    rate = round(rng.uniform(1.0, 4.0), 2)
    total = rng.randrange(100, 1000, 10)
    started_long_ago = -3600.0 - total / rate
    if fate == "done":
        return {"total": total, "start": started_long_ago, "rate": rate}
    if fate in ("finishing", "long", "pausing"):
        running_for = rng.uniform(300, 1800)
        remaining = {"finishing": rng.uniform(20, 50), "long": rng.uniform(7200, 21600)}.get(
            fate, 3600.0
        )
        total = max(1, round(rate * (running_for + remaining)))
        timing: dict[str, Any] = {"total": total, "start": -running_for, "rate": rate}
        if fate == "pausing":  # a user pauses it within the first minute
            timing["stop_after"] = int(rate * (running_for + rng.uniform(20, 45)))
            timing["stop_status"] = "USER_PAUSE"
        return timing
    if fate in ("scheduled", "queued"):
        start = rng.uniform(25, 40) if fate == "scheduled" else rng.uniform(5, 20)
        waiting = "NOT_STARTED" if fate == "scheduled" else "IN_QUEUE"
        return {"total": total, "start": start, "rate": rate, "waiting_status": waiting}
    if fate == "manual":
        return {"total": total, "start": float("inf"), "rate": rate}
    # Stopped for good in the status the fate is named after, part of the way through.
    stop_after = int(total * rng.uniform(0.1, 0.8))
    return {
        "total": total,
        "start": started_long_ago,
        "rate": rate,
        "stop_after": stop_after,
        "stop_status": fate,
    }


def _generate_plans(
    app_id: str, app_index: int, count: int, seed: int, started: float
) -> list[_Plan]:
    """The app's tasks, newest (highest jobId) first, the same for the same seed and app."""
    rng = random.Random(f"{seed}:{app_id}")
    stride = 1000 * (count // 1000 + 1)
    created = started
    plans: list[_Plan] = []
    for index in reversed(range(count)):  # newest first; creation times walk backwards
        created -= rng.uniform(2 * 3600, 8 * 3600)
        fate = _FATES[index % len(_FATES)]
        timing = {"waiting_status": "NOT_STARTED", **_plan_timing(fate, rng)}
        name = f"{_NAMES[index % len(_NAMES)]} {index + 1:02d}"
        if app_index == 0 and 1 <= index <= len(_ODD_NAMES):
            name = _ODD_NAMES[index - 1]
        plans.append(
            _Plan(
                job_id=(app_index + 1) * stride + index,
                name=name,
                dialog_flow=f"flow-{rng.randrange(1, 20)}.{rng.randrange(1, 30)}",
                line=f"line{rng.randrange(10, 99)}",
                robots=rng.randrange(1, 21),
                mode="MANUAL" if fate == "manual" else rng.choice(("AUTO", "AUTO", "MANUAL")),
                hangup_sms=rng.random() < 0.3,
                unbound=fate == "TERMINATE",
                create_time=_create_time(created),
                **timing,
            )
        )
    return plans


def _create_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, _CREATE_TIME_ZONE).strftime("%Y-%m-%d %H:%M:%S")


_Entry = _Plan | dict[str, Any]  # a generated task, or a pinned/added record served as it is


def _entry_name(entry: _Entry) -> str:
    name = entry.name if isinstance(entry, _Plan) else entry.get("name")
    return name if isinstance(name, str) else ""


def _entry_job_id(entry: _Entry) -> object:
    return entry.job_id if isinstance(entry, _Plan) else entry.get("jobId")


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class _Reply:
    """What the HTTP handler sends, after waiting ``delay`` seconds; ``drop`` sends nothing.

    A streamed body comes from ``chunks`` (``length`` bytes in all, the Content-Length), with
    ``drip_seconds`` before each chunk; otherwise the body is ``body``.
    """

    status: int = 200
    body: bytes = b""
    content_type: str = _JSON
    delay: float = 0.0
    drop: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    chunks: Iterable[bytes] | None = None
    length: int = 0
    drip_seconds: float = 0.0


@dataclass(frozen=True)
class _Query:
    app_id: str
    current: int
    size: int
    name: str


class _Rejected(Exception):
    """A request the real API would refuse with ``code``."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


def _api_error(code: str, detail: str = "") -> bytes:
    reason = _REASONS.get(code, "Simulated error")
    return _json_bytes({"status": code, "reason": f"{reason}: {detail}" if detail else reason})


def _json_bytes(payload: object) -> bytes:
    # ensure_ascii=False: the vendor's Java server sends UTF-8, not \\u escapes. A lone
    # surrogate has no UTF-8 form: then everything non-ASCII goes out as a JSON escape.
    try:
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(payload).encode("ascii")


def _expected_sign(api_key: str, api_secret: str, timestamp: str) -> str:
    return hashlib.md5((api_key + api_secret + timestamp).encode("utf-8")).hexdigest()


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_query(body: bytes) -> _Query:
    """The body as the vendor documents it, or -27 naming what is wrong."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _Rejected("-27", "body is not JSON") from exc
    if not isinstance(payload, dict):
        raise _Rejected("-27", "body is not a JSON object")
    current, size, params = payload.get("current"), payload.get("size"), payload.get("params")
    if not _is_int(current) or current < 1:
        raise _Rejected("-27", "current must be an integer >= 1")
    if not _is_int(size) or not 1 <= size <= 100:
        raise _Rejected("-27", "size must be an integer 1-100")
    if not isinstance(params, dict):
        raise _Rejected("-27", "params is required")
    app_id, name = params.get("appId"), params.get("name")
    if not isinstance(app_id, str) or not app_id:
        raise _Rejected("-27", "params.appId is required")
    if name is not None and not isinstance(name, str):
        raise _Rejected("-27", "params.name must be a string")
    return _Query(app_id=app_id, current=current, size=size, name=name or "")


def _guess_app_id(body: bytes) -> str | None:
    """The appId of a request that may be invalid, to decide whether faults apply to it."""
    try:
        app_id = json.loads(body)["params"]["appId"]
    except (ValueError, RecursionError, KeyError, TypeError):
        return None
    return app_id if isinstance(app_id, str) else None


# --------------------------------------------------------------------------- simulator


class Simulator:
    """The ITNIO ``taskList`` API for one account, served over HTTP on a daemon thread.

    Every method is thread-safe: tests change tasks and faults while a client polls.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        app_ids: Sequence[str],
        *,
        tasks_per_app: int = 12,
        seed: int = 0,
        server_page_size: int | None = None,
        clock: Callable[[], float] = time.time,
        speed: float = 1.0,
    ) -> None:
        if isinstance(app_ids, str) or not app_ids:
            raise ValueError("app_ids: must be a non-empty list of strings")
        if len(set(app_ids)) != len(app_ids) or not all(app_ids):
            raise ValueError("app_ids: must be unique and non-empty")
        if tasks_per_app < 0:
            raise ValueError("tasks_per_app: must be >= 0")
        if server_page_size is not None and server_page_size < 1:
            raise ValueError("server_page_size: must be >= 1")
        if speed < 0:
            raise ValueError("speed: must be >= 0")
        self._api_key = api_key
        self._api_secret = api_secret
        self._server_page_size = server_page_size
        self._clock = clock
        self._speed = speed
        self._started_at = clock()
        self._lock = threading.Lock()
        self._apps: dict[str, list[_Entry]] = {
            app_id: list(_generate_plans(app_id, i, tasks_per_app, seed, self._started_at))
            for i, app_id in enumerate(app_ids)
        }
        self._faults = Faults()
        self._pending: deque[_Pending] = deque()
        self._changes: list[_Change] = []
        self._delays: list[tuple[str, int, float]] = []  # (app_id, page, seconds), one-shot
        self._rng = random.Random(seed)
        self._requests = 0
        self._answered: dict[str, int] = {}
        self._fault_kinds = dict.fromkeys(_STATS_KINDS, 0)
        self._fault_codes: dict[str, int] = {}
        self._churn = dict.fromkeys(CHURN_ACTIONS, 0)
        self._churn_created = dict.fromkeys(app_ids, 0)  # churn_ratio's creates less its deletes
        self._redirect_followed = 0
        self._redirect_credentials = 0
        self._server: _Server | None = None
        self._capture: _Server | None = None
        self._serving: list[tuple[_Server, threading.Thread]] = []
        self._stopping = threading.Event()

    # ---- lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Simulator:
        """Listen on host:port (0: a free port) and serve on a daemon thread.

        A second listener on a free port of the same host catches followed redirects.
        """
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("a Simulator starts once")
        self._server = _Server((host, port), self, _Handler)
        try:
            self._capture = _Server((host, 0), self, _CaptureHandler)
        except OSError:
            self._server.server_close()
            raise
        for server, role in ((self._server, "simulator"), (self._capture, "redirect-capture")):
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.02},  # how long stop() may wait
                name=f"aivoice-{role}:{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._serving.append((server, thread))
        return self

    def stop(self) -> None:
        """Stop serving, end hanging requests and close open connections. Idempotent."""
        self._stopping.set()
        for server, thread in self._serving:
            if not thread.is_alive():
                continue
            server.shutdown()
            server.close_connections()
            server.server_close()
            thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port), with the real port when started on port 0."""
        if self._server is None:
            raise RuntimeError("not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def base_url(self) -> str:
        """What the exporter's ``api.base_url`` should be, e.g. http://127.0.0.1:PORT/aivoice."""
        host, port = self.address
        return f"http://{_url_host(host)}:{port}/aivoice"

    @property
    def redirect_url(self) -> str:
        """Where a ``redirect`` fault points: the capture listener, another loopback port."""
        if self._capture is None:
            raise RuntimeError("not started")
        host, port = self._capture.server_address[:2]
        return f"http://{_url_host(str(host))}:{port}{API_PATH}"

    # ---- tasks

    def tasks(self, app_id: str) -> list[dict[str, Any]]:
        """The app's records as the API would show them now, newest first."""
        elapsed = self._elapsed(self._clock())
        with self._lock:
            entries = list(self._app(app_id))
        return [self._render(entry, elapsed) for entry in entries]

    def set_tasks(self, app_id: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Serve exactly these records, in this order, from now on; the app stops progressing.

        Records are not checked, so tests can feed the client odd or broken ones (a string
        with a lone surrogate goes out as its JSON escape).
        """
        pinned = [copy.deepcopy(dict(record)) for record in records]
        with self._lock:
            self._app(app_id)[:] = pinned

    def add_task(self, app_id: str, record: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Create a task as the newest (first) record and return it.

        Missing fields are filled in (``jobId`` one above the app's highest), so
        ``add_task(app)`` alone reproduces a task created while a client pages.
        """
        with self._lock:
            added = self._create(self._app(app_id), record)
        return copy.deepcopy(added)

    def remove_task(self, app_id: str, job_id: int) -> bool:
        """Delete the task with this jobId; False if there was none."""
        with self._lock:
            entries = self._app(app_id)
            for index, entry in enumerate(entries):
                if _entry_job_id(entry) == job_id:
                    del entries[index]
                    return True
        return False

    def change_before_page(self, app_id: str, page: int, action: str, *, count: int = 1) -> None:
        """Create or delete ``count`` tasks just before the app's next page ``page`` is built.

        It fires once, for the next request for that page that is answered with a page (a
        request that gets a fault leaves it waiting), in the same hold of the lock as taking
        the records that page shows: a test can place a change exactly between two page reads.
        Triggers for one page fire together.

        ``create`` inserts new tasks as the newest, like ``add_task``: every later record moves
        down a place. ``delete`` removes the newest tasks (the first records of page 1): every
        later record moves up a place, so a client that read page ``page - 1`` before the
        change and ``page`` after it misses a record. ``Stats.churn`` counts the tasks.
        """
        if action not in CHURN_ACTIONS:
            raise ValueError(f"action: must be one of {list(CHURN_ACTIONS)}, got {action!r}")
        if not _is_int(page) or page < 1:
            raise ValueError(f"page: must be an integer >= 1, got {page!r}")
        if not _is_int(count) or count < 1:
            raise ValueError(f"count: must be an integer >= 1, got {count!r}")
        with self._lock:
            self._app(app_id)
            self._changes.append(_Change(app_id, page, action, count))

    def delay_page(self, app_id: str, page: int, seconds: float) -> None:
        """Hold the app's next request for page ``page`` ``seconds`` before its page is built.

        One-shot, like ``change_before_page`` (whose trigger for that page fires after the
        hold): with pages read in parallel, a test decides which is built first, e.g. page 3
        before page 2, and so places a change between any two reads in any order.
        """
        if not _is_int(page) or page < 1:
            raise ValueError(f"page: must be an integer >= 1, got {page!r}")
        _check_number("seconds", seconds, 0.0, 3600.0)
        with self._lock:
            self._app(app_id)
            self._delays.append((app_id, page, float(seconds)))

    # ---- faults and stats

    @property
    def faults(self) -> Faults:
        """The fault settings in force (``GET /-/faults`` shows the same)."""
        with self._lock:
            return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Replace every fault setting at once; ``Faults()`` heals the API."""
        if not isinstance(faults, Faults):
            raise TypeError("set_faults takes a Faults")
        with self._lock:
            self._faults = faults
        log.info("faults set to %s", faults)

    def fail_next(
        self,
        n: int,
        kind: str,
        *,
        app_id: str | None = None,
        api_code: str = "-5",
        http_status: int | None = None,
        variant: str | None = None,
    ) -> None:
        """Fail exactly the next ``n`` valid requests (for ``app_id`` only, if given).

        ``kind`` is one of ``ALL_FAULT_KINDS`` (see ``Faults``). ``http_status`` sets the status
        of ``http_5xx`` (400-599, default 503), ``redirect`` (301, 302, 303, 307, 308; default
        302) and ``retry_after`` (429 or 503; default 429); ``api_code`` the code of
        ``api_code``; ``variant`` pins one of ``FAULT_VARIANTS[kind]`` (else one is drawn at
        random). These come before any other fault and ignore ``Faults.app_ids``.
        """
        if kind not in ALL_FAULT_KINDS:
            raise ValueError(f"kind: unknown {kind!r}, known {list(ALL_FAULT_KINDS)}")
        if not _is_int(n) or n < 0:
            raise ValueError(f"n: must be an integer >= 0, got {n!r}")
        _check_api_code("api_code", api_code)
        if http_status is not None:
            _check_fault_status(kind, http_status)
        if variant is not None and variant not in FAULT_VARIANTS.get(kind, ()):
            known = list(FAULT_VARIANTS.get(kind, ()))
            raise ValueError(f"variant: {kind} has no variant {variant!r}, known {known}")
        with self._lock:
            self._pending.extend([_Pending(kind, app_id, api_code, http_status, variant)] * n)

    def stats(self) -> Stats:
        """Requests received and faults injected since start-up; see ``Stats``."""
        with self._lock:
            return Stats(
                requests=self._requests,
                answered=dict(self._answered),
                faults_total=sum(self._fault_kinds.values()),
                faults=dict(self._fault_kinds),
                fault_codes=dict(self._fault_codes),
                churn=dict(self._churn),
                redirect_followed=self._redirect_followed,
                redirect_credentials=self._redirect_credentials,
            )

    # ---- answering (called by the HTTP handlers)

    def _answer(self, headers: Mapping[str, str], body: bytes) -> _Reply:
        """Answer one taskList request; ``headers`` has lowercase names."""
        now = self._clock()
        with self._lock:
            self._requests += 1
            faults = self._faults
        app_id = _guess_app_id(body)
        delay = self._latency(faults) if faults.applies_to(app_id) else 0.0
        try:
            self._check_headers(headers, now)
            query = _parse_query(body)
            if query.app_id not in self._apps:
                raise _Rejected("-37")
        except _Rejected as rejected:
            self._count_answer(rejected.code)
            return _Reply(body=_api_error(rejected.code, rejected.detail), delay=delay)
        fault = self._inject(query.app_id, faults)
        if fault is not None:
            reply = self._fault_reply(fault, query, now, faults)
            return replace(reply, delay=delay + reply.delay)
        self._count_answer("0")
        hold = self._take_delay(query)
        if hold > 0 and not self._wait(hold):
            return _Reply(drop=True)  # stopping
        return _Reply(body=_json_bytes(self._page(query, now, faults)), delay=delay)

    def _take_delay(self, query: _Query) -> float:
        """The ``delay_page`` holds due for this request, used up; 0.0 if none."""
        with self._lock:
            due = [d for d in self._delays if d[:2] == (query.app_id, query.current)]
            self._delays = [d for d in self._delays if d[:2] != (query.app_id, query.current)]
        return sum(seconds for _, _, seconds in due)

    def _check_headers(self, headers: Mapping[str, str], now: float) -> None:
        api_key = headers.get("api-key", "").strip()
        timestamp = headers.get("timestamp", "").strip()
        sign = headers.get("sign", "").strip()
        if not api_key:
            raise _Rejected("-59")
        if not timestamp:
            raise _Rejected("-58")
        if not sign:
            raise _Rejected("-57")
        expected = _expected_sign(self._api_key, self._api_secret, timestamp)
        key_ok = hmac.compare_digest(api_key.encode(), self._api_key.encode())
        if not key_ok or not hmac.compare_digest(sign.encode(), expected.encode()):
            raise _Rejected("-1")
        if not re.fullmatch(r"[0-9]{1,12}", timestamp):
            raise _Rejected("-4", "Timestamp is not epoch seconds")
        if abs(int(timestamp) - now) > MAX_TIMESTAMP_SKEW_SECONDS:
            raise _Rejected("-4")

    def _page(self, query: _Query, now: float, faults: Faults | None = None) -> dict[str, Any]:
        """One page in the documented shape; only the page's records are rendered.

        With ``faults`` (a page that answers a request), due ``change_before_page`` triggers and
        churn happen first, under the lock that takes the records; without (a page a fault
        embeds), nothing changes.
        """
        with self._lock:
            if faults is not None:
                self._change_before(query, faults)
            entries = self._apps[query.app_id]
            if query.name:
                entries = [e for e in entries if query.name in _entry_name(e)]
            else:
                entries = list(entries)  # a snapshot: add_task may run meanwhile
        size = self._server_page_size or query.size
        first = (query.current - 1) * size
        elapsed = self._elapsed(now)
        records = [self._render(entry, elapsed) for entry in entries[first : first + size]]
        return {
            "status": "0",
            "reason": _REASONS["0"],
            "data": {
                "records": records,
                "total": len(entries),
                "size": size,
                "current": query.current,
                "searchCount": True,
                "pages": -(-len(entries) // size),
            },
        }

    def _change_before(self, query: _Query, faults: Faults) -> None:
        """Fire the triggers due for this page, then maybe churn; the caller holds the lock."""
        entries = self._apps[query.app_id]
        due = [c for c in self._changes if (c.app_id, c.page) == (query.app_id, query.current)]
        if due:
            self._changes = [c for c in self._changes if c not in due]
        for change in due:
            self._change(entries, change.action, change.count)
        if faults.churn_ratio <= 0 or not faults.applies_to(query.app_id):
            return
        if self._rng.random() >= faults.churn_ratio:
            return
        action = "delete" if self._churn_created[query.app_id] > 0 else "create"
        changed = self._change(entries, action, 1)
        self._churn_created[query.app_id] += changed if action == "create" else -changed

    def _change(self, entries: list[_Entry], action: str, count: int) -> int:
        """Create tasks, or delete the newest; how many changed. The caller holds the lock."""
        if action == "create":
            for _ in range(count):
                self._create(entries)
        else:
            count = min(count, len(entries))
            del entries[:count]
        self._churn[action] += count
        return count

    def _create(
        self, entries: list[_Entry], record: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Insert a task as the newest; the caller holds the lock."""
        ids = [i for i in map(_entry_job_id, entries) if _is_int(i)]
        job_id = max(ids, default=0) + 1
        added = {**_new_record(job_id, self._clock()), **copy.deepcopy(dict(record or {}))}
        entries.insert(0, added)
        return added

    def _inject(self, app_id: str, faults: Faults) -> _Fault | None:
        """Pick the fault for a valid request, if any, and count it exactly once."""
        with self._lock:
            fault = self._pending_fault(app_id, faults)
            if fault is None and faults.applies_to(app_id):
                fault = self._configured_fault(faults) or self._random_fault(faults)
            if fault is not None:
                kind = "http_status" if fault.kind == "http_5xx" else fault.kind
                self._fault_kinds[kind] += 1
                self._fault_codes[fault.code] = self._fault_codes.get(fault.code, 0) + 1
        return fault

    def _pending_fault(self, app_id: str, faults: Faults) -> _Fault | None:
        for index, pending in enumerate(self._pending):
            if pending.app_id in (None, app_id):
                del self._pending[index]
                return self._decide(
                    pending.kind,
                    faults,
                    api_code=pending.api_code,
                    status=pending.http_status,
                    variant=pending.variant,
                )
        return None

    def _configured_fault(self, faults: Faults) -> _Fault | None:
        if faults.hang_seconds > 0:
            return _Fault("timeout", "timeout", hang=faults.hang_seconds)
        if faults.http_status is not None:
            return self._decide("http_5xx", faults, status=faults.http_status)
        if faults.api_code is not None:
            return self._decide("api_code", faults, api_code=faults.api_code)
        if faults.malformed:
            return self._decide("garbage", faults)
        return None

    def _random_fault(self, faults: Faults) -> _Fault | None:
        if faults.random_fail_ratio <= 0 or self._rng.random() >= faults.random_fail_ratio:
            return None
        kind = self._rng.choice(faults.random_kinds)
        # The draws the documented kinds have always made, in their order, keep old seeds' runs.
        api_code = self._rng.choice(faults.random_api_codes) if faults.random_api_codes else "-5"
        status = self._rng.choice((500, 502, 503, 504))
        if kind == "redirect":
            status = self._rng.choice(faults.redirect_statuses)
        elif kind == "retry_after":
            status = self._rng.choice(faults.retry_after_statuses)
        return self._decide(kind, faults, api_code=api_code, status=status)

    def _decide(
        self,
        kind: str,
        faults: Faults,
        *,
        api_code: str = "-5",
        status: int | None = None,
        variant: str | None = None,
    ) -> _Fault:
        """The fault with every random choice made, and the code it must be counted as."""
        variants = FAULT_VARIANTS.get(kind, ())
        if variants and variant is None:
            variant = self._rng.choice(variants)
        variant = variant or ""
        if kind in ("http_5xx", "redirect", "retry_after"):
            status = status or {"http_5xx": 503, "redirect": 302, "retry_after": 429}[kind]
            return _Fault(kind, f"http_{status}", status=status, variant=variant)
        if kind == "api_code":
            return _Fault(kind, api_code, api_code=api_code)
        if kind == "timeout":
            return _Fault(kind, "timeout", hang=faults.timeout_hang_seconds)
        if kind == "drip":
            return _Fault(kind, "timeout")
        if kind == "odd_status":
            status_text, _ = _odd_status(variant)
            return _Fault(kind, expected_status_code(status_text), variant=variant)
        return _Fault(kind, "invalid_response", variant=variant)

    def _fault_reply(self, fault: _Fault, query: _Query, now: float, faults: Faults) -> _Reply:
        """How the fault answers; built outside the lock (pages and bombs take time)."""
        kind = fault.kind
        if kind == "http_5xx":
            return _html_error(fault.status)
        if kind == "timeout":
            return _Reply(delay=fault.hang, drop=True)
        if kind == "garbage":
            content_type, body = _GARBAGE[fault.variant]
            return _Reply(body=body, content_type=content_type)
        if kind == "api_code":
            return _Reply(body=_api_error(fault.api_code))
        if kind == "redirect":
            return _Reply(fault.status, content_type="text/plain", headers=self._location())
        if kind == "retry_after":
            return _retry_after(fault.status, fault.variant, faults.retry_after_seconds, now)
        if kind == "odd_status":
            status, reason = _odd_status(fault.variant)
            return _Reply(body=_json_bytes({"status": status, "reason": reason}))
        if kind == "gzip_bomb":
            bomb = gzip_bomb(faults.gzip_bomb_bytes, _EMPTY_PAGE)
            return _Reply(body=bomb, headers=(("Content-Encoding", "gzip"),))
        if kind == "too_many_records":
            return _Reply(body=_json_bytes(_crowded_page(query, faults.too_many_records)))
        page = self._page(query, now)
        if kind == "poison":
            return _Reply(body=_json_bytes(_poisoned(page, fault.variant, now)))
        if kind == "drip":
            return _dripped(_json_bytes(page), faults.drip_interval_seconds)
        if kind == "oversize":
            return _padded(_json_bytes(page), faults.oversize_bytes)
        raise AssertionError(f"no answer for fault kind {kind!r}")

    def _location(self) -> tuple[tuple[str, str], ...]:
        return (("Location", self.redirect_url),)

    def _redirected(self, headers: Mapping[str, str]) -> None:
        """Count a request that followed a redirect to the capture listener."""
        names = {name.lower() for name in headers}
        with self._lock:
            self._redirect_followed += 1
            self._redirect_credentials += bool(names & {"api-key", "sign", "timestamp"})

    # ---- helpers

    def _latency(self, faults: Faults) -> float:
        if faults.latency_jitter_seconds <= 0:
            return faults.latency_seconds
        with self._lock:
            return faults.latency_seconds + self._rng.uniform(0, faults.latency_jitter_seconds)

    def _count_answer(self, code: str) -> None:
        with self._lock:
            self._answered[code] = self._answered.get(code, 0) + 1

    def _elapsed(self, now: float) -> float:
        return (now - self._started_at) * self._speed

    def _app(self, app_id: str) -> list[_Entry]:
        try:
            return self._apps[app_id]
        except KeyError:
            raise KeyError(f"unknown app_id {app_id!r}") from None

    def _render(self, entry: _Entry, elapsed: float) -> dict[str, Any]:
        return entry.record_at(elapsed) if isinstance(entry, _Plan) else copy.deepcopy(entry)

    def _wait(self, seconds: float) -> bool:
        """Sleep, cut short by ``stop()``; True if the simulator is still running."""
        return not self._stopping.wait(seconds)


def _url_host(host: str) -> str:
    """A bound host as a URL's host: a wildcard becomes loopback, IPv6 gets brackets."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if host != "::" else "::1"
    return f"[{host}]" if ":" in host else host


def _new_record(job_id: int, now: float) -> dict[str, Any]:
    """A task just created, field for field as the vendor's example."""
    return {
        "jobId": job_id,
        "name": f"added task {job_id}",
        "dialogFlowName": "flow-1.1",
        "jobPhoneNumberName": "line10",
        "robotCount": 1,
        "mode": "AUTO",
        "hangupSms": False,
        "taskTotal": 0,
        "taskCompleted": 0,
        "status": "NOT_STARTED",
        "isDialogFlowUnbind": False,
        "createTime": _create_time(now),
    }


def odd_valid_records(first_job_id: int = 1) -> list[dict[str, Any]]:
    """Records that are odd but valid, for ``Simulator.set_tasks``: a client must accept each
    as a task of its own (no fault, nothing to count).

    Two jobIds that are different lone surrogates (distinct tasks that a lossy text conversion
    would merge), a jobId sent as a string, a 1 MiB name (to be cut short, not refused), a
    status nobody documents, counts sent as numeric strings and a createTime that is no date.
    """
    now = time.time()
    records = [_new_record(first_job_id + i, now) for i in range(6)]
    records[0]["jobId"] = "\ud800"
    records[1]["jobId"] = "\udc00"
    records[2]["jobId"] = str(first_job_id + 2)
    records[3]["name"] = "n" * _MIB
    records[4]["status"] = "SOMETHING_NEW"
    records[5].update(taskTotal="12", taskCompleted="5", createTime="yesterday")
    return records


# --------------------------------------------------------------------------- hostile answers

_EMPTY_PAGE = _json_bytes(
    {
        "status": "0",
        "reason": _REASONS["0"],
        "data": {
            "records": [],
            "total": 0,
            "size": 100,
            "current": 1,
            "searchCount": True,
            "pages": 0,
        },
    }
)
_FILLER_JOB_ID = 9_000_000_000  # above any simulated task's id
_STREAM_CHUNK = 64 * 1024
_HUGE_FLOAT = 1.7976931348623157e308  # the largest float: two of them overflow a sum


def expected_status_code(status: str) -> str:
    """The ``code`` an exporter must count for an API error ``status``: the status if it
    looks like an API code (``-?[0-9]{1,9}``), else ``other``, so labels stay bounded."""
    return status if re.fullmatch(r"-?[0-9]{1,9}", status) else "other"


def _check_fault_status(kind: str, status: object) -> None:
    allowed = {"redirect": REDIRECT_STATUSES, "retry_after": RETRY_AFTER_STATUSES}
    if kind == "http_5xx":
        _check_http_status("http_status", status)
    elif kind in allowed:
        if not _is_int(status) or status not in allowed[kind]:
            raise ValueError(f"http_status: {kind} takes one of {list(allowed[kind])}")
    else:
        raise ValueError(f"http_status: {kind} takes none")


def _html_error(status: int) -> _Reply:
    body = f"<html><body><h1>{status} Error</h1></body></html>".encode()
    return _Reply(status, body, "text/html")


def _retry_after(status: int, variant: str, seconds: int, now: float) -> _Reply:
    value = str(seconds)
    if variant == "http_date":  # whole seconds only: round up, never ask for less
        value = formatdate(math.ceil(now) + seconds, usegmt=True)
    return replace(_html_error(status), headers=(("Retry-After", value),))


def _odd_status(variant: str) -> tuple[str, str]:
    """(status, reason) of an ``odd_status`` variant; the 1 MiB ones are made on demand."""
    if variant == "undocumented_code":
        return "-77", "Simulated undocumented error"
    if variant == "word":
        return "MAINTENANCE", "Down for maintenance"
    if variant == "lone_surrogate":
        return "\ud800", "Simulated error"
    if variant == "huge_status":
        return "9" * _MIB, "Simulated error"
    return "-5", "r" * _MIB  # huge_reason


def _crowded_page(query: _Query, count: int) -> dict[str, Any]:
    """A page of ``count`` distinct tasks, consistent with itself, whatever size was asked."""
    now = time.time()
    records = [_new_record(_FILLER_JOB_ID + i, now) for i in range(count)]
    data = {
        "records": records,
        "total": count,
        "size": query.size,
        "current": query.current,
        "searchCount": True,
        "pages": -(-count // query.size),
    }
    return {"status": "0", "reason": _REASONS["0"], "data": data}


def _poisoned(page: dict[str, Any], variant: str, now: float) -> dict[str, Any]:
    """The page with one poison value (two tasks' for ``float_overflow``)."""
    data = page["data"]
    if variant == "records_false":
        data.update(records=False, total=5)
        return page
    records = data["records"]
    needed = 2 if variant == "float_overflow" else 1
    while len(records) < needed:  # a page past the end has no record to poison
        records.append(_new_record(_FILLER_JOB_ID + len(records), now))
    if variant == "superscript_digit":
        records[0]["taskTotal"] = "²"  # str.isdigit() says yes, int() says no
    elif variant == "huge_integer":
        records[0]["taskTotal"] = int("9" * 400)
    else:  # float_overflow: per status the sum is inf, or an int too large for a float
        for record in records[:2]:
            record.update(taskTotal=_HUGE_FLOAT, taskCompleted=0, status="IN_PROCESS")
    return page


def _dripped(body: bytes, interval: float) -> _Reply:
    chunks = (body[i : i + 1] for i in range(len(body)))
    return _Reply(chunks=chunks, length=len(body), drip_seconds=interval)


def _padded(body: bytes, size: int) -> _Reply:
    """Whitespace, then ``body``: ``size`` bytes of valid JSON, made as they are sent."""
    padding = max(0, size - len(body))

    def chunks() -> Iterator[bytes]:
        whole, rest = divmod(padding, _STREAM_CHUNK)
        block = b" " * _STREAM_CHUNK
        for _ in range(whole):
            yield block
        yield b" " * rest + body

    return _Reply(chunks=chunks(), length=padding + len(body))


@functools.lru_cache(maxsize=4)
def gzip_bomb(inflated_bytes: int = 1 << 30, tail: bytes = b"") -> bytes:
    """A gzip stream of about ``inflated_bytes / 1000`` that inflates to ``inflated_bytes``:
    spaces, then ``tail``. Built in milliseconds and cached.

    One MiB of spaces is deflated once and its block repeated: a full flush resets the
    compressor, so every MiB compresses to the same bytes and the blocks join into one valid
    deflate stream.
    """
    if not _is_int(inflated_bytes) or not len(tail) <= inflated_bytes < 1 << 40:
        raise ValueError("inflated_bytes: must be an integer, at least len(tail), below 1 TiB")
    blocks, rest = divmod(inflated_bytes - len(tail), _MIB)
    spaces = b" " * _MIB
    block_compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = block_compressor.compress(spaces) + block_compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(spaces, crc)
    last = b" " * rest + tail
    crc = zlib.crc32(last, crc)
    end_compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    end = end_compressor.compress(last) + end_compressor.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, no mtime
    trailer = struct.pack("<II", crc, inflated_bytes & 0xFFFFFFFF)
    return header + block * blocks + end + trailer


# --------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its connections, so stop() can close kept-alive ones."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        simulator: Simulator,
        handler: type[BaseHTTPRequestHandler],
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup, which can stall start-up."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a timed-out poller) is normal here, not a traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("client %s went away", client_address)
            return
        super().handle_error(request, client_address)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


class _TrackedHandler(BaseHTTPRequestHandler):
    """A handler whose connection its _Server can close on stop()."""

    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    server_version = "aivoice-simulator"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _CaptureHandler(_TrackedHandler):
    """Where ``redirect`` faults point: counts who follows, answers a valid empty page.

    HTTP/1.0, one request a connection: nothing stays open here.
    """

    def _capture(self) -> None:
        self.server.simulator._redirected(dict(self.headers.items()))
        length = self.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        self.send_response(200)
        self.send_header("Content-Type", _JSON)
        self.send_header("Content-Length", str(len(_EMPTY_PAGE)))
        self.end_headers()
        self.wfile.write(_EMPTY_PAGE)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _capture


class _Handler(_TrackedHandler):
    """HTTP/1.1 with keep-alive, as the vendor's Java sample uses it."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        simulator = self.server.simulator
        if path == "/-/healthy":
            self._send(200, b"OK\n", "text/plain; charset=utf-8")
        elif path == "/-/stats":
            self._send_json(200, simulator.stats())
        elif path == "/-/faults":
            self._send_json(200, simulator.faults.to_dict())
        elif path == API_PATH:
            self._send_json(405, {"error": "use POST"}, extra={"Allow": "POST"})
        else:
            self._send_json(404, {"error": f"no such path {path}"})

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        if path == API_PATH:
            self._serve_api(body)
        elif path == "/-/faults":
            self._control(body, self._set_faults)
        elif path == "/-/fail-next":
            self._control(body, self._fail_next)
        elif path == "/-/change-before-page":
            self._control(body, self._change_before_page)
        elif path == "/-/delay-page":
            self._control(body, self._delay_page)
        else:
            self._send_json(404, {"error": f"no such path {path}"})

    def _serve_api(self, body: bytes) -> None:
        simulator = self.server.simulator
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = simulator._answer(headers, body)
        running = simulator._wait(reply.delay) if reply.delay > 0 else True
        if reply.drop or not running:
            self.close_connection = True  # hang up without an answer
            return
        if reply.chunks is None:
            self._send(reply.status, reply.body, reply.content_type, extra=dict(reply.headers))
            return
        self._send_head(reply.status, reply.content_type, reply.length, dict(reply.headers))
        for chunk in reply.chunks:
            if reply.drip_seconds > 0 and not simulator._wait(reply.drip_seconds):
                self.close_connection = True  # stopping: cut the body short
                return
            self.wfile.write(chunk)  # a client that hung up ends this with a ConnectionError

    def _control(self, body: bytes, action: Callable[[Any], object]) -> None:
        try:
            result = action(json.loads(body or b"{}"))
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            self._send_json(400, {"error": str(exc)})
            return
        self._send_json(200, result)

    def _set_faults(self, payload: Any) -> dict[str, Any]:
        faults = Faults.from_dict(payload)
        self.server.simulator.set_faults(faults)
        return faults.to_dict()

    def _fail_next(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise ValueError('fail-next: must be a JSON object like {"n": 2, "kind": "timeout"}')
        self.server.simulator.fail_next(**payload)
        return {"queued": payload}

    def _change_before_page(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise ValueError(
                'change-before-page: must be a JSON object like {"app_id": "A", "page": 2, '
                '"action": "create", "count": 1}'
            )
        self.server.simulator.change_before_page(**payload)
        return {"queued": payload}

    def _delay_page(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise ValueError(
                'delay-page: must be a JSON object like {"app_id": "A", "page": 2, "seconds": 1}'
            )
        self.server.simulator.delay_page(**payload)
        return {"queued": payload}

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            self._send_json(400, {"error": "bad Content-Length"}, close=True)
            return None
        if int(length) > MAX_BODY_BYTES:
            self._send_json(413, {"error": "body too large"}, close=True)
            return None
        return self.rfile.read(int(length))

    def _send_json(
        self,
        status: int,
        payload: object,
        *,
        close: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self._send(status, _json_bytes(payload), _JSON, close=close, extra=extra)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        close: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self._send_head(status, content_type, len(body), extra or {}, close=close)
        self.wfile.write(body)

    def _send_head(
        self,
        status: int,
        content_type: str,
        length: int,
        extra: Mapping[str, str],
        *,
        close: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in extra.items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()


# --------------------------------------------------------------------------- CLI


def _listen_address(value: str) -> tuple[str, int]:
    try:
        return parse_listen_address(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _app_ids(value: str) -> list[str]:
    ids = [part.strip() for part in value.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("expected comma-separated app ids")
    return ids


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m exporter.simulator",
        description="Simulate the ITNIO AI-voice taskList API (a test tool: bind to loopback).",
    )
    parser.add_argument("--listen-address", type=_listen_address, default="127.0.0.1:8080")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--api-secret", required=True)
    parser.add_argument("--app-ids", type=_app_ids, required=True, help="comma-separated")
    parser.add_argument("--tasks-per-app", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--page-size", type=int, default=None, help="answer this size always")
    parser.add_argument("--speed", type=float, default=1.0, help="campaign time multiplier")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then exit 0."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    stopping: list[int] = []

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)  # nothing that takes a lock: this runs between bytecodes

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        simulator = Simulator(
            args.api_key,
            args.api_secret,
            args.app_ids,
            tasks_per_app=args.tasks_per_app,
            seed=args.seed,
            server_page_size=args.page_size,
            speed=args.speed,
        ).start(*args.listen_address)
    except (OSError, ValueError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 1
    print(f"listening on {simulator.base_url}", flush=True)
    try:
        while not stopping:
            time.sleep(0.1)
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
