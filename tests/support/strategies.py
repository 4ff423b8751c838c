"""Hypothesis strategies for what comes from outside: API answers, and mutations of documents.

The API answers are arbitrary bytes, arbitrary JSON, or the documented page with a place or two
broken, so that most examples get deep into the parser instead of failing at the first check.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=-(10**400), max_value=10**400)  # Hundreds of digits.
    | st.floats()  # NaN and infinities too: Python's json reads and writes them.
    | st.text(max_size=20)
    | st.text(min_size=250, max_size=600)  # Longer than any label may be.
    | st.sampled_from(["\ud800", "²", "-77", "9" * 30])  # A lone surrogate, a non-ASCII digit.
    | st.sampled_from(["", "0", " 0 ", "-5", "1", "true", "2024-01-02 03:04:05", "null"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def documented_record(job_id: int) -> dict[str, Any]:
    """A record exactly as the vendor's taskList page shows one."""
    return {
        "jobId": job_id,
        "name": "renewal reminder",
        "dialogFlowName": "flow-1.1",
        "jobPhoneNumberName": "line10",
        "robotCount": 3,
        "mode": "AUTO",
        "hangupSms": False,
        "taskTotal": 300,
        "taskCompleted": 120,
        "status": "IN_PROCESS",
        "isDialogFlowUnbind": "false",
        "createTime": "2024-05-06 07:08:09",
    }


def documented_page(records: int) -> dict[str, Any]:
    return {
        "status": "0",
        "reason": "success",
        "data": {
            "records": [documented_record(1000 + n) for n in range(records)],
            "total": records,
            "size": 100,
            "current": 1,
            "searchCount": True,
            "pages": 1,
        },
    }


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document that a mutation can hit, the root excluded."""
    found: list[tuple[Any, ...]] = []
    if isinstance(node, (dict, list)):
        for key, child in node.items() if isinstance(node, dict) else enumerate(node):
            found.append((*prefix, key))
            found.extend(paths(child, (*prefix, key)))
    return found


@st.composite
def mutated(draw: st.DrawFn, document: Any, values: st.SearchStrategy[Any], keys: Any) -> Any:
    """`document` with a place or two replaced, deleted, or given an extra key."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 2))):
        places = paths(document)
        if not places:
            break
        *parent_path, key = draw(st.sampled_from(places))
        parent = document
        for step in parent_path:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[key] = draw(values)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(keys)] = draw(values)
        else:
            parent.append(draw(values))
    return document


NEAR_VALID_PAGES = st.integers(0, 3).flatmap(
    lambda n: mutated(
        documented_page(n),
        JSON_VALUES,
        st.sampled_from([*documented_record(0), "data", "status", "total", "pages"])
        | st.text(max_size=8),
    )
)


@st.composite
def page_bodies(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, arbitrary JSON, or a near-valid page, sent compact or pretty."""
    kind = draw(st.sampled_from(["bytes", "json", "near-valid", "near-valid"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    return _dumped(draw, draw(JSON_VALUES if kind == "json" else NEAR_VALID_PAGES))


# ------------------------------------------------------------------------------- call records
# Personal data in every field that holds it, each value carrying PRIVATE, so that a test can
# look for it in whatever comes out of the parser.
PRIVATE = "PRIVATE-7f3a"


def personal_fields() -> dict[str, Any]:
    """The fields of a call record that hold personal data, as both sources send them."""
    return {
        "calledPhoneNumber": f"+1555{PRIVATE}",
        "customerPersonName": f"Ada {PRIVATE}",
        "callDetailList": [{"role": "CUSTOMER", "text": f"I am {PRIVATE}"}],
        "fullAudioUrl": f"https://audio.example.invalid/{PRIVATE}/full.wav",
        "customerAudioUrl": f"https://audio.example.invalid/{PRIVATE}/customer.wav",
        "properties": json.dumps({"phone": PRIVATE}),
        "dynamicProperties": {"visit": PRIVATE},
        "attributes": json.dumps({"customerName": PRIVATE}),
        "customerConcern": f"worried about {PRIVATE}",
    }


def query_record(call_id: int, **fields: Any) -> dict[str, Any]:
    """A call as recordQuery documents it: strings almost everywhere."""
    return {
        "callId": str(call_id),
        "callRecordId": "912345678901234567",
        "keyId": "1234567890",
        "appId": "CALLAPP",
        "callJobId": "20",
        "dialogFlowId": "4410",
        "tenantPhoneNumberId": "9120",
        "robotCount": 2,
        "hangupBy": "REMOTE_HANGUP",
        "resultStatus": "ANSWERED",
        "startTime": "2024-05-06 07:08:09",
        "endTime": "2024-05-06 07:09:19",
        "chatDuration": "62",
        "chargedDuration": "120",
        "chatRound": "7",
        "intentLevelDetailName": "A - strong interest",
        "redialTimes": "0",
        **personal_fields(),
        **fields,
    }


def push_record(call_id: int, **fields: Any) -> dict[str, Any]:
    """A call as the push documents it: numbers, Unix seconds, `pay` a string amount."""
    return {
        "callId": str(call_id),
        "appId": "CALLAPP",
        "robotCallJobId": 20,
        "dialogFlowId": "4410",
        "tenantPhoneNumberId": "9120",
        "startTime": 1714950489,
        "endTime": 1714950559,
        "resultStatus": "ANSWERED",
        "hangupBy": "REMOTE_HANGUP",
        "chatDuration": 62,
        "billingTime": 120,
        "pay": "0.10",
        "chatRound": 7,
        "intentLevelDetailName": "A - strong interest",
        "callCount": 1,
        "redialTimes": 0,
        **personal_fields(),
        **fields,
    }


def record_page(records: list[Any]) -> dict[str, Any]:
    return {
        "status": "0",
        "reason": "success",
        "data": {"records": records, "total": len(records), "size": 100, "current": 1, "pages": 1},
    }


_CALL_KEYS = st.sampled_from([*push_record(0), *query_record(0)]) | st.text(max_size=8)


@st.composite
def push_bodies(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, arbitrary JSON, or a pushed record with a place or two broken."""
    kind = draw(st.sampled_from(["bytes", "json", "near-valid", "near-valid", "near-valid"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    document = draw(
        JSON_VALUES if kind == "json" else mutated(push_record(7), JSON_VALUES, _CALL_KEYS)
    )
    return _dumped(draw, document)


@st.composite
def record_page_bodies(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, arbitrary JSON, or a recordQuery page of records, some broken."""
    kind = draw(st.sampled_from(["bytes", "json", "near-valid", "near-valid", "near-valid"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return _dumped(draw, draw(JSON_VALUES))
    count = draw(st.integers(0, 3))
    records = [query_record(100 + n) for n in range(count)]
    keys = _CALL_KEYS | st.sampled_from(["data", "status", "total", "pages", "records"])
    return _dumped(draw, draw(mutated(record_page(records), JSON_VALUES, keys)))


def _dumped(draw: st.DrawFn, document: Any) -> bytes:
    """The document compact or pretty, its non-ASCII escaped or not."""
    indent = draw(st.sampled_from([None, 2]))
    return json.dumps(document, indent=indent, ensure_ascii=draw(st.booleans())).encode(
        "utf-8",
        "surrogatepass",  # A lone surrogate unescaped: bytes no UTF-8 decoder accepts.
    )
