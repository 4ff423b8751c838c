"""Real Prometheus for the system tests: started on a free loopback port with the config a test
writes, asked over its HTTP API, and the dashboard's queries written as Grafana sends them.

A query that Prometheus refuses fails the test with Prometheus' own message; everything that
waits (readiness, a rule's first evaluation, a panel's first data) polls with a deadline.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support.processes import Process
from tests.support.tools import free_port, wait_until

# Bounds for a two-core machine that runs the rest of the suite too: they only matter when
# what is waited for never comes.
STARTUP_TIMEOUT = 120.0
DATA_TIMEOUT = 180.0
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """`wait_until` for checks that talk to a program still starting up."""
    return wait_until(
        check, timeout, interval=0.25, ignoring=(requests.RequestException,), what=what
    )


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """The dashboard's variables replaced as Grafana would; an unknown one is an error."""
    return _VARIABLE.sub(lambda m: variables[m.group(1) or m.group(2)], expr)


def wait_ready(process: Process, url: str) -> None:
    """Until `url`/-/ready answers 200 (Prometheus, Alertmanager); fails with the log if the
    process exits first."""

    def ready() -> bool:
        if process.popen.poll() is not None:
            raise AssertionError(f"{process.name} exited:\n{process.log()}")
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200

    wait_for(ready, STARTUP_TIMEOUT, f"{process.name} to be ready")


@dataclass(frozen=True)
class PrometheusAPI:
    """The HTTP API of one Prometheus server."""

    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; a PromQL error fails with Prometheus' message."""
        response = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (promql, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def query_range(self, promql: str, seconds: int = 60) -> list[dict[str, Any]]:
        end = time.time()
        response = requests.get(
            f"{self.url}/api/v1/query_range",
            params={"query": promql, "start": end - seconds, "end": end, "step": 1},
            timeout=10,
        )
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (promql, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def label_values(self, label: str, selector: str) -> set[str]:
        response = requests.get(
            f"{self.url}/api/v1/label/{label}/values", params={"match[]": selector}, timeout=10
        )
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (selector, body)
        return set(body["data"])

    def evaluated_rules(self) -> list[dict[str, Any]]:
        """Every rule of every group, once each has been evaluated at least once (to wait on:
        empty until then)."""
        response = requests.get(f"{self.url}/api/v1/rules", timeout=10)
        found = [r for g in response.json()["data"]["groups"] for r in g["rules"]]
        done = found and all(r.get("lastEvaluation", "").startswith("2") for r in found)
        return found if done else []

    def without_data(self, queries: Mapping[str, str], timeout: float) -> dict[str, str]:
        """The queries (name -> PromQL) still empty when `timeout` runs out: rates need a few
        scrapes, so all of them share one deadline."""
        pending = dict(queries)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            pending = {name: promql for name, promql in pending.items() if not self.query(promql)}
            time.sleep(0.5 if pending else 0)
        return pending


def start_prometheus(
    binary: str, work: Path, config: dict[str, Any]
) -> tuple[Process, PrometheusAPI]:
    """Prometheus (`binary`, from `require_tool` before anything starts) with `config`,
    written to `work`/prometheus.yml (rule files are read relative to it), on a free loopback
    port. Not waited for: register the process for cleanup, then `wait_ready`."""
    (work / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    process = Process.start(
        "prometheus",
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        cwd=work,
    )
    return process, PrometheusAPI(f"http://127.0.0.1:{port}")
