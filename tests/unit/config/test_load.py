"""Config validation: every mistake is one line that names the field."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from exporter.config.load import load_config, parse_config
from exporter.config.model import Config, ConfigError
from tests.support.strategies import mutated

ACCOUNT = {"api_key": "bDqJFiq9", "api_secret": "s3cret-value", "app_ids": ["LILIN888"]}


def error_for(document: Any, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, environ or {})
    return str(caught.value)


def test_minimal_config_takes_documented_defaults() -> None:
    config = parse_config({"accounts": [ACCOUNT]}, {})
    assert config.api.base_url == "https://api.itniotech.com/aivoice"
    assert (config.api.page_size, config.api.max_retries, config.api.timeout_seconds) == (
        100,
        2,
        10,
    )
    assert config.api.create_time_zone.utcoffset(None) == dt.timedelta(hours=8)
    assert (config.poll.interval_seconds, config.poll.concurrency) == (60, 4)
    assert config.poll.stale_after_seconds == 600
    assert config.metrics.per_task is True
    assert config.app_ids == ("LILIN888",)


def test_example_config_is_valid() -> None:
    example = Path(__file__).parents[3] / "config.example.yaml"
    config = load_config(example, {"AIVOICE_API_SECRET": "from-env"})
    assert config.accounts[0].api_secret == "from-env"


def test_missing_secret_names_the_field() -> None:
    account = {k: v for k, v in ACCOUNT.items() if k != "api_secret"}
    assert error_for({"accounts": [account]}) == "accounts[0].api_secret: missing"


def test_missing_accounts_names_the_field() -> None:
    assert error_for({}).startswith("accounts: missing")


def test_unknown_key_names_the_field() -> None:
    message = error_for({"accounts": [ACCOUNT], "poll": {"intervall_seconds": 5}})
    assert message.startswith("poll.intervall_seconds: unknown key")


def test_wrong_type_names_the_field() -> None:
    message = error_for({"accounts": [ACCOUNT], "api": {"page_size": "100"}})
    assert message == "api.page_size: must be a whole number, got '100'"


def test_out_of_range_names_the_field() -> None:
    message = error_for({"accounts": [ACCOUNT], "api": {"page_size": 101}})
    assert message == "api.page_size: must be between 1 and 100, got 101"


def test_boolean_is_not_taken_for_a_number() -> None:
    message = error_for({"accounts": [ACCOUNT], "poll": {"concurrency": True}})
    assert message.startswith("poll.concurrency: must be a whole number")


def test_duplicate_app_id_across_accounts_names_both_places() -> None:
    second = {**ACCOUNT, "api_key": "other"}
    message = error_for({"accounts": [ACCOUNT, second]})
    assert message == (
        "accounts[1].app_ids[0]: duplicate app id 'LILIN888' (also at accounts[0].app_ids[0])"
    )


def test_unset_environment_variable_names_the_field() -> None:
    account = {**ACCOUNT, "api_secret": "${AIVOICE_API_SECRET}"}
    message = error_for({"accounts": [account]})
    assert message == "accounts[0].api_secret: environment variable AIVOICE_API_SECRET is not set"


def test_environment_variable_expands() -> None:
    account = {**ACCOUNT, "api_secret": "${AIVOICE_API_SECRET}"}
    config = parse_config({"accounts": [account]}, {"AIVOICE_API_SECRET": "xyz"})
    assert config.accounts[0].api_secret == "xyz"


def test_bad_time_zone_names_the_field() -> None:
    message = error_for({"accounts": [ACCOUNT], "api": {"create_time_zone": "Mars/Base"}})
    assert message == "api.create_time_zone: unknown time zone 'Mars/Base'"


def test_named_time_zone_is_accepted() -> None:
    config = parse_config({"accounts": [ACCOUNT], "api": {"create_time_zone": "Asia/Shanghai"}}, {})
    assert config.api.create_time_zone.utcoffset(dt.datetime(2024, 1, 1)) == dt.timedelta(hours=8)


def test_base_url_must_be_http() -> None:
    message = error_for({"accounts": [ACCOUNT], "api": {"base_url": "ftp://example"}})
    assert message.startswith("api.base_url: must be an http(s) URL")


def test_empty_app_ids_names_the_field() -> None:
    message = error_for({"accounts": [{**ACCOUNT, "app_ids": []}]})
    assert message == "accounts[0].app_ids: must be a non-empty list of application ids"


def test_per_task_statuses_must_be_strings() -> None:
    message = error_for({"accounts": [ACCOUNT], "metrics": {"per_task_statuses": [3]}})
    assert message == "metrics.per_task_statuses[0]: must be a non-empty string"


def test_secret_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    account = {"api_key": "k", "api_secret_file": str(secret), "app_ids": ["A"]}
    assert parse_config({"accounts": [account]}, {}).accounts[0].api_secret == "from-file"


def test_secret_and_secret_file_together_are_refused(tmp_path: Path) -> None:
    account = {**ACCOUNT, "api_secret_file": str(tmp_path / "secret")}
    message = error_for({"accounts": [account]})
    assert message == "accounts[0].api_secret: set either api_secret or api_secret_file, not both"


def test_unreadable_secret_file_names_the_field(tmp_path: Path) -> None:
    account = {"api_key": "k", "api_secret_file": str(tmp_path / "absent"), "app_ids": ["A"]}
    message = error_for({"accounts": [account]})
    assert message.startswith("accounts[0].api_secret_file: cannot read")


def test_secret_never_appears_in_repr() -> None:
    config = parse_config({"accounts": [ACCOUNT]}, {})
    text = repr(config)
    assert "s3cret-value" not in text
    assert "bDqJFiq9" not in text
    assert "bD******" in text


def test_yaml_syntax_error_says_where(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("accounts: [\n  - api_key: x\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert "line" in str(caught.value)


# ------------------------------------------------------------------- any document, by hypothesis
# `parse_config` and `load_config` turn any document into a `Config` or a one-line `ConfigError`
# that names the field at fault. Any other exception would stop start-up with a traceback
# instead of a message.

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENVIRON = MappingProxyType({"AIVOICE_SECRET": "from-env", "EMPTY": ""})
SAFE_TEXT = st.text(max_size=20)
# A field path: `accounts[0].api_secret`, `poll.interval_seconds`, `metrics.per_task_statuses[1]`.
FIELD_PATH = re.compile(r"^(api|poll|accounts|metrics)(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*$")

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


@pytest.mark.parametrize(
    "secret_file", ["secret\x00file", "\ud800"], ids=["nul-byte", "lone-surrogate"]
)
def test_unopenable_secret_file_path_is_a_config_error(secret_file: str) -> None:
    config_error(lambda: parse_config(account(api_secret_file=secret_file), ENVIRON))


def test_secret_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"\xff\xfe secret")
    config_error(lambda: parse_config(account(api_secret_file=str(secret)), ENVIRON))


# ---------------------------------------------------------------------- calls and push

TOKEN = "s3cr3t-push-token-0123"


def test_calls_and_push_are_off_by_default() -> None:
    config = parse_config({"accounts": [ACCOUNT]}, {})
    assert (config.calls.enabled, config.calls.lookback_seconds, config.calls.per_task) == (
        False,
        900,
        True,
    )
    assert (config.push.enabled, config.push.currency) == (False, "USD")


def test_push_needs_a_token() -> None:
    document = {"accounts": [ACCOUNT], "push": {"listen_address": ":10189"}}
    assert error_for(document) == "push.token: missing"


def test_a_short_push_token_is_refused() -> None:
    document = {"accounts": [ACCOUNT], "push": {"listen_address": ":10189", "token": "short"}}
    assert error_for(document).startswith("push.token: must be 16 to 256 characters")


def test_a_push_token_with_url_syntax_is_refused() -> None:
    push = {"listen_address": ":10189", "token": "abcdefgh/ijklmnop?q"}
    assert error_for({"accounts": [ACCOUNT], "push": push}).startswith("push.token:")


def test_the_push_token_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    push = {"listen_address": "127.0.0.1:10189", "token_file": str(secret)}
    assert parse_config({"accounts": [ACCOUNT], "push": push}, {}).push.token == TOKEN


def test_a_push_token_without_a_listener_is_refused() -> None:
    document = {"accounts": [ACCOUNT], "push": {"token": TOKEN}}
    assert error_for(document).startswith("push.listen_address: missing")


def test_a_bad_push_listen_address_names_the_field() -> None:
    push = {"listen_address": "10189", "token": TOKEN}
    assert error_for({"accounts": [ACCOUNT], "push": push}).startswith("push.listen_address:")


def test_the_push_currency_is_a_three_letter_code() -> None:
    push = {"listen_address": ":10189", "token": TOKEN, "currency": "dollars"}
    assert error_for({"accounts": [ACCOUNT], "push": push}).startswith("push.currency:")


def test_push_peers_are_base_urls_in_the_order_given() -> None:
    peers = ["http://p-1:10189/", "https://p-0.example:10189", "http://${PEER}:10189"]
    push = {"listen_address": ":10189", "token": TOKEN, "peers": peers}
    config = parse_config({"accounts": [ACCOUNT], "push": push}, {"PEER": "p-2"})
    assert config.push.peers == (
        "http://p-1:10189",
        "https://p-0.example:10189",
        "http://p-2:10189",
    )


@pytest.mark.parametrize(
    ("peers", "error"),
    [
        ("http://a", "push.peers: must be a list"),
        ([1], "push.peers[0]: must be a string"),
        (["a:10189"], "push.peers[0]: must be an http(s) base URL"),
        (["ftp://a"], "push.peers[0]: must be an http(s) base URL"),
        (["http://a:99999"], "push.peers[0]: must be an http(s) base URL"),
        (["http://user:pw@a"], "push.peers[0]: must have no user"),
        (["http://a?x=1"], "push.peers[0]: must have no user, query"),
        (["http://a", "http://a/"], "push.peers[1]: 'http://a' is also push.peers[0]"),
    ],
)
def test_bad_push_peers_name_the_entry(peers: Any, error: str) -> None:
    push = {"listen_address": ":10189", "token": TOKEN, "peers": peers}
    assert error_for({"accounts": [ACCOUNT], "push": push}).startswith(error)


def test_push_peers_without_a_listener_are_refused() -> None:
    document = {"accounts": [ACCOUNT], "push": {"peers": ["http://a"]}}
    assert error_for(document).startswith("push.listen_address: missing")


def test_the_push_token_stays_out_of_the_repr() -> None:
    push = {"listen_address": ":10189", "token": TOKEN, "currency": "eur"}
    config = parse_config({"accounts": [ACCOUNT], "push": push}, {})
    assert config.push.currency == "EUR"
    assert TOKEN not in repr(config)


def test_a_lookback_shorter_than_a_minute_is_refused() -> None:
    document = {"accounts": [ACCOUNT], "calls": {"enabled": True, "lookback_seconds": 10}}
    assert error_for(document).startswith("calls.lookback_seconds: must be between 60")


def test_lines_are_named_every_ten_minutes_and_capped_at_a_hundred_by_default() -> None:
    config = parse_config({"accounts": [ACCOUNT]}, {})
    assert (config.calls.lines_refresh_seconds, config.calls.max_lines) == (600, 100)
    document = {"accounts": [ACCOUNT], "calls": {"lines_refresh_seconds": 120, "max_lines": 5}}
    config = parse_config(document, {})
    assert (config.calls.lines_refresh_seconds, config.calls.max_lines) == (120, 5)


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("lines_refresh_seconds", 10, "must be between 60"),
        ("lines_refresh_seconds", "often", "must be a number"),
        ("lines_refresh_seconds", True, "must be a number"),
        ("max_lines", 0, "must be between 1"),
        ("max_lines", 100_000, "must be between 1"),
        ("max_lines", 2.5, "must be a whole number"),
        ("max_lines", "many", "must be a whole number"),
    ],
)
def test_a_bad_lines_setting_is_refused_naming_it(key: str, value: object, said: str) -> None:
    message = error_for({"accounts": [ACCOUNT], "calls": {key: value}})
    assert message.startswith(f"calls.{key}: {said}")


def test_calls_enabled_must_be_a_boolean() -> None:
    document = {"accounts": [ACCOUNT], "calls": {"enabled": "yes"}}
    assert error_for(document).startswith("calls.enabled: must be a boolean")
