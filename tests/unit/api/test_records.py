"""Call records: recordQuery pages and push bodies read into `CallRecord`s (no network).

Which app a record belongs to, and whether it was counted before, is the ledger's business; here
only reading is tested: both formats, numbers as numbers or strings, every bound, and that no
personal data comes out in a record or in an error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings

from exporter.api.records import (
    MAX_APP_ID_CHARS,
    MAX_HANGUP_CHARS,
    MAX_ID_CHARS,
    MAX_INTENT_CHARS,
    MAX_PUSH_BYTES,
    MAX_RESULT_CHARS,
    CallRecord,
    RecordError,
    RecordPage,
    parse_push,
    parse_record_page,
    record_query_request,
    window_text,
)
from exporter.api.wire import MAX_RECORDS_PER_PAGE
from exporter.codes import INVALID_RESPONSE, PollError
from exporter.simulator.api import parse_record_query
from tests.support.strategies import (
    PRIVATE,
    push_bodies,
    push_record,
    query_record,
    record_page,
    record_page_bodies,
)

UTC8 = dt.timezone(dt.timedelta(hours=8))
PUSH_NUMBERS = ("chatDuration", "billingTime", "pay")
QUERY_NUMBERS = ("chatDuration", "chargedDuration")
# Every kind an error may have: a fixed phrase around a field's name, never a value.
FIELDS = "callId|appId|callJobId|robotCallJobId|resultStatus|hangupBy|intentLevelDetailName"
NUMBERS = "chatDuration|chargedDuration|billingTime|pay"
KINDS = re.compile(
    r"not JSON|not a JSON object|no callId|no appId|body too large"
    rf"|({FIELDS}) is (not an id|too long|not a string)"
    rf"|({NUMBERS}) is (not a number|out of range)"
)


def pushed(**fields: Any) -> CallRecord:
    return parse_push(json.dumps(push_record(7, **fields)).encode())


def push_error(**fields: Any) -> RecordError:
    with pytest.raises(RecordError) as caught:
        pushed(**fields)
    return caught.value


def page(*records: Any, app_id: str = "") -> RecordPage:
    return parse_record_page(json.dumps(record_page(list(records))).encode(), app_id)


def queried(**fields: Any) -> CallRecord:
    read = page(query_record(7, **fields), app_id="QUERIED")
    assert read.rejected == ()
    (record,) = read.records
    return record


def query_rejection(**fields: Any) -> str:
    read = page(query_record(7, **fields))
    assert read.records == ()
    (kind,) = read.rejected
    return kind


# ------------------------------------------------------------------------------ both formats


DOCUMENTED = CallRecord(
    call_id="7",
    app_id="CALLAPP",
    job_id="20",
    result="ANSWERED",
    talk_seconds=62.0,
    billed_seconds=120.0,
    cost=0.1,
    hangup_by="REMOTE_HANGUP",
    intent="A - strong interest",
    line_id="9120",
)


def test_documented_push_record_is_read() -> None:
    assert pushed() == DOCUMENTED


def test_documented_record_query_record_is_read_with_numbers_as_strings() -> None:
    started = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc).timestamp()
    times = {"start_seconds": started, "end_seconds": started + 70}
    assert queried() == dataclasses.replace(DOCUMENTED, cost=None, **times)


def test_record_query_times_are_read_in_the_api_zone() -> None:
    body = json.dumps(record_page([query_record(7)])).encode()
    record = parse_record_page(body, "QUERIED", UTC8).records[0]
    started = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC8).timestamp()
    assert (record.start_seconds, record.end_seconds) == (started, started + 70)


@pytest.mark.parametrize("text", ["2024-05-06 07:08", "2024-05-06T07:08:09", "7:08:09", 1715])
def test_record_query_times_in_another_form_are_unknown_not_guessed(text: object) -> None:
    record = queried(startTime=text, endTime=text)
    assert (record.start_seconds, record.end_seconds) == (None, None)


def test_pushed_records_carry_no_times() -> None:
    assert (pushed().start_seconds, pushed().end_seconds) == (None, None)


def test_push_numbers_may_come_as_strings_and_record_query_numbers_as_numbers() -> None:
    from_push = pushed(chatDuration="62.5", billingTime="120", pay=0.1)
    from_query = queried(chatDuration=62.5, chargedDuration=120)
    assert (from_push.talk_seconds, from_push.billed_seconds, from_push.cost) == (62.5, 120, 0.1)
    assert (from_query.talk_seconds, from_query.billed_seconds) == (62.5, 120)


def test_record_query_ignores_a_pay_field_it_does_not_document() -> None:
    assert queried(pay="9.99").cost is None


def test_integer_call_and_job_ids_are_read_as_text() -> None:
    record = pushed(callId=9007199254740993, robotCallJobId=20)
    assert (record.call_id, record.job_id) == ("9007199254740993", "20")


@pytest.mark.parametrize("value", [9120, "9120", " 9120 ", "009120"])
def test_a_line_id_as_a_number_or_a_numeric_string_is_one_line(value: Any) -> None:
    assert pushed(tenantPhoneNumberId=value).line_id == "9120"
    assert queried(tenantPhoneNumberId=value).line_id == "9120"


def test_a_line_id_that_is_no_number_is_kept_as_text() -> None:
    assert pushed(tenantPhoneNumberId='<b>"L1"</b>').line_id == '<b>"L1"</b>'


@pytest.mark.parametrize("value", [None, True, 12.5, [1], {"id": 1}, "9" * 65, 10**70])
def test_an_unreadable_line_id_leaves_the_call_counted_without_a_line(value: Any) -> None:
    record = pushed(tenantPhoneNumberId=value)
    assert (record.call_id, record.line_id) == ("7", "")


def test_record_query_page_reports_its_paging_figures() -> None:
    body = json.dumps(
        {"status": "0", "data": {"records": [query_record(1)], "total": 250, "pages": 3}}
    )
    read = parse_record_page(body.encode())
    assert (read.pages, read.total, len(read.records)) == (3, 250, 1)


def test_record_without_an_app_id_belongs_to_the_queried_app() -> None:
    assert queried(appId=None).app_id == "QUERIED"


def test_record_naming_another_app_keeps_its_own() -> None:
    assert queried(appId="ELSEWHERE").app_id == "ELSEWHERE"


# ------------------------------------------------------------------------------ missing fields


def test_absent_numbers_and_texts_are_zero_and_empty() -> None:
    bare = parse_push(b'{"callId": "1", "appId": "CALLAPP"}')
    assert bare == CallRecord("1", "CALLAPP", "", "", 0.0, 0.0, None, "", "")


@pytest.mark.parametrize("value", [None, "", "  "])
def test_empty_numbers_count_as_absent(value: Any) -> None:
    record = pushed(chatDuration=value, billingTime=value, pay=value)
    assert (record.talk_seconds, record.billed_seconds, record.cost) == (0.0, 0.0, None)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_push_without_a_call_id_is_rejected(value: Any) -> None:
    assert push_error(callId=value).kind == "no callId"


def test_push_without_an_app_id_is_rejected() -> None:
    assert push_error(appId=None).kind == "no appId"


def test_record_query_record_without_a_call_id_is_rejected() -> None:
    assert query_rejection(callId=None) == "no callId"


# ------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize("field", PUSH_NUMBERS)
@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_numbers(field: str, value: bool) -> None:
    assert push_error(**{field: value}).kind == f"{field} is not a number"


@pytest.mark.parametrize("field", PUSH_NUMBERS)
@pytest.mark.parametrize(
    "value", ["NaN", "inf", "1e3", "1_000", "0x10", "²", "12 s", "9" * 40, [], {"s": 1}]
)
def test_values_that_are_not_plain_decimals_are_not_numbers(field: str, value: Any) -> None:
    assert push_error(**{field: value}).kind == f"{field} is not a number"


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_and_infinities_are_not_numbers(text: str) -> None:
    body = json.dumps(push_record(7)).replace('"chatDuration": 62', f'"chatDuration": {text}')
    with pytest.raises(RecordError) as caught:
        parse_push(body.encode())
    assert caught.value.kind == "chatDuration is not a number"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chatDuration", -1),
        ("chatDuration", "-0.5"),
        ("chatDuration", 10**7 + 1),
        ("billingTime", 1e300),
        ("billingTime", 10**400),
        ("pay", "-0.01"),
        ("pay", 10**9 + 1),
    ],
)
def test_negative_and_huge_numbers_are_out_of_range(field: str, value: Any) -> None:
    assert push_error(**{field: value}).kind == f"{field} is out of range"


def test_largest_allowed_values_are_read() -> None:
    record = pushed(chatDuration=10**7, billingTime="10000000", pay=10**9)
    assert (record.talk_seconds, record.billed_seconds, record.cost) == (1e7, 1e7, 1e9)


def test_negative_zero_is_zero() -> None:
    assert str(pushed(pay="-0").cost) == "0.0"


# ------------------------------------------------------------------------------ ids and texts


def test_call_ids_too_long_are_refused_not_cut() -> None:
    assert pushed(callId="9" * MAX_ID_CHARS).call_id == "9" * MAX_ID_CHARS
    assert push_error(callId="9" * (MAX_ID_CHARS + 1)).kind == "callId is too long"
    assert push_error(callId=10**MAX_ID_CHARS).kind == "callId is too long"


def test_app_ids_too_long_are_refused_not_cut() -> None:
    assert push_error(appId="A" * (MAX_APP_ID_CHARS + 1)).kind == "appId is too long"


@pytest.mark.parametrize("value", [True, 1.5, [1], {"id": 1}])
def test_ids_of_other_types_are_not_ids(value: Any) -> None:
    assert push_error(callId=value).kind == "callId is not an id"
    assert push_error(robotCallJobId=value).kind == "robotCallJobId is not an id"


@pytest.mark.parametrize(
    ("field", "attribute", "limit"),
    [
        ("resultStatus", "result", MAX_RESULT_CHARS),
        ("hangupBy", "hangup_by", MAX_HANGUP_CHARS),
        ("intentLevelDetailName", "intent", MAX_INTENT_CHARS),
    ],
)
def test_long_texts_are_cut_to_their_bound(field: str, attribute: str, limit: int) -> None:
    value = getattr(pushed(**{field: "x" * 10_000}), attribute)
    assert len(value) == limit and value.endswith("…")


@pytest.mark.parametrize("value", [7, 1.5, True, ["ANSWERED"], {"status": "ANSWERED"}])
def test_texts_of_other_types_are_not_strings(value: Any) -> None:
    assert push_error(resultStatus=value).kind == "resultStatus is not a string"


def test_lone_surrogates_are_escaped_and_ids_stay_distinct() -> None:
    first, second = pushed(callId="\ud800", intentLevelDetailName="\udfff"), pushed(callId="\ud801")
    assert first.call_id != second.call_id
    for text in (first.call_id, second.call_id, first.intent):
        text.encode("utf-8")  # Would raise on a surrogate.


def test_texts_are_trimmed() -> None:
    assert pushed(resultStatus=" BUSY \n").result == "BUSY"


# ------------------------------------------------------------------------------ pages and bodies


def test_unreadable_records_are_rejected_one_by_one_and_the_rest_kept() -> None:
    read = page(
        query_record(1),
        query_record(2, chatDuration=True),
        "not a record",
        query_record(3),
        query_record(4, callId=None),
    )
    assert [record.call_id for record in read.records] == ["1", "3"]
    assert read.rejected == ("chatDuration is not a number", "not a JSON object", "no callId")


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502</html>",
        b'{"status": "0"}',
        b'{"status": "0", "data": {"records": {"callId": 1}}}',
        json.dumps(record_page([query_record(1)] * (MAX_RECORDS_PER_PAGE + 1))).encode(),
        b'{"status": "0", "data": {"records": [], "total": -1}}',
    ],
)
def test_unreadable_envelope_is_invalid_response(body: bytes) -> None:
    with pytest.raises(PollError) as caught:
        parse_record_page(body)
    assert caught.value.code == INVALID_RESPONSE


def test_api_error_status_is_its_code() -> None:
    with pytest.raises(PollError) as caught:
        parse_record_page(b'{"status": "-37", "reason": "application does not exist"}')
    assert caught.value.code == "-37"


def test_empty_page_has_no_records() -> None:
    read = parse_record_page(b'{"status": "0", "data": {"records": null, "total": 0}}')
    assert (read.records, read.rejected, read.pages, read.total) == ((), (), 1, 0)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (json.dumps([push_record(1)]).encode(), "not a JSON object"),
        (b" " * (MAX_PUSH_BYTES + 1), "body too large"),
    ],
)
def test_unreadable_push_bodies_are_rejected(body: bytes, kind: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse_push(body)
    assert caught.value.kind == kind


# ------------------------------------------------------------------------------ personal data


def test_call_record_has_no_field_for_personal_data() -> None:
    names = {field.name for field in dataclasses.fields(CallRecord)}
    assert names == {
        "call_id",
        "app_id",
        "job_id",
        "result",
        "talk_seconds",
        "billed_seconds",
        "cost",
        "hangup_by",
        "intent",
        "line_id",  # The tenant's own line (caller number id), never the callee's.
        "start_seconds",  # When, never who: a time is no personal data.
        "end_seconds",
    }


def test_personal_data_is_in_no_record() -> None:
    read = page(query_record(1), query_record(2))
    assert read.records and PRIVATE not in repr(read)
    assert PRIVATE not in repr(pushed())


HOSTILE_FIELDS = [
    {"callId": {"phone": PRIVATE}},
    {"callId": PRIVATE * 20},
    {"appId": [PRIVATE]},
    {"chatDuration": f"+1555{PRIVATE}"},
    {"resultStatus": {"name": PRIVATE}},
    {"hangupBy": [PRIVATE]},
]


@pytest.mark.parametrize("fields", [*HOSTILE_FIELDS, {"pay": {"card": PRIVATE}}])
def test_personal_data_is_in_no_push_error(fields: dict[str, Any]) -> None:
    err = push_error(**fields)
    assert PRIVATE not in f"{err} {err!r} {err.kind} {err.args}"
    assert err.__cause__ is None and err.__context__ is None  # No chained error with data.


@pytest.mark.parametrize("fields", [*HOSTILE_FIELDS, {"chargedDuration": [PRIVATE]}])
def test_personal_data_is_in_no_record_query_rejection(fields: dict[str, Any]) -> None:
    assert PRIVATE not in query_rejection(**fields)


# ------------------------------------------------------------------------------ requests


def test_window_text_is_the_api_zone_in_whole_seconds() -> None:
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC8).timestamp()
    assert window_text(moment + 0.9, UTC8) == "2024-05-06 07:08:09"
    assert window_text(moment, dt.timezone.utc) == "2024-05-05 23:08:09"


def test_record_query_request_is_what_the_simulator_reads() -> None:
    start, end = 1_714_950_000, 1_714_950_900
    body = record_query_request("CALLAPP", window_text(start, UTC8), window_text(end, UTC8), 2, 50)
    query = parse_record_query(body)
    assert (query.app_id, query.current, query.size) == ("CALLAPP", 2, 50)
    assert (query.start_time, query.end_time) == (start, end)


# ------------------------------------------------------------------ any input, by hypothesis
# Only a CallRecord or a RecordError may come out of a push body, and only a RecordPage or a
# PollError out of a recordQuery answer: anything else would crash the listener or the poll.

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_record(record: CallRecord) -> None:
    assert record.call_id and record.app_id
    for text, limit in (
        (record.call_id, MAX_ID_CHARS),
        (record.app_id, MAX_APP_ID_CHARS),
        (record.job_id, MAX_ID_CHARS),
        (record.result, MAX_RESULT_CHARS),
        (record.hangup_by, MAX_HANGUP_CHARS),
        (record.intent, MAX_INTENT_CHARS),
    ):
        assert isinstance(text, str) and len(text) <= limit
        text.encode("utf-8")
    assert 0 <= record.talk_seconds <= 10**7 and 0 <= record.billed_seconds <= 10**7
    assert record.cost is None or 0 <= record.cost <= 10**9
    assert PRIVATE not in repr(record)


def check_kind(kind: str) -> None:
    assert KINDS.fullmatch(kind), kind


@PROPERTY
@given(push_bodies())
@example(b'{"callId": 1, "appId": "A", "chatDuration": NaN}')
@example(b'{"callId": 1, "appId": "A", "pay": 1e400}')
@example(b'{"callId": "\\ud800", "appId": "\\udc00"}')
def test_parse_push_yields_a_record_or_a_record_error(body: bytes) -> None:
    try:
        record = parse_push(body)
    except RecordError as err:
        event(f"RecordError {err.kind.split(' ')[0]}")
        check_kind(err.kind)
        assert PRIVATE not in str(err)
    else:
        event("CallRecord")
        check_record(record)


@PROPERTY
@given(record_page_bodies())
@example(b'{"status": "0", "data": {"records": [{"callId": 1}, 5, null], "total": "3"}}')
def test_parse_record_page_yields_records_and_rejections_or_a_poll_error(body: bytes) -> None:
    try:
        read = parse_record_page(body, app_id="QUERIED")
    except PollError as err:
        event("PollError")
        assert PRIVATE not in str(err)
    else:
        event(f"{min(len(read.records), 2)}+ records, {min(len(read.rejected), 1)}+ rejected")
        assert read.pages >= 1 and read.total >= 0
        for record in read.records:
            check_record(record)
        for kind in read.rejected:
            check_kind(kind)
