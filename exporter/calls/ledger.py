"""Call outcomes: every call counted once, whichever source brings it and however often.

Two sources feed one `CallLedger`: recordQuery reads (exporter.calls.planner) and the push
listener. They overlap on purpose: each poll looks `calls.lookback_seconds` back before the
previous one's end (a call is reported only once it has ended), the vendor's push retries what
was not answered, and a call can come both ways. The ledger remembers each `callId` it has seen
until no window can bring it again, and counts a call the first time only. The push is the only
source of a call's cost, so a push for a call the poll counted adds its cost and nothing else.

The first recordQuery read of an app (after start-up, or after a reload adds it) only
remembers what it sees: those calls may have been counted by the exporter's previous run. With
`--storage.path`, the previous run's memory is handed back instead (`restore`, from what
`export` gave the storage): the app then resumes where that run stopped, counting the calls that
ended while the exporter was down and none it counted before. Restored ids are known only by
their digest (`call_digest`), the one form the state file holds.

Memory is bounded: remembered ids are forgotten by age, and at most `MAX_REMEMBERED_CALLS` per
app; every label value a record brings is bounded per app. Nothing personal is ever here: a
`CallRecord` holds only what the metrics need (see exporter.records).

Scrapes read `snapshot()`, an immutable copy rebuilt only for the apps that changed.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from types import MappingProxyType

from exporter.api.lines import LineList
from exporter.api.records import CallRecord, RecordError, parse_push
from exporter.api.wire import MAX_DETAIL_CHARS, clean_text
from exporter.calls.counts import (
    ANSWERED,
    CLOCK_SLACK_SECONDS,
    COST,
    COUNTED,
    DUPLICATE,
    MAX_EXTRA_RESULTS,
    MAX_HANGUPS,
    MAX_INTENTS,
    MAX_PUSH_CODES,
    MAX_REMEMBERED_CALLS,
    MAX_TASKS_WITH_CALLS,
    MAX_WINDOW_SECONDS,
    MICROS,
    NO_INTENT,
    OTHER,
    PEER,
    PEER_FORWARDING_CODES,
    POLL,
    PUSH,
    PUSH_CODES,
    REJECTED,
    RESULT_STATUSES,
    SEEN,
    TALK_BUCKETS,
    VENDOR,
    VENDOR_FORWARDING_CODES,
    AppLedger,
    AppResume,
    CallsSnapshot,
    RememberedCall,
    bounded,
    call_digest,
    record_keys,
)
from exporter.calls.selection import UNKNOWN
from exporter.config.model import Config

# A short name, not the module's path: every log line carries it (`logger`), and filters match it.
log = logging.getLogger("exporter.calls")


class CallLedger:
    """Counts each call once across both sources, for the apps of the current config.

    `configure` takes a config (at start and on reload): kept apps keep their counters and
    remembered calls, added apps start at zero and unprimed, removed apps are dropped.
    """

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._apps: dict[str, AppLedger] = {}
        self._unattributed: dict[tuple[str, str], int] = {}
        self._push_codes: dict[tuple[str, str], int] = {}  # (sender, code) -> answers
        self._logged: set[tuple[str, str]] = set()  # (source, kind) already explained
        self._frozen: CallsSnapshot | None = None
        self._generation = 0  # Changes so far, over all apps: see `export`.
        self._selects_by = UNKNOWN
        self.configure(config)

    def configure(self, config: Config) -> None:
        calls, push = config.calls, config.push
        sources = [source for source, on in ((POLL, calls.enabled), (PUSH, push.enabled)) if on]
        currency = push.currency if push.enabled else None
        with self._lock:
            self._lookback = calls.lookback_seconds
            self._polled = calls.enabled
            self._per_task = calls.per_task
            self._max_lines = calls.max_lines
            self._lines_refresh = calls.lines_refresh_seconds
            self._sources = tuple(sources)
            self._push = push.enabled
            self._currency = currency
            kept = {}
            for app_id in config.app_ids if sources else ():
                app = self._apps.get(app_id) or AppLedger(app_id, sources, currency)
                app.records = {**dict.fromkeys(record_keys(sources), 0), **app.records}
                if currency is not None:
                    app.cost.setdefault(currency, 0)
                if not self._polled:
                    app.up = None
                if not self._per_task:
                    app.tasks.clear()
                app.frozen = None
                kept[app_id] = app
            self._apps = kept
            if self._push:
                for sender, codes in _push_answers(push.peers):
                    for code in codes:
                        self._push_codes.setdefault((sender, code), 0)
            self._frozen = None

    # ---- recordQuery, for the poller

    def window(self, app_id: str) -> tuple[float, float]:
        """The next read's [start, end] in Unix seconds: from `lookback` before the end of the
        last window read whole (or before now), to now, at most MAX_WINDOW_SECONDS long."""
        now = self._clock()
        with self._lock:
            app = self._apps.get(app_id)
            covered = now if app is None or app.covered_until is None else app.covered_until
            start = min(covered, now) - self._lookback
            if start >= now - MAX_WINDOW_SECONDS:
                return float(int(start)), float(int(now))
            first = app is not None and app.gap_logged_for != covered
            if app is not None:
                app.gap_logged_for = covered
        if first:  # Once per outage, not at every poll of it.
            log.warning(
                "Call records older than the longest window are not read: calls that ended "
                "while recordQuery failed may be missing",
                extra={"app_id": app_id, "unread_seconds": round(now - MAX_WINDOW_SECONDS - start)},
            )
        return float(int(now - MAX_WINDOW_SECONDS)), float(int(now))

    def covered(self, app_id: str) -> float | None:
        """The end of the app's latest window read whole; None before its first read."""
        with self._lock:
            app = self._apps.get(app_id)
            return app.covered_until if app is not None and app.primed else None

    def learned(self, selects_by: str) -> None:
        """What the records have shown recordQuery's windows select by (exporter.selection)."""
        with self._lock:
            if selects_by != self._selects_by:
                self._selects_by = selects_by
                self._frozen = None

    def read_succeeded(
        self, app_id: str, end: float, records: Sequence[CallRecord], rejected: Iterable[str] = ()
    ) -> None:
        """Count a read's calls, or, on the app's first read, only remember them.

        `end` is the end of the window read: the next window starts `lookback` before it.
        """
        for kind in rejected:
            self.reject(POLL, app_id, kind)
        with self._lock:
            app = self._apps.get(app_id)
            if app is None:
                return  # Removed by a reload while it was read.
            now = self._clock()
            if not app.primed:
                for record in records:
                    if app.lookup(record.call_id)[1] is None:
                        app.remember(record.call_id, now)
                        app.seen[record.call_id] = SEEN | COST
                    app.count_record(POLL, DUPLICATE)
                app.primed = True
                log.info(
                    "Remembered the calls of the first call-record read; calls are counted "
                    "from the next read on",
                    extra={"app_id": app_id, "calls": len(records)},
                )
            else:
                for record in records:
                    self._count(app, POLL, record, now)
            app.up = True
            app.covered_until = end
            self._forget(app, now)
            self._changed(app)

    def read_failed(self, app_id: str) -> None:
        with self._lock:
            app = self._apps.get(app_id)
            if app is not None and app.up is not False:
                app.up = False
                self._changed(app)

    # ---- the push, for the push listener

    def receive_push(self, body: bytes) -> int:
        """The HTTP status to answer a pushed body with: 200 unless it cannot be read at all."""
        try:
            record = parse_push(body)
        except RecordError as err:
            self.reject(PUSH, None, err.kind)
            return 400
        with self._lock:
            app = self._apps.get(record.app_id) if PUSH in self._sources else None
            if app is not None:
                now = self._clock()
                self._count(app, PUSH, record, now)
                self._forget(app, now)
                self._changed(app)
                return 200
        self.reject(PUSH, None, "a record for an app not in the config", record.app_id)
        return 200

    def push_answered(self, status: int, forwarded: bool = False) -> None:
        """Count an answer of the push listener: to the vendor, or to a peer that `forwarded`
        the push (counted apart, so the vendor's pushes read the same with one process as with
        a fleet)."""
        key = (PEER if forwarded else VENDOR, str(status))
        with self._lock:
            if key not in self._push_codes:
                known = sum(sender == key[0] for sender, _ in self._push_codes)
                if known >= MAX_PUSH_CODES:
                    key = (key[0], OTHER)
            self._push_codes[key] = self._push_codes.get(key, 0) + 1
            self._frozen = None

    # ---- both

    def reject(self, source: str, app_id: str | None, kind: str, shown: str = "") -> None:
        """Count an unreadable record; explain each kind once (never with the record's data)."""
        with self._lock:
            app = self._apps.get(app_id) if app_id is not None else None
            if app is not None:
                app.count_record(source, REJECTED)
                self._changed(app)
            else:
                key = (source, REJECTED)
                self._unattributed[key] = self._unattributed.get(key, 0) + 1
                self._frozen = None
            first = (source, kind) not in self._logged
            self._logged.add((source, kind))
        if first:
            fields = {"source": source, "problem": kind}
            if app_id is not None:
                fields["app_id"] = app_id
            if shown:
                fields["detail"] = clean_text(shown, MAX_DETAIL_CHARS)
            log.warning(
                "Call record rejected; later ones like it are counted, not logged", extra=fields
            )

    def keep_tasks(self, app_id: str, job_ids: Collection[str] | None) -> None:
        """Drop the per-task counters of tasks no longer served (None: none are)."""
        with self._lock:
            app = self._apps.get(app_id)
            if app is None or not app.tasks:
                return
            gone = [job for job in app.tasks if job_ids is None or job not in job_ids]
            for job in gone:
                del app.tasks[job]
            if gone:
                self._changed(app)

    # ---- the lines' names (channelList), for the poller: see exporter.calls.lines

    def lines_due(self, app_id: str) -> bool:
        """Whether the app's lines should be read now: its calls were read or counted, and
        the names were never read, are older than `calls.lines_refresh_seconds`, or lack a
        line a call named (at most once a minute)."""
        with self._lock:
            app = self._apps.get(app_id)
            if app is None:
                return False
            return app.lines.due(self._clock(), self._lines_refresh, app.up is not None)

    def lines_read(self, app_id: str, lines: LineList) -> str | None:
        """Take a read's names; the code the read before failed with, if it did."""
        with self._lock:
            app = self._apps.get(app_id)
            if app is None:
                return None
            previous = app.lines.error
            app.lines.listed(lines, self._clock(), self._max_lines, RESULT_STATUSES)
            self._changed(app)
            return previous

    def lines_failed(self, app_id: str, code: str) -> str | None:
        """A failed read keeps the names; the code the read before failed with, if any."""
        with self._lock:
            app = self._apps.get(app_id)
            return None if app is None else app.lines.failed(code, self._clock())

    # ---- the state kept on disk (exporter.storage)

    def export(self, app_id: str, unless: int | None = None) -> AppResume | None:
        """What the app needs to resume after a restart; None if the app is not in the config,
        or has not changed since the export whose `generation` is `unless`.

        Only the copy is taken under the lock; the digests are computed after it.
        """
        with self._lock:
            app = self._apps.get(app_id)
            if app is None or (unless is not None and app.generation == unless):
                return None
            entries = [(when, key, app.seen[key]) for when, key in app.order if key in app.seen]
            covered = app.covered_until if app.primed else None
            generation = app.generation
        return AppResume(
            app_id=app_id,
            covered_until=covered,
            calls=tuple(
                RememberedCall(
                    key if isinstance(key, bytes) else call_digest(key), when, bool(flags & COST)
                )
                for when, key, flags in entries
            ),
            generation=generation,
        )

    def restore(self, states: Iterable[AppResume]) -> None:
        """Resume from a previous run's state: each app of the config that has one remembers
        its calls and, if it had read its call records, counts from its next read on, which
        starts `lookback` before the end of that run's latest window.

        Only apps the ledger has not used yet take a state: a restored app never forgets more.
        """
        now = self._clock()
        resumed: list[tuple[str, int, float | None]] = []
        with self._lock:
            for state in states:
                app = self._apps.get(state.app_id)
                if app is None or not app.resume(state):
                    continue
                self._changed(app)
                resumed.append((app.app_id, len(app.seen), state.covered_until))
        for app_id, remembered, covered in resumed:
            fields: dict[str, object] = {"app_id": app_id, "calls": remembered}
            if covered is None:
                message = "Restored the remembered calls; the first call-record read only remembers"
            else:
                message = "Resuming call-record reads where the previous run stopped"
                fields["seconds_since_last_read"] = round(now - covered)
            log.info(message, extra=fields)

    def snapshot(self) -> CallsSnapshot:
        with self._lock:
            if self._frozen is None:
                self._frozen = CallsSnapshot(
                    apps=tuple(app.freeze() for app in self._apps.values()),
                    unattributed=MappingProxyType(dict(self._unattributed)),
                    push_requests=MappingProxyType(dict(self._push_codes)) if self._push else None,
                    selects_by=self._selects_by if self._polled else None,
                )
            return self._frozen

    # ---- inside the lock

    def _count(self, app: AppLedger, source: str, record: CallRecord, now: float) -> None:
        key, flags = app.lookup(record.call_id)
        if flags is None:
            app.remember(record.call_id, now)
            self._add_call(app, record)
            if record.cost is not None:
                self._add_cost(app, record.cost, record.line_id)
                app.seen[record.call_id] = SEEN | COST
            app.count_record(source, COUNTED)
            return
        if record.cost is not None and not flags & COST:
            self._add_cost(app, record.cost, record.line_id)
            app.seen[key] = flags | COST
        app.count_record(source, DUPLICATE)

    def _add_call(self, app: AppLedger, record: CallRecord) -> None:
        result = bounded(
            app.results, record.result or OTHER, len(RESULT_STATUSES) + MAX_EXTRA_RESULTS
        )
        app.results[result] = app.results.get(result, 0) + 1
        app.lines.count(record.line_id, result, self._max_lines, RESULT_STATUSES)
        if record.result in ANSWERED:
            app.talk[bisect.bisect_left(TALK_BUCKETS, record.talk_seconds)] += 1
            app.talk_sum += record.talk_seconds
        app.billed += record.billed_seconds
        if record.hangup_by:
            hangup = bounded(app.hangups, record.hangup_by, MAX_HANGUPS)
            app.hangups[hangup] = app.hangups.get(hangup, 0) + 1
        intent = bounded(app.intents, record.intent or NO_INTENT, MAX_INTENTS + 1)
        app.intents[intent] = app.intents.get(intent, 0) + 1
        if self._per_task and record.job_id:
            counts = app.tasks.get(record.job_id)
            if counts is None and len(app.tasks) < MAX_TASKS_WITH_CALLS:
                counts = app.tasks[record.job_id] = {}
            if counts is not None:
                counts[result] = counts.get(result, 0) + 1

    def _add_cost(self, app: AppLedger, cost: float, line_id: str) -> None:
        if self._currency is not None:  # A reload may change it: counts go on in the new one.
            micros = round(cost * MICROS)
            app.cost[self._currency] = app.cost.get(self._currency, 0) + micros
            app.lines.add_cost(line_id, self._currency, micros)

    def _forget(self, app: AppLedger, now: float) -> None:
        """Forget the ids no future window can bring again, and the oldest past the cap.

        An id is first seen after its call ended, so one seen before the next window's start
        belongs to a call that started before it too.
        """
        covered = now if app.covered_until is None or not self._polled else app.covered_until
        app.forget_before(min(covered, now) - self._lookback - CLOCK_SLACK_SECONDS)
        if len(app.seen) > MAX_REMEMBERED_CALLS:
            while len(app.seen) > MAX_REMEMBERED_CALLS:
                app.forget_oldest()
            if (app.app_id, "full") not in self._logged:
                self._logged.add((app.app_id, "full"))
                log.warning(
                    "Too many calls to remember: the oldest are forgotten early, so a late "
                    "duplicate of one may be counted again",
                    extra={"app_id": app.app_id, "remembered": MAX_REMEMBERED_CALLS},
                )

    def _changed(self, app: AppLedger) -> None:
        app.frozen = None
        self._frozen = None
        self._generation += 1
        app.generation = self._generation


def _push_answers(peers: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The statuses the push listener can answer each sender, under these `push.peers`."""
    if not peers:
        return ((VENDOR, PUSH_CODES),)
    return (
        (VENDOR, PUSH_CODES + VENDOR_FORWARDING_CODES),
        (PEER, PUSH_CODES + PEER_FORWARDING_CODES),
    )
