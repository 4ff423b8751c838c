"""``RecordQuery``: the simulated recordQuery, each app's ended calls as a window selects them.

The app's ``CallIndex`` holds each ended call once (drawn as it ends, see ``ended``); a window
is cut from it as ``reporting.ShownCalls`` selects (by start or end time, with report lags),
kept for the pages asked within the same second of the clock, and paged in recordQuery's order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from exporter.simulator.api import Query, page_payload
from exporter.simulator.call_index import CallIndex, KeptWindows
from exporter.simulator.calls import MAX_CALL_SECONDS, Timeline, query_record, started_between
from exporter.simulator.reporting import ShownCalls
from exporter.simulator.tasks import Tasks


class RecordQuery:
    """Answers recordQuery pages for every app of an account; thread-safe (the index and the
    kept windows hold their own locks)."""

    def __init__(
        self,
        seed: int,
        timeline: Timeline,
        tasks: Tasks,
        indexes: Mapping[str, CallIndex],
        shown: ShownCalls,
        *,
        newest_first: bool,
        page_size: Callable[[Query], int],
    ) -> None:
        self._seed = seed
        self._timeline = timeline
        self._tasks = tasks
        self._indexes = indexes
        self._shown = shown
        # recordQuery's order is not documented. Newest first, a call that ends while a read
        # pages moves every later record one place down: across a page boundary, one is read
        # twice or skipped.
        self._newest_first = newest_first
        self._page_size = page_size
        self._windows = KeptWindows()

    def page(self, query: Query, now: float) -> dict[str, Any]:
        """One recordQuery page: the window's ended calls, oldest end first."""
        key = (query.app_id, query.start_time, query.end_time, math.floor(now))

        def cut() -> list[Any]:
            index, plans = self._indexes[query.app_id], self._tasks.app_plans(query.app_id)
            return self._in_order(self._shown.window(index, plans, *key))

        found = self._windows.get(key, cut)
        size = self._page_size(query)
        first = (query.current - 1) * size
        records = [self._shown.render(c, query.app_id) for c in found[first : first + size]]
        return page_payload(records, total=len(found), size=size, current=query.current)

    def drawn_afresh(
        self, app_id: str, now: float, start: float | None, end: float | None
    ) -> list[dict[str, Any]]:
        """See ``Account.calls``: drawn afresh, not from the index, for tests to compare."""
        plans = self._tasks.app_plans(app_id)
        if start is None:  # from the first call of the earliest task
            firsts = [self._timeline.wall(p.start) for p in plans if p.start != float("inf")]
            start = int(min(firsts, default=now) - MAX_CALL_SECONDS) - 1
        high = int(end) if end is not None else int(now)
        found = started_between(self._seed, app_id, plans, int(start), high, now, self._timeline)
        return [query_record(c) for c in self._in_order(found)]

    def _in_order(self, calls: list[Any]) -> list[Any]:
        return calls[::-1] if self._newest_first else calls
