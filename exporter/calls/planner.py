"""The read plan: which recordQuery windows a poll checks and which it reads, so that a poll
costs about what is new, not the whole lookback, and still counts every call once.

A call shows in recordQuery only once it has ended, sometimes well after, so each poll must
look again at the whole lookback (`calls.lookback_seconds` before the end of the previous
poll's window). Reading it whole transfers every call again at every poll. Instead, a poll:

1. reads every page of the stretch since the previous poll's window ended (all new);
2. asks the older part for its `total` only (one request of size 1), and compares it with the
   calls recordQuery has already listed there (`known.KnownCalls`, by the time the API
   selects by: `selection.Selection`). Records are never deleted, so an equal count means
   nothing new; otherwise the part is split in two (at the median known call), the first half
   counted, the second inferred from the difference when the first holds nothing new, until
   the parts with new calls are small or mostly new, and those are read whole.

Where it cannot tell, it reads: before the records have shown which time the API selects by
and that a window's ends are whole seconds, both included, every window is read whole (split at
the previous poll's end, which is what shows a start-time API for one); a part whose count is
below what is known (a record gone) is read; a call whose times cannot be read is never known,
so the windows holding it never match. A count equal to the known calls is the one thing taken
as "nothing new", and it can only be wrong if the API drops records it listed before.

The records of every request, counts included, go to the ledger, which counts each call once.
Nothing is kept from a poll that fails: its calls are found again by the next.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from exporter.api.client import ApiClient
from exporter.api.records import CallRecord
from exporter.calls.counts import CLOCK_SLACK_SECONDS, MAX_REMEMBERED_CALLS
from exporter.calls.known import END, START, KnownCalls
from exporter.calls.ledger import CallLedger
from exporter.calls.selection import EDGE_READS, Selection

# A part whose total is this or less is read, not split: splitting it costs about as many
# records (one per count) as it saves.
SMALL_PART = 4
# A second holding few new calls is read in this many pages at most, stopping at the new ones.
LEAF_PAGES = 6
TAIL_SECONDS = 1
LAG_POLLS = 10
LAG_MIN_CALLS = 4  # A last second with fewer calls tells nothing.
LAG_SHARE = 4  # New calls in it, one in this many or more: calls show late.
PAGE_SIZE = 100  # recordQuery's largest page: what a budget of requests is counted in.


CALL_SHARE = 0.5  # Of an account's requests in a poll interval, what its call reads may take.
MIN_BUDGET = 3  # Requests a poll's call read may always send: a count, a page, a check.


def poll_budget(interval_seconds: float, per_second: float, apps: int) -> float:
    """Requests one app's call read may send per poll: a share of what its account may send in
    a poll interval, split between the account's apps (each may be catching up at once)."""
    return max(MIN_BUDGET, interval_seconds * per_second * CALL_SHARE / max(apps, 1))


@dataclass(frozen=True)
class ReadSummary:
    """What one poll's reads took: requests, records received, and whether a window had more
    pages than the exporter reads."""

    requests: int
    records: int
    truncated: bool


@dataclass
class _Trip:
    """One poll of one app: its requests, and what they brought, kept until it ends."""

    client: ApiClient
    app_id: str
    deadline: float
    known: KnownCalls
    selection: Selection
    next_start: int  # The next poll's first second: a part from there on is checked again.
    records: list[CallRecord] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    budget: float = float("inf")  # Requests this poll may send, past the first read.
    requests: int = 0
    truncated: bool = False

    def left(self) -> float:
        return self.budget - self.requests

    def read_forward(self, first: int, last: int) -> int:
        """Read [first, last] whole if its pages fit what is left of the budget; else the
        longest start of it that does (one second at least): the next poll goes on from there.
        The last second read."""
        if self.left() == float("inf") or first == last:
            self.read(first, last)
            return last
        total = self.count(first, last)
        if -(-total // PAGE_SIZE) <= self.left():
            self.read(first, last)
            return last
        # Calls end at about the same pace through a backlog: guess the part that fits, then
        # halve it until it does.
        fits = (self.left() - 1) * PAGE_SIZE
        guess = first + max(0, int((last - first) * fits / max(total, 1)) - 1)
        while guess > first and self.left() > 1 and self.count(first, guess) > fits:
            fits = (self.left() - 1) * PAGE_SIZE
            guess = first + (guess - first) // 2
        self.read(first, guess)
        return guess

    def count(self, first: int, last: int) -> int:
        read = self.client.read_calls(self.app_id, first, last, self.deadline, count_only=True)
        self._took(read.records, read.rejected, read.pages)
        return read.total

    def read(self, first: int, last: int) -> None:
        read = self.client.read_calls(self.app_id, first, last, self.deadline)
        self._took(read.records, read.rejected, read.pages)
        self.truncated |= read.truncated
        self.selection.learn(first, last, read.records, self.known.ids_at)

    def find(self, first: int, last: int, total: int, new: int) -> None:
        """Read a second that holds a few new calls among many known in small pages, until the
        new ones are found: on average half of it. Whatever a moving page hides is found by
        the next poll, as the second's count still differs then."""
        size = -(-total // LEAF_PAGES)

        def enough(records: Sequence[CallRecord]) -> bool:
            return len({r.call_id for r in records if r.call_id not in self.known}) >= new

        read = self.client.read_calls(
            self.app_id, first, last, self.deadline, size=size, enough=enough
        )
        self._took(read.records, read.rejected, read.pages)

    def check(self, by: str, first: int, last: int, total: int | None = None) -> None:
        """Find and read what [first, last] holds that is not known; `total` if counted."""
        if total is None:
            if self.left() <= 0:
                return  # Left for the next poll, whose windows still hold this part.
            total = self.count(first, last)
        expected = self.known.count(by, first, last)
        if total == expected:
            return
        new = total - expected
        if first == last and 0 < new * LEAF_PAGES < total <= PAGE_SIZE:
            self.find(first, last, total, new)
            return
        if first == last or new < 0 or total <= SMALL_PART or total <= 2 * new:
            self.read(first, last)
            return
        middle = self.known.middle(by, first, last)
        left = self.count(first, middle)
        if left == self.known.count(by, first, middle) or middle + 1 >= self.next_start:
            # The rest held the difference when the whole was counted: exactly so if the
            # first half held nothing new (then it held as much before); otherwise unless a
            # call showed in the first half between the two counts, and then the next poll,
            # whose windows still hold the rest, finds what this one missed.
            self.check(by, middle + 1, last, total - left)
        else:
            self.check(by, middle + 1, last)
        if left != self.known.count(by, first, middle):
            self.check(by, first, middle, left)

    def _took(self, records: Sequence[CallRecord], rejected: Sequence[str], pages: int) -> None:
        self.records.extend(records)
        self.rejected.extend(rejected)
        self.requests += pages


class CallReads:
    """Plans and makes each app's recordQuery reads into the ledger; one poll per app at a
    time (the poller's guarantee), any number of apps at once."""

    def __init__(self, ledger: CallLedger) -> None:
        self.ledger = ledger
        self.selection = Selection()
        self._lock = threading.Lock()
        self._known: dict[str, KnownCalls] = {}
        self._lagging: dict[str, int] = {}  # Polls left whose windows stop a second earlier.

    def keep_apps(self, app_ids: Collection[str]) -> None:
        """Forget what is known of apps no longer in the config."""
        with self._lock:
            self._known = {app: known for app, known in self._known.items() if app in app_ids}
            self._lagging = {app: n for app, n in self._lagging.items() if app in app_ids}

    def _lagged(
        self, app_id: str, records: Sequence[CallRecord], known: KnownCalls, second: int
    ) -> None:
        """Whether the calls that ended in the previous window's last second showed late: a
        good share new at this poll. Then the next windows stop a second earlier, for
        LAG_POLLS polls, so that those calls are read once, whole, not twice."""
        fresh = {
            r.call_id
            for r in records
            if r.call_id not in known and r.end_seconds is not None and int(r.end_seconds) == second
        }
        there = known.count(END, second, second) + len(fresh)
        with self._lock:
            if there >= LAG_MIN_CALLS and len(fresh) * LAG_SHARE >= there:
                self._lagging[app_id] = LAG_POLLS
            elif self._lagging.get(app_id, 0) > 0:
                self._lagging[app_id] -= 1

    def read(
        self, client: ApiClient, app_id: str, deadline: float, budget: float = float("inf")
    ) -> ReadSummary:
        """One poll's reads of the app's call records, counted by the ledger; raises
        `PollError` (the ledger then keeps its window, and nothing of this poll is kept).

        Past the app's first read, a poll sends about `budget` requests at most: a backlog
        (calls that ended during an outage) is read over several polls, oldest first, so the
        call reads never hold the app's next task poll back."""
        start, now = (int(moment) for moment in self.ledger.window(app_id))
        covered = self.ledger.covered(app_id)
        # After the first read, a window stops a second before `now`'s: a call that ends in
        # that second has mostly not shown yet, and the next window starts there. It never
        # ends before the previous one: the windows' start would move back past what the
        # first read remembered.
        by = self.selection.trusted()
        with self._lock:
            hold = 1 if by == END and self._lagging.get(app_id, 0) > 0 else 0
        end = now if covered is None else max(start, now - 1 - hold, min(int(covered), now))
        with self._lock:
            known = self._known.setdefault(app_id, KnownCalls(MAX_REMEMBERED_CALLS))
        next_start = end - (int(covered) - start) if covered is not None else end
        trip = _Trip(client, app_id, deadline, known, self.selection, next_start)
        if covered is None:
            trip.read(start, end)  # The first read, whole: it only remembers.
        elif by is None or not start <= int(covered) <= end:
            # Whole, as nothing is known of the windows yet (or after an outage longer than a
            # window): in parts that end where calls are known on both sides, so that each
            # read shows how the API treats a window's ends; what lies past the previous
            # window as the budget allows.
            field = START if self.selection.selects_by == START else END
            read_before = min(int(covered), end)
            first = start
            for part in (*known.edge_splits(field, start, read_before, EDGE_READS), read_before):
                if first <= part:
                    trip.read(first, part)
                first = part + 1
            if first <= end:
                trip.budget = trip.requests + budget
                end = trip.read_forward(max(first, start), end)
        else:
            trip.budget = budget
            # The previous stretch's last seconds first: calls that ended just before it was
            # read mostly show just after, so they are counted apart, not searched for.
            tail = max(start, int(covered) - TAIL_SECONDS + 1)
            trip.check(by, tail, int(covered))
            if start < tail:
                trip.check(by, start, tail - 1)
            if int(covered) < end:
                end = trip.read_forward(int(covered) + 1, end)
            if by == END:
                self._lagged(app_id, trip.records, known, int(covered))
        self.ledger.read_succeeded(app_id, float(end), trip.records, trip.rejected)
        self.ledger.learned(self.selection.selects_by)
        known.add(trip.records)
        known.forget_before(int(start - CLOCK_SLACK_SECONDS))
        return ReadSummary(trip.requests, len(trip.records) + len(trip.rejected), trip.truncated)
