"""`--demo`: the built-in simulator on a free loopback port, and a config aimed at it.

The balance is read every 10 seconds and falls by each call's cost. Call outcomes are on both
ways: recordQuery is polled, and the simulator pushes each call to a push listener on a free
loopback port (`connect_push` once the listener is up).
"""

from __future__ import annotations

import logging
import secrets

from exporter.config.model import (
    Account,
    ApiConfig,
    BalanceConfig,
    CallsConfig,
    Config,
    PollConfig,
    PushConfig,
)
from exporter.simulator import Simulator
from exporter.simulator.lines import Degrade

log = logging.getLogger(__name__)

DEMO_APPS = ("demo-sales", "demo-support", "demo-survey")
_KEY, _SECRET = "demo-key", "demo-secret"


# Campaigns move five times as fast, so tasks visibly progress between two scrapes, at the
# volume of an account: each app ends one to three calls a second (DEMO_CALL_RATE scales the
# simulator's busy default of 23 to 29). As a real API may, it shows 3% of the calls 5 to 40 s
# late, which the read plan finds in the older part of the lookback (docs/operations.md,
# "Sizing"); the lookback is kept just past the longest call (11 minutes, 132 s at this speed)
# plus a poll interval, and polls come every 15 s as Prometheus scrapes.
# After a few minutes one line of the first app degrades: its answer rate falls to a third of
# the others', for the dashboard's "Lines" row and the status page to show.
DEMO_SPEED = 5.0
DEMO_CALL_RATE = 0.05
DEMO_DEGRADE = Degrade("demo-sales", line=0, after=4 * 60 * DEMO_SPEED, answered_share=1 / 3)
DEMO_POLL = PollConfig(interval_seconds=15, stale_after_seconds=120, timeout_seconds=30)
DEMO_CALLS = CallsConfig(enabled=True, lookback_seconds=180)


def start_demo() -> tuple[Simulator, Config]:
    """A running simulator whose campaigns move five times as fast, and the config to poll it."""
    simulator = Simulator(
        _KEY,
        _SECRET,
        DEMO_APPS,
        speed=DEMO_SPEED,
        call_rate=DEMO_CALL_RATE,
        degrade=DEMO_DEGRADE,
        report_lags=True,
    ).start("127.0.0.1", 0)
    config = Config(
        accounts=(Account(_KEY, _SECRET, DEMO_APPS),),
        api=ApiConfig(base_url=simulator.base_url, max_requests_per_second=100),
        poll=DEMO_POLL,
        calls=DEMO_CALLS,
        push=PushConfig(listen_address="127.0.0.1:0", token=secrets.token_urlsafe(24)),
        # The balance falls as the demo's calls end: read it often enough to watch it move.
        balance=BalanceConfig(enabled=True, interval_seconds=10),
    )
    log.info("Demo simulator started", extra={"base_url": simulator.base_url})
    return simulator, config


def connect_push(simulator: Simulator, config: Config, address: tuple[str, int]) -> None:
    """Point the simulator's push at the exporter's push listener, now that it listens.

    Over plain HTTP only: the simulator could not trust a `--web.config.file` certificate.
    """
    host, port = address
    simulator.start_push(f"http://{host}:{port}/push/call-record/{config.push.token}")
