"""The poller: polls each app on its own schedule and publishes it the moment its poll ends.

Each app's outcome is its own: a slow or failing app never delays or touches another's data. A
failing app keeps serving its last good tasks (marked `up 0`) until `poll.stale_after_seconds`.
A whole app poll is bounded by `poll.timeout_seconds`. A failure is logged once when it starts
or changes, with what the code means; repeats go to the debug log, and the recovery is logged.

With `calls.enabled`, each app's poll then reads its call records (recordQuery) into the
`CallLedger`, as the calls' read plan (`CallReads`) says. That read has its own deadline and its own
outcome (`aivoice_calls_up`): it never touches the app's task data or `aivoice_up`. Then
`after_poll` runs in the same thread (the daemon writes the app's call state there, off the
scrape path).

Threads: one scheduler (the caller of `run()`), `poll.concurrency` threads that each carry one
app's poll from start to publish, and `poll.concurrency` threads that send the requests, in
turns between apps (see `workers`). Nothing grows with the number of apps or pages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import MappingProxyType

from exporter.api.client import ApiClient
from exporter.api.paging import Stopped
from exporter.api.reads import TaskRead
from exporter.api.stats import CHANNEL_LIST, RECORD_QUERY, TASK_LIST, RequestRecorder
from exporter.api.transport import Transport
from exporter.calls.ledger import CallLedger
from exporter.calls.line_names import read_lines
from exporter.calls.planner import CallReads, poll_budget
from exporter.codes import INVALID_RESPONSE, PollError, explain
from exporter.config.model import Config
from exporter.process.workers import WorkerPool
from exporter.snapshot import AppSnapshot, Snapshot, Task
from exporter.tasks.history import AppHistory, CallsRead, PollOutcome

# A short name, not the module's path: every log line carries it (`logger`), and filters match it.
log = logging.getLogger("exporter.poller")


@dataclass(frozen=True)
class _AppState:
    """What one app's previous polls left behind, for the next one to build on."""

    tasks: tuple[Task, ...] | None = None
    last_success_seconds: float | None = None
    last_error: str | None = None
    read_problem: str = ""
    truncated: bool = False
    calls_error: str | None = None


class _Wiring:
    """What one config builds: a transport, the two pools and a client per app."""

    def __init__(
        self,
        config: Config,
        recorder: RequestRecorder,
        stop: threading.Event,
        clock: Callable[[], float],
    ) -> None:
        concurrency = config.poll.concurrency
        self.config = config
        self.transport = Transport(
            config.api.base_url,
            timeout_seconds=config.api.timeout_seconds,
            max_response_bytes=config.api.max_response_bytes,
            # Who sends at once: each poll thread its app's first page, each request thread one
            # of the rest, and the balance reader; a fuller pool would open and drop connections.
            # Every request thread, and the balance reader, which sends from its own thread:
            # a smaller pool would open connections only to drop them.
            pool_size=concurrency + 1,
        )
        self.requests = WorkerPool(concurrency, "request")
        self.polls = WorkerPool(concurrency, "poll")
        clients: dict[str, ApiClient] = {}
        for account in config.accounts:
            client = ApiClient(
                account,
                config.api,
                transport=self.transport,
                pool=self.requests,
                recorder=recorder,
                stop=stop,
                clock=clock,
            )
            clients.update(dict.fromkeys(account.app_ids, client))
        self.clients: Mapping[str, ApiClient] = MappingProxyType(clients)
        # Polls and balance reads under way on this wiring, and whether a reload replaced it: a
        # replaced wiring is closed by the last of them, so a reload never cuts one short.
        self.running = 0
        self.retired = False

    def close(self) -> None:
        self.polls.close()
        self.requests.close()
        self.transport.close()


class Poller:
    """Owns the API clients for one config; `run()` polls until `stop` is set."""

    def __init__(
        self,
        config: Config,
        *,
        recorder: RequestRecorder,
        publish: Callable[[Snapshot], None],
        stop: threading.Event,
        calls: CallLedger | None = None,
        after_poll: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        publish_history: Callable[[Mapping[str, AppHistory]], None] | None = None,
    ) -> None:
        self._recorder = recorder
        self._publish_history = publish_history
        self._histories: dict[str, AppHistory] = {}
        self._calls = calls
        self._reads = None if calls is None else CallReads(calls)
        self._after_poll = after_poll
        self._publish = publish
        self._stop = stop
        self._clock = clock
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._states: dict[str, _AppState] = {}
        self._latest: dict[str, AppSnapshot] = {}
        self._running: dict[str, Future[None]] = {}  # Polls under way, by app.
        self._wake = threading.Event()
        self._rescheduled = False
        self._wiring = self._configure(config)

    def _configure(self, config: Config) -> _Wiring:
        wiring = _Wiring(config, self._recorder, self._stop, self._clock)
        self._recorder.track(wiring.clients, _endpoints(config))
        with self._lock:
            self._states = {app: self._states.get(app, _AppState()) for app in wiring.clients}
            self._latest = {a: s for a, s in self._latest.items() if a in wiring.clients}
            self._histories = {a: h for a, h in self._histories.items() if a in wiring.clients}
        if self._reads is not None:
            self._reads.keep_apps(wiring.clients)
        return wiring

    def reconfigure(self, config: Config) -> None:
        """Take a new config and poll every app at once; counters and kept apps' data carry over.

        Polls under way finish on the old wiring; a removed app's result is then dropped.
        """
        wiring = self._configure(config)
        with self._lock:
            old, self._wiring = self._wiring, wiring
            old.retired = True
            idle = old.running == 0
        if idle:
            old.close()
        self._rescheduled = True
        self._wake.set()

    @contextmanager
    def borrow(self, app_id: str) -> Iterator[ApiClient | None]:
        """The client polling `app_id` under the current config (its account's: the balance
        reads share its rate limiter), or None if no account has the app. Its wiring stays
        open until the block ends, even when a reload replaces it meanwhile."""
        with self._lock:
            wiring = self._wiring
            wiring.running += 1
        try:
            yield wiring.clients.get(app_id)
        finally:
            self._release(wiring)

    def _release(self, wiring: _Wiring) -> None:
        """One use of `wiring` ended; the last one of a wiring a reload replaced closes it."""
        with self._lock:
            wiring.running -= 1
            last_of_retired = wiring.retired and wiring.running == 0
        if last_of_retired:
            wiring.close()

    def histories(self) -> Mapping[str, AppHistory]:
        """Each app's recent polls, as the status page gets them."""
        with self._lock:
            return MappingProxyType(dict(self._histories))

    def wake(self) -> None:
        """End the scheduler's wait now (a reload, or shutdown)."""
        self._wake.set()

    def run(self) -> None:
        """Poll each app at start + n * interval; a round the app is still busy for is skipped."""
        due: dict[str, float] = {}
        while not self._stop.is_set():
            wiring, now = self._wiring, time.monotonic()
            if self._rescheduled:
                self._rescheduled = False
                due.clear()
            interval = wiring.config.poll.interval_seconds
            due = {app: due.get(app, now) for app in wiring.clients}
            for app, when in due.items():
                if when <= now:
                    self._start(wiring, app)
                    due[app] = when + interval * (1 + int((now - when) // interval))
            self._wake.wait(min(due.values(), default=now + interval) - now)
            self._wake.clear()

    def poll_once(self) -> Snapshot:
        """Poll every app once, publishing each as it ends; return the whole result.

        Polls already under way are waited for first: they may have read the API before this
        call, and the caller wants what the API says now.
        """
        with self._lock:
            under_way = list(self._running.values())
        wait(under_way)
        wiring = self._wiring
        wait([self._start(wiring, app) for app in wiring.clients])
        return self._snapshot()  # Each app's end published it already.

    def _start(self, wiring: _Wiring, app_id: str) -> Future[None]:
        """Submit the app's poll; if it is still running, skip this round and hand back the
        running poll's future.

        Submitting under the lock is what makes the future known before the poll can end: its
        end takes the same lock to say so.
        """
        with self._lock:
            running = self._running.get(app_id)
            if running is not None:
                log.debug("Poll still running; skipping a round", extra={"app_id": app_id})
                return running
            future = wiring.polls.submit(lambda: self._poll_and_publish(wiring, app_id))
            if not future.cancelled():  # Cancelled: the wiring closed (shutdown), nothing runs.
                self._running[app_id] = future
                wiring.running += 1
        return future

    def _poll_and_publish(self, wiring: _Wiring, app_id: str) -> None:
        """The app's task poll, published; then, with `calls.enabled`, its call records."""
        try:
            app = self._poll_app(wiring, app_id)
            with self._lock:
                if app_id not in self._states:
                    return  # Removed by a reload while it was being polled.
                self._latest[app_id] = app
            self._publish_snapshot()
            polled = self._reads is not None and wiring.config.calls.enabled
            if self._reads is not None and polled:
                self._poll_calls(wiring, app_id, self._reads)
            if self._calls is not None and _endpoints(wiring.config)[-1] == CHANNEL_LIST:
                deadline = time.monotonic() + wiring.config.poll.timeout_seconds
                polled |= read_lines(self._calls, wiring.clients[app_id], app_id, deadline)
            if polled:
                self._publish_snapshot()  # The recordQuery and channelList request counts.
            if self._after_poll is not None:
                self._after_poll(app_id)
        except Stopped:
            return
        finally:
            with self._lock:
                self._running.pop(app_id, None)
            self._release(wiring)

    def _publish_snapshot(self) -> None:
        """Publish every app's latest; serialised, so snapshots reach the renderer in order."""
        with self._publish_lock:
            self._publish(self._snapshot())
            if self._publish_history is not None:
                with self._lock:
                    histories = MappingProxyType(dict(self._histories))
                self._publish_history(histories)

    def _snapshot(self) -> Snapshot:
        """Every polled app's latest outcome, in config order, with the request counts."""
        with self._lock:
            order = list(self._states)
            apps = tuple(self._latest[app] for app in order if app in self._latest)
        return Snapshot(
            apps=apps,
            requests=self._recorder.snapshot(order),
            ready=len(apps) == len(order),
        )

    def _poll_app(self, wiring: _Wiring, app_id: str) -> AppSnapshot:
        poll = wiring.config.poll
        started = time.perf_counter()
        deadline = time.monotonic() + poll.timeout_seconds
        with self._lock:
            previous = self._states.get(app_id, _AppState())
        failure: PollError | None = None
        pages = None
        try:
            read = wiring.clients[app_id].read_tasks(app_id, deadline)
        except PollError as err:
            failure = err
        except Stopped:
            raise  # Shutting down: no poll to record, and nothing crashed.
        except Exception as err:  # A bug must cost this app's poll, never the daemon.
            log.exception("Poll crashed", extra={"app_id": app_id})
            failure = PollError(INVALID_RESPONSE, f"unexpected {type(err).__name__}")
        else:
            state, pages = self._succeeded(app_id, previous, read), read.pages
        if failure is not None:
            state = self._failed(app_id, previous, failure, poll.stale_after_seconds)
        up = failure is None
        duration = time.perf_counter() - started
        outcome = PollOutcome(
            self._clock(),
            duration,
            pages,
            None if failure is None else failure.code,
            "" if failure is None else failure.detail,
        )
        with self._lock:
            if app_id in self._states:
                self._states[app_id] = state
                self._histories[app_id] = self._histories.get(app_id, AppHistory()).record(outcome)
        if self._calls is not None:
            served = None if state.tasks is None else {task.job_id for task in state.tasks}
            self._calls.keep_tasks(app_id, served)
        return AppSnapshot(
            app_id=app_id,
            up=up,
            tasks=state.tasks,
            poll_duration_seconds=duration,
            last_success_seconds=state.last_success_seconds,
        )

    def _poll_calls(self, wiring: _Wiring, app_id: str, reads: CallReads) -> None:
        """Read the app's call records into the ledger, as the calls' read plan says; a
        failure is the calls' alone."""
        config = wiring.config
        deadline = time.monotonic() + config.poll.timeout_seconds
        client = wiring.clients[app_id]
        apps = sum(1 for other in wiring.clients.values() if other is client)
        budget = poll_budget(config.poll.interval_seconds, config.api.max_requests_per_second, apps)
        try:
            read = reads.read(client, app_id, deadline, budget)
        except Stopped:
            raise
        except PollError as err:
            reads.ledger.read_failed(app_id)
            self._calls_failed(app_id, err)
            return
        except Exception as err:  # A bug must cost this read, never the daemon or the tasks.
            log.exception("Call-record read crashed", extra={"app_id": app_id})
            reads.ledger.read_failed(app_id)
            self._calls_failed(
                app_id, PollError(INVALID_RESPONSE, f"unexpected {type(err).__name__}")
            )
            return
        if read.truncated:
            log.warning(
                "The call-record window has more pages than the exporter reads; the rest is "
                "read by the next windows",
                extra={"app_id": app_id, "calls": read.records},
            )
        self._record_calls(app_id, CallsRead(self._clock()))
        with self._lock:
            state = self._states.get(app_id)
            if state is not None and state.calls_error is not None:
                log.info("Call-record reads recovered", extra={"app_id": app_id})
                self._states[app_id] = replace(state, calls_error=None)

    def _record_calls(self, app_id: str, read: CallsRead) -> None:
        with self._lock:
            if app_id in self._histories:
                self._histories[app_id] = self._histories[app_id].record_calls(read)

    def _calls_failed(self, app_id: str, err: PollError) -> None:
        self._record_calls(app_id, CallsRead(self._clock(), err.code))
        with self._lock:
            state = self._states.get(app_id)
            if state is None:
                return
            previous, self._states[app_id] = state.calls_error, replace(state, calls_error=err.code)
        fields = {"app_id": app_id, "code": err.code, "explanation": explain(err.code)}
        if err.detail:
            fields["detail"] = err.detail
        level = logging.DEBUG if err.code == previous else logging.WARNING
        log.log(level, "Call-record read failed; task data is not affected", extra=fields)

    def _succeeded(self, app_id: str, previous: _AppState, read: TaskRead) -> _AppState:
        if previous.last_error is not None:
            log.info("Poll recovered", extra={"app_id": app_id, "tasks": len(read.tasks)})
        if read.problem and not previous.read_problem:
            log.warning(
                "The app's tasks kept moving while it was read; serving the best read",
                extra={"app_id": app_id, "problem": read.problem, "tasks": len(read.tasks)},
            )
        elif previous.read_problem and not read.problem:
            log.info("The app reads consistently again", extra={"app_id": app_id})
        if read.truncated and not previous.truncated:
            log.warning(
                "The app has more pages than the exporter reads; later tasks are left out",
                extra={"app_id": app_id, "total": read.total, "tasks": len(read.tasks)},
            )
        return _AppState(
            tasks=read.tasks,
            last_success_seconds=self._clock(),
            read_problem=read.problem,
            truncated=read.truncated,
            calls_error=previous.calls_error,
        )

    def _failed(
        self, app_id: str, previous: _AppState, err: PollError, stale_after: float
    ) -> _AppState:
        fields = {"app_id": app_id, "code": err.code, "explanation": explain(err.code)}
        if err.detail:
            fields["detail"] = err.detail
        level = logging.DEBUG if err.code == previous.last_error else logging.WARNING
        log.log(level, "Poll failed", extra=fields)
        tasks = previous.tasks
        age = self._clock() - (previous.last_success_seconds or 0)
        if tasks is not None and age > stale_after:
            log.warning(
                "Dropping stale task series",
                extra={"app_id": app_id, "seconds_since_success": round(age)},
            )
            tasks = None
        return replace(previous, tasks=tasks, last_error=err.code)

    def close(self) -> None:
        self._wiring.close()


def _endpoints(config: Config) -> tuple[str, ...]:
    """The endpoints whose request counters start at zero for every app: with call outcomes
    (recordQuery or the push), the lines' names too."""
    polled = (RECORD_QUERY,) if config.calls.enabled else ()
    lines = (CHANNEL_LIST,) if config.calls.enabled or config.push.enabled else ()
    return (TASK_LIST, *polled, *lines)
