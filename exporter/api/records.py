"""Call records, from a recordQuery page or a push body, read into `CallRecord`s.

This is the one gate a call record passes, and the privacy rule is kept here: a record carries
the callee's number and name, the transcript, audio URLs and free-form properties, and none of
that is ever read. Only the fields a `CallRecord` has are taken from the parsed JSON, so personal
data cannot reach a metric, a log line, an error or the ledger's memory.

A record that cannot be read raises `RecordError`, whose `kind` is a fixed phrase naming the
field and never a value from the record, so it can be logged and counted as it is. On a
recordQuery page, one bad record is rejected on its own and the rest still count; only an
envelope that cannot be read (not JSON, an API error status, records not a list) fails the page
with `PollError`, as for taskList (exporter/wire.py holds the shared envelope reader).

The vendor documents most numbers as strings (docs/api.md): a duration or an amount may come as
a JSON number or a numeric string, and both are read; a boolean, NaN, an infinity, a negative
value or an absurdly large one is not a number. Every string is cut to a label's length and ids
that are too long are refused whole, since a cut id could merge two calls.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any

from exporter.api.wire import (
    MAX_LABEL_CHARS,
    clean_text,
    escape_surrogates,
    page_figures,
    page_records,
    parse_create_time,
    read_envelope,
)

MAX_PUSH_BYTES = 1_000_000  # The push listener refuses larger bodies before they get here.
MAX_ID_CHARS = 64  # callId and the task's id: the documents say Long.
MAX_APP_ID_CHARS = MAX_LABEL_CHARS  # App ids come from the config, which sets no length.
MAX_RESULT_CHARS = 64
MAX_HANGUP_CHARS = 64
MAX_INTENT_CHARS = 128
MAX_SECONDS = 10**7  # Nearly four months: no call lasts that long.
MAX_COST = 10**9
WINDOW_FORMAT = "%Y-%m-%d %H:%M:%S"  # recordQuery's startTime and endTime.
# ASCII only ("²".isdigit() is True); bounded, so float() never sees a thousand digits.
_WINDOW_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_DECIMAL = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")
_DIGITS = re.compile(r"[0-9]+")  # ASCII only, like _DECIMAL; callers bound the length first.


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What the exporter keeps of one call: no field here can hold personal data."""

    call_id: str
    app_id: str
    job_id: str  # recordQuery `callJobId`, push `robotCallJobId`; "" when absent.
    result: str  # `resultStatus`; "" when absent.
    talk_seconds: float  # `chatDuration`; 0 when absent.
    billed_seconds: float  # recordQuery `chargedDuration`, push `billingTime`; 0 when absent.
    cost: float | None  # push `pay`; None from recordQuery, or when the push has none.
    hangup_by: str
    intent: str  # `intentLevelDetailName`; "" when empty.
    line_id: str = ""  # `tenantPhoneNumberId`, as `line_id` reads it; "" when absent or unreadable.
    # recordQuery `startTime`, `endTime` (Unix seconds); None from the push or when unreadable.
    start_seconds: float | None = None
    end_seconds: float | None = None


class RecordError(Exception):
    """A record that cannot be read; `kind` is a fixed phrase, safe to log and to count."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True)
class RecordPage:
    records: tuple[CallRecord, ...]
    rejected: tuple[str, ...]  # One `RecordError.kind` per unreadable record on the page.
    pages: int
    total: int


@dataclass(frozen=True)
class _Names:
    """Where the two sources keep the fields they name differently."""

    job_id: str
    billed: str
    cost: str | None


_QUERY = _Names(job_id="callJobId", billed="chargedDuration", cost=None)
_PUSH = _Names(job_id="robotCallJobId", billed="billingTime", cost="pay")


def record_query_request(app_id: str, start: str, end: str, current: int, size: int) -> bytes:
    """A recordQuery body; `start` and `end` as `window_text` writes them."""
    params = {"appId": app_id, "startTime": start, "endTime": end}
    return json.dumps({"current": current, "size": size, "params": params}).encode("utf-8")


def window_text(seconds: float, zone: dt.tzinfo) -> str:
    """A moment as recordQuery takes it, `yyyy-MM-dd HH:mm:ss` in the API's zone (whole
    seconds, rounded down)."""
    return dt.datetime.fromtimestamp(math.floor(seconds), zone).strftime(WINDOW_FORMAT)


def parse_record_page(
    body: bytes, app_id: str = "", zone: dt.tzinfo = dt.timezone.utc
) -> RecordPage:
    """Read one recordQuery answer; raises `PollError` (the envelope) and nothing else.

    `app_id` is the app that was queried: it stands in for a record that names none. `zone`
    is the API's (`api.create_time_zone`): the records' start and end times are read in it.
    """
    data = read_envelope(body)
    raw = page_records(data)
    records: list[CallRecord] = []
    rejected: list[str] = []
    for item in raw:
        try:
            records.append(_times(_record(item, _QUERY, app_id), item, zone))
        except RecordError as err:
            rejected.append(err.kind)
    pages, total = page_figures(data, len(raw))
    return RecordPage(tuple(records), tuple(rejected), pages, total)


def parse_push(body: bytes) -> CallRecord:
    """Read one pushed record (a JSON object, never an array); raises `RecordError` only."""
    if len(body) > MAX_PUSH_BYTES:
        raise RecordError("body too large")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError.
        raise RecordError("not JSON") from None
    return _record(document, _PUSH, "")


def _record(item: Any, names: _Names, app_id: str) -> CallRecord:
    if not isinstance(item, dict):
        raise RecordError("not a JSON object")
    call_id = _identity(item.get("callId"), "callId", MAX_ID_CHARS)
    if not call_id:
        raise RecordError("no callId")
    own_app = _identity(item.get("appId"), "appId", MAX_APP_ID_CHARS)
    if not (own_app or app_id):
        raise RecordError("no appId")
    cost = _number(item.get(names.cost), names.cost, MAX_COST) if names.cost else None
    return CallRecord(
        call_id=call_id,
        app_id=own_app or app_id,
        job_id=_identity(item.get(names.job_id), names.job_id, MAX_ID_CHARS),
        result=_text(item.get("resultStatus"), "resultStatus", MAX_RESULT_CHARS),
        talk_seconds=_number(item.get("chatDuration"), "chatDuration", MAX_SECONDS) or 0.0,
        billed_seconds=_number(item.get(names.billed), names.billed, MAX_SECONDS) or 0.0,
        cost=cost,
        hangup_by=_text(item.get("hangupBy"), "hangupBy", MAX_HANGUP_CHARS),
        intent=_text(item.get("intentLevelDetailName"), "intentLevelDetailName", MAX_INTENT_CHARS),
        line_id=line_id(item.get("tenantPhoneNumberId")),
    )


def line_id(value: Any) -> str:
    """A line's id (`tenantPhoneNumberId`) as one text whichever form it comes in: records send
    a string, pushes a number or a string, so `12`, `"12"` and `" 012 "` are the same line.
    "" for none, and for what cannot be an id (too long, not a number or a string): the call
    still counts, under no line of its own."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return ""
    text = str(value).strip() if isinstance(value, str) else str(value)
    if len(text) > MAX_ID_CHARS:
        return ""
    if _DIGITS.fullmatch(text):
        return str(int(text))
    return escape_surrogates(text)


def _times(record: CallRecord, item: dict[str, Any], zone: dt.tzinfo) -> CallRecord:
    """The record with its start and end, in the documented form only (to the second): any
    other is None, and the read plan then reads every window that could hold the call."""
    times = [item.get(name) for name in ("startTime", "endTime")]
    start, end = (
        parse_create_time(value, zone)
        if isinstance(value, str) and _WINDOW_TEXT.fullmatch(value)
        else None
        for value in times
    )
    return replace(record, start_seconds=start, end_seconds=end)


def _identity(value: Any, name: str, limit: int) -> str:
    """An id as text, whole, or "" when absent; one too long is refused, never cut."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise RecordError(f"{name} is not an id")
    if isinstance(value, int):
        if abs(value) >= 10**limit:
            raise RecordError(f"{name} is too long")
        return str(value)
    text = value.strip()
    if len(text) > limit or len(text := escape_surrogates(text)) > limit:
        raise RecordError(f"{name} is too long")
    return text


def _text(value: Any, name: str, limit: int) -> str:
    """Free text fit for a label: at most `limit` characters, "" when absent."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"{name} is not a string")
    return clean_text(value.strip(), limit)


def _number(value: Any, name: str, limit: float) -> float | None:
    """A number from 0 to `limit`, sent as a JSON number or a numeric string; None when absent."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if not _DECIMAL.fullmatch(text):
            raise RecordError(f"{name} is not a number")
        value = float(text)
    elif value is None:
        return None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{name} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(f"{name} is not a number")
    if not 0 <= value <= limit:
        raise RecordError(f"{name} is out of range")
    return abs(float(value))  # abs: "-0" is 0, and a sum of them must not print as -0.0.
