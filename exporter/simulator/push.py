"""The call-record push: one background thread that POSTs each call as it ends.

As the vendor does (docs/api.md): one JSON record a request, only ``Content-Type:
application/json``, no signature. A delivery is an HTTP 200 whose body is ``success``; anything
else (another status, another body, a refused or timed-out connection) is tried again
``retry_delay`` seconds later, up to ``max_attempts`` tries in all. After a delivery, a seeded
``duplicate_ratio`` of the calls are pushed once more, as the vendor's own retries can do.
``url`` may list several URLs, separated by commas, as the replicas behind one Service: each
try goes to one of them, picked at random from the seed.
The queue is bounded: calls that end while it is full are dropped and counted.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

PUSH_STATS_KEYS = (
    "push_sent",
    "push_delivered",
    "push_retried",
    "push_duplicated",
    "push_failed",
    "push_dropped",
    "push_pending",
)
_MAX_ANSWER_BYTES = 1024


@dataclass(frozen=True)
class PushSettings:
    """How the push behaves; the defaults suit tests on loopback."""

    url: str
    max_attempts: int = 3
    retry_delay: float = 0.2
    duplicate_ratio: float = 0.05
    queue_size: int = 10_000
    timeout: float = 5.0
    tick: float = 0.05

    def __post_init__(self) -> None:
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"push_url: must be an http(s) URL, got {url!r}")
        if self.max_attempts < 1:
            raise ValueError("push_max_attempts: must be >= 1")
        if not 0.0 <= self.duplicate_ratio <= 1.0:
            raise ValueError("push_duplicate_ratio: must be in [0, 1]")
        if self.retry_delay < 0 or self.timeout <= 0 or self.tick <= 0 or self.queue_size < 1:
            raise ValueError("push: delays >= 0, timeout, tick and queue size > 0")

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(url.strip() for url in self.url.split(","))


@dataclass(frozen=True)
class _Item:
    body: bytes
    attempt: int  # tries made so far
    due: float  # time.monotonic() of the next try
    duplicate: bool


class Pusher:
    """Collects the calls that ended since its last look and pushes them.

    ``collect(limit)`` returns at most ``limit`` push records and how many more calls ended
    (dropped: the queue has no room for them).
    """

    def __init__(
        self,
        settings: PushSettings,
        collect: Callable[[int], tuple[list[dict[str, Any]], int]],
        seed: int,
    ) -> None:
        self._settings = settings
        self._collect = collect
        self._rng = random.Random(f"{seed}:push")
        self._targets = random.Random(
            f"{seed}:push-target"
        )  # Its own: duplicates stay as they were.
        self._urls = settings.urls
        self._queue: deque[_Item] = deque()
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(PUSH_STATS_KEYS[:-1], 0)
        self._pending = 0  # queued, or being sent
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aivoice-push", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the request in flight (at most ``timeout``); queued calls are dropped."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._settings.timeout + 5)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**self._counts, "push_pending": self._pending}

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _run(self) -> None:
        while not self._stopping.wait(self._settings.tick):
            records, more = self._collect(self._settings.queue_size - len(self._queue))
            with self._lock:
                self._pending = len(self._queue) + len(records)
                self._counts["push_dropped"] += more
            for record in records:
                self._enqueue(_Item(json.dumps(record).encode(), 0, 0.0, False))
            self._send_due()
            with self._lock:
                self._pending = len(self._queue)

    def _enqueue(self, item: _Item) -> None:
        if len(self._queue) >= self._settings.queue_size:
            self._count("push_dropped")
            return
        self._queue.append(item)

    def _send_due(self) -> None:
        for _ in range(len(self._queue)):
            if self._stopping.is_set():
                return
            item = self._queue.popleft()
            if item.due > time.monotonic():
                self._queue.append(item)
                continue
            self._send(item)

    def _send(self, item: _Item) -> None:
        self._count("push_sent")
        if item.attempt > 0:
            self._count("push_retried")
        elif item.duplicate:
            self._count("push_duplicated")
        if self._post(item.body):
            if not item.duplicate:
                self._count("push_delivered")
                if self._rng.random() < self._settings.duplicate_ratio:
                    self._enqueue(_Item(item.body, 0, self._later(), True))
            return
        if item.attempt + 1 >= self._settings.max_attempts:
            self._count("push_failed")
            return
        self._enqueue(_Item(item.body, item.attempt + 1, self._later(), item.duplicate))

    def _later(self) -> float:
        return time.monotonic() + self._settings.retry_delay

    def _post(self, body: bytes) -> bool:
        """One POST; True if answered 200 ``success``."""
        parts = urlsplit(self._targets.choice(self._urls))
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(
            parts.hostname or "", parts.port, timeout=self._settings.timeout
        )
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read(_MAX_ANSWER_BYTES)
        except (OSError, http.client.HTTPException) as exc:
            log.debug("push failed: %s", type(exc).__name__)
            return False
        finally:
            connection.close()
        return response.status == 200 and answer.strip() == b"success"
