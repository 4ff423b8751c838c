"""What the records show of recordQuery's windows: which time of a call they select by, and
whether their ends are whole seconds, both included.

The vendor says neither (docs/api.md). A window is sent as two `yyyy-MM-dd HH:mm:ss` texts,
and every record shows its `startTime` and `endTime` the same way, so every read is evidence:

* a record whose start lies outside the window read shows the window does not select by start
  time; one whose end lies outside, that it does not select by end time;
* a read that brings back every call already known to lie in the window's first (or last)
  second, by the time it selects by, shows that end includes its whole second. One such call
  could lie exactly on the second by chance if the API compared finer times, so `EDGE_READS`
  reads must show it for each end.

Until both are known the read plan reads every page of its windows, as if nothing were known.
If the records rule out both times (the API selects by something else, or `api.create_time_zone`
is wrong) it stays so. Shared by every app's reads (one API); thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from exporter.api.records import CallRecord
from exporter.calls.known import END, FIELDS, START

UNKNOWN, NEITHER = "unknown", "neither"
SELECTIONS = (UNKNOWN, START, END, NEITHER)
EDGE_READS = 3  # Reads that must show each end of a window whole, for the time selected by.


class Selection:
    """The evidence so far; `selects_by` says what it shows, `trusted` whether it suffices."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._possible = set(FIELDS)
        self._edges = {(field, side): 0 for field in FIELDS for side in ("first", "last")}

    @property
    def selects_by(self) -> str:
        with self._lock:
            return _name(self._possible)

    def trusted(self) -> str | None:
        """The time windows select by, once that and their whole-second ends are shown."""
        with self._lock:
            if len(self._possible) != 1:
                return None
            (field,) = self._possible
            whole = all(self._edges[(field, side)] >= EDGE_READS for side in ("first", "last"))
            return field if whole else None

    def learn(
        self,
        first: int,
        last: int,
        records: Sequence[CallRecord],
        known: Callable[[str, int], set[str]],
    ) -> None:
        """Take what a read of every page of [first, last] shows; `known(field, second)` is
        the ids of the calls known, before this read, whose `field` lies in that second."""
        times = [
            (r.call_id, int(r.start_seconds), int(r.end_seconds))
            for r in records
            if r.start_seconds is not None and r.end_seconds is not None
        ]
        outside = {
            START: any(not first <= start <= last for _, start, _ in times),
            END: any(not first <= end <= last for _, _, end in times),
        }
        with self._lock:
            wanted = [key for key, reads in self._edges.items() if reads < EDGE_READS]
            wanted = [(field, side) for field, side in wanted if field in self._possible]
        whole: list[tuple[str, str]] = []
        for field, side in wanted:
            index, second = FIELDS.index(field) + 1, first if side == "first" else last
            expected = known(field, second)
            if expected and expected <= {call[0] for call in times if call[index] == second}:
                whole.append((field, side))
        with self._lock:
            self._possible -= {field for field, out in outside.items() if out}
            for key in whole:
                self._edges[key] += 1


def _name(possible: set[str]) -> str:
    if len(possible) == 1:
        return next(iter(possible))
    return UNKNOWN if possible else NEITHER
