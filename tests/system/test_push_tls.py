"""Two shards whose push listeners serve TLS (`--web.config.file`), forwarding to each other over
https: the peer's certificate verified with `push.peer_tls.ca_file`, or, without it, refused.

The certificates come from a CA the test session makes; the vendor's push is played by
`requests`, sent to the shard that does not own the pushed app.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.config.shard import shard_of
from exporter.simulator import Simulator
from tests.support.configs import API_KEY, API_SECRET, APP_IDS, config_for, write_config
from tests.support.exposition import sample_values
from tests.support.processes import ExporterProcess
from tests.support.tls import Certs, tls_server_config, write_web_config
from tests.support.tools import free_ports, scrape

pytestmark = pytest.mark.slow

SHARDS = 2
TOKEN = "peer-tls-push-token-0123456789"
# One app per account; these two names fall on different shards of two.
ACCOUNTS = dict(zip(("east", "west"), APP_IDS, strict=True))


def pushed(app_id: str) -> bytes:
    record = {"callId": "c-1", "appId": app_id, "resultStatus": "ANSWERED", "pay": "0.05"}
    return json.dumps(record).encode()


def samples(exporter: ExporterProcess, certs: Certs, name: str) -> dict[frozenset[Any], float]:
    """The samples of `name` on the exporter's https /metrics, by their labels."""
    text = scrape(f"{exporter.url}/metrics", verify=str(certs.ca)).text
    return {frozenset(labels): value for labels, value in sample_values(text, name).items()}


def start_shards(
    start_exporter: Callable[..., ExporterProcess],
    simulator: Simulator,
    certs: Certs,
    tmp_path: Path,
    peer_tls: dict[str, Any] | None,
) -> tuple[list[ExporterProcess], list[str]]:
    """Both shards, TLS on every listener; (the processes, their push listeners' base URLs)."""
    web = write_web_config(tmp_path, tls_server_config(certs))
    ports = free_ports(SHARDS)
    peers = [f"https://127.0.0.1:{port}" for port in ports]
    accounts = [
        {"name": name, "api_key": API_KEY, "api_secret": API_SECRET, "app_ids": [app_id]}
        for name, app_id in ACCOUNTS.items()
    ]
    shards = []
    for ordinal, port in enumerate(ports):
        push: dict[str, Any] = {
            "listen_address": f"127.0.0.1:{port}",
            "token": TOKEN,
            "peers": peers,
        }
        if peer_tls is not None:
            push["peer_tls"] = peer_tls
        document = config_for(simulator, push=push, accounts=accounts)
        config = write_config(tmp_path / f"shard-{ordinal}.yaml", document)
        shards.append(
            start_exporter(
                "--config.file",
                str(config),
                "--web.config.file",
                str(web),
                "--shard",
                str(ordinal),
                "--total-shards",
                str(SHARDS),
            )
        )
    return shards, peers


def push_to_the_wrong_shard(peers: list[str], certs: Certs) -> tuple[str, int, requests.Response]:
    """A push for the first account's app, sent to the other shard: (app, owner, answer)."""
    name, app_id = next(iter(ACCOUNTS.items()))
    owner = shard_of(name, SHARDS)
    url = f"{peers[1 - owner]}/push/call-record/{TOKEN}"
    answer = requests.post(url, data=pushed(app_id), verify=str(certs.ca), timeout=30)
    return app_id, owner, answer


def test_a_push_to_the_wrong_shard_is_forwarded_over_https_and_counted_by_its_owner(
    start_exporter: Callable[..., ExporterProcess],
    simulator: Simulator,
    certs: Certs,
    tmp_path: Path,
) -> None:
    assert {shard_of(name, SHARDS) for name in ACCOUNTS} == {0, 1}
    shards, peers = start_shards(
        start_exporter, simulator, certs, tmp_path, {"ca_file": str(certs.ca)}
    )
    app_id, owner, answer = push_to_the_wrong_shard(peers, certs)
    assert (answer.status_code, answer.text) == (200, "success")
    counted = frozenset({("app_id", app_id), ("source", "push"), ("outcome", "counted")})
    assert samples(shards[owner], certs, "aivoice_call_records_total")[counted] == 1
    answers = samples(shards[owner], certs, "aivoice_push_requests_total")
    assert answers[frozenset({("code", "200"), ("sender", "peer")})] == 1
    forwards = samples(shards[1 - owner], certs, "aivoice_push_forwards_total")
    assert forwards[frozenset({("result", "success")})] == 1


def test_without_ca_file_the_forward_fails_verification_and_the_vendor_gets_503(
    start_exporter: Callable[..., ExporterProcess],
    simulator: Simulator,
    certs: Certs,
    tmp_path: Path,
) -> None:
    shards, peers = start_shards(start_exporter, simulator, certs, tmp_path, None)
    app_id, owner, answer = push_to_the_wrong_shard(peers, certs)
    assert answer.status_code == 503
    forwards = samples(shards[1 - owner], certs, "aivoice_push_forwards_total")
    assert forwards[frozenset({("result", "failure")})] == 1
    counted = frozenset({("app_id", app_id), ("source", "push"), ("outcome", "counted")})
    assert samples(shards[owner], certs, "aivoice_call_records_total")[counted] == 0
    logged = shards[1 - owner].wait_for_line("could not be forwarded to every replica").string
    assert "SSLCertVerificationError" in logged


def test_a_reload_with_an_unreadable_ca_file_keeps_forwarding_with_the_running_config(
    start_exporter: Callable[..., ExporterProcess],
    simulator: Simulator,
    certs: Certs,
    tmp_path: Path,
) -> None:
    ca = tmp_path / "peers-ca.pem"
    ca.write_bytes(certs.ca.read_bytes())
    shards, peers = start_shards(start_exporter, simulator, certs, tmp_path, {"ca_file": str(ca)})
    ca.unlink()
    for shard in shards:
        shard.popen.send_signal(signal.SIGHUP)
        shard.wait_for_line(r"Reload failed.*push\.peer_tls\.ca_file: cannot read CA file")
    _, _, answer = push_to_the_wrong_shard(peers, certs)
    assert (answer.status_code, answer.text) == (200, "success")


def test_insecure_skip_verify_is_warned_about(simulator: Simulator, tmp_path: Path) -> None:
    push = {
        "listen_address": "127.0.0.1:0",
        "token": TOKEN,
        "peers": ["https://127.0.0.1:1"],
        "peer_tls": {"insecure_skip_verify": True},
    }
    config = write_config(tmp_path / "c.yaml", config_for(simulator, push=push))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(config), "--config.check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "level=warning" in result.stderr
    assert "push.peer_tls.insecure_skip_verify is true" in result.stderr
