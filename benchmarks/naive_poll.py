"""The benchmark's poll baseline: one poll as a naive script makes it, and its CPU.

Each app's task list, page by page, one request at a time, with `requests` and its `json`
decoding: nothing is checked, kept beyond the list of records, or rendered. What the script
costs is then the poll itself, the yardstick the exporter's poll (which also checks every value
and renders) is held to.

    python benchmarks/naive_poll.py --base-url URL --api-key K --api-secret S --app-ids A,B
        [--page-size 100] [--polls 1]

It prints one line per poll: `cpu SECONDS records N` (process CPU, start-up and imports left
out).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from typing import Any

import requests


def fetch(session: requests.Session, args: argparse.Namespace, app: str) -> list[Any]:
    records: list[Any] = []
    page, pages = 1, 1
    while page <= pages:
        timestamp = str(int(time.time()))
        sign = hashlib.md5((args.api_key + args.api_secret + timestamp).encode()).hexdigest()
        response = session.post(
            args.base_url.rstrip("/") + "/taskList",
            json={"current": page, "size": args.page_size, "params": {"appId": app}},
            headers={"Api-Key": args.api_key, "Timestamp": timestamp, "Sign": sign},
            timeout=30,
        )
        data = response.json()["data"]
        records.extend(data["records"])
        pages = data["pages"]
        page += 1
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--api-secret", required=True)
    parser.add_argument("--app-ids", required=True, help="Comma-separated.")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--polls", type=int, default=1)
    args = parser.parse_args()
    session = requests.Session()
    for _ in range(args.polls):
        started = time.process_time()
        fetched = {app: fetch(session, args, app) for app in args.app_ids.split(",")}
        cpu = time.process_time() - started
        print(f"cpu {cpu:.4f} records {sum(map(len, fetched.values()))}", flush=True)
        del fetched


if __name__ == "__main__":
    main()
