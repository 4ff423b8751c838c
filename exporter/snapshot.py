"""Immutable records that pass from the poller's threads to the HTTP server's.

Nothing here is ever changed after it is built: a new poll builds a new `Snapshot` and swaps it
in whole, so a scrape can never see half of one poll and half of another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

KNOWN_STATUSES = (
    "NOT_STARTED",
    "IN_QUEUE",
    "RUNNABLE",
    "IN_PROCESS",
    "USER_PAUSE",
    "SYSTEM_SUSPENDED",
    "TERMINATE",
    "COMPLETED",
)


@dataclass(frozen=True, slots=True)
class Task:
    """One campaign as the taskList endpoint describes it."""

    job_id: str
    name: str
    status: str
    calls: int
    calls_completed: int
    robots: int
    mode: str
    dialog_flow: str
    line: str
    hangup_sms: bool
    dialog_flow_unbound: bool
    created_seconds: float | None


@dataclass(frozen=True)
class AppSnapshot:
    """The latest that is known of one app.

    `tasks` is None when there is nothing fit to serve: no poll has succeeded yet, or the last
    success is older than `poll.stale_after_seconds`.
    """

    app_id: str
    up: bool
    tasks: tuple[Task, ...] | None
    poll_duration_seconds: float
    last_success_seconds: float | None


@dataclass(frozen=True)
class EndpointStats:
    """Cumulative counts of one app's requests to one API endpoint since the exporter started."""

    requests: int = 0
    errors: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    duration_buckets: tuple[int, ...] = ()
    duration_sum: float = 0.0


@dataclass(frozen=True)
class RequestStats:
    """Cumulative counts of one app's API requests, per endpoint (`taskList`, `recordQuery`)."""

    endpoints: Mapping[str, EndpointStats] = field(default_factory=lambda: MappingProxyType({}))
    # Reads of the app's task list by outcome: consistent, reread, inconsistent.
    reads: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Snapshot:
    """What the exporter knows now: each polled app's latest outcome and the request counts.

    Apps are published one by one as their polls end, so an app that has not finished its
    first poll is absent, and `ready` is False until every configured app has been polled.
    """

    apps: tuple[AppSnapshot, ...]
    requests: Mapping[str, RequestStats]
    ready: bool = True
