"""``Account``: the simulated API's model: one account's apps, their tasks and calls, the
faults in force and the counters. ``simulator.Simulator`` serves it over HTTP.

A request is answered in three steps: check it (``api``), decide and count a fault (``faults``),
then build the page or the fault's answer (``campaigns``, ``record_query``, ``hostile``) outside
the lock. Tasks keep their own lock (``tasks``); everything else is behind this one.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from exporter.simulator.answers import channel_list_reply, fault_reply
from exporter.simulator.api import (
    CHANNEL_LIST,
    GET_BALANCE,
    RECORD_QUERY,
    TASK_LIST,
    Query,
    Rejected,
    Reply,
    api_error,
    check_headers,
    guess_app_id,
    is_int,
    json_bytes,
    page_payload,
    parse_body,
)
from exporter.simulator.balance import (
    DEFAULT_BALANCE,
    BalanceBook,
    balance_answer,
    balance_fault_reply,
    sms_code,
    sms_error,
)
from exporter.simulator.call_index import CallIndex, index_reader
from exporter.simulator.calls import (
    Timeline,
    push_record,
)
from exporter.simulator.campaigns import render
from exporter.simulator.ended import EndedCalls, Handover
from exporter.simulator.faults import (
    STATS_KINDS,
    Fault,
    Faults,
    Pending,
    Stats,
    configured_fault,
    decide,
    random_fault,
)
from exporter.simulator.lines import Degrade
from exporter.simulator.push import Pusher, PushSettings
from exporter.simulator.record_query import RecordQuery
from exporter.simulator.reporting import Reporting, ShownCalls
from exporter.simulator.tasks import Tasks

log = logging.getLogger(__name__)


class Account:
    """The ITNIO ``taskList`` and ``recordQuery`` API for one account, and, with ``push_url``,
    the call-record push (see ``push``), without the HTTP (``Simulator`` adds it).

    Every method is thread-safe: tests change tasks and faults while a client polls.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        app_ids: Sequence[str],
        *,
        tasks_per_app: int = 12,
        seed: int = 0,
        server_page_size: int | None = None,
        clock: Callable[[], float] = time.time,
        speed: float = 1.0,
        push_url: str | None = None,
        push_max_attempts: int = 3,
        push_retry_delay: float = 0.2,
        push_duplicate_ratio: float = 0.05,
        push_queue_size: int = 10_000,
        newest_first: bool = False,
        balance: float = DEFAULT_BALANCE,
        call_rate: float = 1.0,  # scales every task's calls a second: an account's volume
        degrade: Degrade | None = None,  # one app's line answers less (lines.py)
        select_by: str = "start",
        report_lags: bool = False,
    ) -> None:
        if isinstance(app_ids, str) or not app_ids:
            raise ValueError("app_ids: must be a non-empty list of strings")
        if len(set(app_ids)) != len(app_ids) or not all(app_ids):
            raise ValueError("app_ids: must be unique and non-empty")
        if tasks_per_app < 0:
            raise ValueError("tasks_per_app: must be >= 0")
        if server_page_size is not None and server_page_size < 1:
            raise ValueError("server_page_size: must be >= 1")
        if speed < 0:
            raise ValueError("speed: must be >= 0")
        self._api_key = api_key
        self._api_secret = api_secret
        self._server_page_size = server_page_size
        # recordQuery's windows: the time they select by, report lags, scripted calls.
        self.shown = ShownCalls(Reporting(select_by, report_lags), seed, speed, app_ids)
        self._clock = clock
        self._speed = speed
        self._started_at = clock()
        self._seed = seed
        self._timeline = Timeline(self._started_at, speed)
        self._lock = threading.Lock()
        self._tasks = Tasks(
            app_ids, tasks_per_app, seed, self._started_at, clock, degrade, call_rate
        )
        # Each call is drawn once as it ends, for the record index, the push and the balance.
        now = lambda: self._elapsed(self._clock())  # noqa: E731
        ended = EndedCalls(seed, self._timeline, self._tasks.plans, now)
        indexes = {app: CallIndex(seed, app, self._timeline, ended) for app in app_ids}
        ended.subscribe(index_reader(indexes))
        self._records = RecordQuery(
            seed,
            self._timeline,
            self._tasks,
            indexes,
            self.shown,
            newest_first=newest_first,
            page_size=self._size,
        )
        self._to_push = Handover(ended, push_queue_size, push_record)
        self._faults = Faults()
        self._pending: deque[Pending] = deque()
        self._rng = random.Random(seed)
        self._requests = 0
        self._answered: dict[str, int] = {}
        self._fault_kinds = dict.fromkeys(STATS_KINDS, 0)
        self._fault_codes: dict[str, int] = {}
        self._redirect_followed = 0
        self._redirect_credentials = 0
        self._stopping = threading.Event()
        self._record_queries = 0
        self._pusher: Pusher | None = None
        # PushSettings' fields after the URL, in order.
        self._push_options = (
            push_max_attempts,
            push_retry_delay,
            push_duplicate_ratio,
            push_queue_size,
        )
        if push_url is not None:
            self._pusher = self._new_pusher(push_url)
        # getBalance: the account's balance, falling as calls end (balance.py).
        self.balance = BalanceBook(balance, ended)

    def _new_pusher(self, url: str) -> Pusher:
        settings = PushSettings(url, *self._push_options)
        return Pusher(settings, self._to_push.collect, self._seed)

    def _push_from_now(self, url: str | None = None) -> None:
        """Push each call that ends from now on: to ``push_url``, or to ``url`` if the push is
        not on yet; calls that ended before are never pushed."""
        with self._lock:
            if self._stopping.is_set() or (url is not None and self._pusher is not None):
                return
            if url is not None:
                self._pusher = self._new_pusher(url)
            pusher = self._pusher
        if pusher is not None:
            self._to_push.start()
            pusher.start()

    def _stop(self) -> None:
        """End the push and every hold (latency, ``delay_page``, drips) under way."""
        self._stopping.set()
        if self._pusher is not None:
            self._pusher.stop()

    # ---- tasks

    def tasks(self, app_id: str) -> list[dict[str, Any]]:
        """The app's records as the API would show them now, newest first."""
        return self._tasks.rendered(app_id, self._elapsed(self._clock()))

    def set_tasks(self, app_id: str, records: Sequence[Mapping[str, Any]]) -> None:
        """See ``Tasks.set_tasks``."""
        self._tasks.set_tasks(app_id, records)

    def add_task(self, app_id: str, record: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """See ``Tasks.add_task``."""
        return self._tasks.add_task(app_id, record)

    def remove_task(self, app_id: str, job_id: int) -> bool:
        """Delete the task with this jobId; False if there was none."""
        return self._tasks.remove_task(app_id, job_id)

    def change_before_page(self, app_id: str, page: int, action: str, *, count: int = 1) -> None:
        """See ``Tasks.change_before_page``."""
        self._tasks.change_before_page(app_id, page, action, count)

    def delay_page(self, app_id: str, page: int, seconds: float) -> None:
        """See ``Tasks.delay_page``."""
        self._tasks.delay_page(app_id, page, seconds)

    # ---- calls

    def calls(
        self, app_id: str, start: float | None = None, end: float | None = None
    ) -> list[dict[str, Any]]:
        """The app's calls that started in [start, end] (Unix seconds; default: its first call
        to now) and have ended, as ``recordQuery`` records in its order: oldest end first
        (newest first with ``newest_first``).

        Drawn afresh, not from the index recordQuery answers from: tests compare the two.
        Generated tasks only: added and pinned records make no calls.
        """
        return self._records.drawn_afresh(app_id, self._clock(), start, end)

    # ---- faults and stats

    @property
    def faults(self) -> Faults:
        """The fault settings in force (``GET /-/faults`` shows the same)."""
        with self._lock:
            return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Replace every fault setting at once; ``Faults()`` heals the API."""
        if not isinstance(faults, Faults):
            raise TypeError("set_faults takes a Faults")
        with self._lock:
            self._faults = faults
        log.info("faults set to %s", faults)

    def fail_next(
        self,
        n: int,
        kind: str,
        *,
        app_id: str | None = None,
        api_code: str = "-5",
        http_status: int | None = None,
        variant: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        """Fail exactly the next ``n`` valid requests (for ``app_id`` only, if given; to
        ``endpoint`` only, ``taskList`` or ``recordQuery``, if given).

        ``kind`` is one of ``ALL_FAULT_KINDS`` (see ``Faults``). ``http_status`` sets the status
        of ``http_5xx`` (400-599, default 503), ``redirect`` (301, 302, 303, 307, 308; default
        302) and ``retry_after`` (429 or 503; default 429); ``api_code`` the code of
        ``api_code``; ``variant`` pins one of ``FAULT_VARIANTS[kind]`` (else one is drawn at
        random). These come before any other fault and ignore ``Faults.app_ids`` and
        ``Faults.endpoints``.
        """
        pending = Pending.checked(kind, app_id, api_code, http_status, variant, endpoint)
        if not is_int(n) or n < 0:
            raise ValueError(f"n: must be an integer >= 0, got {n!r}")
        with self._lock:
            self._pending.extend([pending] * n)

    def stats(self) -> Stats:
        """Requests received, faults injected and pushes made since start-up; see ``Stats``."""
        pushes = self._pusher.stats() if self._pusher is not None else {}
        with self._lock:
            return Stats(
                requests=self._requests,
                answered=dict(self._answered),
                faults_total=sum(self._fault_kinds.values()),
                faults=dict(self._fault_kinds),
                fault_codes=dict(self._fault_codes),
                churn=self._tasks.churn(),
                redirect_followed=self._redirect_followed,
                redirect_credentials=self._redirect_credentials,
                record_queries=self._record_queries,
                push_sent=pushes.get("push_sent", 0),
                push_delivered=pushes.get("push_delivered", 0),
                push_retried=pushes.get("push_retried", 0),
                push_duplicated=pushes.get("push_duplicated", 0),
                push_failed=pushes.get("push_failed", 0),
                push_dropped=pushes.get("push_dropped", 0),
                push_pending=pushes.get("push_pending", 0),
            )

    # ---- answering (called by the handlers in server.py)

    def answer(self, headers: Mapping[str, str], body: bytes, endpoint: str = TASK_LIST) -> Reply:
        """Answer one taskList, recordQuery or getBalance request; ``headers`` has lowercase
        names."""
        now = self._clock()
        with self._lock:
            self._requests += 1
            self._record_queries += endpoint == RECORD_QUERY
            faults = self._faults
        app_id = guess_app_id(body)
        delay = self._latency(faults) if faults.applies_to(app_id, endpoint) else 0.0
        if endpoint == GET_BALANCE:
            return self._answer_balance(headers, now, faults, delay)
        try:
            check_headers(headers, self._api_key, self._api_secret, now)
            query = parse_body(endpoint, body)
            if query.app_id not in self._tasks:
                raise Rejected("-37")
        except Rejected as rejected:
            self._count_answer(rejected.code)
            return Reply(body=api_error(rejected.code, rejected.detail), delay=delay)
        fault = self._inject(query.app_id, faults, endpoint)
        if endpoint == CHANNEL_LIST:
            lines, at = self._tasks.lines[query.app_id], self.redirect_url
            reply = channel_list_reply(fault, faults, query, now, lines, at, self._count_answer)
            return replace(reply, delay=delay + reply.delay)
        if fault is not None:
            page = partial(
                self._records.page if endpoint == RECORD_QUERY else self._page, query, now
            )
            calls = endpoint == RECORD_QUERY
            reply = fault_reply(fault, faults, query, now, page, calls, self.redirect_url)
            return replace(reply, delay=delay + reply.delay)
        self._count_answer("0")
        if endpoint == RECORD_QUERY:
            return Reply(body=json_bytes(self._records.page(query, now)), delay=delay)
        hold = self._tasks.take_delay(query.app_id, query.current)
        if hold > 0 and not self.wait(hold):
            return Reply(drop=True)  # stopping
        return Reply(body=json_bytes(self._page(query, now, faults)), delay=delay)

    def _answer_balance(
        self, headers: Mapping[str, str], now: float, faults: Faults, delay: float
    ) -> Reply:
        """getBalance: the SMS API's codes, and the answer at the top level (balance.py)."""
        try:
            check_headers(headers, self._api_key, self._api_secret, now)
        except Rejected as rejected:
            code = sms_code(rejected.code)
            self._count_answer(code)
            return Reply(body=sms_error(code), delay=delay)
        fault = self._inject("", faults, GET_BALANCE)
        left = self.balance.balance()
        if fault is None:
            self._count_answer("0")
            return Reply(body=balance_answer(left), delay=delay)
        with self._lock:
            draw = self._rng.randrange(1 << 16)
        reply = balance_fault_reply(fault, faults, now, left, draw, self.redirect_url)
        return replace(reply, delay=delay + reply.delay)

    def _page(self, query: Query, now: float, faults: Faults | None = None) -> dict[str, Any]:
        """One page in the documented shape; only the page's records are rendered.

        With ``faults`` (a page that answers a request), due ``change_before_page`` triggers and
        churn happen first, in the hold of the lock that takes the records; without (a page a
        fault embeds), nothing changes.
        """
        churn = None
        if faults is not None:
            churn = faults.churn_ratio if faults.applies_to(query.app_id, TASK_LIST) else 0.0
        entries = self._tasks.for_page(query.app_id, query.current, query.name, churn)
        size = self._size(query)
        first = (query.current - 1) * size
        elapsed = self._elapsed(now)
        records = [render(entry, elapsed) for entry in entries[first : first + size]]
        return page_payload(records, total=len(entries), size=size, current=query.current)

    def _inject(self, app_id: str, faults: Faults, endpoint: str) -> Fault | None:
        """Pick the fault for a valid request, if any, and count it exactly once."""
        with self._lock:
            fault = self._pending_fault(app_id, faults, endpoint)
            if fault is None and faults.applies_to(app_id, endpoint):
                fault = configured_fault(faults, self._rng) or random_fault(faults, self._rng)
            if fault is not None:
                kind = "http_status" if fault.kind == "http_5xx" else fault.kind
                self._fault_kinds[kind] += 1
                self._fault_codes[fault.code] = self._fault_codes.get(fault.code, 0) + 1
        return fault

    def _pending_fault(self, app_id: str, faults: Faults, endpoint: str) -> Fault | None:
        for index, pending in enumerate(self._pending):
            if pending.app_id in (None, app_id) and pending.endpoint in (None, endpoint):
                del self._pending[index]
                return decide(
                    pending.kind,
                    faults,
                    self._rng,
                    api_code=pending.api_code,
                    status=pending.http_status,
                    variant=pending.variant,
                )
        return None

    @property
    def redirect_url(self) -> str:
        """Where a ``redirect`` fault points: the listener ``Simulator`` starts for it."""
        raise RuntimeError("not started")

    def redirected(self, headers: Mapping[str, str]) -> None:
        """Count a request that followed a redirect to the capture listener."""
        names = {name.lower() for name in headers}
        with self._lock:
            self._redirect_followed += 1
            self._redirect_credentials += bool(names & {"api-key", "sign", "timestamp"})

    # ---- helpers

    def _size(self, query: Query) -> int:
        """A page's size: the server's own where it has one (the API's answer may differ from
        what was asked), else the request's."""
        return self._server_page_size or query.size

    def _latency(self, faults: Faults) -> float:
        if faults.latency_jitter_seconds <= 0:
            return faults.latency_seconds
        with self._lock:
            return faults.latency_seconds + self._rng.uniform(0, faults.latency_jitter_seconds)

    def _count_answer(self, code: str) -> None:
        with self._lock:
            self._answered[code] = self._answered.get(code, 0) + 1

    def _elapsed(self, now: float) -> float:
        return (now - self._started_at) * self._speed

    def wait(self, seconds: float) -> bool:
        """Sleep, cut short by ``_stop()``; True if the simulator is still running."""
        return not self._stopping.wait(seconds)
