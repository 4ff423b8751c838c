"""The aivoice API client: signed requests, retries for transient failures, and paging.

Every request carries a fresh `Timestamp` and `Sign = md5(apiKey + apiSecret + Timestamp)`, as the
vendor's samples do. Transient failures (timeouts, connection errors, HTTP 5xx/429, answers that
are not the documented JSON) are retried with exponential backoff and full jitter; the API's own
status codes are answers, not accidents, and are never retried. Each attempt is recorded once in
the `RequestRecorder`, so `aivoice_api_errors_total` counts every failed request exactly once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import urllib3

from exporter import __version__
from exporter.codes import CONNECTION, INVALID_RESPONSE, TIMEOUT, explain
from exporter.config import Account, ApiConfig
from exporter.snapshot import Task
from exporter.stats import RequestRecorder

log = logging.getLogger(__name__)

MAX_PAGES = 1000  # 100,000 tasks at the largest page size: beyond that, something is wrong.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 10.0
_CREATE_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")

T = TypeVar("T")
R = TypeVar("R")


class PollError(Exception):
    """A request that failed for good; `code` is the `aivoice_api_errors_total` label value."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {explain(code)}" + (f" ({detail})" if detail else ""))
        self.code = code
        self.detail = detail

    @property
    def transient(self) -> bool:
        """Worth another try: the failure says nothing about the request itself."""
        if self.code in (TIMEOUT, CONNECTION, INVALID_RESPONSE):
            return True
        return self.code == "http_429" or self.code.startswith("http_5")


class Stopped(Exception):
    """The daemon is shutting down; abandon the poll."""


@dataclass(frozen=True)
class Page:
    tasks: tuple[Task, ...]
    pages: int
    total: int


def sign_headers(api_key: str, api_secret: str, now: float) -> dict[str, str]:
    timestamp = str(int(now))
    sign = hashlib.md5((api_key + api_secret + timestamp).encode("utf-8")).hexdigest()
    return {
        "Content-Type": "application/json;charset=UTF-8",
        "Api-Key": api_key,
        "Timestamp": timestamp,
        "Sign": sign,
    }


def parse_page(body: bytes, zone: dt.tzinfo) -> Page:
    """Read one taskList answer; raises `PollError` and nothing else.

    The API's own failures come back as HTTP 200 with a non-zero `status`; anything that is not
    the documented shape is `invalid_response`. Paging figures are taken from the answer, since
    the server may use another page size than the one asked for.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise PollError(INVALID_RESPONSE, "not JSON") from None
    if not isinstance(document, dict) or "status" not in document:
        raise PollError(INVALID_RESPONSE, "no status field")
    status = document["status"]
    if isinstance(status, bool) or not isinstance(status, (str, int)):
        raise PollError(INVALID_RESPONSE, f"status is {type(status).__name__}")
    if str(status).strip() != "0":
        reason = document.get("reason")
        raise PollError(str(status).strip(), reason if isinstance(reason, str) else "")
    data = document.get("data")
    if not isinstance(data, dict):
        raise PollError(INVALID_RESPONSE, "no data object")
    records = data.get("records") or []
    if not isinstance(records, list):
        raise PollError(INVALID_RESPONSE, "records is not a list")
    tasks = tuple(_task(record, zone) for record in records)
    total = _count(data.get("total", len(tasks)), "total")
    size = _count(data.get("size", len(tasks)), "size")
    pages = data.get("pages")
    if pages is None:
        pages = -(-total // size) if size else 1
    return Page(tasks=tasks, pages=max(_count(pages, "pages"), 1), total=total)


def _task(record: Any, zone: dt.tzinfo) -> Task:
    if not isinstance(record, dict):
        raise PollError(INVALID_RESPONSE, "a record is not an object")
    job_id = record.get("jobId")
    if isinstance(job_id, bool) or not isinstance(job_id, (int, str)) or str(job_id).strip() == "":
        raise PollError(INVALID_RESPONSE, "a record has no jobId")
    return Task(
        job_id=_text(str(job_id).strip()),
        name=_text(record.get("name")),
        status=_text(record.get("status")) or "UNKNOWN",
        calls=_count(record.get("taskTotal"), "taskTotal"),
        calls_completed=_count(record.get("taskCompleted"), "taskCompleted"),
        robots=_count(record.get("robotCount"), "robotCount"),
        mode=_text(record.get("mode")),
        dialog_flow=_text(record.get("dialogFlowName")),
        line=_text(record.get("jobPhoneNumberName")),
        hangup_sms=_flag(record.get("hangupSms")),
        dialog_flow_unbound=_flag(record.get("isDialogFlowUnbind")),
        created_seconds=parse_create_time(record.get("createTime"), zone),
    )


def _count(value: Any, name: str) -> int:
    """A non-negative whole number; the documents call them Int, some answers send strings."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise PollError(INVALID_RESPONSE, f"{name} is not a number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise PollError(INVALID_RESPONSE, f"{name} is not a count")
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    # JSON may escape a lone surrogate (\ud800), which no UTF-8 exposition can carry.
    return text.encode("utf-8", "replace").decode("utf-8")


def _flag(value: Any) -> bool:
    """The page says Boolean for one flag and String for the other; accept both forms."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value) if isinstance(value, (bool, int)) else False


def parse_create_time(value: Any, zone: dt.tzinfo) -> float | None:
    """Seconds since the epoch, or None: one odd date must never fail a poll."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    for fmt in _CREATE_TIME_FORMATS:
        try:
            return _epoch(dt.datetime.strptime(text, fmt), zone)
        except (ValueError, OverflowError):
            continue
    try:
        return _epoch(dt.datetime.fromisoformat(text), zone)
    except (ValueError, OverflowError):
        return None


def _epoch(moment: dt.datetime, zone: dt.tzinfo) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).timestamp()


class RateLimiter:
    """Spaces requests evenly: the API publishes no limit, so stay politely below any."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._next = clock()

    def wait(self, stop: threading.Event) -> None:
        with self._lock:
            now = self._clock()
            slot = max(self._next, now)
            self._next = slot + self._interval
        if slot > now and stop.wait(slot - now):
            raise Stopped


class ApiClient:
    """Polls the taskList endpoint for one account's apps."""

    def __init__(
        self,
        account: Account,
        api: ApiConfig,
        *,
        session: requests.Session,
        recorder: RequestRecorder,
        in_flight: threading.Semaphore,
        workers: int,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._account = account
        self._api = api
        self._session = session
        self._recorder = recorder
        self._in_flight = in_flight
        self._workers = workers
        self._stop = stop
        self._clock = clock
        self._limiter = RateLimiter(api.max_requests_per_second)
        self._url = f"{api.base_url}/taskList"

    def __repr__(self) -> str:
        return f"ApiClient({self._account!r}, url={self._url!r})"

    def fetch_tasks(self, app_id: str) -> tuple[Task, ...]:
        """Every task of the app, each once, following the paging the server reports."""
        first = self.fetch_page(app_id, 1)
        pages = [first]
        wanted = first.pages
        fetched = 1
        while fetched < min(wanted, MAX_PAGES):
            numbers = range(fetched + 1, min(wanted, MAX_PAGES) + 1)
            batch = map_in_threads(lambda n: self.fetch_page(app_id, n), numbers, self._workers)
            pages.extend(batch)
            fetched = numbers[-1]
            # A task created meanwhile may have added a page.
            wanted = max(wanted, *(page.pages for page in batch))
        if wanted > MAX_PAGES:
            log.warning(
                "App has more pages than the exporter reads; later tasks are left out",
                extra={"app_id": app_id, "pages": wanted, "max_pages": MAX_PAGES},
            )
        unique: dict[str, Task] = {}
        for page in pages:
            for task in page.tasks:
                unique.setdefault(task.job_id, task)
        return tuple(unique.values())

    def fetch_page(self, app_id: str, current: int) -> Page:
        """One page, retried with backoff while the failure is transient."""
        body = json.dumps(
            {
                "current": current,
                "size": self._api.page_size,
                "params": {
                    "appId": app_id,
                    **({"name": n} if (n := self._account.task_name) else {}),
                },
            }
        ).encode("utf-8")
        for attempt in range(self._api.max_retries + 1):
            try:
                return self._attempt(app_id, body)
            except PollError as err:
                if not err.transient or attempt == self._api.max_retries:
                    raise
                delay = random.uniform(
                    0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
                )
                log.debug(
                    "Retrying after a transient failure",
                    extra={"app_id": app_id, "code": err.code, "retry_in_seconds": round(delay, 3)},
                )
                if self._stop.wait(delay):
                    raise Stopped from err
        raise AssertionError("unreachable")

    def _attempt(self, app_id: str, body: bytes) -> Page:
        self._limiter.wait(self._stop)
        headers = sign_headers(self._account.api_key, self._account.api_secret, self._clock())
        headers["User-Agent"] = f"aivoice-exporter/{__version__}"
        started = time.perf_counter()
        error: str | None = None
        try:
            with self._in_flight:
                if self._stop.is_set():
                    raise Stopped
                response = self._session.post(
                    self._url, data=body, headers=headers, timeout=self._api.timeout_seconds
                )
            if response.status_code != 200:
                raise PollError(f"http_{response.status_code}")
            return parse_page(response.content, self._api.create_time_zone)
        except PollError as err:
            error = err.code
            raise
        except requests.RequestException as err:
            error = _transport_code(err)
            raise PollError(error, type(err).__name__) from None
        finally:
            self._recorder.observe(app_id, time.perf_counter() - started, error)


def _transport_code(err: requests.RequestException) -> str:
    if isinstance(err, requests.Timeout):
        return TIMEOUT
    # requests reports a read timeout in the body as a ConnectionError wrapping urllib3's.
    if err.args and isinstance(err.args[0], urllib3.exceptions.ReadTimeoutError):
        return TIMEOUT
    return CONNECTION


def map_in_threads(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """`[fn(x) for x in items]` on up to `workers` daemon threads, re-raising the first error.

    Daemon threads, not a ThreadPoolExecutor, so that a request stuck in a socket read can never
    hold up the process's exit on SIGTERM.
    """
    todo: Sequence[T] = list(items)
    results: list[Any] = [None] * len(todo)
    errors: list[BaseException] = []
    jobs: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(todo)):
        jobs.put(index)

    def work() -> None:
        while not errors:
            try:
                index = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                results[index] = fn(todo[index])
            except BaseException as err:
                errors.append(err)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, len(todo)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
