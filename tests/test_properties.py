"""Property tests: whatever the API answers or the config says, only the documented errors.

`parse_page` turns any body into a `Page` or a `PollError` whose code is `invalid_response` or
the API's own status; `parse_config` and `load_config` turn any document into a `Config` or a
one-line `ConfigError` that names the field at fault. Any other exception would crash a poll or
start-up with a traceback instead of a message. The cases hypothesis once found are kept as
plain tests at the end.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from exporter.codes import EXPLANATIONS, INVALID_RESPONSE, PollError
from exporter.config import Config, ConfigError, MetricsConfig, load_config, parse_config
from exporter.metrics import ReloadStatus, render
from exporter.snapshot import AppSnapshot, Snapshot
from exporter.wire import Page, parse_page

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZONE = dt.timezone(dt.timedelta(hours=8))
ENVIRON = MappingProxyType({"AIVOICE_SECRET": "from-env", "EMPTY": ""})
SAFE_TEXT = st.text(max_size=20)
# A field path: `accounts[0].api_secret`, `poll.interval_seconds`, `metrics.per_task_statuses[1]`.
FIELD_PATH = re.compile(r"^(api|poll|accounts|metrics)(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*$")

# ---------------------------------------------------------------------------------- strategies

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities too: Python's json reads and writes them.
    | st.text(max_size=20)
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
    return json.dumps(document, indent=indent, ensure_ascii=draw(st.booleans())).encode("utf-8")


# YAML can give more than JSON: other key types, dates, times, bytes, sets.
YAML_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | SAFE_TEXT
    | st.sampled_from(["${AIVOICE_SECRET}", "${MISSING}", "${EMPTY}", "Asia/Shanghai", "-05:30"])
    | st.dates()
    | st.datetimes()
    | st.binary(max_size=8)
)
YAML_KEYS = SAFE_TEXT | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False)
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(YAML_KEYS, children, max_size=4)
    ),
    max_leaves=20,
)
VALID_CONFIG: dict[str, Any] = {
    "api": {
        "base_url": "http://127.0.0.1:9/aivoice",
        "timeout_seconds": 5,
        "page_size": 50,
        "max_retries": 1,
        "max_requests_per_second": 2.5,
        "create_time_zone": "+08:00",
    },
    "poll": {"interval_seconds": 60, "concurrency": 2, "stale_after_seconds": 600},
    "accounts": [
        {"api_key": "key1", "api_secret": "${AIVOICE_SECRET}", "app_ids": ["A", "B"]},
        {"api_key": "key2", "api_secret": "s2", "app_ids": ["C"], "task_name": "spring"},
    ],
    "metrics": {"per_task": True, "per_task_statuses": ["IN_PROCESS", "IN_QUEUE"]},
}
CONFIG_KEYS = (
    st.sampled_from(
        [
            *VALID_CONFIG,
            *VALID_CONFIG["api"],
            *VALID_CONFIG["poll"],
            *VALID_CONFIG["metrics"],
            "api_key",
            "api_secret",
            "api_key_file",
            "api_secret_file",
            "app_ids",
            "task_name",
        ]
    )
    | YAML_KEYS
)
NEAR_VALID_CONFIGS = mutated(VALID_CONFIG, YAML_VALUES, CONFIG_KEYS)
# Pieces of YAML syntax, so that random text is often YAML and sometimes almost a config.
YAML_TOKENS = st.sampled_from(
    [
        "\n",
        "  ",
        "- ",
        ": ",
        ", ",
        "[",
        "]",
        "{",
        "}",
        "'",
        '"',
        "#",
        "---\n",
        "...\n",
        "? ",
        "|\n",
        ">\n",
        "&a ",
        "*a",
        "<<: ",
        "!!binary ",
        "!!set ",
        "!!python/object:os.system ",
        "!!str ",
        "~",
        ".nan",
        "-.inf",
        "0x1F",
        "0o17",
        "1_000",
        "1:30:00",
        "2024-01-02",
        "2024-01-02 03:04:05",
        "2024-13-45",
        "yes",
        "\t",
        "%YAML 1.1\n",
        "accounts",
        "api",
        "poll",
        "metrics",
        "api_key",
        "api_secret",
        "api_secret_file",
        "app_ids",
        "interval_seconds",
        "create_time_zone",
        "${AIVOICE_SECRET}",
    ]
)
YAML_TEXT = st.lists(YAML_TOKENS | st.text(max_size=6), max_size=40).map("".join)

# ---------------------------------------------------------------------------------- checks


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


def check_config_error(err: ConfigError) -> str:
    """One line, starting with a field path (or a message about the whole file); an event label.

    One line as a terminal and the journal see it: no CR, no LF.
    """
    text = str(err)
    assert "\n" not in text and "\r" not in text, f"not one line: {text!r}"
    section = err.field.split(".")[0].split("[")[0]
    label = f"ConfigError at {section if section in VALID_CONFIG else 'the root'}"
    if not err.field:
        return label
    assert text.startswith(f"{err.field}: "), text
    if not err.message.startswith("unknown key"):  # Else the path ends with the key as spelt.
        assert FIELD_PATH.match(err.field), f"not a field path: {err.field!r}"
    return label


def check_config(data: Any) -> str:
    try:
        config = parse_config(data, ENVIRON)
    except ConfigError as err:
        return check_config_error(err)
    assert isinstance(config, Config) and config.app_ids
    return "Config"


def check_load_config(data: bytes) -> str:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yaml"
        path.write_bytes(data)
        try:
            load_config(path, ENVIRON)
        except ConfigError as err:
            return check_config_error(err)
    return "Config"


# ---------------------------------------------------------------------------------- the parser


@PROPERTY
@given(page_bodies())
@example(b"")
@example(b"[" * 100_000)
@example(b'{"status": 0, "data": {"records": null, "total": "7", "size": 0}}')
@example(b'{"status": "0", "data": {"records": [], "total": 1e400, "pages": -0.0}}')
@example(b'{"status": "0", "data": {"records": [{"jobId": 1, "createTime": "0001-01-01"}]}}')
def test_parse_page_yields_a_page_or_a_poll_error(body: bytes) -> None:
    try:
        page = parse_page(body, ZONE)
    except PollError as err:
        event(f"PollError {'invalid_response' if err.code == INVALID_RESPONSE else 'API code'}")
        expected = status_code(body)
        assert err.code == (INVALID_RESPONSE if expected is None else expected), err.code
    else:
        event(f"Page of {min(len(page.tasks), 2)}+ tasks")
        assert status_code(body) is None
        check_page(page)


@PROPERTY
@given(NEAR_VALID_PAGES)
def test_every_page_the_parser_accepts_renders(document: Any) -> None:
    """A page that parses must render too, or the poller thread dies on publishing it."""
    try:
        page = parse_page(json.dumps(document).encode(), ZONE)
    except PollError:
        return
    event(f"rendered {min(len(page.tasks), 2)}+ tasks")
    render_tasks(page)


def render_tasks(page: Page) -> bytes:
    app = AppSnapshot(
        "A", up=True, tasks=page.tasks, poll_duration_seconds=0.1, last_success_seconds=1.7e9
    )
    snapshot = Snapshot(apps=(app,), requests=MappingProxyType({}))
    exposition = render(snapshot, MetricsConfig(), ReloadStatus(True, 1.7e9))
    return exposition.text


# ---------------------------------------------------------------------------------- the config


@PROPERTY
@given(YAML_VALUES)
@example(None)
@example([])
@example({"accounts": [{"api_key": 1, "api_secret": 2, "app_ids": ["A"]}]})
@example({"accounts": [{"api_key": "k", "api_secret_file": "", "app_ids": ["A"]}]})
@example({"accounts": [{"api_key": "k", "api_secret": "s", "app_ids": ["A"]}], "api": {"x": 1}})
def test_parse_config_on_arbitrary_data_gives_a_config_or_a_field_error(data: Any) -> None:
    event(check_config(data))


@PROPERTY
@given(NEAR_VALID_CONFIGS)
@example(VALID_CONFIG)
def test_parse_config_on_a_mutated_valid_config_gives_a_config_or_a_field_error(
    data: Any,
) -> None:
    event(check_config(data))


@PROPERTY
@given(YAML_TEXT)
@example("")
@example("accounts:\n- api_key: k\n  api_secret: s\n  app_ids: [A]\n")
@example("accounts: [{api_key: k, api_secret: s, app_ids: [A]}]\napi: {timeout_seconds: .nan}\n")
@example("\t")
@example("{")
@example("a: !!binary x\n")
@example("? [a, b]\n: c\n")
def test_load_config_on_arbitrary_text_gives_a_config_or_an_error(text: str) -> None:
    event(check_load_config(text.encode("utf-8")))


@PROPERTY
@given(st.binary(max_size=200) | YAML_TEXT.map(lambda text: text.encode("utf-8")))
@example(b"accounts: \xff\n")
@example(b"\xef\xbb\xbfaccounts: []\n")
@example("accounts: [{api_key: k, api_secret: s, app_ids: [é]}]".encode("latin-1"))
def test_load_config_on_arbitrary_bytes_gives_a_config_or_an_error(data: bytes) -> None:
    event(check_load_config(data))


# ---------------------------------------------------------------------------------- examples
# Each was an escape these properties found, kept as a plain example.


def account(**fields: Any) -> dict[str, Any]:
    return {"accounts": [{"api_key": "k", "app_ids": ["A"], **fields}]}


def config_error(action: Callable[[], object]) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        action()
    check_config_error(raised.value)
    return raised.value


@pytest.mark.parametrize(
    "text",
    ["x: 2024-13-01\n", "x: " + "1" * 5000 + "\n", "[" * 600 + "]" * 600],
    ids=["invalid-date", "int-over-4300-digits", "nested-too-deep"],
)
def test_yaml_python_cannot_hold_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    assert config_error(lambda: load_config(path, ENVIRON)).field == ""


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"accounts\n": []}, "accounts\\n"),
        ({**account(api_secret="s"), "api": {"timeout\rseconds": 1}}, "api.timeout\\rseconds"),
        (account(api_secret_file="no\nsuch file"), "accounts[0].api_secret_file"),
    ],
    ids=["root-key", "section-key", "file-path"],
)
def test_line_break_from_the_config_stays_out_of_the_error_line(data: Any, field: str) -> None:
    assert config_error(lambda: parse_config(data, ENVIRON)).field == field


def test_page_with_a_lone_surrogate_renders() -> None:
    body = b'{"status": "0", "data": {"records": [{"jobId": 1, "name": "bad \\ud800 name"}]}}'
    assert b'job_id="1"' in render_tasks(parse_page(body, ZONE))


@pytest.mark.parametrize(
    "secret_file", ["secret\x00file", "\ud800"], ids=["nul-byte", "lone-surrogate"]
)
def test_unopenable_secret_file_path_is_a_config_error(secret_file: str) -> None:
    config_error(lambda: parse_config(account(api_secret_file=secret_file), ENVIRON))


def test_secret_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"\xff\xfe secret")
    config_error(lambda: parse_config(account(api_secret_file=str(secret)), ENVIRON))
