"""The exporter-toolkit web configuration (`--web.config.file`): TLS and basic auth for /metrics.

The Go exporters (node_exporter and friends) share one YAML format for securing their HTTP
endpoint; reading the same format means one file, and one habit, serves every exporter on a host.
See https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md.

Where Python's `ssl` module cannot do what Go's `crypto/tls` does, this module errs on the safe
side and says so in `WebConfig.notes` (for the caller to log) rather than silently weakening
anything. Every problem raises `ConfigError` naming the field, e.g.
`tls_server_config.cert_file: cannot read /etc/x.pem: No such file or directory`.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.config.fields import mapping, read_yaml
from exporter.config.model import ConfigError
from exporter.web.basic_auth import BCRYPT_HASH, BasicAuth, bcrypt_cost

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
# The toolkit still accepts this old spelling of RequireAnyClientCert.
_CLIENT_AUTH_ALIASES = {"RequireClientCert": "RequireAnyClientCert"}
_VERIFYING_AUTH_TYPES = {
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}

# The toolkit allows only these response headers (and these values where they are an enum),
# to keep the ecosystem consistent; so do we.
ALLOWED_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}

# Valid in the toolkit's format but not implemented here: refusing them beats ignoring a
# security setting the operator believes is in force.
_UNSUPPORTED: dict[str, str] = {
    "rate_limit": "put a reverse proxy in front to rate-limit",
    "tls_server_config.cert": "use cert_file",
    "tls_server_config.key": "use key_file",
    "tls_server_config.client_ca": "use client_ca_file",
    "tls_server_config.client_allowed_sans": "issue client certificates from a dedicated CA",
    "tls_server_config.cipher_suites": "the OpenSSL defaults are used",
    "tls_server_config.curve_preferences": "the OpenSSL defaults are used",
}

_ROOT_KEYS = frozenset({"tls_server_config", "http_server_config", "basic_auth_users"})
_TLS_KEYS = frozenset(
    {
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "min_version",
        "max_version",
        "prefer_server_cipher_suites",
    }
)
_HTTP_KEYS = frozenset({"http2", "headers"})


@dataclass(frozen=True)
class TLSSettings:
    """`tls_server_config`, validated, with paths already made absolute."""

    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str = ""
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    prefer_server_cipher_suites: bool = True

    def context(self) -> ssl.SSLContext:
        """A fresh server context; reads the files now, so rotated certificates are picked up."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = self.min_version
        ctx.maximum_version = self.max_version
        ctx.options |= ssl.OP_NO_RENEGOTIATION
        if self.prefer_server_cipher_suites:
            ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        else:
            ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        ctx.set_alpn_protocols(["http/1.1"])
        _check_readable(self.cert_file, "tls_server_config.cert_file")
        _check_readable(self.key_file, "tls_server_config.key_file")
        try:
            # A callable password: an encrypted key fails here instead of prompting on a tty.
            ctx.load_cert_chain(self.cert_file, self.key_file, password=lambda: b"")
        except ssl.SSLError:
            raise _blame_cert_or_key(self.cert_file, self.key_file) from None
        verify_mode = _VERIFYING_AUTH_TYPES.get(self.client_auth_type)
        if verify_mode is None:
            ctx.verify_mode = ssl.CERT_NONE
        else:
            _check_readable(self.client_ca_file, "tls_server_config.client_ca_file")
            try:
                ctx.load_verify_locations(cafile=self.client_ca_file)
            except ssl.SSLError:
                raise ConfigError(
                    "tls_server_config.client_ca_file",
                    f"no PEM certificate found in {self.client_ca_file}",
                ) from None
            ctx.verify_mode = verify_mode
        return ctx


@dataclass(frozen=True)
class WebConfig:
    """What `--web.config.file` asks for. The default (and an empty file): plain HTTP, no auth."""

    tls: TLSSettings | None = None
    basic_auth: BasicAuth | None = None
    headers: tuple[tuple[str, str], ...] = ()
    http2: bool = True  # accepted for compatibility; this server speaks HTTP/1.1 only
    notes: tuple[str, ...] = ()  # deviations from the Go toolkit the operator should see in a log

    @property
    def tls_enabled(self) -> bool:
        return self.tls is not None

    @property
    def auth_required(self) -> bool:
        return self.basic_auth is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        """A fresh server-side context (certificates re-read), or None for plain HTTP."""
        return None if self.tls is None else self.tls.context()

    def authorized(self, authorization_header: str | None) -> bool:
        """True when no auth is configured or the header's credentials are right."""
        return self.basic_auth is None or self.basic_auth.check(authorization_header)

    def describe(self) -> str:
        """One line for the start-up log."""
        if self.tls is None:
            parts = ["TLS off"]
        else:
            names = {version: name for name, version in TLS_VERSIONS.items()}
            span = f"{names[self.tls.min_version]}..{names[self.tls.max_version]}"
            parts = [f"TLS on ({span}, client_auth_type={self.tls.client_auth_type})"]
        users = len(self.basic_auth.users) if self.basic_auth else 0
        parts.append(f"basic auth for {users} user(s)" if users else "basic auth off")
        return ", ".join(parts)


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read and validate a web config file; relative paths in it are relative to its folder."""
    return parse_web_config(
        read_yaml(path, "web.config.file", "web config file"), Path(path).parent
    )


def parse_web_config(data: Any, base_dir: str | os.PathLike[str] = ".") -> WebConfig:
    """Validate an already-parsed document, and load the TLS files once so errors show now."""
    if data is None:
        return WebConfig()
    root = mapping(data, "", _ROOT_KEYS, root="web.config.file", unsupported=_UNSUPPORTED)
    notes: list[str] = []
    tls = _tls(root.get("tls_server_config"), Path(base_dir), notes)
    if tls is not None:
        tls.context()
    http2, headers = _http(root.get("http_server_config"))
    users = _users(root.get("basic_auth_users"))
    return WebConfig(
        tls=tls,
        basic_auth=BasicAuth(users) if users else None,
        headers=headers,
        http2=http2,
        notes=tuple(notes),
    )


def _tls(data: Any, base_dir: Path, notes: list[str]) -> TLSSettings | None:
    where = "tls_server_config"
    section = mapping(data, where, _TLS_KEYS, unsupported=_UNSUPPORTED)
    # Like the toolkit: TLS is on as soon as any of these is set.
    if not any(
        section.get(k) for k in ("cert_file", "key_file", "client_ca_file", "client_auth_type")
    ):
        for key in ("min_version", "max_version", "prefer_server_cipher_suites"):
            if key in section:
                raise ConfigError(f"{where}.{key}", "set, but TLS is off (no cert_file/key_file)")
        return None
    cert_file = _path(section, where, "cert_file", base_dir, required=True)
    key_file = _path(section, where, "key_file", base_dir, required=True)
    client_ca_file = _path(section, where, "client_ca_file", base_dir, required=False)
    auth = section.get("client_auth_type") or "NoClientCert"
    if not isinstance(auth, str) or _CLIENT_AUTH_ALIASES.get(auth, auth) not in CLIENT_AUTH_TYPES:
        raise ConfigError(
            f"{where}.client_auth_type",
            f"must be one of {', '.join(CLIENT_AUTH_TYPES)}, got {auth!r}",
        )
    auth = _CLIENT_AUTH_ALIASES.get(auth, auth)
    if auth == "NoClientCert" and client_ca_file:
        raise ConfigError(
            f"{where}.client_ca_file",
            "set, but client_auth_type is NoClientCert, so no client certificate is asked for",
        )
    if auth in _VERIFYING_AUTH_TYPES and not client_ca_file:
        raise ConfigError(f"{where}.client_ca_file", f"required with client_auth_type {auth}")
    if auth == "RequestClientCert":
        notes.append(
            "client_auth_type RequestClientCert: no client certificate is requested (Python's "
            "ssl cannot accept one unverified, and none would be used)"
        )
    elif auth == "RequireAnyClientCert":
        notes.append(
            "client_auth_type RequireAnyClientCert: client certificates are verified against "
            "client_ca_file, as with RequireAndVerifyClientCert (Python's ssl cannot skip it)"
        )
    min_version = _version(section, where, "min_version", "TLS12")
    max_version = _version(section, where, "max_version", "TLS13")
    if min_version > max_version:
        raise ConfigError(f"{where}.min_version", "is newer than max_version")
    prefer = section.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise ConfigError(
            f"{where}.prefer_server_cipher_suites", f"must be true or false, got {prefer!r}"
        )
    return TLSSettings(
        cert_file=cert_file,
        key_file=key_file,
        client_auth_type=auth,
        client_ca_file=client_ca_file,
        min_version=min_version,
        max_version=max_version,
        prefer_server_cipher_suites=prefer,
    )


def _http(data: Any) -> tuple[bool, tuple[tuple[str, str], ...]]:
    where = "http_server_config"
    section = mapping(data, where, _HTTP_KEYS, unsupported=_UNSUPPORTED)
    http2 = section.get("http2", True)
    if not isinstance(http2, bool):
        raise ConfigError(f"{where}.http2", f"must be true or false, got {http2!r}")
    headers = section.get("headers")
    if headers is None:
        return http2, ()
    if not isinstance(headers, dict):
        raise ConfigError(f"{where}.headers", "must be a mapping of header name to value")
    result: list[tuple[str, str]] = []
    for name, value in headers.items():
        field = f"{where}.headers.{name}"
        if name not in ALLOWED_HEADERS:
            raise ConfigError(
                field, f"this header cannot be configured (allowed: {', '.join(ALLOWED_HEADERS)})"
            )
        if value is None or value == "":
            continue  # the toolkit's "unset if blank"
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ConfigError(field, "must be a single-line string")
        allowed = ALLOWED_HEADERS[name]
        if allowed and value not in allowed:
            raise ConfigError(field, f"must be one of {', '.join(allowed)}, got {value!r}")
        result.append((name, value))
    return http2, tuple(result)


def _users(data: Any) -> dict[str, str]:
    where = "basic_auth_users"
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(where, "must be a mapping of user name to bcrypt hash")
    users: dict[str, str] = {}
    for user, hashed in data.items():
        field = f"{where}.{user}"
        if not isinstance(user, str) or not user:
            raise ConfigError(field, "a user name must be a non-empty string (quote it)")
        if ":" in user:
            raise ConfigError(field, "a user name cannot contain ':' (basic auth splits on it)")
        # Never echo the value: it is a password hash, or worse, a plaintext password.
        if not isinstance(hashed, str) or not BCRYPT_HASH.match(hashed):
            raise ConfigError(
                field, "not a bcrypt hash; make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
            )
        if not 4 <= bcrypt_cost(hashed.encode()) <= 31:
            raise ConfigError(field, "bcrypt cost must be between 4 and 31")
        users[user] = hashed
    return users


def _version(section: Mapping[str, Any], where: str, key: str, default: str) -> ssl.TLSVersion:
    value = section.get(key, default)
    if not isinstance(value, str) or value not in TLS_VERSIONS:
        raise ConfigError(
            f"{where}.{key}", f"must be one of {', '.join(TLS_VERSIONS)}, got {value!r}"
        )
    return TLS_VERSIONS[value]


def _path(
    section: Mapping[str, Any], where: str, key: str, base_dir: Path, *, required: bool
) -> str:
    value = section.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{where}.{key}", "missing")
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}", f"must be a file path, got {value!r}")
    return str(base_dir / value)  # an absolute value replaces base_dir


def _check_readable(path: str, field: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as err:
        raise ConfigError(field, f"cannot read {path}: {err.strerror}") from None


def _blame_cert_or_key(cert_file: str, key_file: str) -> ConfigError:
    """`load_cert_chain` does not say which file is at fault; find out."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=cert_file)
    except ssl.SSLError:
        return ConfigError("tls_server_config.cert_file", f"no PEM certificate in {cert_file}")
    return ConfigError(
        "tls_server_config.key_file",
        f"{key_file} is not an unencrypted PEM private key matching cert_file",
    )
