"""The exporter-toolkit web config: parsing (every error names its field), basic auth, and
when the certificate files are read. Serving TLS and basic auth is tested with the server."""

from __future__ import annotations

import base64
import http.client
import shutil
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config.model import ConfigError
from exporter.web import basic_auth
from exporter.web.basic_auth import BasicAuth, parse_basic_authorization
from exporter.web.webconfig import WebConfig, load_web_config, parse_web_config
from tests.support.serving import serving
from tests.support.tls import (
    Certs,
    basic,
    issue,
    openssl,
    tls_server_config,
    write_web_config,
)


def _tls_config(tmp_path: Path, certs: Certs, extra: str = "") -> Path:
    return write_web_config(tmp_path, tls_server_config(certs, extra))


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_web_config(path)
    return caught.value


@pytest.fixture(scope="module")
def alice_hash() -> str:
    return bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture
def checkpw_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts bcrypt checks, so tests can tell a cache hit from a bcrypt run without timing."""
    calls: list[int] = []
    real: Callable[[bytes, bytes], bool] = basic_auth.bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(1)
        return real(password, hashed)

    monkeypatch.setattr(basic_auth.bcrypt, "checkpw", counting)
    return calls


# --- parsing ------------------------------------------------------------------------------------


def test_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    web = load_web_config(write_web_config(tmp_path, ""))
    assert web.ssl_context() is None
    assert not web.auth_required
    assert web.authorized(None)
    assert web.headers == ()


def test_missing_file_names_the_web_config_file(tmp_path: Path) -> None:
    err = _error(tmp_path / "nope.yml")
    assert err.field == "web.config.file"
    assert "nope.yml" in str(err)


def test_invalid_yaml_names_the_web_config_file_and_line(tmp_path: Path) -> None:
    err = _error(write_web_config(tmp_path, "tls_server_config:\n  cert_file: [\n"))
    assert err.field == "web.config.file"
    assert "line" in str(err)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert _error(write_web_config(tmp_path, "- a\n")).field == "web.config.file"


def test_unknown_top_level_key_is_an_error(tmp_path: Path) -> None:
    # `tls_config` is the old node_exporter spelling; silently serving plain HTTP would be worse.
    err = _error(write_web_config(tmp_path, "tls_config:\n  cert_file: x\n"))
    assert err.field == "tls_config"
    assert "unknown key" in str(err)


def test_unknown_tls_key_is_an_error(tmp_path: Path, certs: Certs) -> None:
    err = _error(_tls_config(tmp_path, certs, "  cert_fiel: x\n"))
    assert err.field == "tls_server_config.cert_fiel"


def test_unknown_http_server_config_key_is_an_error(tmp_path: Path) -> None:
    err = _error(write_web_config(tmp_path, "http_server_config:\n  header: {}\n"))
    assert err.field == "http_server_config.header"


@pytest.mark.parametrize(
    ("snippet", "field"),
    [
        ("rate_limit:\n  interval: 1s\n  burst: 5\n", "rate_limit"),
        ("tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
         "tls_server_config.cipher_suites"),
        ("tls_server_config:\n  client_allowed_sans: [a]\n",
         "tls_server_config.client_allowed_sans"),
        ("tls_server_config:\n  cert: PEM\n", "tls_server_config.cert"),
    ],
)  # fmt: skip
def test_toolkit_keys_not_implemented_are_refused_by_name(
    tmp_path: Path, snippet: str, field: str
) -> None:
    err = _error(write_web_config(tmp_path, snippet))
    assert err.field == field
    assert "not supported" in str(err)


def test_key_file_without_cert_file_is_an_error(tmp_path: Path, certs: Certs) -> None:
    err = _error(
        write_web_config(tmp_path, f"tls_server_config:\n  key_file: {certs.server_key}\n")
    )
    assert str(err) == "tls_server_config.cert_file: missing"


def test_cert_file_without_key_file_is_an_error(tmp_path: Path, certs: Certs) -> None:
    err = _error(
        write_web_config(tmp_path, f"tls_server_config:\n  cert_file: {certs.server_pem}\n")
    )
    assert str(err) == "tls_server_config.key_file: missing"


def test_unreadable_cert_file_names_the_field(tmp_path: Path, certs: Certs) -> None:
    path = write_web_config(
        tmp_path, f"tls_server_config:\n  cert_file: gone.pem\n  key_file: {certs.server_key}\n"
    )
    err = _error(path)
    assert err.field == "tls_server_config.cert_file"
    assert str(err).startswith("tls_server_config.cert_file: cannot read ")
    assert str(tmp_path / "gone.pem") in str(err)


def test_unreadable_key_file_names_the_field(tmp_path: Path, certs: Certs) -> None:
    path = write_web_config(
        tmp_path, f"tls_server_config:\n  cert_file: {certs.server_pem}\n  key_file: gone.key\n"
    )
    assert _error(path).field == "tls_server_config.key_file"


def test_cert_file_without_a_certificate_is_blamed(tmp_path: Path, certs: Certs) -> None:
    path = write_web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {certs.server_key}\n  key_file: {certs.server_key}\n",
    )
    assert _error(path).field == "tls_server_config.cert_file"


def test_key_not_matching_cert_is_blamed_on_key_file(tmp_path: Path, certs: Certs) -> None:
    path = write_web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {certs.server_pem}\n  key_file: {certs.client_key}\n",
    )
    assert _error(path).field == "tls_server_config.key_file"


def test_encrypted_key_is_refused_without_prompting(tmp_path: Path, certs: Certs) -> None:
    encrypted = tmp_path / "encrypted.key"
    openssl(
        "pkey", "-in", certs.server_key, "-aes256", "-passout", "pass:pw", "-out", encrypted,
        cwd=tmp_path,
    )  # fmt: skip
    path = write_web_config(
        tmp_path, f"tls_server_config:\n  cert_file: {certs.server_pem}\n  key_file: {encrypted}\n"
    )
    assert _error(path).field == "tls_server_config.key_file"


def test_unknown_client_auth_type_is_an_error(tmp_path: Path, certs: Certs) -> None:
    err = _error(_tls_config(tmp_path, certs, "  client_auth_type: RequireSomething\n"))
    assert err.field == "tls_server_config.client_auth_type"
    assert "RequireAndVerifyClientCert" in str(err)


def test_client_ca_file_with_no_client_cert_is_an_error(tmp_path: Path, certs: Certs) -> None:
    err = _error(_tls_config(tmp_path, certs, f"  client_ca_file: {certs.ca}\n"))
    assert err.field == "tls_server_config.client_ca_file"
    assert "NoClientCert" in str(err)


@pytest.mark.parametrize(
    "auth", ["RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
)
def test_verifying_client_auth_requires_client_ca_file(
    tmp_path: Path, certs: Certs, auth: str
) -> None:
    err = _error(_tls_config(tmp_path, certs, f"  client_auth_type: {auth}\n"))
    assert str(err) == f"tls_server_config.client_ca_file: required with client_auth_type {auth}"


def test_client_ca_file_without_certificates_is_an_error(tmp_path: Path, certs: Certs) -> None:
    extra = (
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {certs.server_key}\n"
    )
    assert _error(_tls_config(tmp_path, certs, extra)).field == "tls_server_config.client_ca_file"


def test_require_client_cert_is_the_old_name_of_require_any(tmp_path: Path, certs: Certs) -> None:
    extra = f"  client_auth_type: RequireClientCert\n  client_ca_file: {certs.ca}\n"
    web = load_web_config(_tls_config(tmp_path, certs, extra))
    assert web.tls is not None and web.tls.client_auth_type == "RequireAnyClientCert"
    assert web.ssl_context().verify_mode == ssl.CERT_REQUIRED  # type: ignore[union-attr]


def test_request_client_cert_is_accepted_with_a_note(tmp_path: Path, certs: Certs) -> None:
    web = load_web_config(_tls_config(tmp_path, certs, "  client_auth_type: RequestClientCert\n"))
    assert web.ssl_context().verify_mode == ssl.CERT_NONE  # type: ignore[union-attr]
    assert any("RequestClientCert" in note for note in web.notes)


@pytest.mark.parametrize("key", ["min_version", "max_version"])
def test_unknown_tls_version_is_an_error(tmp_path: Path, certs: Certs, key: str) -> None:
    err = _error(_tls_config(tmp_path, certs, f"  {key}: TLS14\n"))
    assert err.field == f"tls_server_config.{key}"
    assert "TLS13" in str(err)


def test_min_version_newer_than_max_version_is_an_error(tmp_path: Path, certs: Certs) -> None:
    extra = "  min_version: TLS13\n  max_version: TLS12\n"
    assert _error(_tls_config(tmp_path, certs, extra)).field == "tls_server_config.min_version"


def test_tls_versions_are_applied_to_the_context(tmp_path: Path, certs: Certs) -> None:
    extra = "  min_version: TLS13\n  max_version: TLS13\n"
    ctx = load_web_config(_tls_config(tmp_path, certs, extra)).ssl_context()
    assert ctx is not None
    assert (ctx.minimum_version, ctx.maximum_version) == (ssl.TLSVersion.TLSv1_3,) * 2


def test_tls_version_without_certificate_is_an_error(tmp_path: Path) -> None:
    err = _error(write_web_config(tmp_path, "tls_server_config:\n  min_version: TLS13\n"))
    assert err.field == "tls_server_config.min_version"
    assert "TLS is off" in str(err)


def test_empty_tls_section_means_plain_http(tmp_path: Path) -> None:
    assert (
        load_web_config(write_web_config(tmp_path, "tls_server_config: {}\n")).ssl_context() is None
    )


def test_paths_are_relative_to_the_web_config_folder(
    tmp_path: Path, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    (folder / "tls").mkdir(parents=True)
    for src, name in (
        (certs.server_pem, "s.pem"),
        (certs.server_key, "s.key"),
        (certs.ca, "ca.pem"),
    ):
        shutil.copy(src, folder / "tls" / name)
    path = write_web_config(
        folder,
        "tls_server_config:\n  cert_file: tls/s.pem\n  key_file: tls/s.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: tls/ca.pem\n",
    )
    monkeypatch.chdir(tmp_path)  # anywhere but the config's folder
    web = load_web_config(path)
    assert web.tls is not None
    assert web.tls.cert_file == str(folder / "tls" / "s.pem")
    assert web.tls.key_file == str(folder / "tls" / "s.key")
    assert web.tls.client_ca_file == str(folder / "tls" / "ca.pem")


def test_absolute_paths_are_kept(tmp_path: Path, certs: Certs) -> None:
    web = load_web_config(_tls_config(tmp_path, certs))
    assert web.tls is not None and web.tls.cert_file == str(certs.server_pem)


def test_allowed_headers_are_kept_and_blank_ones_dropped(tmp_path: Path) -> None:
    path = write_web_config(
        tmp_path,
        "http_server_config:\n  http2: false\n  headers:\n"
        "    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
        "    Content-Security-Policy: \"default-src 'self'\"\n    X-XSS-Protection: ''\n",
    )
    web = load_web_config(path)
    assert web.headers == (
        ("X-Frame-Options", "deny"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", "default-src 'self'"),
    )
    assert web.http2 is False


def test_header_outside_the_toolkit_list_is_an_error(tmp_path: Path) -> None:
    err = _error(
        write_web_config(tmp_path, "http_server_config:\n  headers:\n    X-Powered-By: me\n")
    )
    assert err.field == "http_server_config.headers.X-Powered-By"


def test_header_value_outside_its_enum_is_an_error(tmp_path: Path) -> None:
    err = _error(
        write_web_config(tmp_path, "http_server_config:\n  headers:\n    X-Frame-Options: allow\n")
    )
    assert err.field == "http_server_config.headers.X-Frame-Options"
    assert "sameorigin" in str(err)


def test_header_value_with_a_newline_is_an_error(tmp_path: Path) -> None:
    text = 'http_server_config:\n  headers:\n    Content-Security-Policy: "a\\r\\nSet-Cookie: x"\n'
    assert (
        _error(write_web_config(tmp_path, text)).field
        == "http_server_config.headers.Content-Security-Policy"
    )


def test_headers_must_be_a_mapping(tmp_path: Path) -> None:
    err = _error(write_web_config(tmp_path, "http_server_config:\n  headers: [a]\n"))
    assert err.field == "http_server_config.headers"


def test_http2_must_be_a_boolean(tmp_path: Path) -> None:
    err = _error(write_web_config(tmp_path, "http_server_config:\n  http2: sometimes\n"))
    assert err.field == "http_server_config.http2"


def test_basic_auth_users_must_be_a_mapping(tmp_path: Path) -> None:
    assert (
        _error(write_web_config(tmp_path, "basic_auth_users: [alice]\n")).field
        == "basic_auth_users"
    )


def test_plaintext_password_is_refused_without_being_echoed(tmp_path: Path) -> None:
    err = _error(write_web_config(tmp_path, "basic_auth_users:\n  alice: hunter2\n"))
    assert err.field == "basic_auth_users.alice"
    assert "hunter2" not in str(err)
    assert "htpasswd" in str(err)


def test_malformed_hash_is_not_echoed(tmp_path: Path, alice_hash: str) -> None:
    broken = alice_hash[:-1]
    err = _error(write_web_config(tmp_path, f"basic_auth_users:\n  alice: '{broken}'\n"))
    assert err.field == "basic_auth_users.alice"
    assert broken not in str(err)


def test_user_name_with_a_colon_is_an_error(tmp_path: Path, alice_hash: str) -> None:
    err = _error(write_web_config(tmp_path, f"basic_auth_users:\n  'a:b': '{alice_hash}'\n"))
    assert err.field == "basic_auth_users.a:b"


def test_numeric_user_name_is_an_error(tmp_path: Path, alice_hash: str) -> None:
    assert _error(
        write_web_config(tmp_path, f"basic_auth_users:\n  42: '{alice_hash}'\n")
    ).field == ("basic_auth_users.42")


def test_no_hash_in_any_repr(tmp_path: Path, certs: Certs, alice_hash: str) -> None:
    web = load_web_config(
        _tls_config(tmp_path, certs, f"basic_auth_users:\n  alice: '{alice_hash}'\n")
    )
    assert web.basic_auth is not None and web.basic_auth.check(basic("alice", "s3cret"))
    for text in (repr(web), str(web), repr(web.basic_auth), web.describe()):
        assert alice_hash not in text
        assert alice_hash[7:] not in text
        assert "s3cret" not in text


def test_describe_summarises_tls_and_auth(tmp_path: Path, certs: Certs, alice_hash: str) -> None:
    extra = f"  min_version: TLS13\nbasic_auth_users:\n  alice: '{alice_hash}'\n"
    web = load_web_config(_tls_config(tmp_path, certs, extra))
    assert web.describe() == (
        "TLS on (TLS13..TLS13, client_auth_type=NoClientCert), basic auth for 1 user(s)"
    )
    assert WebConfig().describe() == "TLS off, basic auth off"


# --- basic auth ---------------------------------------------------------------------------------


def test_right_password_is_accepted(alice_hash: str) -> None:
    assert BasicAuth({"alice": alice_hash}).check(basic("alice", "s3cret"))


def test_wrong_password_is_refused(alice_hash: str) -> None:
    assert not BasicAuth({"alice": alice_hash}).check(basic("alice", "s3cre"))


def test_missing_header_is_refused(alice_hash: str) -> None:
    assert not BasicAuth({"alice": alice_hash}).check(None)
    assert not BasicAuth({"alice": alice_hash}).check("")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        "Basic",
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"alice-without-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:s3cret").decode(),
        "Basic " + "A" * 10_000,
    ],
    ids=["bearer", "no-token", "not-base64", "no-colon", "user-not-utf8", "huge"],
)
def test_malformed_header_is_refused_without_bcrypt(
    alice_hash: str, header: str, checkpw_calls: list[int]
) -> None:
    assert not BasicAuth({"alice": alice_hash}).check(header)
    assert checkpw_calls == []


def test_scheme_is_case_insensitive(alice_hash: str) -> None:
    header = basic("alice", "s3cret").replace("Basic", "bAsIc")
    assert BasicAuth({"alice": alice_hash}).check(header)


def test_password_may_contain_colons() -> None:
    assert parse_basic_authorization(basic("alice", "a:b:c")) == ("alice", b"a:b:c")


def test_htpasswd_2y_hash_is_accepted() -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    as_htpasswd_writes_it = "$2y$" + hashed[4:]
    assert BasicAuth({"bob": as_htpasswd_writes_it}).check(basic("bob", "pw"))


def test_password_over_72_bytes_matches_as_bcrypt_truncates() -> None:
    long = "x" * 80
    hashed = bcrypt.hashpw(long[:72].encode(), bcrypt.gensalt(rounds=4)).decode()
    assert BasicAuth({"bob": hashed}).check(basic("bob", long))


def test_cache_makes_the_second_check_skip_bcrypt(
    alice_hash: str, checkpw_calls: list[int]
) -> None:
    auth = BasicAuth({"alice": alice_hash})
    assert auth.check(basic("alice", "s3cret"))
    assert auth.check(basic("alice", "s3cret"))
    assert len(checkpw_calls) == 1


def test_wrong_password_after_a_cached_one_still_runs_bcrypt(
    alice_hash: str, checkpw_calls: list[int]
) -> None:
    auth = BasicAuth({"alice": alice_hash})
    assert auth.check(basic("alice", "s3cret"))
    assert not auth.check(basic("alice", "guess"))
    assert not auth.check(basic("alice", "guess"))
    assert len(checkpw_calls) == 3


def test_unknown_user_still_costs_one_bcrypt_check(
    alice_hash: str, checkpw_calls: list[int]
) -> None:
    auth = BasicAuth({"alice": alice_hash})
    assert not auth.check(basic("mallory", "s3cret"))
    assert len(checkpw_calls) == 1


def test_decoy_hash_has_the_cost_of_the_real_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []
    monkeypatch.setattr(basic_auth.bcrypt, "checkpw", lambda pw, hashed: seen.append(hashed))
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=5)).decode()
    BasicAuth({"alice": hashed}).check(basic("mallory", "pw"))
    assert seen[0].startswith(b"$2b$05$")


def test_cache_is_bounded(checkpw_calls: list[int]) -> None:
    users = {
        name: bcrypt.hashpw(name.encode(), bcrypt.gensalt(rounds=4)).decode() for name in "abc"
    }
    auth = BasicAuth(users, cache_size=2)
    for name in "abc":
        assert auth.check(basic(name, name))
    assert auth.check(basic("c", "c"))  # still cached
    assert len(checkpw_calls) == 3
    assert auth.check(basic("a", "a"))  # evicted first, so checked again
    assert len(checkpw_calls) == 4


def test_cache_holds_no_plaintext(alice_hash: str) -> None:
    auth = BasicAuth({"alice": alice_hash})
    assert auth.check(basic("alice", "s3cret"))
    assert b"s3cret" not in repr(vars(auth)).encode()
    assert "s3cret" not in repr(vars(auth))


def test_concurrent_checks_agree(alice_hash: str) -> None:
    auth = BasicAuth({"alice": alice_hash})
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda p=p: results.append(auth.check(basic("alice", p))))
        for p in ["s3cret", "nope"] * 8
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [False] * 8 + [True] * 8


def test_no_auth_configured_authorizes_everyone() -> None:
    assert WebConfig().authorized(None)


# --- the certificate files -------------------------------------------------------------------


def test_ssl_context_rereads_a_rotated_certificate(certs: Certs, tmp_path: Path) -> None:
    """The files are read when the server starts, not when the web config is: a certificate
    rotated in between is the one the real server presents."""
    pem, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(certs.server_pem, pem)
    shutil.copy(certs.server_key, key)
    web = load_web_config(
        write_web_config(
            tmp_path, "tls_server_config:\n  cert_file: live.pem\n  key_file: live.key\n"
        )
    )
    new_pem, new_key = issue(
        tmp_path, (certs.ca, certs.ca_key), "rotated", "subjectAltName=IP:127.0.0.1"
    )
    shutil.copy(new_pem, pem)
    shutil.copy(new_key, key)
    context = ssl.create_default_context(cafile=str(certs.ca))
    with serving(security=web) as (host, port):
        connection = http.client.HTTPSConnection(host, port, timeout=5, context=context)
        try:
            connection.connect()
            served = connection.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
        finally:
            connection.close()
    assert served == ssl.PEM_cert_to_DER_cert(new_pem.read_text())


# --- arbitrary input ----------------------------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_known_keys = st.sampled_from(
    [
        "tls_server_config",
        "http_server_config",
        "basic_auth_users",
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "min_version",
        "max_version",
        "prefer_server_cipher_suites",
        "http2",
        "headers",
        "X-Frame-Options",
        "alice",
    ]
)
_documents = st.recursive(
    _scalars,
    lambda inner: st.dictionaries(_known_keys, inner | _values, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=_documents)
def test_any_document_gives_a_config_or_one_error_naming_a_field(document: object) -> None:
    try:
        web = parse_web_config(document, "/nonexistent")
    except ConfigError as err:
        assert err.field
        assert "\n" not in str(err)
    else:
        assert isinstance(web, WebConfig)
