"""The benchmark's baseline: the exporter as a first version would write it, in one small file.

It pages through each app's task list, one request at a time, with `requests`, sets labelled
client_python `Gauge`s (cleared first, so a task that disappears disappears), and serves them
with `start_http_server`, which renders the whole registry at every scrape. It exports the same
per-task and per-status families as the exporter, plus client_python's process metrics.

    python benchmarks/naive_exporter.py --base-url URL --api-key K --api-secret S --app-ids A,B
        [--interval-seconds 10] [--page-size 100]

It prints `listening on PORT` once it serves. It is a yardstick, not a product: no retries,
no error accounting, no escaping worries beyond what client_python does.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
from naive_poll import fetch  # The same requests, page by page: the script beside this one.
from prometheus_client import CollectorRegistry, Gauge, ProcessCollector, start_http_server

ZONE = timezone(timedelta(hours=8))
JOB = ["app_id", "job_id"]
INFO_LABELS = [
    *JOB,
    *("name", "status", "mode", "dialog_flow", "line", "hangup_sms", "dialog_flow_unbound"),
]


class NaiveExporter:
    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, labels: list[str]) -> Gauge:
            return Gauge(name, name.replace("_", " "), labels, registry=registry)

        self.up = gauge("aivoice_up", ["app_id"])
        self.last_success = gauge("aivoice_poll_last_success_timestamp_seconds", ["app_id"])
        self.tasks = gauge("aivoice_tasks", ["app_id", "status"])
        self.calls = gauge("aivoice_calls", ["app_id", "status"])
        self.completed = gauge("aivoice_calls_completed", ["app_id", "status"])
        self.task_calls = gauge("aivoice_task_calls", JOB)
        self.task_completed = gauge("aivoice_task_calls_completed", JOB)
        self.task_robots = gauge("aivoice_task_robots", JOB)
        self.task_created = gauge("aivoice_task_created_timestamp_seconds", JOB)
        self.task_info = gauge("aivoice_task_info", INFO_LABELS)
        self.per_task = (
            self.tasks,
            self.calls,
            self.completed,
            self.task_calls,
            self.task_completed,
            self.task_robots,
            self.task_created,
            self.task_info,
        )

    def poll(self, session: requests.Session, args: argparse.Namespace) -> None:
        fetched = {app: fetch(session, args, app) for app in args.app_ids.split(",")}
        for gauge in self.per_task:
            gauge.clear()
        for app, records in fetched.items():
            self.update(app, records)

    def update(self, app: str, records: list[Any]) -> None:
        for record in records:
            job = [app, str(record["jobId"])]
            self.task_calls.labels(*job).set(record["taskTotal"])
            self.task_completed.labels(*job).set(record["taskCompleted"])
            self.task_robots.labels(*job).set(record["robotCount"])
            created = datetime.strptime(record["createTime"], "%Y-%m-%d %H:%M:%S")
            self.task_created.labels(*job).set(created.replace(tzinfo=ZONE).timestamp())
            self.task_info.labels(
                *job,
                record["name"],
                record["status"],
                record["mode"],
                record["dialogFlowName"],
                record["jobPhoneNumberName"],
                str(record["hangupSms"]).lower(),
                str(record["isDialogFlowUnbind"]).lower(),
            ).set(1)
            self.tasks.labels(app, record["status"]).inc()
            self.calls.labels(app, record["status"]).inc(record["taskTotal"])
            self.completed.labels(app, record["status"]).inc(record["taskCompleted"])
        self.up.labels(app).set(1)
        self.last_success.labels(app).set(time.time())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--api-secret", required=True)
    parser.add_argument("--app-ids", required=True, help="Comma-separated.")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--interval-seconds", type=float, default=10.0)
    args = parser.parse_args()
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    exporter = NaiveExporter(registry)
    server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    print(f"listening on {server.server_address[1]}", flush=True)
    session = requests.Session()
    started = time.monotonic()
    rounds = 0
    while True:
        exporter.poll(session, args)
        rounds = max(rounds + 1, int((time.monotonic() - started) // args.interval_seconds) + 1)
        time.sleep(max(0.0, started + rounds * args.interval_seconds - time.monotonic()))


if __name__ == "__main__":
    main()
