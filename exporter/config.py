"""The exporter's configuration: YAML in, frozen dataclasses out, every error naming its field.

Validation is done once, at start-up (and on reload), so the rest of the code can trust every
value it is handed. A problem raises `ConfigError`, whose text is one line such as
`accounts[0].api_secret: missing`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import zoneinfo
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from exporter.listen import parse_listen_address

DEFAULT_BASE_URL = "https://api.itniotech.com/aivoice"
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
# The push token is a path segment of the URL entered in the console: URL-safe, unguessable.
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,256}")
_CURRENCY = re.compile(r"[A-Za-z]{3}")

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, tied to the dotted path of the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        field, message = _one_line(field), _one_line(message)
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def _one_line(text: str) -> str:
    """Keys and paths come from the file: never let one break the error over two lines."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


@dataclass(frozen=True)
class ApiConfig:
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = 10.0
    page_size: int = 100
    max_retries: int = 2
    max_requests_per_second: float = 5.0
    # A real 100-record page is about 40 KB; this leaves a hundred times that.
    max_response_bytes: int = 4 * 1024 * 1024
    create_time_zone: dt.tzinfo = dt.timezone(dt.timedelta(hours=8))


@dataclass(frozen=True)
class PollConfig:
    interval_seconds: float = 60.0
    concurrency: int = 4
    stale_after_seconds: float = 600.0
    # How long one app's whole poll may take; unset in the file, it is twice the interval.
    timeout_seconds: float = 120.0


@dataclass(frozen=True)
class Account:
    api_key: str
    api_secret: str = field(repr=False)
    app_ids: tuple[str, ...]
    task_name: str = ""
    # The secret is written out in the config file itself (not a ${VAR} or a secret file).
    secret_in_config: bool = field(default=False, compare=False)
    # The `account` label of the balance metrics; empty means the api_key.
    name: str = ""

    def __repr__(self) -> str:
        # The key is half of the credential: show enough to recognise it, never all of it.
        return f"Account(api_key={mask(self.api_key)!r}, app_ids={self.app_ids!r})"

    @property
    def label(self) -> str:
        """The account's `account` label value: its name, else its api_key (never a secret)."""
        return self.name or self.api_key


@dataclass(frozen=True)
class MetricsConfig:
    per_task: bool = True
    per_task_statuses: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallsConfig:
    """Polling recordQuery for call outcomes (the push is configured on its own)."""

    enabled: bool = False
    # A call is reported only when it ends: each window reaches this far back before the
    # previous one's end, so a call that was still going at the last poll is still caught.
    lookback_seconds: float = 900.0
    per_task: bool = True


@dataclass(frozen=True)
class PushConfig:
    """The listener for the vendor's call-record push; off while `listen_address` is empty."""

    listen_address: str = ""
    token: str = field(default="", repr=False)
    currency: str = "USD"

    @property
    def enabled(self) -> bool:
        return bool(self.listen_address)

    def __repr__(self) -> str:
        return f"PushConfig(listen_address={self.listen_address!r}, currency={self.currency!r})"


@dataclass(frozen=True)
class BalanceConfig:
    """Reading each account's balance (GET /sms/getBalance); `url` empty: derived from
    `api.base_url` (see `balance_url`)."""

    enabled: bool = False
    interval_seconds: float = 300.0
    url: str = ""


@dataclass(frozen=True)
class Config:
    accounts: tuple[Account, ...]
    api: ApiConfig = ApiConfig()
    poll: PollConfig = PollConfig()
    metrics: MetricsConfig = MetricsConfig()
    calls: CallsConfig = CallsConfig()
    push: PushConfig = PushConfig()
    balance: BalanceConfig = BalanceConfig()

    @property
    def app_ids(self) -> tuple[str, ...]:
        return tuple(app_id for account in self.accounts for app_id in account.app_ids)


def balance_url(config: Config) -> str:
    """`balance.url`, or the scheme, host and port of `api.base_url` and `/sms/getBalance`: the
    balance belongs to the account, not to the aivoice product, so it lives beside it."""
    if config.balance.url:
        return config.balance.url
    parts = urlsplit(config.api.base_url)
    return f"{parts.scheme}://{parts.netloc}/sms/getBalance"


def secret_readable_by_others(path: str | os.PathLike[str], config: Config) -> bool:
    """A config file that holds a secret in plain text should not be world-readable."""
    if not any(account.secret_in_config for account in config.accounts):
        return False
    try:
        return bool(Path(path).stat().st_mode & stat.S_IROTH)
    except OSError:
        return False


def mask(secret: str) -> str:
    """`bDqJFiq9` -> `bD******`: recognisable in a log, useless to a reader."""
    return secret[:2] + "*" * max(len(secret) - 2, 0)


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML config file; every failure is a one-line `ConfigError`."""
    data = read_yaml(path, "", "config file")
    return parse_config(data, os.environ if environ is None else environ)


def read_text(path: str | os.PathLike[str], field: str, what: str) -> str:
    """A UTF-8 file's text; every way of failing becomes a `ConfigError` on `field`."""
    shown = os.fspath(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(field, f"cannot read {what} {shown}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(field, f"{what} {shown} is not UTF-8 text") from None
    except ValueError:  # A NUL byte or a lone surrogate in the path.
        raise ConfigError(field, f"{what} path {shown!r} is not usable") from None


def read_yaml(path: str | os.PathLike[str], field: str, what: str) -> Any:
    """A YAML file's document; unreadable files and bad syntax become a `ConfigError`."""
    shown = os.fspath(path)
    text = read_text(path, field, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(field, f"{shown}: {problem}{at}") from None
    except RecursionError:
        raise ConfigError(field, f"{shown}: nested too deeply") from None
    except ValueError as err:  # A scalar YAML types but Python refuses: 2024-13-45, 10**5000.
        raise ConfigError(field, f"{shown}: invalid value: {err}") from None


def parse_config(data: Any, environ: Mapping[str, str]) -> Config:
    """Validate an already-parsed YAML document."""
    root = mapping(data, "", {"api", "poll", "accounts", "metrics", "calls", "push", "balance"})
    accounts = _accounts(root.get("accounts"), environ)
    return Config(
        accounts=accounts,
        api=_api(root.get("api"), environ),
        poll=_poll(root.get("poll")),
        metrics=_metrics(root.get("metrics")),
        calls=_calls(root.get("calls")),
        push=_push(root.get("push"), environ),
        balance=_balance(root.get("balance"), environ),
    )


def _balance(data: Any, environ: Mapping[str, str]) -> BalanceConfig:
    section = mapping(data, "balance", set(BalanceConfig.__dataclass_fields__))
    default = BalanceConfig()
    url = _expand(_get(section, "balance", "url", str, ""), "balance.url", environ)
    if url and not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError("balance.url", f"must be an http(s) URL, got {url!r}")
    return BalanceConfig(
        enabled=_get(section, "balance", "enabled", bool, default.enabled),
        interval_seconds=_number(
            section, "balance", "interval_seconds", default.interval_seconds, 1, 86400
        ),
        url=url,
    )


def _api(data: Any, environ: Mapping[str, str]) -> ApiConfig:
    section = mapping(data, "api", set(ApiConfig.__dataclass_fields__))
    default = ApiConfig()
    base_url = _expand(
        _get(section, "api", "base_url", str, default.base_url), "api.base_url", environ
    )
    if not re.match(r"^https?://[^/\s]+", base_url):
        raise ConfigError("api.base_url", f"must be an http(s) URL, got {base_url!r}")
    return ApiConfig(
        base_url=base_url.rstrip("/"),
        timeout_seconds=_number(
            section, "api", "timeout_seconds", default.timeout_seconds, 0.1, 300
        ),
        page_size=_integer(section, "api", "page_size", default.page_size, 1, 100),
        max_retries=_integer(section, "api", "max_retries", default.max_retries, 0, 10),
        max_requests_per_second=_number(
            section, "api", "max_requests_per_second", default.max_requests_per_second, 0.01, 1000
        ),
        max_response_bytes=_integer(
            section, "api", "max_response_bytes", default.max_response_bytes, 65536, 256 << 20
        ),
        create_time_zone=_time_zone(section.get("create_time_zone", "+08:00")),
    )


def _poll(data: Any) -> PollConfig:
    section = mapping(data, "poll", set(PollConfig.__dataclass_fields__))
    default = PollConfig()
    interval = _number(section, "poll", "interval_seconds", default.interval_seconds, 1, 86400)
    return PollConfig(
        interval_seconds=interval,
        concurrency=_integer(section, "poll", "concurrency", default.concurrency, 1, 64),
        stale_after_seconds=_number(
            section, "poll", "stale_after_seconds", default.stale_after_seconds, 0, 7 * 86400
        ),
        timeout_seconds=_number(section, "poll", "timeout_seconds", 2 * interval, 1, 2 * 86400),
    )


def _metrics(data: Any) -> MetricsConfig:
    section = mapping(data, "metrics", set(MetricsConfig.__dataclass_fields__))
    statuses = section.get("per_task_statuses", [])
    if not isinstance(statuses, list):
        raise ConfigError("metrics.per_task_statuses", "must be a list of task statuses")
    for i, status in enumerate(statuses):
        if not isinstance(status, str) or not status:
            raise ConfigError(f"metrics.per_task_statuses[{i}]", "must be a non-empty string")
    return MetricsConfig(
        per_task=_get(section, "metrics", "per_task", bool, True),
        per_task_statuses=tuple(statuses),
    )


def _calls(data: Any) -> CallsConfig:
    section = mapping(data, "calls", set(CallsConfig.__dataclass_fields__))
    default = CallsConfig()
    return CallsConfig(
        enabled=_get(section, "calls", "enabled", bool, default.enabled),
        # The longest calls last minutes; a day is far under any span the API could refuse.
        lookback_seconds=_number(
            section, "calls", "lookback_seconds", default.lookback_seconds, 60, 86400
        ),
        per_task=_get(section, "calls", "per_task", bool, default.per_task),
    )


def _push(data: Any, environ: Mapping[str, str]) -> PushConfig:
    section = mapping(data, "push", {"listen_address", "token", "token_file", "currency"})
    address = _get(section, "push", "listen_address", str, "")
    currency = _get(section, "push", "currency", str, "USD")
    if not _CURRENCY.fullmatch(currency):
        raise ConfigError(
            "push.currency", f"must be a three-letter code such as USD, got {currency!r}"
        )
    if not address:
        if "token" in section or "token_file" in section:
            raise ConfigError("push.listen_address", "missing: a push token needs a listener")
        return PushConfig(currency=currency.upper())
    try:
        parse_listen_address(address)
    except ValueError as err:
        raise ConfigError("push.listen_address", str(err)) from None
    token = _credential(section, "push", "token", environ)
    if not _TOKEN.fullmatch(token):
        raise ConfigError(
            "push.token",
            "must be 16 to 256 characters of A-Z, a-z, 0-9 and ._~- (it goes in the URL)",
        )
    return PushConfig(listen_address=address, token=token, currency=currency.upper())


def _accounts(data: Any, environ: Mapping[str, str]) -> tuple[Account, ...]:
    if data is None:
        raise ConfigError("accounts", "missing: list at least one account")
    if not isinstance(data, list) or not data:
        raise ConfigError("accounts", "must be a non-empty list of accounts")
    accounts = tuple(_account(item, f"accounts[{i}]", environ) for i, item in enumerate(data))
    names: dict[str, int] = {}
    for i, account in enumerate(accounts):
        if account.label in names:  # Two accounts under one `account` label would mix.
            raise ConfigError(
                f"accounts[{i}].name",
                f"account name {account.label!r} is also accounts[{names[account.label]}]'s "
                "(the name defaults to the api_key)",
            )
        names[account.label] = i
    seen: dict[str, str] = {}
    for i, account in enumerate(accounts):
        for j, app_id in enumerate(account.app_ids):
            where = f"accounts[{i}].app_ids[{j}]"
            if app_id in seen:
                raise ConfigError(where, f"duplicate app id {app_id!r} (also at {seen[app_id]})")
            seen[app_id] = where
    return accounts


def _account(data: Any, where: str, environ: Mapping[str, str]) -> Account:
    keys = {
        "api_key",
        "api_key_file",
        "api_secret",
        "api_secret_file",
        "app_ids",
        "task_name",
        "name",
    }
    section = mapping(data, where, keys)
    app_ids = section.get("app_ids")
    if app_ids is None:
        raise ConfigError(f"{where}.app_ids", "missing")
    if not isinstance(app_ids, list) or not app_ids:
        raise ConfigError(f"{where}.app_ids", "must be a non-empty list of application ids")
    for j, app_id in enumerate(app_ids):
        if not isinstance(app_id, str) or not app_id.strip():
            raise ConfigError(f"{where}.app_ids[{j}]", "must be a non-empty string")
    task_name = _expand(_get(section, where, "task_name", str, ""), f"{where}.task_name", environ)
    inline_secret = section.get("api_secret")
    name = _expand(_get(section, where, "name", str, ""), f"{where}.name", environ).strip()
    if len(name) > 128:
        raise ConfigError(f"{where}.name", "must be at most 128 characters (it is a label)")
    return Account(
        api_key=_credential(section, where, "api_key", environ),
        api_secret=_credential(section, where, "api_secret", environ),
        app_ids=tuple(app_ids),
        task_name=task_name,
        secret_in_config=inline_secret is not None
        and not _ENV_REFERENCE.search(str(inline_secret)),
        name=name,
    )


def _credential(
    section: Mapping[str, Any], where: str, name: str, environ: Mapping[str, str]
) -> str:
    """An inline value or a `<name>_file` (Docker and Kubernetes secrets), never both."""
    inline, path = section.get(name), section.get(f"{name}_file")
    if inline is not None and path is not None:
        raise ConfigError(f"{where}.{name}", f"set either {name} or {name}_file, not both")
    if path is not None:
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}.{name}_file", "must be a file path")
        path = _expand(path, f"{where}.{name}_file", environ)
        value = read_text(path, f"{where}.{name}_file", "secret file").strip()
        if not value:
            raise ConfigError(f"{where}.{name}_file", f"{path} is empty")
        return value
    if inline is None:
        raise ConfigError(f"{where}.{name}", "missing")
    if not isinstance(inline, (str, int)) or isinstance(inline, bool):
        raise ConfigError(f"{where}.{name}", "must be a string")
    value = _expand(str(inline), f"{where}.{name}", environ).strip()
    if not value:
        raise ConfigError(f"{where}.{name}", "is empty")
    return value


def _expand(value: str, where: str, environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(where, f"environment variable {name} is not set")
        return environ[name]

    return _ENV_REFERENCE.sub(replace, value)


def _time_zone(value: Any) -> dt.tzinfo:
    where = "api.create_time_zone"
    if not isinstance(value, str) or not value:
        raise ConfigError(
            where, 'must be an offset such as "+08:00" or a zone such as "Asia/Shanghai"'
        )
    if value.upper() in ("Z", "UTC"):
        return dt.timezone.utc
    offset = _OFFSET.match(value)
    if offset:
        sign, hours, minutes = offset.groups()
        delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
        if delta > dt.timedelta(hours=14):
            raise ConfigError(where, f"offset {value!r} is out of range")
        return dt.timezone(-delta if sign == "-" else delta)
    try:
        return zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(where, f"unknown time zone {value!r}") from None


def mapping(
    data: Any,
    where: str,
    allowed: AbstractSet[str],
    *,
    root: str = "",
    unsupported: Mapping[str, str] = MappingProxyType({}),
) -> Mapping[str, Any]:
    """A section of a YAML document, checked for unknown keys; None is an empty section.

    `where` is the section's dotted path ("" for the document itself, whose errors name `root`
    if given); `unsupported` names keys the format knows but this exporter does not implement,
    with what to do instead.
    """
    if data is None:
        return {}
    if not isinstance(data, dict):
        if where or root:
            raise ConfigError(where or root, "must be a mapping")
        raise ConfigError("", "the config file must be a YAML mapping")
    for key in data:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            if name in unsupported:
                raise ConfigError(name, f"not supported by this exporter; {unsupported[name]}")
            raise ConfigError(name, f"unknown key (expected one of: {', '.join(sorted(allowed))})")
    return data


def _get(section: Mapping[str, Any], where: str, key: str, kind: type[T], default: T) -> T:
    value = section.get(key, default)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{where}.{key}", f"must be a {_KIND_NAMES[kind]}, got {value!r}")
    return value


def _integer(
    section: Mapping[str, Any], where: str, key: str, default: int, low: int, high: int
) -> int:
    return _in_range(_get(section, where, key, int, default), f"{where}.{key}", low, high)


def _number(
    section: Mapping[str, Any], where: str, key: str, default: float, low: float, high: float
) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}.{key}", f"must be a number, got {value!r}")
    return float(_in_range(value, f"{where}.{key}", low, high))


N = TypeVar("N", int, float)


def _in_range(value: N, where: str, low: float, high: float) -> N:
    if not low <= value <= high:
        raise ConfigError(where, f"must be between {low:g} and {high:g}, got {value!r}")
    return value


_KIND_NAMES: dict[type, str] = {str: "string", int: "whole number", bool: "boolean (true/false)"}
