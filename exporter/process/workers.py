"""A fixed pool of worker threads that takes turns between the apps it works for.

The exporter's thread count is set by its config alone, never by how many apps or pages there
are. Jobs are queued per key (an app id) and workers serve the keys in turn, so an app with a
thousand pages to read, or whose every request hangs until its timeout, delays another app's
next request by one request at the most, not by its whole poll.

Not `concurrent.futures.ThreadPoolExecutor`: its threads are joined when the interpreter exits,
so a request stuck in a socket read could hold up a SIGTERM, and it serves jobs strictly first
come, first served. These are daemon threads; the futures they fill are the standard library's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Future[Any], Callable[[], Any]]


class WorkerPool:
    """`size` daemon threads; `submit(call, key)` runs `call` when the key's turn comes."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self._ready = threading.Condition()
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()
        self._closed = False
        for n in range(size):
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True).start()

    def submit(self, call: Callable[[], T], key: str = "") -> Future[T]:
        future: Future[T] = Future()
        with self._ready:
            if self._closed:
                future.cancel()
                return future
            self._queues.setdefault(key, deque()).append((future, call))
            self._ready.notify()
        return future

    def close(self) -> None:
        """Cancel what is still queued; workers finish the call they are in, then exit."""
        with self._ready:
            self._closed = True
            for jobs in self._queues.values():
                for future, _ in jobs:
                    future.cancel()
            self._queues.clear()
            self._ready.notify_all()

    def _next_job(self) -> _Job | None:
        """The oldest job of the key whose turn it is; that key then goes to the back."""
        with self._ready:
            while not self._queues and not self._closed:
                self._ready.wait()
            if self._closed:
                return None
            key, jobs = next(iter(self._queues.items()))
            job = jobs.popleft()
            if jobs:
                self._queues.move_to_end(key)
            else:
                del self._queues[key]
            return job

    def _work(self) -> None:
        while (job := self._next_job()) is not None:
            future, call = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as err:  # Handed to whoever waits on the future.
                future.set_exception(err)
