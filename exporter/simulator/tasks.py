"""``Tasks``: every app's task list, and the changes tests make to it between two page reads.

An app's tasks are generated ``Plan``s (whose progress follows the clock, see ``campaigns``) or
records pinned or added by a test, newest first. Its own lock guards them, so a page takes its
records, and fires the changes due before it, in one hold.
"""

from __future__ import annotations

import copy
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from exporter.simulator.api import is_int
from exporter.simulator.campaigns import (
    Entry,
    Plan,
    entry_job_id,
    entry_name,
    generate_plans,
    new_record,
    render,
)
from exporter.simulator.faults import CHURN_ACTIONS, check_number
from exporter.simulator.lines import AppLines, Degrade, app_lines


@dataclass(frozen=True)
class Change:
    """A ``change_before_page`` trigger waiting for its page."""

    app_id: str
    page: int
    action: str
    count: int


class Tasks:
    """The apps' tasks, newest first. Thread-safe: tests change tasks while a client pages."""

    def __init__(
        self,
        app_ids: Sequence[str],
        tasks_per_app: int,
        seed: int,
        started_at: float,
        clock: Callable[[], float],
        degrade: Degrade | None = None,
        rate_scale: float = 1.0,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # Each app's lines (channelList), fixed for the simulator's life.
        self.lines: Mapping[str, AppLines] = MappingProxyType(
            {app_id: app_lines(seed, app_id, degrade) for app_id in app_ids}
        )
        self._apps: dict[str, list[Entry]] = {
            app_id: list(
                generate_plans(
                    app_id, i, tasks_per_app, seed, started_at, self.lines[app_id], rate_scale
                )
            )
            for i, app_id in enumerate(app_ids)
        }
        self._changes: list[Change] = []
        self._delays: list[tuple[str, int, float]] = []  # (app_id, page, seconds), one-shot
        self._rng = random.Random(f"{seed}:churn")
        self._churn = dict.fromkeys(CHURN_ACTIONS, 0)
        self._churn_created = dict.fromkeys(app_ids, 0)  # churn_ratio's creates less its deletes

    def __contains__(self, app_id: object) -> bool:
        return app_id in self._apps

    def plans(self) -> dict[str, list[Plan]]:
        """Every app's generated tasks: only these make calls."""
        with self._lock:
            return {a: [e for e in es if isinstance(e, Plan)] for a, es in self._apps.items()}

    def app_plans(self, app_id: str) -> list[Plan]:
        with self._lock:
            return [e for e in self._app(app_id) if isinstance(e, Plan)]

    def churn(self) -> dict[str, int]:
        """Tasks created and deleted by ``change_before_page`` and churn."""
        with self._lock:
            return dict(self._churn)

    def rendered(self, app_id: str, elapsed: float) -> list[dict[str, Any]]:
        """The app's records as the API shows them ``elapsed`` simulated seconds in."""
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
        with self._lock:
            entries = self._app(app_id)
            for index, entry in enumerate(entries):
                if entry_job_id(entry) == job_id:
                    del entries[index]
                    return True
        return False

    def change_before_page(self, app_id: str, page: int, action: str, count: int) -> None:
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

    def take_delay(self, app_id: str, page: int) -> float:
        """The ``delay_page`` holds due for this page, used up; 0.0 if none."""
        with self._lock:
            due = [d for d in self._delays if d[:2] == (app_id, page)]
            self._delays = [d for d in self._delays if d[:2] != (app_id, page)]
        return sum(seconds for _, _, seconds in due)

    def for_page(self, app_id: str, page: int, name: str, churn_ratio: float | None) -> list[Entry]:
        """The entries a page is cut from (matching ``name``, if any), a snapshot.

        With ``churn_ratio`` (a page that answers a request), due ``change_before_page`` triggers
        and churn happen first, in the same hold of the lock; without (a page a fault embeds),
        nothing changes.
        """
        with self._lock:
            if churn_ratio is not None:
                self._change_before(app_id, page, churn_ratio)
            entries = self._apps[app_id]
            if name:
                return [e for e in entries if name in entry_name(e)]
            return list(entries)

    def _change_before(self, app_id: str, page: int, churn_ratio: float) -> None:
        """Fire the triggers due for this page, then maybe churn; the caller holds the lock."""
        entries = self._apps[app_id]
        due = [c for c in self._changes if (c.app_id, c.page) == (app_id, page)]
        if due:
            self._changes = [c for c in self._changes if c not in due]
        for change in due:
            self._change(entries, change.action, change.count)
        if churn_ratio <= 0 or self._rng.random() >= churn_ratio:
            return
        action = "delete" if self._churn_created[app_id] > 0 else "create"
        changed = self._change(entries, action, 1)
        self._churn_created[app_id] += changed if action == "create" else -changed

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

    def _app(self, app_id: str) -> list[Entry]:
        try:
            return self._apps[app_id]
        except KeyError:
            raise KeyError(f"unknown app_id {app_id!r}") from None
