"""The poller: fetches every app on a fixed schedule and publishes each round as a `Snapshot`.

Apps are polled side by side and each one's outcome is its own: a failing app keeps serving its
last good tasks (marked `up 0`) until `poll.stale_after_seconds`, and never touches another app.
A failure is logged once when it starts or changes, with what the code means; repeats go to the
debug log, and the recovery is logged again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import requests

from exporter.client import ApiClient, PollError, map_in_threads
from exporter.codes import explain
from exporter.config import Config
from exporter.snapshot import AppSnapshot, Snapshot, Task
from exporter.stats import RequestRecorder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _AppState:
    """What one app's previous polls left behind, for the next one to build on."""

    tasks: tuple[Task, ...] | None = None
    last_success_seconds: float | None = None
    last_error: str | None = None


class Poller:
    """Owns the API clients for one config; `run()` polls until `stop` is set."""

    def __init__(
        self,
        config: Config,
        *,
        recorder: RequestRecorder,
        publish: Callable[[Snapshot], None],
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._recorder = recorder
        self._publish = publish
        self._stop = stop
        self._clock = clock
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._states: dict[str, _AppState] = {}
        self._wake = threading.Event()
        self._configure(config)

    def _configure(self, config: Config) -> None:
        in_flight = threading.Semaphore(config.poll.concurrency)
        clients: dict[str, ApiClient] = {}
        for account in config.accounts:
            client = ApiClient(
                account,
                config.api,
                session=self._session,
                recorder=self._recorder,
                in_flight=in_flight,
                workers=config.poll.concurrency,
                stop=self._stop,
                clock=self._clock,
            )
            clients.update(dict.fromkeys(account.app_ids, client))
        self._recorder.track(clients)
        # Enough pooled connections for every request the config lets fly at once.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=len(config.accounts), pool_maxsize=config.poll.concurrency
        )
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        with self._lock:
            self._config = config
            self._clients: Mapping[str, ApiClient] = MappingProxyType(clients)
            self._states = {app_id: self._states.get(app_id, _AppState()) for app_id in clients}

    def reconfigure(self, config: Config) -> None:
        """Take a new config and poll at once; counters and kept apps' last data carry over."""
        self._configure(config)
        self._wake.set()

    def wake(self) -> None:
        """End the wait for the next round now (a reload, or shutdown)."""
        self._wake.set()

    def run(self) -> None:
        """Poll on a fixed schedule, round n at start + n * interval; missed rounds are skipped."""
        started = time.monotonic()
        round_number = 0
        while not self._stop.is_set():
            self.poll_once()
            interval = self._config.poll.interval_seconds
            elapsed = time.monotonic() - started
            round_number = max(round_number + 1, int(elapsed // interval) + 1)
            self._wake.wait(started + round_number * interval - time.monotonic())
            self._wake.clear()

    def poll_once(self) -> Snapshot:
        """Poll every app once, publish the result and return it."""
        with self._lock:
            clients, poll = self._clients, self._config.poll
        apps = map_in_threads(
            lambda item: self._poll_app(item[0], item[1], poll.stale_after_seconds),
            list(clients.items()),
            workers=max(len(clients), 1),
        )
        snapshot = Snapshot(apps=tuple(apps), requests=self._recorder.snapshot(clients))
        self._publish(snapshot)
        return snapshot

    def _poll_app(self, app_id: str, client: ApiClient, stale_after: float) -> AppSnapshot:
        started = time.perf_counter()
        previous = self._states.get(app_id, _AppState())
        try:
            tasks = client.fetch_tasks(app_id)
        except PollError as err:
            state = self._failed(app_id, previous, err, stale_after)
            up = False
        else:
            if previous.last_error is not None:
                log.info("Poll recovered", extra={"app_id": app_id, "tasks": len(tasks)})
            state = _AppState(tasks=tasks, last_success_seconds=self._clock())
            up = True
        self._states[app_id] = state
        return AppSnapshot(
            app_id=app_id,
            up=up,
            tasks=state.tasks,
            poll_duration_seconds=time.perf_counter() - started,
            last_success_seconds=state.last_success_seconds,
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
        return _AppState(tasks, previous.last_success_seconds, err.code)

    def close(self) -> None:
        self._session.close()
