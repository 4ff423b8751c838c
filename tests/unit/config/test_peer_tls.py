"""`push.peer_tls`: the files read when the config is, every problem naming its field."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from exporter.config.load import parse_config
from exporter.config.model import Config, ConfigError
from tests.support.tls import Certs

ACCOUNT = {"api_key": "bDqJFiq9", "api_secret": "s3cret-value", "app_ids": ["LILIN888"]}
TOKEN = "push-token-0123456789"


def config(peer_tls: Any = None, peers: tuple[str, ...] = ("https://p-0:10189",)) -> Config:
    push: dict[str, Any] = {"listen_address": ":10189", "token": TOKEN, "peers": list(peers)}
    if peer_tls is not None:
        push["peer_tls"] = peer_tls
    return parse_config({"accounts": [ACCOUNT], "push": push}, {})


def error_for(peer_tls: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        config(peer_tls)
    return str(caught.value)


def test_a_ca_file_is_the_only_ca_the_peers_are_verified_against(certs: Certs) -> None:
    tls = config({"ca_file": str(certs.ca)}).push.peer_tls
    assert tls.context is not None
    assert tls.context.verify_mode == ssl.CERT_REQUIRED and tls.context.check_hostname
    assert [cert["subject"] for cert in tls.context.get_ca_certs()] == [((("commonName", "ca"),),)]


def test_https_peers_without_the_section_are_verified_against_the_systems_cas() -> None:
    tls = config().push.peer_tls
    assert tls.context is not None and tls.context.verify_mode == ssl.CERT_REQUIRED
    assert tls.ca_file == ""


def test_plain_http_peers_without_the_section_need_no_context() -> None:
    assert config(peers=("http://p-0:10189",)).push.peer_tls.context is None


def test_each_load_reads_the_files_again(certs: Certs, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certs.ca.read_bytes())
    first = config({"ca_file": str(ca)}).push.peer_tls.context
    assert first is not None and first is not config({"ca_file": str(ca)}).push.peer_tls.context
    ca.write_text("not a certificate\n")
    assert (
        error_for({"ca_file": str(ca)})
        == f"push.peer_tls.ca_file: no PEM certificate found in {ca}"
    )


def test_a_missing_ca_file_names_the_field(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    assert error_for({"ca_file": str(missing)}) == (
        f"push.peer_tls.ca_file: cannot read CA file {missing}: No such file or directory"
    )


def test_an_unreadable_key_file_names_the_field(certs: Certs, tmp_path: Path) -> None:
    assert error_for({"cert_file": str(certs.client_pem), "key_file": str(tmp_path)}).startswith(
        "push.peer_tls.key_file: cannot read key file"
    )


def test_a_client_certificate_is_offered_to_peers_that_ask(certs: Certs) -> None:
    tls = config({"cert_file": str(certs.client_pem), "key_file": str(certs.client_key)})
    assert tls.push.peer_tls.context is not None


def test_a_key_that_is_not_the_certificates_names_key_file(certs: Certs) -> None:
    error = error_for({"cert_file": str(certs.client_pem), "key_file": str(certs.server_key)})
    assert error.startswith("push.peer_tls.key_file: ")


def test_a_certificate_file_without_a_certificate_names_cert_file(certs: Certs) -> None:
    error = error_for({"cert_file": str(certs.client_key), "key_file": str(certs.client_key)})
    assert error == f"push.peer_tls.cert_file: no PEM certificate in {certs.client_key}"


@pytest.mark.parametrize(
    ("given", "missing"), [("cert_file", "key_file"), ("key_file", "cert_file")]
)
def test_a_client_certificate_needs_both_files(certs: Certs, given: str, missing: str) -> None:
    assert error_for({given: str(certs.client_pem)}).startswith(f"push.peer_tls.{missing}: missing")


def test_insecure_skip_verify_turns_verification_off() -> None:
    tls = config({"insecure_skip_verify": True}).push.peer_tls
    assert tls.context is not None
    assert (tls.context.verify_mode, tls.context.check_hostname) == (ssl.CERT_NONE, False)


@pytest.mark.parametrize(
    ("peer_tls", "error"),
    [
        ("yes", "push.peer_tls: must be a mapping"),
        ({"ca": "PEM"}, "push.peer_tls.ca: not supported by this exporter; put the CA in a file"),
        ({"min_version": "TLS13"}, "push.peer_tls.min_version: not supported"),
        ({"cafile": "x"}, "push.peer_tls.cafile: unknown key"),
        ({"ca_file": 3}, "push.peer_tls.ca_file: must be a file path"),
        ({"insecure_skip_verify": "no"}, "push.peer_tls.insecure_skip_verify: must be a boolean"),
        ({"server_name": "https://peer"}, "push.peer_tls.server_name: must be a host name"),
    ],
)
def test_bad_settings_name_the_field(peer_tls: Any, error: str) -> None:
    assert error_for(peer_tls).startswith(error)


def test_peer_tls_without_a_listener_is_refused() -> None:
    document = {"accounts": [ACCOUNT], "push": {"peer_tls": {"insecure_skip_verify": False}}}
    with pytest.raises(ConfigError, match=r"^push\.listen_address: missing"):
        parse_config(document, {})
