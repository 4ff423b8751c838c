"""``python -m exporter.simulator``: serve one account until SIGTERM or SIGINT.

The compose file and the system tests run it as a process of its own; ``--demo`` starts a
``Simulator`` in the exporter's process instead.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

from exporter.process.listen import parse_listen_address
from exporter.simulator.simulator import Simulator


def _listen_address(value: str) -> tuple[str, int]:
    try:
        return parse_listen_address(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _app_ids(value: str) -> list[str]:
    ids = [part.strip() for part in value.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("expected comma-separated app ids")
    return ids


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m exporter.simulator",
        description=(
            "Simulate the ITNIO AI-voice taskList and recordQuery API and the call-record push"
            " (a test tool: bind to loopback)."
        ),
    )
    parser.add_argument("--listen-address", type=_listen_address, default="127.0.0.1:8080")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--api-secret", required=True)
    parser.add_argument("--app-ids", type=_app_ids, required=True, help="comma-separated")
    parser.add_argument("--tasks-per-app", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--page-size", type=int, default=None, help="answer this size always")
    parser.add_argument("--speed", type=float, default=1.0, help="campaign time multiplier")
    parser.add_argument(
        "--push-url",
        default=None,
        help="POST each call here as it ends (several, comma-separated: each to one at random)",
    )
    parser.add_argument(
        "--push-duplicate-ratio", type=float, default=0.05, help="share of calls pushed twice"
    )
    parser.add_argument(
        "--push-retry-delay", type=float, default=30.0, help="seconds before a failed push retries"
    )
    parser.add_argument(
        "--select-by",
        choices=("start", "end"),
        default="start",
        help="which time of a call a recordQuery window selects by",
    )
    parser.add_argument(
        "--report-lags",
        action="store_true",
        help="show calls in recordQuery after a lag: most within a second, 3%% 5-40 s late",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then exit 0."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    stopping: list[int] = []

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)  # nothing that takes a lock: this runs between bytecodes

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        simulator = Simulator(
            args.api_key,
            args.api_secret,
            args.app_ids,
            tasks_per_app=args.tasks_per_app,
            seed=args.seed,
            server_page_size=args.page_size,
            speed=args.speed,
            push_url=args.push_url,
            push_duplicate_ratio=args.push_duplicate_ratio,
            push_retry_delay=args.push_retry_delay,
            select_by=args.select_by,
            report_lags=args.report_lags,
        ).start(*args.listen_address)
    except (OSError, ValueError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 1
    print(f"listening on {simulator.base_url}", flush=True)
    try:
        while not stopping:
            time.sleep(0.1)
    finally:
        simulator.stop()
    return 0
