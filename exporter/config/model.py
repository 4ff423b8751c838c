"""The configuration as the rest of the exporter sees it: frozen dataclasses, checked once.

Nothing downstream re-validates: a `Config` that exists is a good one. Secrets are held here
and nowhere else, and no `repr` shows them.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.itniotech.com/aivoice"


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
    # Each app's line names (channelList) are read again this often, and at most this many
    # line ids per app get series of their own; calls on any other count under `other`.
    lines_refresh_seconds: float = 600.0
    max_lines: int = 100


@dataclass(frozen=True)
class PeerTLS:
    """`push.peer_tls`, in the shape of Prometheus' `tls_config`: how a forward to an `https`
    peer checks it (`ca_file`, else the system's CAs; `server_name`, else the peer URL's host)
    and proves itself to a peer that asks (`cert_file`, `key_file`).

    `context` is made from the files when the config is read (at start and on each reload), one
    for every forward under this config; None when no peer is `https` and nothing is set. No
    thread changes it once made.
    """

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""
    insecure_skip_verify: bool = False
    context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class PushConfig:
    """The listener for the vendor's call-record push; off while `listen_address` is empty."""

    listen_address: str = ""
    token: str = field(default="", repr=False)
    currency: str = "USD"
    # Every process's push listener (base URLs, in ordinal order) to forward pushes to, with
    # shards or replicas (exporter.web.forward); empty: no forwarding.
    peers: tuple[str, ...] = ()
    peer_tls: PeerTLS = PeerTLS()

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
