"""Reads one account's apps: the account's rate limit, retried requests, and task lists read
until they can be trusted; call records (recordQuery) are read window by window.

Transient failures (timeouts, connection errors, HTTP 5xx/429, answers that are not the
documented JSON) are retried with exponential backoff and full jitter; a `Retry-After` holds the
account's next request at least that long. The API's own status codes are answers, not
accidents, and are never retried. Each attempt is recorded once in the `RequestRecorder`, so
`aivoice_api_errors_total` counts every failed request exactly once.

A task list is read page 1 first, then the other pages side by side. Records move between pages
when a task is created or deleted meanwhile, which can silently skip one, so a read is trusted
only when every page reports the same `total` and the distinct `jobId`s number exactly that
total; otherwise the app is read again, up to `MAX_READS` times, and the best read is kept.

How pages are read is `paging`'s, what a read found is `reads`'. recordQuery shares the
signing, retries and recording (one `Endpoint` says what differs: URL, body, parser, label), not
the re-reads: the read plan looks at its windows again at the next poll and the ledger counts
each `callId` once. Its pages are read one after another from the calling thread, and give way
to task reads in the rate limit: call records are never what delays a task poll. Every attempt
is recorded under its endpoint.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial

from exporter.api.lines import LineList, channel_list_request, parse_channel_list
from exporter.api.paging import MAX_PAGES, Endpoint, PageT, Stopped, read_pages
from exporter.api.reads import CallRead, TaskRead, call_read, task_read
from exporter.api.records import (
    CallRecord,
    parse_record_page,
    record_query_request,
    window_text,
)
from exporter.api.stats import (
    CHANNEL_LIST,
    CONSISTENT,
    INCONSISTENT,
    RECORD_QUERY,
    REREAD,
    TASK_LIST,
    RequestRecorder,
)
from exporter.api.transport import Transport
from exporter.api.wire import Page, page_request, parse_page, sign_headers
from exporter.codes import INVALID_RESPONSE, POLL_TIMEOUT, PollError
from exporter.config.model import Account, ApiConfig
from exporter.process.workers import WorkerPool

# A short name, not the module's path: every log line carries it (`logger`), and filters match it.
log = logging.getLogger("exporter.client")

MAX_READS = 3  # One read and at most two re-reads of an app whose tasks moved meanwhile.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 10.0
RESERVED_SLOTS = 2  # Slots a task read may take early: see `RateLimiter`.


class RateLimiter:
    """Spaces requests evenly: the API publishes no limit, so stay politely below any.

    Two classes share the rate: task reads, and call-record reads (`low`). A low request takes
    a slot only when one is free now, never one in the future, so call reads never queue ahead
    of a task read; and a task read may take a slot up to `RESERVED_SLOTS` early, so it never
    waits behind one either. Over any stretch of time the requests stay within the rate, plus
    at most that many.
    """

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._next = clock()
        self._held_until = self._next  # A server's `Retry-After`: no class sends before it.

    def hold(self, seconds: float) -> None:
        """Send nothing more for `seconds` (a server's `Retry-After`)."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + seconds)
            self._next = max(self._next, self._held_until)

    def wait(
        self, stop: threading.Event, deadline: float = float("inf"), low: bool = False
    ) -> None:
        """Take the next slot; a slot past `deadline` is not taken and fails the poll."""
        early = 0.0 if low else RESERVED_SLOTS * self._interval
        while True:
            with self._lock:
                now = self._clock()
                slot = max(self._next - early, self._held_until, now)
                if slot > deadline:
                    raise PollError(
                        POLL_TIMEOUT, "the rate limit leaves no slot before the deadline"
                    )
                if not low or slot <= now:
                    self._next = max(self._next, now) + self._interval
                    break
            if stop.wait(slot - now):  # A low request waits without a slot, then tries again.
                raise Stopped
        if slot > now and stop.wait(slot - now):
            raise Stopped


class ApiClient:
    """Polls the taskList and recordQuery endpoints for one account's apps, and reads their
    lines (channelList), over a shared transport and pool."""

    def __init__(
        self,
        account: Account,
        api: ApiConfig,
        *,
        transport: Transport,
        pool: WorkerPool,
        recorder: RequestRecorder,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._account = account
        self._api = api
        self._transport = transport
        self._pool = pool
        self._recorder = recorder
        self._stop = stop
        self._clock = clock
        self._limiter = RateLimiter(api.max_requests_per_second)
        self._url = f"{api.base_url}/taskList"
        self._record_url = f"{api.base_url}/recordQuery"
        self._lines_url = f"{api.base_url}/channelList"

    def __repr__(self) -> str:
        return f"ApiClient({self._account!r}, url={self._url!r})"

    def read_tasks(self, app_id: str, deadline: float = float("inf")) -> TaskRead:
        """Every task of the app, each once; re-read while the pages disagree (bounded).

        `deadline` is a `time.monotonic()` moment: past it the read fails with `poll_timeout`.
        """
        best: TaskRead | None = None
        for attempt in range(1, MAX_READS + 1):
            read = task_read(read_pages(self._pool, app_id, self.fetch_page, deadline))
            if read.consistent:
                self._recorder.count_read(app_id, CONSISTENT)
                return read
            self._recorder.count_read(app_id, INCONSISTENT if attempt == MAX_READS else REREAD)
            log.debug("Reading the app again", extra={"app_id": app_id, "why": read.problem})
            if best is None or read.missing <= best.missing:
                best = read
        assert best is not None
        return best

    def read_calls(
        self,
        app_id: str,
        start: float,
        end: float,
        deadline: float = float("inf"),
        *,
        count_only: bool = False,
        size: int | None = None,
        enough: Callable[[Sequence[CallRecord]], bool] | None = None,
    ) -> CallRead:
        """The app's calls in the window from `start` to `end` (Unix seconds, whole seconds
        both included), every page read; with `count_only`, one request of size 1, for the
        window's `total`; with `enough`, pages of `size` until it is true of the records read.

        Pages shift while calls end, so a record may come twice or be missed; the read plan
        (exporter.calls.planner) checks the windows again at the next poll, so the pages are
        not read again.
        """
        zone = self._api.create_time_zone
        window = (window_text(start, zone), window_text(end, zone))
        size = 1 if count_only else size or self._api.page_size
        endpoint = Endpoint(
            RECORD_QUERY,
            self._record_url,
            lambda n: record_query_request(app_id, *window, n, size),
            partial(parse_record_page, app_id=app_id, zone=zone),
            low=True,
        )
        # One page after another, from the calling thread: a call-record read never holds the
        # request threads the task reads need, nor a slot of the rate limit they could use.
        pages = [self._fetch(endpoint, app_id, 1, deadline)]
        if count_only:
            return call_read(pages, whole=False)
        while len(pages) < min(max(page.pages for page in pages), MAX_PAGES):
            if enough is not None and enough([r for page in pages for r in page.records]):
                return call_read(pages, whole=False)
            pages.append(self._fetch(endpoint, app_id, len(pages) + 1, deadline))
        return call_read(pages)

    def read_lines(self, app_id: str, deadline: float = float("inf")) -> LineList:
        """The app's calling lines and their names (channelList: one request, no paging)."""
        endpoint = Endpoint(
            CHANNEL_LIST,
            self._lines_url,
            lambda _: channel_list_request(app_id),
            parse_channel_list,
        )
        return self._fetch(endpoint, app_id, 1, deadline)

    def fetch_page(self, app_id: str, current: int, deadline: float = float("inf")) -> Page:
        """One taskList page, retried with backoff while the failure is transient."""
        endpoint = Endpoint(
            TASK_LIST,
            self._url,
            lambda n: page_request(app_id, n, self._api.page_size, self._account.task_name),
            partial(parse_page, zone=self._api.create_time_zone),
        )
        return self._fetch(endpoint, app_id, current, deadline)

    def request(self, endpoint: Endpoint[PageT], key: str, deadline: float = float("inf")) -> PageT:
        """One unpaged request with this account's signing, rate limit and retries, counted
        under `key` (getBalance: the account's label, in the endpoint's own recorder)."""
        return self._fetch(endpoint, key, 1, deadline)

    def _fetch(
        self, endpoint: Endpoint[PageT], app_id: str, current: int, deadline: float
    ) -> PageT:
        """One page of any endpoint, retried with backoff while the failure is transient."""
        body = endpoint.body(current)
        for attempt in range(self._api.max_retries + 1):
            try:
                return self._attempt(endpoint, app_id, body, deadline)
            except PollError as err:
                if err.retry_after_seconds is not None:
                    self._limiter.hold(err.retry_after_seconds)
                if not err.transient or attempt == self._api.max_retries:
                    raise
                delay = random.uniform(
                    0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
                )
                log.debug(
                    "Retrying after a transient failure",
                    extra={
                        "app_id": app_id,
                        "endpoint": endpoint.name,
                        "code": err.code,
                        "retry_in_seconds": round(delay, 3),
                    },
                )
                if self._stop.wait(delay):
                    raise Stopped from err
        raise AssertionError("unreachable")

    def _attempt(
        self, endpoint: Endpoint[PageT], app_id: str, body: bytes, deadline: float
    ) -> PageT:
        self._limiter.wait(self._stop, deadline, low=endpoint.low)
        if self._stop.is_set():
            raise Stopped
        headers = sign_headers(self._account.api_key, self._account.api_secret, self._clock())
        started = time.perf_counter()
        error: str | None = None
        try:
            return endpoint.parse(
                self._transport.send(endpoint.method, endpoint.url, headers, body)
            )
        except PollError as err:
            error = err.code
            raise
        except Exception as err:  # Never seen, but one odd answer must fail this app only.
            error = INVALID_RESPONSE
            raise PollError(INVALID_RESPONSE, f"unexpected {type(err).__name__}") from err
        finally:
            (endpoint.recorder or self._recorder).observe(
                app_id, time.perf_counter() - started, error, endpoint=endpoint.name
            )
