"""The wire format: signing, and reading taskList answers into tasks (no network)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest
from hypothesis import HealthCheck, event, example, given, settings

from exporter.api.wire import (
    MAX_DETAIL_CHARS,
    MAX_LABEL_CHARS,
    MAX_RECORDS_PER_PAGE,
    Page,
    parse_create_time,
    parse_page,
    sign_headers,
)
from exporter.codes import EXPLANATIONS, INVALID_RESPONSE, PollError
from tests.support.records import record
from tests.support.strategies import page_bodies

UTC8 = dt.timezone(dt.timedelta(hours=8))


def test_sign_is_md5_of_key_secret_and_timestamp() -> None:
    headers = sign_headers("bDqJFiq9", "secret", 1630468800.7)
    assert headers["Timestamp"] == "1630468800"
    assert headers["Sign"] == hashlib.md5(b"bDqJFiq9secret1630468800").hexdigest()
    assert headers["Api-Key"] == "bDqJFiq9"


def test_create_time_without_seconds_is_read() -> None:
    expected = dt.datetime(2022, 9, 20, 16, 57, tzinfo=UTC8).timestamp()
    assert parse_create_time("2022-09-20 16:57", UTC8) == expected


def test_documented_example_answer_parses() -> None:
    body = b"""{"status": "0", "reason": "success", "data": {"records": [{"jobId": 20,
      "name": "name8", "dialogFlowName": "name8.12", "jobPhoneNumberName": "line63",
      "robotCount": 1, "mode": "AUTO", "hangupSms": false, "taskTotal": 0, "taskCompleted": 0,
      "status": "NOT_STARTED", "isDialogFlowUnbind": false, "createTime": "2022-09-20 16:57:04"}],
      "total": 1, "size": 25, "current": 1, "searchCount": true, "pages": 1}}"""
    page = parse_page(body, UTC8)
    assert (page.pages, page.total, len(page.tasks)) == (1, 1, 1)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"status": "0"}',
        b'{"status": "0", "data": {"records": {"jobId": 1}}}',
        b'{"status": "0", "data": {"records": [{"name": "no job id"}]}}',
        b'{"status": "0", "data": {"records": [{"jobId": 1, "taskTotal": -3}]}}',
        b"[1, 2]",
    ],
)
def test_malformed_answers_are_invalid_response(body: bytes) -> None:
    with pytest.raises(PollError) as caught:
        parse_page(body, UTC8)
    assert caught.value.code == "invalid_response"


def test_integer_status_is_accepted() -> None:
    page = parse_page(b'{"status": 0, "data": {"records": [], "total": 0, "pages": 0}}', UTC8)
    assert page.tasks == ()


def page_of(*records: object, **data: object) -> bytes:
    envelope = {"records": list(records), "total": len(records), "pages": 1, **data}
    return json.dumps({"status": "0", "reason": "success", "data": envelope}).encode()


def test_records_false_with_a_total_is_invalid_not_empty() -> None:
    with pytest.raises(PollError) as caught:
        parse_page(page_of(records=False, total=5), UTC8)
    assert caught.value.code == "invalid_response"


def test_more_records_than_a_page_can_hold_is_invalid() -> None:
    records = [record(n) for n in range(MAX_RECORDS_PER_PAGE + 1)]
    with pytest.raises(PollError) as caught:
        parse_page(page_of(*records), UTC8)
    assert caught.value.code == "invalid_response"


def test_lone_surrogate_job_ids_stay_distinct() -> None:
    body = b'{"status": "0", "data": {"records": [{"jobId": "\\ud800"}, {"jobId": "\\udfff"}]}}'
    first, second = parse_page(body, UTC8).tasks
    assert first.job_id != second.job_id
    first.job_id.encode("utf-8")  # Printable in any UTF-8 output.


@pytest.mark.parametrize("field", ["name", "status", "mode", "dialogFlowName"])
def test_long_strings_are_cut_to_a_label_length(field: str) -> None:
    (task,) = parse_page(page_of(record(1, **{field: "x" * 1_000_000})), UTC8).tasks
    values = (task.name, task.status, task.mode, task.dialog_flow)
    assert max(len(value) for value in values) == MAX_LABEL_CHARS


@pytest.mark.parametrize(
    ("status", "code"),
    [("-4", "-4"), ("-77", "-77"), ("4711", "4711"), ("ERR", "other"), ("\ud800", "other")],
)
def test_error_status_becomes_a_bounded_code_label(status: str, code: str) -> None:
    body = json.dumps({"status": status, "reason": "r" * 1_000_000}).encode()
    with pytest.raises(PollError) as caught:
        parse_page(body, UTC8)
    assert caught.value.code == code
    assert len(caught.value.detail) <= MAX_DETAIL_CHARS + 20
    str(caught.value).encode("utf-8")


# ------------------------------------------------------------------- any answer, by hypothesis
# `parse_page` turns any body into a `Page` or a `PollError` whose code is `invalid_response` or
# the API's own status. Any other exception would crash a poll instead of counting an error.

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_page(page: Page) -> None:
    assert page.pages >= 1
    assert page.total >= 0
    for task in page.tasks:
        assert isinstance(task.job_id, str) and task.job_id.strip() == task.job_id != ""
        assert min(task.calls, task.calls_completed, task.robots) >= 0
        assert isinstance(task.name, str) and isinstance(task.status, str) and task.status


def status_code(body: bytes) -> str | None:
    """The API code a body carries, if its status is a non-"0" string or number."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    status = document.get("status")
    if isinstance(status, bool) or not isinstance(status, (str, int)):
        return None
    code = str(status).strip()
    if code == "0":
        return None
    # The label rule (docs/operations.md, "How it behaves"): a documented or number-like code
    # as it is, anything else `other`, so a hostile API cannot mint label values.
    return code if code in EXPLANATIONS or re.fullmatch(r"-?[0-9]{1,9}", code) else "other"


@PROPERTY
@given(page_bodies())
@example(b"")
@example(b"[" * 100_000)
@example(b'{"status": 0, "data": {"records": null, "total": "7", "size": 0}}')
@example(b'{"status": "0", "data": {"records": [], "total": 1e400, "pages": -0.0}}')
@example(b'{"status": "0", "data": {"records": [{"jobId": 1, "createTime": "0001-01-01"}]}}')
def test_parse_page_yields_a_page_or_a_poll_error(body: bytes) -> None:
    try:
        page = parse_page(body, UTC8)
    except PollError as err:
        event(f"PollError {'invalid_response' if err.code == INVALID_RESPONSE else 'API code'}")
        expected = status_code(body)
        assert err.code == (INVALID_RESPONSE if expected is None else expected), err.code
    else:
        event(f"Page of {min(len(page.tasks), 2)}+ tasks")
        assert status_code(body) is None
        check_page(page)
