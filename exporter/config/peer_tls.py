"""`push.peer_tls`: the TLS a process uses to forward pushes to its `https` peers.

The section has the shape of Prometheus' `tls_config`, so one habit serves both. A forwarded
push carries the push token, so a peer is verified as any server would be: against `ca_file`
(the CA that signed the peers' certificates; the system's CAs without it), under `server_name`
when the peers' certificates name something other than the URLs' hosts.

The files are read here, when the config is read (at start, and again on each reload), and the
client context made from them once for every forward under that config. Every problem is a
`ConfigError` naming the field, e.g. `push.peer_tls.ca_file: cannot read /x.pem: ...`, so a bad
file stops the start (exit 2) and a reload keeps the running config.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Mapping
from typing import Any

from exporter.config.fields import expand, get, mapping, read_text
from exporter.config.model import ConfigError, PeerTLS

WHERE = "push.peer_tls"
_KEYS = frozenset({"ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify"})
# Prometheus' tls_config knows these too; refusing them beats ignoring what was asked for.
_UNSUPPORTED = {
    f"{WHERE}.ca": "put the CA in a file and set ca_file",
    f"{WHERE}.cert": "put the certificate in a file and set cert_file",
    f"{WHERE}.key": "put the key in a file and set key_file",
    f"{WHERE}.min_version": "TLS 1.2 or later is always required",
    f"{WHERE}.max_version": "the newest version both sides speak is used",
}


def parse_peer_tls(data: Any, environ: Mapping[str, str], *, https: bool) -> PeerTLS:
    """`push.peer_tls`, with its client context made; `https`: a peer is reached over https
    (the context is made then even when the section is absent: the system's CAs)."""
    section = mapping(data, WHERE, _KEYS, unsupported=_UNSUPPORTED)
    paths = {key: _path(section, key, environ) for key in ("ca_file", "cert_file", "key_file")}
    for key, other in (("cert_file", "key_file"), ("key_file", "cert_file")):
        if paths[key] and not paths[other]:
            raise ConfigError(f"{WHERE}.{other}", f"missing: {key} is set, and needs it")
    server_name = expand(
        get(section, WHERE, "server_name", str, ""), f"{WHERE}.server_name", environ
    ).strip()
    if any(c.isspace() or c in "/:@" for c in server_name):
        raise ConfigError(f"{WHERE}.server_name", f"must be a host name, got {server_name!r}")
    tls = PeerTLS(
        ca_file=paths["ca_file"],
        cert_file=paths["cert_file"],
        key_file=paths["key_file"],
        server_name=server_name,
        insecure_skip_verify=get(section, WHERE, "insecure_skip_verify", bool, False),
    )
    if not section and not https:
        return tls
    return dataclasses.replace(tls, context=client_context(tls))


def client_context(tls: PeerTLS) -> ssl.SSLContext:
    """The context every forward to an `https` peer uses: it reads the files now."""
    if not tls.ca_file:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:  # Only this CA, as Prometheus' ca_file: not every CA of the system's besides.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # Verifies, host name included.
        pem = read_text(tls.ca_file, f"{WHERE}.ca_file", "CA file")
        try:
            context.load_verify_locations(cadata=pem)
        except (ssl.SSLError, ValueError):
            raise ConfigError(
                f"{WHERE}.ca_file", f"no PEM certificate found in {tls.ca_file}"
            ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert_file:
        read_text(tls.cert_file, f"{WHERE}.cert_file", "certificate file")
        read_text(tls.key_file, f"{WHERE}.key_file", "key file")
        try:
            # A callable password: an encrypted key fails here instead of prompting on a tty.
            context.load_cert_chain(tls.cert_file, tls.key_file, password=lambda: b"")
        except ssl.SSLError:
            raise _blame_cert_or_key(tls) from None
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _path(section: Mapping[str, Any], key: str, environ: Mapping[str, str]) -> str:
    value = section.get(key)
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{WHERE}.{key}", f"must be a file path, got {value!r}")
    return expand(value, f"{WHERE}.{key}", environ)


def _blame_cert_or_key(tls: PeerTLS) -> ConfigError:
    """`load_cert_chain` does not say which file is at fault; find out."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=tls.cert_file)
    except (ssl.SSLError, OSError):
        return ConfigError(f"{WHERE}.cert_file", f"no PEM certificate in {tls.cert_file}")
    return ConfigError(
        f"{WHERE}.key_file",
        f"{tls.key_file} is not an unencrypted PEM private key matching cert_file",
    )
