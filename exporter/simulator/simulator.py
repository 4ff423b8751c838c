"""The ``Simulator``: one account's apps, their tasks, the faults in force and the counters.

It owns all mutable state, behind one lock, and answers each request in three steps: check it
(``api``), decide and count a fault (``faults``), then build the page or the fault's answer
(``campaigns``, ``hostile``) outside the lock. ``server`` only moves bytes.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from exporter.simulator.api import (
    API_PATH,
    EMPTY_PAGE,
    ENDPOINTS,
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
    parse_query,
    parse_record_query,
)
from exporter.simulator.balance import DEFAULT_BALANCE, BalanceBook
from exporter.simulator.balance import answer as answer_balance
from exporter.simulator.calls import (
    MAX_CALL_SECONDS,
    Call,
    Timeline,
    call,
    filler_record,
    push_record,
    query_record,
    started_between,
)
from exporter.simulator.campaigns import (
    Entry,
    Plan,
    entry_job_id,
    entry_name,
    generate_plans,
    new_record,
    render,
)
from exporter.simulator.faults import (
    ALL_FAULT_KINDS,
    CHURN_ACTIONS,
    FAULT_VARIANTS,
    STATS_KINDS,
    Fault,
    Faults,
    Pending,
    Stats,
    check_api_code,
    check_fault_status,
    check_number,
    configured_fault,
    decide,
    random_fault,
)
from exporter.simulator.hostile import (
    GARBAGE,
    crowded_page,
    dripped,
    gzip_bomb,
    html_error,
    odd_status,
    padded,
    poisoned,
    retry_after,
)
from exporter.simulator.push import Pusher, PushSettings
from exporter.simulator.server import ApiHandler, CaptureHandler, Server, url_host

_KEPT_WINDOWS = 16  # recordQuery windows whose calls are kept for their next pages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """A ``change_before_page`` trigger waiting for its page."""

    app_id: str
    page: int
    action: str
    count: int


class Simulator:
    """The ITNIO ``taskList`` and ``recordQuery`` API for one account, served over HTTP on a
    daemon thread, and, with ``push_url``, the call-record push (see ``push``).

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
        # recordQuery's order is not documented. Newest first, a call that ends while a read
        # pages moves every later record one place down: across a page boundary, one is read
        # twice or skipped.
        self._newest_first = newest_first
        self._clock = clock
        self._speed = speed
        self._started_at = clock()
        self._seed = seed
        self._timeline = Timeline(self._started_at, speed)
        self._lock = threading.Lock()
        self._apps: dict[str, list[Entry]] = {
            app_id: list(generate_plans(app_id, i, tasks_per_app, seed, self._started_at))
            for i, app_id in enumerate(app_ids)
        }
        self._faults = Faults()
        self._pending: deque[Pending] = deque()
        self._changes: list[Change] = []
        self._delays: list[tuple[str, int, float]] = []  # (app_id, page, seconds), one-shot
        self._rng = random.Random(seed)
        self._requests = 0
        self._answered: dict[str, int] = {}
        self._fault_kinds = dict.fromkeys(STATS_KINDS, 0)
        self._fault_codes: dict[str, int] = {}
        self._churn = dict.fromkeys(CHURN_ACTIONS, 0)
        self._churn_created = dict.fromkeys(app_ids, 0)  # churn_ratio's creates less its deletes
        self._redirect_followed = 0
        self._redirect_credentials = 0
        self._server: Server | None = None
        self._capture: Server | None = None
        self._serving: list[tuple[Server, threading.Thread]] = []
        self._stopping = threading.Event()
        self._record_queries = 0
        self._windows: OrderedDict[tuple[str, int, int, int], list[Call]] = OrderedDict()
        self._pusher: Pusher | None = None
        self._push_cursor = 0.0  # simulated time up to which ended calls were pushed
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
        self.balance = BalanceBook(
            balance, self._plans, seed, self._timeline, lambda: self._elapsed(self._clock())
        )

    def _plans(self) -> dict[str, list[Plan]]:
        """Each app's generated tasks (the ones that make calls), for the balance."""
        with self._lock:
            return {a: [e for e in es if isinstance(e, Plan)] for a, es in self._apps.items()}

    def _new_pusher(self, url: str) -> Pusher:
        settings = PushSettings(url, *self._push_options)
        return Pusher(settings, self._ended_calls, self._seed)

    def start_push(self, url: str) -> None:
        """Push each call that ends from now on to ``url`` (for a receiver that starts after
        the simulator, such as ``--demo``'s); without effect if the push is already on."""
        with self._lock:
            if self._pusher is not None or self._server is None or self._stopping.is_set():
                return
            self._pusher = self._new_pusher(url)
            self._push_cursor = self._elapsed(self._clock())
        self._pusher.start()

    # ---- lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Simulator:
        """Listen on host:port (0: a free port) and serve on a daemon thread.

        A second listener on a free port of the same host catches followed redirects.
        """
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("a Simulator starts once")
        self._server = Server((host, port), self, ApiHandler)
        try:
            self._capture = Server((host, 0), self, CaptureHandler)
        except OSError:
            self._server.server_close()
            raise
        for server, role in ((self._server, "simulator"), (self._capture, "redirect-capture")):
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.02},  # how long stop() may wait
                name=f"aivoice-{role}:{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._serving.append((server, thread))
        if self._pusher is not None:
            self._push_cursor = self._elapsed(self._clock())  # calls ended before: not pushed
            self._pusher.start()
        return self

    def stop(self) -> None:
        """Stop serving, end hanging requests and close open connections. Idempotent."""
        self._stopping.set()
        if self._pusher is not None:
            self._pusher.stop()
        for server, thread in self._serving:
            if not thread.is_alive():
                continue
            server.shutdown()
            server.close_connections()
            server.server_close()
            thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port), with the real port when started on port 0."""
        if self._server is None:
            raise RuntimeError("not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def base_url(self) -> str:
        """What the exporter's ``api.base_url`` should be, e.g. http://127.0.0.1:PORT/aivoice."""
        host, port = self.address
        return f"http://{url_host(host)}:{port}/aivoice"

    @property
    def redirect_url(self) -> str:
        """Where a ``redirect`` fault points: the capture listener, another loopback port."""
        if self._capture is None:
            raise RuntimeError("not started")
        host, port = self._capture.server_address[:2]
        return f"http://{url_host(str(host))}:{port}{API_PATH}"

    # ---- tasks

    def tasks(self, app_id: str) -> list[dict[str, Any]]:
        """The app's records as the API would show them now, newest first."""
        elapsed = self._elapsed(self._clock())
        with self._lock:
            entries = list(self._app(app_id))
        return [render(entry, elapsed) for entry in entries]

    def set_tasks(self, app_id: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Serve exactly these records, in this order, from now on; the app stops progressing.

        Records are not checked, so tests can feed the client odd or broken ones (a string
        with a lone surrogate goes out as its JSON escape).
        """
        pinned = [copy.deepcopy(dict(record)) for record in records]
        with self._lock:
            self._app(app_id)[:] = pinned

    def add_task(self, app_id: str, record: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Create a task as the newest (first) record and return it.

        Missing fields are filled in (``jobId`` one above the app's highest), so
        ``add_task(app)`` alone reproduces a task created while a client pages.
        """
        with self._lock:
            added = self._create(self._app(app_id), record)
        return copy.deepcopy(added)

    def remove_task(self, app_id: str, job_id: int) -> bool:
        """Delete the task with this jobId; False if there was none."""
        with self._lock:
            entries = self._app(app_id)
            for index, entry in enumerate(entries):
                if entry_job_id(entry) == job_id:
                    del entries[index]
                    return True
        return False

    def change_before_page(self, app_id: str, page: int, action: str, *, count: int = 1) -> None:
        """Create or delete ``count`` tasks just before the app's next page ``page`` is built.

        It fires once, for the next request for that page that is answered with a page (a
        request that gets a fault leaves it waiting), in the same hold of the lock as taking
        the records that page shows: a test can place a change exactly between two page reads.
        Triggers for one page fire together.

        ``create`` inserts new tasks as the newest, like ``add_task``: every later record moves
        down a place. ``delete`` removes the newest tasks (the first records of page 1): every
        later record moves up a place, so a client that read page ``page - 1`` before the
        change and ``page`` after it misses a record. ``Stats.churn`` counts the tasks.
        """
        if action not in CHURN_ACTIONS:
            raise ValueError(f"action: must be one of {list(CHURN_ACTIONS)}, got {action!r}")
        if not is_int(page) or page < 1:
            raise ValueError(f"page: must be an integer >= 1, got {page!r}")
        if not is_int(count) or count < 1:
            raise ValueError(f"count: must be an integer >= 1, got {count!r}")
        with self._lock:
            self._app(app_id)
            self._changes.append(Change(app_id, page, action, count))

    def delay_page(self, app_id: str, page: int, seconds: float) -> None:
        """Hold the app's next request for page ``page`` ``seconds`` before its page is built.

        One-shot, like ``change_before_page`` (whose trigger for that page fires after the
        hold): with pages read in parallel, a test decides which is built first, e.g. page 3
        before page 2, and so places a change between any two reads in any order.
        """
        if not is_int(page) or page < 1:
            raise ValueError(f"page: must be an integer >= 1, got {page!r}")
        check_number("seconds", seconds, 0.0, 3600.0)
        with self._lock:
            self._app(app_id)
            self._delays.append((app_id, page, float(seconds)))

    # ---- calls

    def calls(
        self, app_id: str, start: float | None = None, end: float | None = None
    ) -> list[dict[str, Any]]:
        """The app's calls that started in [start, end] (Unix seconds; default: its first call
        to now) and have ended, as ``recordQuery`` records in its order: oldest end first
        (newest first with ``newest_first``)."""
        now = self._clock()
        high = int(end) if end is not None else int(now)
        low = int(start) if start is not None else None
        return [query_record(c) for c in self._calls(app_id, low, high, now)]

    def _calls(self, app_id: str, start: int | None, end: int, now: float) -> list[Call]:
        """Generated tasks only: added and pinned records make no calls."""
        with self._lock:
            plans = [e for e in self._app(app_id) if isinstance(e, Plan)]
        if start is None:  # from the first call of the earliest task
            firsts = [self._timeline.wall(p.start) for p in plans if p.start != float("inf")]
            start = int(min(firsts, default=now) - MAX_CALL_SECONDS) - 1
        found = started_between(self._seed, app_id, plans, start, end, now, self._timeline)
        return found[::-1] if self._newest_first else found

    def _ended_calls(self, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Push records of the calls that ended since the last look (the push thread), at most
        ``limit`` of them, and how many more ended: those are never drawn."""
        until = self._elapsed(self._clock())
        with self._lock:
            after, self._push_cursor = self._push_cursor, max(self._push_cursor, until)
            apps = {a: [e for e in es if isinstance(e, Plan)] for a, es in self._apps.items()}
        records: list[dict[str, Any]] = []
        more = 0
        if until <= after:
            return records, more
        for app_id, plans in apps.items():
            for plan in plans:
                first, last = plan.state_at(after)[1], plan.state_at(until)[1]
                room = max(0, min(last - first, limit - len(records)))
                more += last - first - room
                for index in range(first, first + room):
                    records.append(
                        push_record(call(self._seed, app_id, plan, index, self._timeline))
                    )
        return records, more

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
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint: must be one of {list(ENDPOINTS)}, got {endpoint!r}")
        if kind not in ALL_FAULT_KINDS:
            raise ValueError(f"kind: unknown {kind!r}, known {list(ALL_FAULT_KINDS)}")
        if not is_int(n) or n < 0:
            raise ValueError(f"n: must be an integer >= 0, got {n!r}")
        check_api_code("api_code", api_code)
        if http_status is not None:
            check_fault_status(kind, http_status)
        if variant is not None and variant not in FAULT_VARIANTS.get(kind, ()):
            known = list(FAULT_VARIANTS.get(kind, ()))
            raise ValueError(f"variant: {kind} has no variant {variant!r}, known {known}")
        with self._lock:
            pending = Pending(kind, app_id, api_code, http_status, variant, endpoint)
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
                churn=dict(self._churn),
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

    def _answer(self, headers: Mapping[str, str], body: bytes, endpoint: str = TASK_LIST) -> Reply:
        """Answer one taskList or recordQuery request; ``headers`` has lowercase names."""
        if endpoint == GET_BALANCE:
            return answer_balance(self, headers)
        now = self._clock()
        with self._lock:
            self._requests += 1
            self._record_queries += endpoint == RECORD_QUERY
            faults = self._faults
        app_id = guess_app_id(body)
        delay = self._latency(faults) if faults.applies_to(app_id, endpoint) else 0.0
        try:
            check_headers(headers, self._api_key, self._api_secret, now)
            query = parse_record_query(body) if endpoint == RECORD_QUERY else parse_query(body)
            if query.app_id not in self._apps:
                raise Rejected("-37")
        except Rejected as rejected:
            self._count_answer(rejected.code)
            return Reply(body=api_error(rejected.code, rejected.detail), delay=delay)
        fault = self._inject(query.app_id, faults, endpoint)
        if fault is not None:
            reply = self._fault_reply(fault, query, now, faults, endpoint)
            return replace(reply, delay=delay + reply.delay)
        self._count_answer("0")
        if endpoint == RECORD_QUERY:
            return Reply(body=json_bytes(self._call_page(query, now)), delay=delay)
        hold = self._take_delay(query)
        if hold > 0 and not self._wait(hold):
            return Reply(drop=True)  # stopping
        return Reply(body=json_bytes(self._page(query, now, faults)), delay=delay)

    def _call_page(self, query: Query, now: float) -> dict[str, Any]:
        """One recordQuery page: the window's ended calls, oldest end first.

        The window's calls are drawn once per second of the clock and kept for the pages that
        follow: drawing them all again for each page made a read cost pages x calls.
        """
        key = (query.app_id, query.start_time, query.end_time, math.floor(now))
        with self._lock:
            found = self._windows.get(key)
        if found is None:
            found = self._calls(query.app_id, query.start_time, query.end_time, key[3])
            with self._lock:
                self._windows[key] = found
                while len(self._windows) > _KEPT_WINDOWS:
                    self._windows.popitem(last=False)
        size = self._server_page_size or query.size
        first = (query.current - 1) * size
        records = [query_record(c) for c in found[first : first + size]]
        return page_payload(records, total=len(found), size=size, current=query.current)

    def _take_delay(self, query: Query) -> float:
        """The ``delay_page`` holds due for this request, used up; 0.0 if none."""
        with self._lock:
            due = [d for d in self._delays if d[:2] == (query.app_id, query.current)]
            self._delays = [d for d in self._delays if d[:2] != (query.app_id, query.current)]
        return sum(seconds for _, _, seconds in due)

    def _page(self, query: Query, now: float, faults: Faults | None = None) -> dict[str, Any]:
        """One page in the documented shape; only the page's records are rendered.

        With ``faults`` (a page that answers a request), due ``change_before_page`` triggers and
        churn happen first, under the lock that takes the records; without (a page a fault
        embeds), nothing changes.
        """
        with self._lock:
            if faults is not None:
                self._change_before(query, faults)
            entries = self._apps[query.app_id]
            if query.name:
                entries = [e for e in entries if query.name in entry_name(e)]
            else:
                entries = list(entries)  # a snapshot: add_task may run meanwhile
        size = self._server_page_size or query.size
        first = (query.current - 1) * size
        elapsed = self._elapsed(now)
        records = [render(entry, elapsed) for entry in entries[first : first + size]]
        return page_payload(records, total=len(entries), size=size, current=query.current)

    def _change_before(self, query: Query, faults: Faults) -> None:
        """Fire the triggers due for this page, then maybe churn; the caller holds the lock."""
        entries = self._apps[query.app_id]
        due = [c for c in self._changes if (c.app_id, c.page) == (query.app_id, query.current)]
        if due:
            self._changes = [c for c in self._changes if c not in due]
        for change in due:
            self._change(entries, change.action, change.count)
        if faults.churn_ratio <= 0 or not faults.applies_to(query.app_id, TASK_LIST):
            return
        if self._rng.random() >= faults.churn_ratio:
            return
        action = "delete" if self._churn_created[query.app_id] > 0 else "create"
        changed = self._change(entries, action, 1)
        self._churn_created[query.app_id] += changed if action == "create" else -changed

    def _change(self, entries: list[Entry], action: str, count: int) -> int:
        """Create tasks, or delete the newest; how many changed. The caller holds the lock."""
        if action == "create":
            for _ in range(count):
                self._create(entries)
        else:
            count = min(count, len(entries))
            del entries[:count]
        self._churn[action] += count
        return count

    def _create(
        self, entries: list[Entry], record: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Insert a task as the newest; the caller holds the lock."""
        ids = [i for i in map(entry_job_id, entries) if is_int(i)]
        job_id = max(ids, default=0) + 1
        added = {**new_record(job_id, self._clock()), **copy.deepcopy(dict(record or {}))}
        entries.insert(0, added)
        return added

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

    def _fault_reply(
        self, fault: Fault, query: Query, now: float, faults: Faults, endpoint: str
    ) -> Reply:
        """How the fault answers; built outside the lock (pages and bombs take time)."""
        kind = fault.kind
        if kind == "http_5xx":
            return html_error(fault.status)
        if kind == "timeout":
            return Reply(delay=fault.hang, drop=True)
        if kind == "garbage":
            content_type, body = GARBAGE[fault.variant]
            return Reply(body=body, content_type=content_type)
        if kind == "api_code":
            return Reply(body=api_error(fault.api_code))
        if kind == "redirect":
            return Reply(fault.status, content_type="text/plain", headers=self._location())
        if kind == "retry_after":
            return retry_after(fault.status, fault.variant, faults.retry_after_seconds, now)
        if kind == "odd_status":
            status, reason = odd_status(fault.variant)
            return Reply(body=json_bytes({"status": status, "reason": reason}))
        if kind == "gzip_bomb":
            bomb = gzip_bomb(faults.gzip_bomb_bytes, EMPTY_PAGE)
            return Reply(body=bomb, headers=(("Content-Encoding", "gzip"),))
        calls = endpoint == RECORD_QUERY
        if kind == "too_many_records":
            filler = filler_record if calls else None
            return Reply(body=json_bytes(crowded_page(query, faults.too_many_records, filler)))
        page = self._call_page(query, now) if calls else self._page(query, now)
        if kind == "poison":
            return Reply(body=json_bytes(poisoned(page, fault.variant, now, calls=calls)))
        if kind == "drip":
            return dripped(json_bytes(page), faults.drip_interval_seconds)
        if kind == "oversize":
            return padded(json_bytes(page), faults.oversize_bytes)
        raise AssertionError(f"no answer for fault kind {kind!r}")

    def _location(self) -> tuple[tuple[str, str], ...]:
        return (("Location", self.redirect_url),)

    def _redirected(self, headers: Mapping[str, str]) -> None:
        """Count a request that followed a redirect to the capture listener."""
        names = {name.lower() for name in headers}
        with self._lock:
            self._redirect_followed += 1
            self._redirect_credentials += bool(names & {"api-key", "sign", "timestamp"})

    # ---- helpers

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

    def _app(self, app_id: str) -> list[Entry]:
        try:
            return self._apps[app_id]
        except KeyError:
            raise KeyError(f"unknown app_id {app_id!r}") from None

    def _wait(self, seconds: float) -> bool:
        """Sleep, cut short by ``stop()``; True if the simulator is still running."""
        return not self._stopping.wait(seconds)
