"""The taskList and recordQuery API as the vendor documents it (docs/api.md): signed headers,
request bodies, page and error shapes; and ``Reply``, the answer the HTTP layer sends, whoever
built it.

A valid request gets exactly these answers. What the simulator gets wrong on purpose is in
``faults`` (which fault, counted how) and ``hostile`` (what it sends).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeGuard

from exporter.simulator.campaigns import CREATE_TIME_ZONE

API_PATH = "/aivoice/taskList"
RECORD_QUERY_PATH = "/aivoice/recordQuery"
TASK_LIST = "taskList"
RECORD_QUERY = "recordQuery"
CHANNEL_LIST_PATH = "/aivoice/channelList"  # An app's lines (lines.py).
CHANNEL_LIST = "channelList"
BALANCE_PATH = "/sms/getBalance"  # The account's, beside the product's paths (balance.py).
GET_BALANCE = "getBalance"
ENDPOINTS = (TASK_LIST, RECORD_QUERY, CHANNEL_LIST, GET_BALANCE)
"""The endpoints by name, as ``Faults.endpoints`` and ``fail_next(endpoint=)`` take them."""
MAX_TIMESTAMP_SKEW_SECONDS = 300
"""The vendor publishes no tolerance for a signed request's clock; we accept 5 minutes."""
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
JSON = "application/json;charset=UTF-8"
# The server's own words, so answers read like the real API's. Kept here on purpose: the
# exporter's code table (exporter/codes.py) explains codes to operators, this one imitates them.
REASONS: Mapping[str, str] = MappingProxyType(
    {
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
)


@dataclass(frozen=True)
class Reply:
    """What the HTTP handler sends, after waiting ``delay`` seconds; ``drop`` sends nothing.

    A streamed body comes from ``chunks`` (``length`` bytes in all, the Content-Length), with
    ``drip_seconds`` before each chunk; otherwise the body is ``body``.
    """

    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    delay: float = 0.0
    drop: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    chunks: Iterable[bytes] | None = None
    length: int = 0
    drip_seconds: float = 0.0


@dataclass(frozen=True)
class Query:
    """A valid taskList or recordQuery request body (the window in Unix seconds)."""

    app_id: str
    current: int
    size: int
    name: str = ""
    start_time: int = 0
    end_time: int = 0


class Rejected(Exception):
    """A request the real API would refuse with ``code``."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


def is_int(value: object) -> TypeGuard[int]:
    """A JSON integer: ``True`` is not one."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_headers(headers: Mapping[str, str], api_key: str, api_secret: str, now: float) -> None:
    """Raise ``Rejected`` unless the signed headers (lowercase names) are valid at ``now``."""
    key = headers.get("api-key", "").strip()
    timestamp = headers.get("timestamp", "").strip()
    sign = headers.get("sign", "").strip()
    if not key:
        raise Rejected("-59")
    if not timestamp:
        raise Rejected("-58")
    if not sign:
        raise Rejected("-57")
    expected = hashlib.md5((api_key + api_secret + timestamp).encode("utf-8")).hexdigest()
    key_ok = hmac.compare_digest(key.encode(), api_key.encode())
    if not key_ok or not hmac.compare_digest(sign.encode(), expected.encode()):
        raise Rejected("-1")
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):
        raise Rejected("-4", "Timestamp is not epoch seconds")
    if abs(int(timestamp) - now) > MAX_TIMESTAMP_SKEW_SECONDS:
        raise Rejected("-4")


def parse_query(body: bytes) -> Query:
    """The taskList body as the vendor documents it, or -27 naming what is wrong."""
    payload, params = _paged_body(body)
    app_id, name = params.get("appId"), params.get("name")
    if not isinstance(app_id, str) or not app_id:
        raise Rejected("-27", "params.appId is required")
    if name is not None and not isinstance(name, str):
        raise Rejected("-27", "params.name must be a string")
    return Query(app_id=app_id, current=payload["current"], size=payload["size"], name=name or "")


def parse_body(endpoint: str, body: bytes) -> Query:
    """The request body of ``endpoint`` (taskList, recordQuery or channelList), or -27."""
    if endpoint == RECORD_QUERY:
        return parse_record_query(body)
    return parse_app_query(body) if endpoint == CHANNEL_LIST else parse_query(body)


def parse_app_query(body: bytes) -> Query:
    """The channelList body, ``{"appId": "..."}`` with no paging, or -27."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Rejected("-27", "body is not JSON") from exc
    app_id = payload.get("appId") if isinstance(payload, dict) else None
    if not isinstance(app_id, str) or not app_id:
        raise Rejected("-27", "appId is required")
    return Query(app_id=app_id, current=1, size=1)


def parse_record_query(body: bytes) -> Query:
    """The recordQuery body: taskList's paging plus a required window, or -27."""
    payload, params = _paged_body(body)
    app_id = params.get("appId")
    if not isinstance(app_id, str) or not app_id:
        raise Rejected("-27", "params.appId is required")
    start, end = _date(params, "startTime"), _date(params, "endTime")
    if start > end:
        raise Rejected("-27", "params.startTime is after params.endTime")
    return Query(
        app_id=app_id,
        current=payload["current"],
        size=payload["size"],
        start_time=start,
        end_time=end,
    )


def _date(params: dict[str, Any], name: str) -> int:
    """A required ``yyyy-MM-dd HH:mm:ss`` in the vendor's zone, as Unix seconds."""
    value = params.get(name)
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", value):
        raise Rejected("-27", f"params.{name} must be yyyy-MM-dd HH:mm:ss")
    try:
        parsed = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise Rejected("-27", f"params.{name} is no date") from None
    return int(parsed.replace(tzinfo=CREATE_TIME_ZONE).timestamp())


def _paged_body(body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON body and its ``params``, with valid ``current`` and ``size``, or -27."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Rejected("-27", "body is not JSON") from exc
    if not isinstance(payload, dict):
        raise Rejected("-27", "body is not a JSON object")
    current, size, params = payload.get("current"), payload.get("size"), payload.get("params")
    if not is_int(current) or current < 1:
        raise Rejected("-27", "current must be an integer >= 1")
    if not is_int(size) or not 1 <= size <= 100:
        raise Rejected("-27", "size must be an integer 1-100")
    if not isinstance(params, dict):
        raise Rejected("-27", "params is required")
    return payload, params


def guess_app_id(body: bytes) -> str | None:
    """The appId of a request that may be invalid, to decide whether faults apply to it."""
    try:
        payload = json.loads(body)
        app_id = payload["params"]["appId"] if "params" in payload else payload["appId"]
    except (ValueError, RecursionError, KeyError, TypeError):
        return None
    return app_id if isinstance(app_id, str) else None


def page_payload(
    records: list[dict[str, Any]], total: int, size: int, current: int
) -> dict[str, Any]:
    """A successful answer in the documented shape."""
    return {
        "status": "0",
        "reason": REASONS["0"],
        "data": {
            "records": records,
            "total": total,
            "size": size,
            "current": current,
            "searchCount": True,
            "pages": -(-total // size),
        },
    }


def api_error(code: str, detail: str = "") -> bytes:
    """An error answer: HTTP 200 with a non-zero ``status``, as the real API sends it."""
    reason = REASONS.get(code, "Simulated error")
    return json_bytes({"status": code, "reason": f"{reason}: {detail}" if detail else reason})


def json_bytes(payload: object) -> bytes:
    """UTF-8 JSON, as the vendor's server sends it (not ``\\u`` escapes)."""
    # A lone surrogate has no UTF-8 form: then everything non-ASCII goes out as a JSON escape.
    try:
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(payload).encode("ascii")


EMPTY_PAGE = json_bytes(page_payload([], total=0, size=100, current=1))
"""A valid page with no records: what the redirect capture and a gzip bomb's tail hold."""
