"""The exporter's configuration: YAML in, frozen dataclasses out, every error naming its field.

Validation is done once, at start-up (and on reload), so the rest of the code can trust every
value it is handed. A problem raises `ConfigError`, whose text is one line such as
`accounts[0].api_secret: missing`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from exporter.config.fields import (
    ENV_REFERENCE,
    expand,
    get,
    integer,
    mapping,
    number,
    read_text,
    read_yaml,
)
from exporter.config.model import (
    Account,
    ApiConfig,
    BalanceConfig,
    CallsConfig,
    Config,
    ConfigError,
    MetricsConfig,
    PollConfig,
    PushConfig,
)
from exporter.config.peer_tls import parse_peer_tls
from exporter.process.listen import parse_listen_address

_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
# The push token is a path segment of the URL entered in the console: URL-safe, unguessable.
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,256}")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
MAX_PEERS = 1000


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML config file; every failure is a one-line `ConfigError`."""
    data = read_yaml(path, "", "config file")
    return parse_config(data, os.environ if environ is None else environ)


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
    url = expand(get(section, "balance", "url", str, ""), "balance.url", environ)
    if url and not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError("balance.url", f"must be an http(s) URL, got {url!r}")
    return BalanceConfig(
        enabled=get(section, "balance", "enabled", bool, default.enabled),
        interval_seconds=number(
            section, "balance", "interval_seconds", default.interval_seconds, 1, 86400
        ),
        url=url,
    )


def _api(data: Any, environ: Mapping[str, str]) -> ApiConfig:
    section = mapping(data, "api", set(ApiConfig.__dataclass_fields__))
    default = ApiConfig()
    base_url = expand(
        get(section, "api", "base_url", str, default.base_url), "api.base_url", environ
    )
    if not re.match(r"^https?://[^/\s]+", base_url):
        raise ConfigError("api.base_url", f"must be an http(s) URL, got {base_url!r}")
    return ApiConfig(
        base_url=base_url.rstrip("/"),
        timeout_seconds=number(
            section, "api", "timeout_seconds", default.timeout_seconds, 0.1, 300
        ),
        page_size=integer(section, "api", "page_size", default.page_size, 1, 100),
        max_retries=integer(section, "api", "max_retries", default.max_retries, 0, 10),
        max_requests_per_second=number(
            section, "api", "max_requests_per_second", default.max_requests_per_second, 0.01, 1000
        ),
        max_response_bytes=integer(
            section, "api", "max_response_bytes", default.max_response_bytes, 65536, 256 << 20
        ),
        create_time_zone=_time_zone(section.get("create_time_zone", "+08:00")),
    )


def _poll(data: Any) -> PollConfig:
    section = mapping(data, "poll", set(PollConfig.__dataclass_fields__))
    default = PollConfig()
    interval = number(section, "poll", "interval_seconds", default.interval_seconds, 1, 86400)
    return PollConfig(
        interval_seconds=interval,
        concurrency=integer(section, "poll", "concurrency", default.concurrency, 1, 64),
        stale_after_seconds=number(
            section, "poll", "stale_after_seconds", default.stale_after_seconds, 0, 7 * 86400
        ),
        timeout_seconds=number(section, "poll", "timeout_seconds", 2 * interval, 1, 2 * 86400),
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
        per_task=get(section, "metrics", "per_task", bool, True),
        per_task_statuses=tuple(statuses),
    )


def _calls(data: Any) -> CallsConfig:
    section = mapping(data, "calls", set(CallsConfig.__dataclass_fields__))
    default = CallsConfig()
    return CallsConfig(
        enabled=get(section, "calls", "enabled", bool, default.enabled),
        # The longest calls last minutes; a day is far under any span the API could refuse.
        lookback_seconds=number(
            section, "calls", "lookback_seconds", default.lookback_seconds, 60, 86400
        ),
        per_task=get(section, "calls", "per_task", bool, default.per_task),
        lines_refresh_seconds=number(
            section, "calls", "lines_refresh_seconds", default.lines_refresh_seconds, 60, 86400
        ),
        max_lines=integer(section, "calls", "max_lines", default.max_lines, 1, 10_000),
    )


def _push(data: Any, environ: Mapping[str, str]) -> PushConfig:
    keys = {"listen_address", "token", "token_file", "currency", "peers", "peer_tls"}
    section = mapping(data, "push", keys)
    address = get(section, "push", "listen_address", str, "")
    currency = get(section, "push", "currency", str, "USD")
    if not _CURRENCY.fullmatch(currency):
        raise ConfigError(
            "push.currency", f"must be a three-letter code such as USD, got {currency!r}"
        )
    if not address:
        if any(key in section for key in ("token", "token_file", "peers", "peer_tls")):
            raise ConfigError(
                "push.listen_address", "missing: a push token or peers need a listener"
            )
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
    peers = _peers(section.get("peers"), environ)
    https = any(urlsplit(peer).scheme == "https" for peer in peers)
    return PushConfig(
        listen_address=address,
        token=token,
        currency=currency.upper(),
        peers=peers,
        peer_tls=parse_peer_tls(section.get("peer_tls"), environ, https=https),
    )


def _peers(data: Any, environ: Mapping[str, str]) -> tuple[str, ...]:
    """`push.peers`: distinct http(s) base URLs, without credentials, query or fragment."""
    if data is None:
        return ()
    if not isinstance(data, list) or len(data) > MAX_PEERS:
        raise ConfigError("push.peers", f"must be a list of at most {MAX_PEERS} base URLs")
    peers: list[str] = []
    for i, item in enumerate(data):
        where = f"push.peers[{i}]"
        if not isinstance(item, str):
            raise ConfigError(where, f"must be a string, got {item!r}")
        url = expand(item, where, environ).strip().rstrip("/")
        parts = urlsplit(url)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise ConfigError(where, f"must be an http(s) base URL, got {url!r}")
        if parts.username is not None or parts.query or parts.fragment:
            raise ConfigError(where, "must have no user, query or fragment (the token is added)")
        if url in peers:
            raise ConfigError(where, f"{url!r} is also push.peers[{peers.index(url)}]")
        peers.append(url)
    return tuple(peers)


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
    task_name = expand(get(section, where, "task_name", str, ""), f"{where}.task_name", environ)
    inline_secret = section.get("api_secret")
    name = expand(get(section, where, "name", str, ""), f"{where}.name", environ).strip()
    if len(name) > 128:
        raise ConfigError(f"{where}.name", "must be at most 128 characters (it is a label)")
    return Account(
        api_key=_credential(section, where, "api_key", environ),
        api_secret=_credential(section, where, "api_secret", environ),
        app_ids=tuple(app_ids),
        task_name=task_name,
        secret_in_config=inline_secret is not None and not ENV_REFERENCE.search(str(inline_secret)),
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
        path = expand(path, f"{where}.{name}_file", environ)
        value = read_text(path, f"{where}.{name}_file", "secret file").strip()
        if not value:
            raise ConfigError(f"{where}.{name}_file", f"{path} is empty")
        return value
    if inline is None:
        raise ConfigError(f"{where}.{name}", "missing")
    if not isinstance(inline, (str, int)) or isinstance(inline, bool):
        raise ConfigError(f"{where}.{name}", "must be a string")
    value = expand(str(inline), f"{where}.{name}", environ).strip()
    if not value:
        raise ConfigError(f"{where}.{name}", "is empty")
    return value


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
