"""Cumulative request statistics: the source of the exporter's counters and latency histogram.

The client records every attempt here as it happens (retries included), under the endpoint it
went to; the poller takes an immutable copy when it builds a snapshot. Counts survive config
reloads because one recorder lives as long as the daemon.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from exporter.codes import (
    BALANCE_CODES,
    CHANNEL_LIST_CODES,
    OTHER,
    TASK_LIST_CODES,
    TRANSPORT_CODES,
)
from exporter.snapshot import EndpointStats, RequestStats

# Seconds; the SDK's own timeout is 15 s, so the top buckets reach past it.
DURATION_BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
INITIAL_ERROR_CODES = TASK_LIST_CODES + TRANSPORT_CODES
# Codes beyond the initial ones that get a series of their own; later ones count as `other`.
MAX_EXTRA_CODES = 20
_MAX_CODES = len(INITIAL_ERROR_CODES) + MAX_EXTRA_CODES

# How a read of an app's task list went (`aivoice_poll_reads_total{app_id,result}`).
CONSISTENT = "consistent"
REREAD = "reread"
INCONSISTENT = "inconsistent"
READ_RESULTS = (CONSISTENT, REREAD, INCONSISTENT)

# The API endpoints requests go to (the `endpoint` label of the request families).
TASK_LIST = "taskList"
RECORD_QUERY = "recordQuery"
CHANNEL_LIST = "channelList"  # The app's lines and their names.
# The account's balance: counted per account (the `account` label), not per app.
GET_BALANCE = "getBalance"
ENDPOINTS = (TASK_LIST, RECORD_QUERY, CHANNEL_LIST, GET_BALANCE)
# getBalance answers with the SMS API's codes (exporter/codes.py), so its own start at zero;
# channelList documents a list of its own.
_INITIAL_CODES = {
    GET_BALANCE: BALANCE_CODES + TRANSPORT_CODES,
    CHANNEL_LIST: CHANNEL_LIST_CODES + TRANSPORT_CODES,
}


class _EndpointCounts:
    __slots__ = ("buckets", "duration_sum", "errors", "requests")

    def __init__(self, initial: tuple[str, ...] = INITIAL_ERROR_CODES) -> None:
        self.requests = 0
        self.errors = dict.fromkeys(initial, 0)
        self.buckets = [0] * (len(DURATION_BOUNDS) + 1)
        self.duration_sum = 0.0

    def count_error(self, code: str) -> None:
        if code not in self.errors and len(self.errors) >= _MAX_CODES:
            code = OTHER
        self.errors[code] = self.errors.get(code, 0) + 1


class _AppCounts:
    __slots__ = ("endpoints", "reads", "shown")

    def __init__(self) -> None:
        self.endpoints: dict[str, _EndpointCounts] = {}
        self.reads = dict.fromkeys(READ_RESULTS, 0)
        # The endpoints the config polls now; None until `track` says (then all are shown).
        self.shown: frozenset[str] | None = None

    def endpoint(self, name: str) -> _EndpointCounts:
        if name not in ENDPOINTS:  # Label values come from this module, never from outside.
            raise ValueError(f"unknown endpoint {name!r}")
        if name not in self.endpoints:
            self.endpoints[name] = _EndpointCounts(_INITIAL_CODES.get(name, INITIAL_ERROR_CODES))
        return self.endpoints[name]


class RequestRecorder:
    """Thread-safe accumulator of every API request's outcome, per app and endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._apps: dict[str, _AppCounts] = {}

    def track(self, app_ids: Iterable[str], endpoints: Iterable[str]) -> None:
        """These apps are polled at exactly these endpoints: their series start at zero, so the
        first error shows in increase(). An endpoint tracked before and not now (recordQuery
        turned off by a reload) leaves the snapshots, but keeps its counts should it return."""
        shown = frozenset(endpoints)
        with self._lock:
            for app_id in app_ids:
                counts = self._apps.setdefault(app_id, _AppCounts())
                counts.shown = shown
                for endpoint in shown:
                    counts.endpoint(endpoint)

    def observe(
        self,
        app_id: str,
        duration_seconds: float,
        error_code: str | None,
        endpoint: str = TASK_LIST,
    ) -> None:
        with self._lock:
            counts = self._apps.setdefault(app_id, _AppCounts()).endpoint(endpoint)
            counts.requests += 1
            counts.buckets[bisect.bisect_left(DURATION_BOUNDS, duration_seconds)] += 1
            counts.duration_sum += duration_seconds
            if error_code is not None:
                counts.count_error(error_code)

    def count_read(self, app_id: str, result: str) -> None:
        with self._lock:
            self._apps.setdefault(app_id, _AppCounts()).reads[result] += 1

    def snapshot(self, app_ids: Iterable[str]) -> Mapping[str, RequestStats]:
        """Immutable copies for the given apps (apps removed by a reload are left out)."""
        with self._lock:
            copies = {
                app_id: _freeze(self._apps[app_id]) for app_id in app_ids if app_id in self._apps
            }
        return MappingProxyType(copies)


def _freeze(counts: _AppCounts) -> RequestStats:
    endpoints = {
        name: _freeze_endpoint(endpoint)
        for name, endpoint in counts.endpoints.items()
        if counts.shown is None or name in counts.shown
    }
    return RequestStats(
        endpoints=MappingProxyType(endpoints), reads=MappingProxyType(dict(counts.reads))
    )


def _freeze_endpoint(counts: _EndpointCounts) -> EndpointStats:
    cumulative, running = [], 0
    for count in counts.buckets:
        running += count
        cumulative.append(running)
    return EndpointStats(
        requests=counts.requests,
        errors=MappingProxyType(dict(counts.errors)),
        duration_buckets=tuple(cumulative),
        duration_sum=counts.duration_sum,
    )
