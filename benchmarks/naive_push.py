"""The baseline for the push benchmark: the call-record receiver one writes in ten minutes.

A `ThreadingHTTPServer` that reads the body, `json.loads` it whole (personal data and all),
checks nothing, counts the result in a labelled client_python Counter and answers `success`.
No token, no de-duplication, no bounds: what `bench_calls.py` compares the exporter's listener
with. Serves `/metrics` too, so it is a whole (naive) exporter.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, generate_latest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    registry = CollectorRegistry()
    results = Counter(
        "naive_call_results", "Calls by result", ["app_id", "result"], registry=registry
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            record = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            results.labels(record["appId"], record["resultStatus"]).inc()
            self._answer(b"success")

        def do_GET(self) -> None:
            self._answer(generate_latest(registry))

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
