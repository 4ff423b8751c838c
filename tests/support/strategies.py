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
    document = draw(JSON_VALUES if kind == "json" else NEAR_VALID_PAGES)
    indent = draw(st.sampled_from([None, 2]))
    return json.dumps(document, indent=indent, ensure_ascii=draw(st.booleans())).encode(
        "utf-8",
        "surrogatepass",  # A lone surrogate unescaped: bytes no UTF-8 decoder accepts.
    )
