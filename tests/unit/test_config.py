"""Config validation: every mistake is one line that names the field."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exporter.config import ConfigError, load_config, parse_config

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
    example = Path(__file__).parents[2] / "config.example.yaml"
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


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=30
    )


def test_cli_config_error_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("accounts:\n  - api_key: k\n    app_ids: [A]\n")
    result = run_cli("--config.file", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "aivoice-exporter: config error: accounts[0].api_secret: missing"
    ]
    assert "Traceback" not in result.stderr


def test_cli_missing_config_file_exits_2_without_traceback(tmp_path: Path) -> None:
    result = run_cli("--config.file", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot read config file" in result.stderr


def test_cli_bad_listen_address_exits_2() -> None:
    result = run_cli("--web.listen-address", "nonsense")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "aivoice-exporter: config error: --web.listen-address: want HOST:PORT, got 'nonsense'"
    )
