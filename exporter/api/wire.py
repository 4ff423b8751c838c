"""The taskList wire format: how a request is signed and written, and how an answer is read.

Nothing here touches the network. `parse_page` is the one gate every byte of an answer passes:
it turns a body into a `Page` of clean `Task`s or raises `PollError`, nothing else, so that no
value the API sends (a count that is not ASCII digits, an integer hundreds of digits long, a
lone surrogate, a megabyte-long name) can reach the poller, the renderer or the log unbounded.
The envelope, the paging figures and the text cleaning are shared with recordQuery
(exporter/records.py). See docs/api.md for what the vendor documents and what is inferred.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from exporter.codes import INVALID_RESPONSE, PollError, code_label
from exporter.snapshot import Task

MAX_RECORDS_PER_PAGE = 1000  # Ten times the largest page the API documents (size 1-100).
MAX_COUNT = 2**53  # Counts stay exact as floats, and sums of 100,000 of them stay finite.
MAX_LABEL_CHARS = 256  # Any string from the API that becomes a label value.
MAX_DETAIL_CHARS = 200  # Any string from the API that goes into a log line or an error.
MAX_JOB_ID_CHARS = 64  # The document says Long; a longer id is not an id.
_DIGITS = re.compile(r"[0-9]{1,16}")  # ASCII only: "²".isdigit() is True, int("²") fails.


@dataclass(frozen=True)
class Page:
    tasks: tuple[Task, ...]
    pages: int
    total: int


def sign_headers(api_key: str, api_secret: str, now: float) -> dict[str, str]:
    """Headers for one request: a fresh Timestamp and its Sign, as the vendor's samples do."""
    timestamp = str(int(now))
    sign = hashlib.md5((api_key + api_secret + timestamp).encode("utf-8")).hexdigest()
    return {
        "Content-Type": "application/json;charset=UTF-8",
        "Api-Key": api_key,
        "Timestamp": timestamp,
        "Sign": sign,
    }


def page_request(app_id: str, current: int, size: int, task_name: str = "") -> bytes:
    params = {"appId": app_id, **({"name": task_name} if task_name else {})}
    return json.dumps({"current": current, "size": size, "params": params}).encode("utf-8")


def parse_page(body: bytes, zone: dt.tzinfo) -> Page:
    """Read one taskList answer; raises `PollError` and nothing else."""
    data = read_envelope(body)
    tasks = tuple(_task(record, zone) for record in page_records(data))
    pages, total = page_figures(data, len(tasks))
    return Page(tasks=tasks, pages=pages, total=total)


def read_envelope(body: bytes) -> dict[str, Any]:
    """The `data` object of a successful answer (taskList and recordQuery share the envelope).

    The API's own failures come back as HTTP 200 with a non-zero `status`; anything that is not
    the documented shape is `invalid_response`.
    """
    data = read_document(body).get("data")
    if not isinstance(data, dict):
        raise PollError(INVALID_RESPONSE, "no data object")
    return data


def read_document(body: bytes) -> dict[str, Any]:
    """A successful answer's top-level object (getBalance answers there, not in `data`).

    A non-zero `status` raises `PollError` with that status as its code.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise PollError(INVALID_RESPONSE, "not JSON") from None
    if not isinstance(document, dict) or "status" not in document:
        raise PollError(INVALID_RESPONSE, "no status field")
    status = document["status"]
    if isinstance(status, bool) or not isinstance(status, (str, int)):
        raise PollError(INVALID_RESPONSE, f"status is {type(status).__name__}")
    status_text = clean_text(str(status), MAX_DETAIL_CHARS).strip()
    if status_text != "0":
        reason = document.get("reason")
        detail = clean_text(reason, MAX_DETAIL_CHARS) if isinstance(reason, str) else ""
        if code_label(status_text) != status_text:
            detail = f"status {status_text!r}" + (f": {detail}" if detail else "")
        raise PollError(code_label(status_text), detail)
    return document


def page_records(data: dict[str, Any]) -> list[Any]:
    """The page's records, not yet read: a list of at most `MAX_RECORDS_PER_PAGE`."""
    records = data.get("records", [])
    if records is None:
        return []
    if not isinstance(records, list):
        raise PollError(INVALID_RESPONSE, "records is not a list")
    if len(records) > MAX_RECORDS_PER_PAGE:
        raise PollError(
            INVALID_RESPONSE, f"{len(records)} records on one page (at most {MAX_RECORDS_PER_PAGE})"
        )
    return records


def page_figures(data: dict[str, Any], records: int) -> tuple[int, int]:
    """`(pages, total)` as the answer states them: the server may use another page size than
    the one asked for, so they are taken from the answer, never from the request."""
    total = _count(data.get("total", records), "total")
    size = _count(data.get("size", records), "size")
    pages = data.get("pages")
    if pages is None:
        pages = -(-total // size) if size else 1
    return max(_count(pages, "pages"), 1), total


def _task(record: Any, zone: dt.tzinfo) -> Task:
    if not isinstance(record, dict):
        raise PollError(INVALID_RESPONSE, "a record is not an object")
    return Task(
        job_id=_job_id(record.get("jobId")),
        name=clean_text(record.get("name")),
        status=clean_text(record.get("status")) or "UNKNOWN",
        calls=_count(record.get("taskTotal"), "taskTotal"),
        calls_completed=_count(record.get("taskCompleted"), "taskCompleted"),
        robots=_count(record.get("robotCount"), "robotCount"),
        mode=clean_text(record.get("mode")),
        dialog_flow=clean_text(record.get("dialogFlowName")),
        line=clean_text(record.get("jobPhoneNumberName")),
        hangup_sms=_flag(record.get("hangupSms")),
        dialog_flow_unbound=_flag(record.get("isDialogFlowUnbind")),
        created_seconds=parse_create_time(record.get("createTime"), zone),
    )


def _job_id(value: Any) -> str:
    """The task's identity: distinct ids must stay distinct, so nothing is cut or replaced."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PollError(INVALID_RESPONSE, "a record has no jobId")
    text = escape_surrogates(value if isinstance(value, str) else _small_int(value)).strip()
    if not text or len(text) > MAX_JOB_ID_CHARS:
        raise PollError(INVALID_RESPONSE, "a record's jobId is empty or too long to be an id")
    return text


def _small_int(value: int) -> str:
    if abs(value) >= 10**MAX_JOB_ID_CHARS:
        raise PollError(INVALID_RESPONSE, "a record's jobId is too long to be an id")
    return str(value)


def _count(value: Any, name: str) -> int:
    """A whole number from 0 to 2**53; the documents call them Int, some answers send strings."""
    if type(value) is int and 0 <= value <= MAX_COUNT:  # The common case, first.
        return value
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise PollError(INVALID_RESPONSE, f"{name} is not a count")
    return value


def clean_text(value: Any, limit: int = MAX_LABEL_CHARS) -> str:
    """Any JSON value as a string fit for a label or a log: UTF-8-safe and at most `limit` long."""
    if type(value) is str and len(value) <= limit and value.isascii():  # The common case.
        return value
    if value is None:
        return ""
    if isinstance(value, str):
        text = value[: limit + 1]
    else:
        text = json.dumps(value, ensure_ascii=False)[: limit + 1]
    text = escape_surrogates(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape_surrogates(text: str) -> str:
    """JSON may escape a lone surrogate (\\ud800), which no UTF-8 output can carry: spell it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _flag(value: Any) -> bool:
    """The page says Boolean for one flag and String for the other; accept both forms."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value) if isinstance(value, (bool, int)) else False


_CREATE_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


def parse_create_time(value: Any, zone: dt.tzinfo) -> float | None:
    """Seconds since the epoch, or None: one odd date must never fail a poll.

    `fromisoformat` reads the documented `yyyy-MM-dd HH:mm:ss` and the minutes-only form fast;
    the `strptime` formats catch the rest (a single-digit month, say).
    """
    if not isinstance(value, str) or len(value) > 64:
        return None
    text = value.strip()
    try:
        return _epoch(dt.datetime.fromisoformat(text), zone)
    except (ValueError, OverflowError):
        pass
    for fmt in _CREATE_TIME_FORMATS:
        try:
            return _epoch(dt.datetime.strptime(text, fmt), zone)
        except (ValueError, OverflowError):
            continue
    return None


def _epoch(moment: dt.datetime, zone: dt.tzinfo) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).timestamp()
