"""The calls one app's recordQuery answers have shown, by the whole seconds they started and
ended: what the read plan (exporter.calls.planner) compares a window's `total` with.

Only calls recordQuery itself listed are here, never pushed ones: a pushed call the API has
not listed yet must not stand in for a new one in a window's count. A call whose times cannot
be read is not here either, so the windows that hold it never match and are read.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from exporter.api.records import CallRecord

START, END = "start", "end"
FIELDS = (START, END)
FORGET_BATCH_SECONDS = 60  # Forget in batches: a rebuild costs the whole index.


class KnownCalls:
    """One app's listed calls by start and end second; not thread-safe (one poll at a time)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._calls: dict[str, tuple[int, int]] = {}
        self._sorted: dict[str, list[int]] = {START: [], END: []}
        self.overflowed = False  # More calls than `limit`: counts can no longer be trusted.

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def add(self, records: Iterable[CallRecord]) -> None:
        for record in records:
            if record.call_id in self._calls:
                continue
            if record.start_seconds is None or record.end_seconds is None:
                continue
            if len(self._calls) >= self._limit:
                self.overflowed = True
                return
            times = (int(record.start_seconds), int(record.end_seconds))
            self._calls[record.call_id] = times
            bisect.insort(self._sorted[START], times[0])
            bisect.insort(self._sorted[END], times[1])

    def count(self, field: str, first: int, last: int) -> int:
        """The calls whose `field` second lies in [first, last], both ends included."""
        seconds = self._sorted[field]
        return bisect.bisect_right(seconds, last) - bisect.bisect_left(seconds, first)

    def ids_at(self, field: str, second: int) -> set[str]:
        """The ids of the calls whose `field` lies in `second` (a scan: for learning only)."""
        index = FIELDS.index(field)
        return {key for key, times in self._calls.items() if times[index] == second}

    def edge_splits(self, field: str, first: int, below: int, most: int) -> list[int]:
        """Up to `most` seconds s in [first, below), the latest, each with calls known by
        `field` in both s and s + 1, oldest first: windows cut after them begin and end in
        seconds with known calls."""
        seconds = self._sorted[field]
        window = seconds[bisect.bisect_left(seconds, first) : bisect.bisect_right(seconds, below)]
        distinct = sorted(set(window), reverse=True)
        found = [s for s, after in zip(distinct[1:], distinct, strict=False) if after == s + 1]
        return found[:most][::-1]

    def middle(self, field: str, first: int, last: int) -> int:
        """A second that splits the known calls of [first, last] about in half, in
        [first, last - 1] (`last` > `first`)."""
        seconds = self._sorted[field]
        low, high = bisect.bisect_left(seconds, first), bisect.bisect_right(seconds, last)
        middle = seconds[(low + high) // 2] if high > low else (first + last) // 2
        return min(max(middle, first), last - 1)

    def forget_before(self, second: int) -> None:
        """Forget the calls that ended before `second`: no window from there on holds them
        (a call starts before it ends)."""
        ends = self._sorted[END]
        if not ends or ends[0] >= second - FORGET_BATCH_SECONDS:
            return
        self._calls = {key: times for key, times in self._calls.items() if times[1] >= second}
        self._sorted = {
            field: sorted(times[i] for times in self._calls.values())
            for i, field in enumerate(FIELDS)
        }
        if len(self._calls) < self._limit:
            self.overflowed = False
