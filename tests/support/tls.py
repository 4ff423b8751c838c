"""Certificates made by the `openssl` CLI at test time, and web configs that use them.

Made fresh for each test session rather than kept in the repository: nothing expires between
runs, no private key sits in the tree, and a test can issue another certificate (a rotated
one) the same way. P-256 keys keep it quick.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path

from exporter.web.webconfig import WebConfig, load_web_config


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path
    ca_key: Path
    server_pem: Path  # for IP 127.0.0.1, signed by `ca`
    server_key: Path
    client_pem: Path  # signed by `ca`
    client_key: Path
    other_client_pem: Path  # signed by a CA the server does not trust
    other_client_key: Path


def openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True, timeout=60
    )


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """(certificate, key) of a new self-signed CA."""
    key, pem = directory / f"{name}.key", directory / f"{name}.pem"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", pem, "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return pem, key


def issue(directory: Path, ca: tuple[Path, Path], name: str, extensions: str) -> tuple[Path, Path]:
    """(certificate, key) for `name`, signed by `ca`, with these x509v3 extension lines."""
    key, csr, pem, ext = (directory / f"{name}.{s}" for s in ("key", "csr", "pem", "ext"))
    ext.write_text(
        "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n"
        f"authorityKeyIdentifier=keyid\n{extensions}\n"
    )
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={name}", cwd=directory,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", pem, "-days", "2", "-extfile", ext, cwd=directory,
    )  # fmt: skip
    return pem, key


SERVER_EXTENSIONS = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"


def make_certs(directory: Path) -> Certs:
    ca = make_ca(directory, "ca")
    other_ca = make_ca(directory, "other-ca")
    server = issue(directory, ca, "server", SERVER_EXTENSIONS)
    client = issue(directory, ca, "client", "extendedKeyUsage=clientAuth")
    other = issue(directory, other_ca, "intruder", "extendedKeyUsage=clientAuth")
    return Certs(directory, *ca, *server, *client, *other)


def tls_server_config(certs: Certs, extra: str = "") -> str:
    """A web config's text: TLS with the server certificate, then the `extra` lines."""
    return (
        f"tls_server_config:\n  cert_file: {certs.server_pem}\n  key_file: {certs.server_key}\n"
        + extra
    )


def require_client_cert(certs: Certs, auth_type: str = "RequireAndVerifyClientCert") -> str:
    """The lines that make the server ask for client certificates signed by the test CA."""
    return f"  client_auth_type: {auth_type}\n  client_ca_file: {certs.ca}\n"


def write_web_config(directory: Path, text: str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def web_config(directory: Path, text: str) -> WebConfig:
    """`text` written to a file and read back the way `--web.config.file` reads it."""
    return load_web_config(write_web_config(directory, text))


def basic(user: str, password: str) -> str:
    """An `Authorization` header value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
