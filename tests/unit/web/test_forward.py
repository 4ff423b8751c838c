"""Pushes routed to the replicas that own them: real push listeners on loopback, each with a
router in front of a ledger the test controls."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.config.peer_tls import parse_peer_tls
from exporter.config.shard import Shard, shard_of
from exporter.web.forward import DROPPED, FAILURE, SUCCESS, PushRouter, Routes
from exporter.web.push import FORWARDED_HEADER, PushServer
from tests.support.tls import Certs, issue, require_client_cert, tls_server_config, web_config

TOKEN = "Qx7-frontHalf.~backHalf_9Zk"
# Two accounts on different shards of 2: which is which follows from the hash.
ACCOUNTS = ("east", "west")
APPS = {"APP_E": "east", "APP_W": "west"}


def body(app_id: str, call_id: str = "c-1") -> bytes:
    return json.dumps({"callId": call_id, "appId": app_id, "pay": "0.05"}).encode()


class Node:
    """One process's push listener and router, with what its ledger was handed."""

    def __init__(
        self,
        ordinal: int,
        total: int,
        timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.counted: list[bytes] = []
        self.answers: list[int] = []
        self._lock = threading.Lock()
        self.shard = Shard(ordinal, total)
        self.router = PushRouter(Routes(APPS, self.shard), self._count, timeout=timeout)
        self.server = PushServer(
            "127.0.0.1",
            0,
            TOKEN,
            self.router.receive,
            lambda status, forwarded: self.answers.append(status),
            ssl_context,
            forwarded=self.router.forwarded,
        )
        self.server.start()

    def _count(self, pushed: bytes) -> int:
        with self._lock:
            self.counted.append(pushed)
        return 400 if pushed == b"not json" else 200  # As the ledger: 400 for unreadable.

    @property
    def url(self) -> str:
        host, port = self.server.address
        return f"{'https' if self.server.tls else 'http'}://{host}:{port}"

    def stop(self) -> None:
        self.server.stop()
        self.router.close()


@contextlib.contextmanager
def fleet(total: int, replicas: int, timeout: float = 5.0) -> Iterator[list[Node]]:
    nodes = [Node(i, total, timeout) for i in range(total * replicas)]
    peers = tuple(node.url for node in nodes)
    for node in nodes:
        node.router.reconfigure(Routes(APPS, node.shard, peers, TOKEN))
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def push(node: Node, pushed: bytes, forwarded: bool = False, **tls: Any) -> requests.Response:
    headers = {FORWARDED_HEADER: "1"} if forwarded else {}
    url = f"{node.url}/push/call-record/{TOKEN}"
    return requests.post(url, data=pushed, headers=headers, timeout=30, **tls)


def owner_ordinal(app_id: str, total: int) -> int:
    return shard_of(APPS[app_id], total)


def test_the_two_accounts_sit_on_different_shards_of_two() -> None:
    assert {shard_of(name, 2) for name in ACCOUNTS} == {0, 1}


def test_a_push_reaches_every_replica_that_owns_it_whichever_process_gets_it() -> None:
    with fleet(total=2, replicas=2) as nodes:
        for receiver in nodes:
            for app_id in APPS:
                assert push(receiver, body(app_id, f"{receiver.url}-{app_id}")).text == "success"
        for i, node in enumerate(nodes):
            owned = {app for app in APPS if owner_ordinal(app, 2) == i % 2}
            assert len(node.counted) == 4 * len(owned)
            assert {json.loads(b)["appId"] for b in node.counted} == owned


def test_the_forwarded_body_is_the_pushed_body_byte_for_byte() -> None:
    with fleet(total=1, replicas=2) as (first, second):
        pushed = b'{"callId":"c-9",  "appId":"APP_E","pay":"1.10"}'
        push(first, pushed)
        assert first.counted == [pushed]
        assert second.counted == [pushed]


def test_forwards_are_counted_by_result() -> None:
    with fleet(total=1, replicas=3) as nodes:
        push(nodes[0], body("APP_W"))
        assert nodes[0].router.results() == {SUCCESS: 2, FAILURE: 0, DROPPED: 0}
        assert nodes[1].router.results() == {SUCCESS: 0, FAILURE: 0, DROPPED: 0}


def test_an_unreachable_owner_makes_the_vendor_retry_with_503() -> None:
    with fleet(total=1, replicas=2, timeout=2.0) as (first, second):
        second.server.stop()
        answer = push(first, body("APP_E"))
        assert answer.status_code == 503
        assert len(first.counted) == 1  # Counted here already: the retry is a duplicate.
        assert first.router.results()[FAILURE] == 1


def test_a_forwarded_push_is_never_forwarded_again() -> None:
    with fleet(total=1, replicas=2) as (first, second):
        assert push(first, body("APP_E"), forwarded=True).status_code == 200
        assert len(first.counted) == 1
        assert second.counted == []
        assert first.router.results()[SUCCESS] == 0


def test_a_forwarded_push_for_another_shards_account_is_misdirected() -> None:
    with fleet(total=2, replicas=1) as nodes:
        stranger = nodes[1 - owner_ordinal("APP_E", 2)]
        assert push(stranger, body("APP_E"), forwarded=True).status_code == 421
        assert stranger.counted == []


def test_without_peers_a_push_for_another_shards_account_is_dropped_and_counted() -> None:
    node = Node(1 - owner_ordinal("APP_E", 2), 2)
    try:
        assert push(node, body("APP_E")).text == "success"
        assert node.counted == []
        assert node.router.results()[DROPPED] == 1
    finally:
        node.stop()


def test_a_push_for_an_app_in_no_account_goes_to_the_ledger_unforwarded() -> None:
    with fleet(total=2, replicas=2) as nodes:
        push(nodes[0], body("NOT_CONFIGURED"))
        assert [len(node.counted) for node in nodes] == [1, 0, 0, 0]
        assert nodes[0].router.results()[SUCCESS] == 0


def test_an_unreadable_push_goes_to_the_ledger_and_is_answered_400() -> None:
    with fleet(total=2, replicas=2) as nodes:
        assert push(nodes[0], b"not json").status_code == 400
        assert nodes[0].counted == [b"not json"]


def test_a_peer_that_never_answers_costs_a_bounded_wait() -> None:
    with socket.socket() as silent:  # Accepts connections (the backlog) and never answers.
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host, port = silent.getsockname()
        node = Node(0, 1, timeout=0.5)
        try:
            node.router.reconfigure(
                Routes(APPS, Shard(0, 1), (node.url, f"http://{host}:{port}"), TOKEN)
            )
            assert push(node, body("APP_E")).status_code == 503
        finally:
            node.stop()


# ---- peers over https, verified with push.peer_tls


@contextlib.contextmanager
def tls_fleet(peer_tls: dict[str, Any], *servers: ssl.SSLContext) -> Iterator[list[Node]]:
    """Replicas whose push listeners serve TLS, one for each of `servers`, forwarding to each
    other over https with the context `push.peer_tls` makes."""
    nodes = [Node(i, 1, ssl_context=server) for i, server in enumerate(servers)]
    peers = tuple(node.url for node in nodes)
    tls = parse_peer_tls(peer_tls, {}, https=True)
    for node in nodes:
        node.router.reconfigure(Routes(APPS, node.shard, peers, TOKEN, tls))
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
def server_tls(certs: Certs, tmp_path: Path) -> ssl.SSLContext:
    """The listener's TLS as `--web.config.file` gives it: a certificate for 127.0.0.1."""
    context = web_config(tmp_path, tls_server_config(certs)).ssl_context()
    assert context is not None
    return context


def test_a_peer_over_https_is_verified_with_the_ca_file(
    certs: Certs, server_tls: ssl.SSLContext
) -> None:
    with tls_fleet({"ca_file": str(certs.ca)}, server_tls, server_tls) as (first, second):
        assert push(first, body("APP_E"), verify=str(certs.ca)).text == "success"
        assert len(second.counted) == 1
        assert first.router.results()[SUCCESS] == 1


def test_a_peer_whose_certificate_fails_verification_is_a_failed_forward(
    certs: Certs, server_tls: ssl.SSLContext
) -> None:
    with tls_fleet({}, server_tls, server_tls) as (first, second):  # The system's CAs only.
        assert push(first, body("APP_E"), verify=str(certs.ca)).status_code == 503
        assert second.counted == []
        assert first.router.results()[FAILURE] == 1


def test_insecure_skip_verify_forwards_to_any_certificate(
    certs: Certs, server_tls: ssl.SSLContext
) -> None:
    with tls_fleet({"insecure_skip_verify": True}, server_tls, server_tls) as (first, second):
        assert push(first, body("APP_E"), verify=str(certs.ca)).text == "success"
        assert len(second.counted) == 1


@pytest.mark.parametrize(("server_name", "status"), [("peer.internal", 200), ("", 503)])
def test_the_peers_certificate_is_checked_for_server_name(
    certs: Certs, tmp_path: Path, server_tls: ssl.SSLContext, server_name: str, status: int
) -> None:
    """A certificate for a name, not for the address in push.peers: `server_name` says it."""
    pem, key = issue(tmp_path, (certs.ca, certs.ca_key), "peer", "subjectAltName=DNS:peer.internal")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pem, key)
    peer_tls = {"ca_file": str(certs.ca), "server_name": server_name}
    with tls_fleet(peer_tls, server_tls, server) as (first, _):
        assert push(first, body("APP_E"), verify=str(certs.ca)).status_code == status


def test_a_peer_that_requires_a_client_certificate_gets_cert_file(
    certs: Certs, tmp_path: Path
) -> None:
    server = web_config(tmp_path, tls_server_config(certs, require_client_cert(certs)))
    context = server.ssl_context()
    assert context is not None
    client = {"cert_file": str(certs.client_pem), "key_file": str(certs.client_key)}
    with tls_fleet({"ca_file": str(certs.ca), **client}, context, context) as (first, second):
        answer = push(
            first,
            body("APP_E"),
            verify=str(certs.ca),
            cert=(client["cert_file"], client["key_file"]),
        )
        assert answer.text == "success"
        assert len(second.counted) == 1
