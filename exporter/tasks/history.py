"""Each app's recent polls, for the status page: what happened, when, and since when it fails.

Kept as blackbox_exporter's prober history keeps its probes: the last `HISTORY_LENGTH` outcomes
of any kind, and apart from them the last `HISTORY_LENGTH` failures, so a failure that a run of
successes pushed out of the recent list is still there to read. Everything here is immutable:
`record` returns a new `AppHistory`, which the poller publishes whole, as it does a `Snapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

HISTORY_LENGTH = 20


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """One finished poll of an app's task list. `error` is the code it failed with (the
    `code` label value), None when it succeeded; `pages` is None when no read finished."""

    finished_seconds: float  # Unix seconds.
    duration_seconds: float
    pages: int | None = None
    error: str | None = None
    detail: str = ""  # What the API or the transport said: network text, to be escaped.

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class CallsRead:
    """The outcome of an app's latest call-record read (recordQuery)."""

    finished_seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class AppHistory:
    """One app's recent polls, newest first, and since when its polls have failed (None while
    the latest succeeded)."""

    recent: tuple[PollOutcome, ...] = ()
    failures: tuple[PollOutcome, ...] = ()
    failing_since: float | None = None
    calls: CallsRead | None = None

    def record(self, outcome: PollOutcome) -> AppHistory:
        """This history with `outcome` added as the newest."""
        recent = (outcome, *self.recent)[:HISTORY_LENGTH]
        if outcome.ok:
            return replace(self, recent=recent, failing_since=None)
        failures = (outcome, *self.failures)[:HISTORY_LENGTH]
        since = self.failing_since if self.failing_since is not None else outcome.finished_seconds
        return replace(self, recent=recent, failures=failures, failing_since=since)

    def record_calls(self, read: CallsRead) -> AppHistory:
        return replace(self, calls=read)

    @property
    def last(self) -> PollOutcome | None:
        return self.recent[0] if self.recent else None

    @property
    def last_failure(self) -> PollOutcome | None:
        return self.failures[0] if self.failures else None

    def outcomes(self) -> tuple[PollOutcome, ...]:
        """The recent outcomes and the kept failures together, each once, newest first."""
        if not self.failures:
            return self.recent
        merged = {id(outcome): outcome for outcome in (*self.recent, *self.failures)}
        return tuple(sorted(merged.values(), key=lambda o: o.finished_seconds, reverse=True))
