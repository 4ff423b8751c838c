"""What the ledger counts for each app, and the immutable copies scrapes read.

`AppLedger` holds one app's remembered call ids and counters under the ledger's lock;
`freeze` turns them into an `AppCalls`, the frozen form handed to the exposition. Every label
value a record brings is bounded per app here (results, hang-up parties, intents, tasks), so a
misbehaving API or push cannot grow the series without bound.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.calls.lines import NO_LINES, AppLines, LineCalls

# The documented `resultStatus` values (docs/api.md): each starts at 0 on every app.
RESULT_STATUSES = (
    "ANSWERED",
    "TRANSFER_ARTIFICIAL",
    "NO_ANSWER",
    "BUSY",
    "POWER_OFF",
    "OUT_OF_SERVICE",
    "REFUSED",
    "VACANT_NUMBER",
    "CAN_NOT_CONNECT",
    "CALL_LOSS",
    "FROM_PHONE_ERROR",
    "SYSTEM_ERROR",
)
ANSWERED = frozenset({"ANSWERED", "TRANSFER_ARTIFICIAL"})
TALK_BUCKETS = (5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)

POLL, PUSH = "poll", "push"
COUNTED, DUPLICATE, REJECTED = "counted", "duplicate", "rejected"
OUTCOMES = (COUNTED, DUPLICATE, REJECTED)
OTHER = "other"
NO_INTENT = "none"

# Values beyond the documented results, hang-up parties and intents that keep their own series,
# per app; later ones count as OTHER.
MAX_EXTRA_RESULTS = 20
MAX_HANGUPS = 20
MAX_INTENTS = 50
# Ids remembered per app: about 170 bytes each (id, entry, age), some 45 MB at the most. A full
# ledger forgets its oldest early (logged), which can count a late duplicate twice but never grows.
MAX_REMEMBERED_CALLS = 250_000
MAX_TASKS_WITH_CALLS = 100_000  # Tasks per app with their own aivoice_task_call_results_total.
# The vendor's clock and ours may disagree: keep ids this much longer than the windows need.
CLOCK_SLACK_SECONDS = 300.0
# The longest window read after an outage; the API publishes no limit, so stay far under the
# 31 days its sister endpoints allow.
MAX_WINDOW_SECONDS = 86400.0
# Who sent a push the listener answered: the vendor, or another exporter handing one on.
VENDOR, PEER = "vendor", "peer"
# Every HTTP status the push listener can answer, each at 0 from the start: a push taken in
# (200), a request refused (400, 404, 405, 411, 413, 431, 501, and 505 for HTTP/2 and later),
# and the ledger's failure (500). With push.peers, the vendor may also be answered 503 (an
# owner did not get it), and a peer 421 (not this shard's).
PUSH_CODES = ("200", "400", "404", "405", "411", "413", "431", "500", "501", "505")
VENDOR_FORWARDING_CODES = ("503",)
PEER_FORWARDING_CODES = ("421",)
MICROS = 1_000_000  # Costs are summed in millionths of the currency unit.
MAX_PUSH_CODES = 20  # Per sender; beyond, a status is counted as OTHER.

# Whether a remembered call has been counted, and whether its cost has.
SEEN = 0
COST = 1
CALL_DIGEST_BYTES = 12  # 96 bits: a collision among a quarter of a million ids is about 2**-60.


def call_digest(call_id: str) -> bytes:
    """What a remembered call is known by once it leaves memory: a digest of its id, so the
    state on disk holds no value of any record."""
    return hashlib.blake2b(
        call_id.encode("utf-8", "surrogatepass"),
        digest_size=CALL_DIGEST_BYTES,
        person=b"aivoice-callid",
    ).digest()


@dataclass(frozen=True)
class RememberedCall:
    """A call the ledger remembers, as the state on disk keeps it."""

    digest: bytes
    seen_seconds: float  # When it was first seen (the ledger's clock): it is forgotten by age.
    cost_counted: bool


@dataclass(frozen=True)
class AppResume:
    """What one app needs to resume its call-record reads after a restart: the end of the
    latest window read whole (None before the first read) and the calls it remembers, oldest
    first. `generation` tells whether the ledger changed since (it is not part of the state)."""

    app_id: str
    covered_until: float | None
    calls: tuple[RememberedCall, ...]
    generation: int = field(default=0, compare=False)


@dataclass(frozen=True)
class AppCalls:
    """One app's call counters since the exporter started (or the app was added)."""

    app_id: str
    up: bool | None  # The latest recordQuery read succeeded; None when it is not polled.
    results: Mapping[str, int]
    talk_buckets: tuple[int, ...]  # Cumulative, one per TALK_BUCKETS bound and +Inf.
    talk_sum: float
    billed_seconds: float
    cost: Mapping[str, float]  # By currency; empty when the push is off.
    hangups: Mapping[str, int]
    intents: Mapping[str, int]
    task_results: Mapping[str, Mapping[str, int]]  # job_id -> result -> calls
    records: Mapping[tuple[str, str], int]  # (source, outcome) -> records
    lines: LineCalls = NO_LINES  # Calls by line (summing to `results`), and the lines' names.


@dataclass(frozen=True)
class CallsSnapshot:
    """Every app's call counters, and what the push listener answered (None when it is off).

    `unattributed` counts push records that belong to no configured app, by (source, outcome).
    """

    apps: tuple[AppCalls, ...] = ()
    unattributed: Mapping[tuple[str, str], int] = field(
        default_factory=lambda: MappingProxyType({})
    )
    push_requests: Mapping[tuple[str, str], int] | None = None  # (sender, code) -> answers
    # Which time recordQuery's windows select by, as the records show it (exporter.selection);
    # None when recordQuery is not polled.
    selects_by: str | None = None


class AppLedger:
    """One app's remembered calls and counters; guarded by the ledger's lock."""

    def __init__(self, app_id: str, sources: Iterable[str], currency: str | None) -> None:
        self.app_id = app_id
        # callId -> flags; a call restored from the state is known by its digest instead.
        self.seen: dict[str | bytes, int] = {}
        # (when first seen, key), oldest first
        self.order: deque[tuple[float, str | bytes]] = deque()
        self.restored = 0  # Digests among the keys of `seen`.
        self.generation = 0  # The ledger's change count at this app's latest change.
        self.primed = False
        self.up: bool | None = None
        self.covered_until: float | None = None  # End of the latest window read whole.
        self.gap_logged_for: float | None = None  # The `covered_until` a gap was logged for.
        self.results = dict.fromkeys(RESULT_STATUSES, 0)
        self.talk = [0] * (len(TALK_BUCKETS) + 1)
        self.talk_sum = 0.0
        self.billed = 0.0
        # In millionths, so that summing amounts such as 0.05 stays exact.
        self.cost: dict[str, int] = {} if currency is None else {currency: 0}
        self.hangups: dict[str, int] = {}
        self.intents = {NO_INTENT: 0}  # Calls without a tag: a value of its own, never bounded.
        self.tasks: dict[str, dict[str, int]] = {}
        self.records = {(source, outcome): 0 for source in sources for outcome in OUTCOMES}
        self.lines = AppLines()
        self.frozen: AppCalls | None = None

    def remember(self, call_id: str, now: float) -> None:
        self.seen[call_id] = SEEN
        self.order.append((now, call_id))

    def lookup(self, call_id: str) -> tuple[str | bytes, int | None]:
        """The key the call is remembered under (its id, or its digest if it was restored)
        and its flags; None when it is not remembered."""
        flags = self.seen.get(call_id)
        if flags is None and self.restored:
            digest = call_digest(call_id)
            restored = self.seen.get(digest)
            if restored is not None:
                return digest, restored
        return call_id, flags

    def forget_before(self, horizon: float) -> None:
        while self.order and self.order[0][0] < horizon:
            self.forget_oldest()

    def forget_oldest(self) -> None:
        key = self.order.popleft()[1]
        if self.seen.pop(key, None) is not None and isinstance(key, bytes):
            self.restored -= 1

    def resume(self, state: AppResume) -> bool:
        """Take a previous run's state, if this app has not been used yet (a restored app never
        forgets more); whether it took it."""
        if self.seen or self.primed or self.covered_until is not None:
            return False
        newest = sorted(state.calls, key=lambda call: call.seen_seconds)[-MAX_REMEMBERED_CALLS:]
        for call in newest:
            if call.digest not in self.seen:
                self.seen[call.digest] = SEEN | (COST if call.cost_counted else 0)
                self.order.append((call.seen_seconds, call.digest))
                self.restored += 1
        if state.covered_until is not None:
            self.covered_until = state.covered_until
            self.primed = True
        return True

    def count_record(self, source: str, outcome: str) -> None:
        key = (source, outcome)
        self.records[key] = self.records.get(key, 0) + 1

    def freeze(self) -> AppCalls:
        if self.frozen is None:
            cumulative, running = [], 0
            for count in self.talk:
                running += count
                cumulative.append(running)
            self.frozen = AppCalls(
                app_id=self.app_id,
                up=self.up,
                results=MappingProxyType(dict(self.results)),
                talk_buckets=tuple(cumulative),
                talk_sum=self.talk_sum,
                billed_seconds=self.billed,
                cost=MappingProxyType({c: units / MICROS for c, units in self.cost.items()}),
                hangups=MappingProxyType(dict(self.hangups)),
                intents=MappingProxyType(dict(self.intents)),
                task_results=MappingProxyType(
                    {job: MappingProxyType(dict(counts)) for job, counts in self.tasks.items()}
                ),
                records=MappingProxyType(dict(self.records)),
                lines=self.lines.freeze(),
            )
        return self.frozen


def bounded(counts: Mapping[str, int], value: str, limit: int) -> str:
    """`value`, or OTHER once `counts` holds `limit` values and not this one."""
    return value if value in counts or len(counts) < limit else OTHER


def record_keys(sources: Iterable[str]) -> list[tuple[str, str]]:
    return [(source, outcome) for source in sources for outcome in OUTCOMES]
