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

Standard library only, so ``--demo`` needs nothing beyond the exporter's own dependencies. It is a
test tool: its control endpoints (``/-/faults``, ``/-/fail-next``, ``/-/stats``) have no
authentication, so bind it to loopback.

Run it as ``python -m exporter.simulator --listen-address 127.0.0.1:8080 --api-key K
--api-secret S --app-ids A,B``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import hmac
import json
import logging
import random
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, TypedDict
from urllib.parse import urlsplit

__all__ = [
    "API_PATH",
    "FAULT_KINDS",
    "KNOWN_STATUSES",
    "MAX_TIMESTAMP_SKEW_SECONDS",
    "Faults",
    "Simulator",
    "Stats",
    "main",
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
"""Kinds for ``Faults.random_kinds`` and ``Simulator.fail_next``."""

_STATS_KINDS = ("http_status", "timeout", "garbage", "api_code")
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
_GARBAGE = (
    ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    (_JSON, b'{"status":"0","reason":"success","data":{"records":[{"jobId":1,'),
    (_JSON, b'{"status":"0","reason":"success"}'),
    (_JSON, b""),
)


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True, kw_only=True)
class Faults:
    """What the simulator gets wrong on purpose; the defaults are a healthy API.

    Faults touch only requests that are otherwise valid: a request rejected for a real reason
    (a bad sign, say) gets its real answer and is never a fault. With ``app_ids`` set, faults
    (latency included) apply only to requests for those apps. Precedence: ``fail_next`` first,
    then ``hang_seconds``, ``http_status``, ``api_code``, ``malformed``, then the random ones.
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
    random_api_codes: tuple[str, ...] = ("-5",)
    """Codes a random ``api_code`` fault picks from."""
    app_ids: tuple[str, ...] = ()
    """Only these apps suffer the faults above; empty means every app."""

    def __post_init__(self) -> None:
        for name in ("random_kinds", "random_api_codes", "app_ids"):
            object.__setattr__(self, name, _str_tuple(name, getattr(self, name)))
        for name in (
            "latency_seconds",
            "latency_jitter_seconds",
            "hang_seconds",
            "timeout_hang_seconds",
        ):
            _check_number(name, getattr(self, name), 0.0, float("inf"))
        _check_number("random_fail_ratio", self.random_fail_ratio, 0.0, 1.0)
        if self.api_code is not None:
            _check_api_code("api_code", self.api_code)
        for code in self.random_api_codes:
            _check_api_code("random_api_codes", code)
        if self.http_status is not None:
            _check_http_status("http_status", self.http_status)
        if not isinstance(self.malformed, bool):
            raise ValueError("malformed: must be true or false")
        unknown = set(self.random_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"random_kinds: unknown {sorted(unknown)}, known {list(FAULT_KINDS)}")
        if self.random_fail_ratio > 0 and not self.random_kinds:
            raise ValueError("random_kinds: empty while random_fail_ratio > 0")
        if "api_code" in self.random_kinds and not self.random_api_codes:
            raise ValueError("random_api_codes: empty while random_kinds has api_code")

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
class _Injection:
    """One injected fault: what the stats call it and how to answer."""

    kind: str  # one of _STATS_KINDS
    code: str  # what the exporter should count: "http_503", "timeout", "invalid_response", "-5"
    reply: _Reply


@dataclass(frozen=True)
class _Pending:
    """A ``fail_next`` entry waiting for a request."""

    kind: str
    app_id: str | None
    api_code: str
    http_status: int


class Stats(TypedDict):
    """Counters since start-up, for tests that compare the client's view with the server's."""

    requests: int
    """Every POST to the API path, whatever its answer."""
    answered: dict[str, int]
    """Real (not injected) answers by API status: ``{"0": 10, "-1": 1}``."""
    faults_total: int
    """Requests answered with an injected fault, each once."""
    faults: dict[str, int]
    """Injected faults by kind: http_status, timeout, garbage, api_code."""
    fault_codes: dict[str, int]
    """Injected faults by the error code the exporter should count for them
    (``http_503``, ``timeout``, ``invalid_response``, ``-5``)."""


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


_Entry = _Plan | dict  # a generated task, or a pinned/added record served as it is


def _entry_name(entry: _Entry) -> str:
    name = entry.name if isinstance(entry, _Plan) else entry.get("name")
    return name if isinstance(name, str) else ""


def _entry_job_id(entry: _Entry) -> object:
    return entry.job_id if isinstance(entry, _Plan) else entry.get("jobId")


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class _Reply:
    """What the HTTP handler sends, after waiting ``delay`` seconds; ``drop`` sends nothing."""

    status: int = 200
    body: bytes = b""
    content_type: str = _JSON
    delay: float = 0.0
    drop: bool = False


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
    # ensure_ascii=False: the vendor's Java server sends UTF-8, not \\u escapes.
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _expected_sign(api_key: str, api_secret: str, timestamp: str) -> str:
    return hashlib.md5((api_key + api_secret + timestamp).encode("utf-8")).hexdigest()


def _is_int(value: object) -> bool:
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
        self._rng = random.Random(seed)
        self._requests = 0
        self._answered: dict[str, int] = {}
        self._fault_kinds = dict.fromkeys(_STATS_KINDS, 0)
        self._fault_codes: dict[str, int] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ---- lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Simulator:
        """Listen on host:port (0: a free port) and serve on a daemon thread."""
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("a Simulator starts once")
        self._server = _Server((host, port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # how long stop() may wait
            name=f"aivoice-simulator:{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end hanging requests and close open connections. Idempotent."""
        self._stopping.set()
        server, thread = self._server, self._thread
        if server is None or thread is None or not thread.is_alive():
            return
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
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1" if host != "::" else "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/aivoice"

    # ---- tasks

    def tasks(self, app_id: str) -> list[dict[str, Any]]:
        """The app's records as the API would show them now, newest first."""
        elapsed = self._elapsed(self._clock())
        with self._lock:
            entries = list(self._app(app_id))
        return [self._render(entry, elapsed) for entry in entries]

    def set_tasks(self, app_id: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Serve exactly these records, in this order, from now on; the app stops progressing.

        Records are not checked, so tests can feed the client odd or broken ones.
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
            entries = self._app(app_id)
            ids = [i for i in map(_entry_job_id, entries) if _is_int(i)]
            job_id = max(ids, default=0) + 1
            added = {**self._default_record(job_id), **copy.deepcopy(dict(record or {}))}
            entries.insert(0, added)
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
        http_status: int = 503,
    ) -> None:
        """Fail exactly the next ``n`` valid requests (for ``app_id`` only, if given).

        ``kind`` is one of ``FAULT_KINDS``: ``http_5xx`` answers ``http_status``, ``api_code``
        answers ``api_code``, ``timeout`` hangs ``Faults.timeout_hang_seconds`` and drops the
        connection, ``garbage`` answers a body that is not a page. These come before any other
        fault and ignore ``Faults.app_ids``.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind: unknown {kind!r}, known {list(FAULT_KINDS)}")
        if not _is_int(n) or n < 0:
            raise ValueError(f"n: must be an integer >= 0, got {n!r}")
        _check_api_code("api_code", api_code)
        _check_http_status("http_status", http_status)
        with self._lock:
            self._pending.extend([_Pending(kind, app_id, api_code, http_status)] * n)

    def stats(self) -> Stats:
        """Requests received and faults injected since start-up; see ``Stats``."""
        with self._lock:
            return Stats(
                requests=self._requests,
                answered=dict(self._answered),
                faults_total=sum(self._fault_kinds.values()),
                faults=dict(self._fault_kinds),
                fault_codes=dict(self._fault_codes),
            )

    # ---- answering (called by the HTTP handler)

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
        injection = self._inject(query.app_id, faults)
        if injection is not None:
            return replace(injection.reply, delay=delay + injection.reply.delay)
        self._count_answer("0")
        return _Reply(body=_json_bytes(self._page(query, now)), delay=delay)

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

    def _page(self, query: _Query, now: float) -> dict[str, Any]:
        """One page in the documented shape; only the page's records are rendered."""
        with self._lock:
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

    def _inject(self, app_id: str, faults: Faults) -> _Injection | None:
        """Pick the fault for a valid request, if any, and count it exactly once."""
        with self._lock:
            injection = self._pending_fault(app_id, faults)
            if injection is None and faults.applies_to(app_id):
                injection = self._configured_fault(faults) or self._random_fault(faults)
            if injection is not None:
                self._fault_kinds[injection.kind] += 1
                self._fault_codes[injection.code] = self._fault_codes.get(injection.code, 0) + 1
        return injection

    def _pending_fault(self, app_id: str, faults: Faults) -> _Injection | None:
        for index, pending in enumerate(self._pending):
            if pending.app_id in (None, app_id):
                del self._pending[index]
                return self._make_fault(
                    pending.kind, faults, api_code=pending.api_code, status=pending.http_status
                )
        return None

    def _configured_fault(self, faults: Faults) -> _Injection | None:
        if faults.hang_seconds > 0:
            return _Injection("timeout", "timeout", _Reply(delay=faults.hang_seconds, drop=True))
        if faults.http_status is not None:
            return _http_fault(faults.http_status)
        if faults.api_code is not None:
            return _Injection("api_code", faults.api_code, _Reply(body=_api_error(faults.api_code)))
        if faults.malformed:
            return self._garbage()
        return None

    def _random_fault(self, faults: Faults) -> _Injection | None:
        if faults.random_fail_ratio <= 0 or self._rng.random() >= faults.random_fail_ratio:
            return None
        kind = self._rng.choice(faults.random_kinds)
        return self._make_fault(
            kind,
            faults,
            api_code=self._rng.choice(faults.random_api_codes),
            status=self._rng.choice((500, 502, 503, 504)),
        )

    def _make_fault(self, kind: str, faults: Faults, *, api_code: str, status: int) -> _Injection:
        if kind == "http_5xx":
            return _http_fault(status)
        if kind == "timeout":
            return _Injection(
                "timeout", "timeout", _Reply(delay=faults.timeout_hang_seconds, drop=True)
            )
        if kind == "garbage":
            return self._garbage()
        return _Injection("api_code", api_code, _Reply(body=_api_error(api_code)))

    def _garbage(self) -> _Injection:
        content_type, body = self._rng.choice(_GARBAGE)
        return _Injection(
            "garbage", "invalid_response", _Reply(body=body, content_type=content_type)
        )

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

    def _default_record(self, job_id: int) -> dict[str, Any]:
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
            "createTime": _create_time(self._clock()),
        }

    def _wait(self, seconds: float) -> bool:
        """Sleep, cut short by ``stop()``; True if the simulator is still running."""
        return not self._stopping.wait(seconds)


def _http_fault(status: int) -> _Injection:
    body = f"<html><body><h1>{status} Error</h1></body></html>".encode()
    return _Injection("http_status", f"http_{status}", _Reply(status, body, "text/html"))


# --------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its connections, so stop() can close kept-alive ones."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

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


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as the vendor's Java sample uses it."""

    protocol_version = "HTTP/1.1"
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
        self._send(reply.status, reply.body, reply.content_type)

    def _control(self, body: bytes, action: Callable[[Any], object]) -> None:
        try:
            result = action(json.loads(body or b"{}"))
        except (ValueError, TypeError, RecursionError) as exc:
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
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


# --------------------------------------------------------------------------- CLI


def _listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


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
