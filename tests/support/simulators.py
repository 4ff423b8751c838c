"""Simulators a test starts with any options, all stopped when it ends."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from exporter.simulator import Simulator

MakeSim = Callable[..., Simulator]


@contextlib.contextmanager
def simulators(key: str, secret: str, apps: Sequence[str], **defaults: Any) -> Iterator[MakeSim]:
    """A factory of simulators on 127.0.0.1 and a free port, serving `apps` with `defaults`
    unless a call says otherwise; every one it started is stopped on leaving."""
    started: list[Simulator] = []

    def make(**options: Any) -> Simulator:
        sim = Simulator(key, secret, **{"app_ids": apps, **defaults, **options})
        started.append(sim.start("127.0.0.1", 0))
        return sim

    try:
        yield make
    finally:
        for sim in started:
            sim.stop()
