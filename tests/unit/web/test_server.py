"""The HTTP server in-process over real sockets: routes, formats, gzip in parts, keep-alive,
and TLS and basic auth from a real web config.

The body is sent as two parts, the cached API part and the process metrics collected for this
scrape; gzipped, the two are one gzip member. Every client must read it as one body.
"""

from __future__ import annotations

import gzip
import http.client
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.web.status import CONTENT_SECURITY_POLICY
from tests.support.exposition import ODD_NAMES, api_samples, app, rendered, snapshot, task
from tests.support.serving import serving
from tests.support.tls import (
    Certs,
    basic,
    require_client_cert,
    tls_server_config,
    web_config,
)
from tests.support.tools import require_tool, scrape

OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    """A plain HTTP server holding one rendered snapshot (app A, a task per odd name); yields
    its base URL. The tests only read from it, so they share it."""
    tasks = tuple(task(str(n), name=name) for n, name in enumerate(ODD_NAMES))
    with serving(rendered(snapshot(app("A", tasks)))) as (host, port):
        yield f"http://{host}:{port}"


def value(text: str, name: str, openmetrics: bool = True) -> float:
    families = parse_om(text) if openmetrics else parse_text(text)
    (found,) = [s.value for f in families for s in f.samples if s.name == name and not s.labels]
    return found


# ------------------------------------------------------------------------------ routes and formats


def test_openmetrics_is_served_when_asked(served: str) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = requests.get(served + "/metrics", headers={"Accept": accept}, timeout=5)
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    ups = {
        tuple(s.labels.items()): s.value
        for f in parse_om(response.text)
        for s in f.samples
        if s.name == "aivoice_up"
    }
    assert ups == {(("app_id", "A"),): 1}


def test_plain_text_without_accept_header(served: str) -> None:
    response = requests.get(
        served + "/metrics", headers={"Accept": "", "Accept-Encoding": ""}, timeout=5
    )
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "Content-Encoding" not in response.headers


def test_gzip_is_served_when_asked(served: str) -> None:
    raw = requests.get(
        served + "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True
    )
    assert raw.headers["Content-Encoding"] == "gzip"
    assert b"aivoice_up" in gzip.decompress(raw.raw.read())


@pytest.mark.parametrize(("path", "status"), [("/", 200), ("/-/healthy", 200), ("/nothing", 404)])
def test_root_and_health_answer_200_and_unknown_paths_404(
    served: str, path: str, status: int
) -> None:
    assert requests.get(served + path, timeout=5).status_code == status


def test_landing_page_links_metrics(served: str) -> None:
    assert 'href="metrics"' in requests.get(served + "/", timeout=5).text


def test_the_status_page_is_sent_with_a_policy_that_allows_no_script(served: str) -> None:
    response = requests.get(served + "/", timeout=5)
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_status_page_is_gzipped_when_asked_and_says_it_varies_by_encoding(
    served: str, method: str
) -> None:
    host, port = served.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        answers = []
        for encoding in ("gzip", "identity"):
            connection.request(method, "/", headers={"Accept-Encoding": encoding})
            response = connection.getresponse()
            answers.append((response.getheaders(), response.read()))
    finally:
        connection.close()
    (zipped, zipped_body), *plain = answers
    assert dict(zipped)["Content-Encoding"] == "gzip"
    for headers, _ in plain:
        assert "Content-Encoding" not in dict(headers)
    for headers, _ in answers:
        assert dict(headers)["Vary"] == "Accept-Encoding"
    if method == "GET":
        page = plain[0][1]
        assert page.startswith(b"<!doctype html>") and gzip.decompress(zipped_body) == page
        assert int(dict(zipped)["Content-Length"]) == len(zipped_body) < len(page)
    else:
        assert zipped_body == b""


def test_a_request_body_over_the_limit_gets_413(served: str) -> None:
    response = requests.post(served + "/-/reload", data=b"x" * 1_000_000, timeout=5)
    assert response.status_code == 413


# ---------------------------------------------------------------------------- gzip in two parts


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_gzip_body_reads_as_one_stream_with_python_gzip(served: str, openmetrics: bool) -> None:
    headers = {"Accept-Encoding": "gzip", **(OPENMETRICS if openmetrics else {})}
    response = requests.get(served + "/metrics", headers=headers, timeout=10, stream=True)
    assert response.headers["Content-Encoding"] == "gzip"
    raw = response.raw.read(decode_content=False)
    assert len(raw) == int(response.headers["Content-Length"])
    plain = scrape(served + "/metrics", headers={**headers, "Accept-Encoding": "identity"})
    assert api_samples(gzip.decompress(raw), openmetrics) == api_samples(plain.content, openmetrics)


def test_gzip_body_reads_with_requests(served: str) -> None:
    response = scrape(served + "/metrics", headers={"Accept-Encoding": "gzip", **OPENMETRICS})
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.text.endswith("# EOF\n")
    assert value(response.text, "process_open_fds") > 0


def test_gzip_body_reads_with_curl(served: str) -> None:
    result = subprocess.run(
        [
            require_tool("curl"),
            "--silent",
            "--show-error",
            "--fail",
            "--compressed",
            served + "/metrics",
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    text = result.stdout.decode("utf-8")
    assert value(text, "process_open_fds", openmetrics=False) > 0
    names = {
        dict(labels)["name"]
        for name, labels in api_samples(result.stdout, False)
        if name == "aivoice_task_info"
    }
    assert names == set(ODD_NAMES)


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_kept_alive_scrapes_get_whole_bodies(served: str, encoding: str) -> None:
    """Content-Length covers both parts, so the next answer on the connection starts clean."""
    host, port = served.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        bodies = []
        for method in ("GET", "HEAD", "GET"):
            connection.request(method, "/metrics", headers={"Accept-Encoding": encoding})
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200
            if method == "GET":
                assert len(body) == int(response.headers["Content-Length"])
                bodies.append(gzip.decompress(body) if encoding == "gzip" else body)
            else:
                assert body == b""
    finally:
        connection.close()
    first, second = (api_samples(body, openmetrics=False) for body in bodies)
    assert first == second
    assert first


# ------------------------------------------------------------------ TLS and basic auth, for real


def client_context(
    certs: Certs,
    cert: tuple[Path, Path] | None = None,
    max_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """A client trusting the test CA, presenting `cert` if given."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    if cert is not None:
        context.load_cert_chain(*map(str, cert))
    if max_version is not None:
        context.maximum_version = max_version
    return context


def get(
    port: int,
    context: ssl.SSLContext | None,
    headers: dict[str, str] | None = None,
    path: str = "/metrics",
) -> http.client.HTTPResponse:
    """GET `path` over HTTPS with `context`, or plain HTTP without one."""
    connection: http.client.HTTPConnection
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


@pytest.fixture(scope="module")
def tls_port(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A server with TLS on and no client certificates asked for."""
    web = web_config(tmp_path_factory.mktemp("tls"), tls_server_config(certs))
    with serving(security=web) as (_, port):
        yield port


@pytest.fixture(scope="module")
def mtls_port(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A server that requires a client certificate signed by the test CA."""
    text = tls_server_config(certs, require_client_cert(certs))
    with serving(security=web_config(tmp_path_factory.mktemp("mtls"), text)) as (_, port):
        yield port


def test_https_serves_a_client_that_trusts_the_ca(certs: Certs, tls_port: int) -> None:
    assert get(tls_port, client_context(certs)).status == 200


def test_plain_http_to_the_tls_port_fails_and_the_server_serves_on(
    certs: Certs, tls_port: int
) -> None:
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        get(tls_port, None)
    assert get(tls_port, client_context(certs)).status == 200


def test_silent_client_does_not_block_the_handshake_of_others(certs: Certs, tls_port: int) -> None:
    with socket.create_connection(("127.0.0.1", tls_port)):
        assert get(tls_port, client_context(certs)).status == 200


def test_required_client_cert_refuses_a_client_without_one(certs: Certs, mtls_port: int) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(mtls_port, client_context(certs))


def test_required_client_cert_accepts_a_client_with_one(certs: Certs, mtls_port: int) -> None:
    context = client_context(certs, cert=(certs.client_pem, certs.client_key))
    assert get(mtls_port, context).status == 200


def test_required_client_cert_refuses_one_from_another_ca(certs: Certs, mtls_port: int) -> None:
    context = client_context(certs, cert=(certs.other_client_pem, certs.other_client_key))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(mtls_port, context)


def test_verify_if_given_accepts_a_client_without_a_cert(certs: Certs, tmp_path: Path) -> None:
    text = tls_server_config(certs, require_client_cert(certs, "VerifyClientCertIfGiven"))
    with serving(security=web_config(tmp_path, text)) as (_, port):
        assert get(port, client_context(certs)).status == 200


def test_min_version_tls13_refuses_a_tls12_only_client(certs: Certs, tmp_path: Path) -> None:
    text = tls_server_config(certs, "  min_version: TLS13\n")
    with serving(security=web_config(tmp_path, text)) as (_, port):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            get(port, client_context(certs, max_version=ssl.TLSVersion.TLSv1_2))
        assert get(port, client_context(certs)).status == 200


def test_basic_auth_over_https_lets_in_only_the_right_password(
    certs: Certs, tmp_path: Path
) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    extra = (
        f"basic_auth_users:\n  alice: '{hashed}'\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
    )
    with serving(security=web_config(tmp_path, tls_server_config(certs, extra))) as (_, port):
        refused = get(port, client_context(certs))
        assert refused.status == 401
        assert refused.getheader("WWW-Authenticate", "").startswith("Basic ")
        wrong = get(port, client_context(certs), {"Authorization": basic("alice", "nope")})
        assert wrong.status == 401
        right = get(port, client_context(certs), {"Authorization": basic("alice", "s3cret")})
        assert right.status == 200
        assert right.getheader("X-Content-Type-Options") == "nosniff"


def test_the_status_page_is_behind_the_same_tls_and_basic_auth(
    certs: Certs, tmp_path: Path
) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    extra = f"basic_auth_users:\n  alice: '{hashed}'\n"
    with serving(security=web_config(tmp_path, tls_server_config(certs, extra))) as (_, port):
        assert get(port, client_context(certs), path="/").status == 401
        wrong = {"Authorization": basic("alice", "nope")}
        assert get(port, client_context(certs), wrong, path="/").status == 401
        right = {"Authorization": basic("alice", "s3cret")}
        assert get(port, client_context(certs), right, path="/").status == 200
