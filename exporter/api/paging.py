"""Reading every page of a paged endpoint: page 1 first, then the rest side by side.

What differs between the endpoints (taskList and recordQuery, paged; getBalance, one GET) is
one `Endpoint`: where and how to send, what to send for page n, how to read the answer, and the
label (and recorder) its requests count under.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from functools import partial
from typing import Generic, Protocol, TypeVar

from exporter.api.stats import RequestRecorder
from exporter.codes import POLL_TIMEOUT, PollError
from exporter.process.workers import WorkerPool

MAX_PAGES = 1000  # 100,000 tasks at the largest page size: beyond that, something is wrong.


class Stopped(Exception):
    """The daemon is shutting down; abandon the poll."""


class Paged(Protocol):
    @property
    def pages(self) -> int: ...


PageT = TypeVar("PageT", bound=Paged)
Fetch = Callable[[str, int, float], PageT]  # (app_id, page number, deadline) -> page


@dataclass(frozen=True)
class Endpoint(Generic[PageT]):
    """What differs between the endpoints: where, what to send for page n, how to read it."""

    name: str  # The `endpoint` label its requests are counted under.
    url: str
    body: Callable[[int], bytes]
    parse: Callable[[bytes], PageT]
    method: str = "POST"
    recorder: RequestRecorder | None = None  # Where its requests count; None: the client's.
    low: bool = False  # Its requests give way to the others' in the rate limit (call records).


def read_pages(pool: WorkerPool, app_id: str, fetch: Fetch[PageT], deadline: float) -> list[PageT]:
    """Page 1, then the rest side by side on the pool; more if the page count grew.

    Every request goes through the pool, so `poll.concurrency` bounds them all; past `deadline`
    (a `time.monotonic()` moment) the read fails with `poll_timeout`.
    """
    pages: dict[int, PageT] = {}
    wanted = 1
    while len(pages) < wanted:
        numbers = [n for n in range(1, wanted + 1) if n not in pages]
        futures = [pool.submit(partial(fetch, app_id, n, deadline), key=app_id) for n in numbers]
        pages.update(zip(numbers, _results(futures, deadline), strict=True))
        wanted = min(max(page.pages for page in pages.values()), MAX_PAGES)
    return [pages[n] for n in sorted(pages)]


def _results(futures: Sequence[Future[PageT]], deadline: float) -> list[PageT]:
    """Each future's page in order; on the first failure or at the deadline the rest is dropped."""
    try:
        return [future.result(timeout=_seconds_until(deadline)) for future in futures]
    except FutureTimeout:
        raise PollError(POLL_TIMEOUT, "pages still outstanding at the deadline") from None
    except CancelledError:  # The pool was closed under us: the daemon is stopping.
        raise Stopped from None
    finally:
        for future in futures:
            future.cancel()  # Only those not started yet: nothing is sent for them.


def _seconds_until(deadline: float) -> float | None:
    """What is left until `deadline`, or None (wait for ever) when there is none."""
    return None if deadline == float("inf") else max(deadline - time.monotonic(), 0.0)
