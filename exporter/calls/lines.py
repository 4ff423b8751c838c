"""Calling lines: each app's calls counted by line, and the lines' names from channelList.

A line (a caller number) that a carrier starts labelling as spam, or whose account falls into
arrears, does not fail all at once: its answer rate sinks while the app's other lines hold. So
the ledger counts every call it counts once under its line too (`tenantPhoneNumberId`), exactly
as the app's results: the sums over lines are the app's counts.

Names come from channelList, read sparingly by the app's poll thread (`line_names`): when the
app's calls are first read, every `calls.lines_refresh_seconds`, and when a call names a line
not listed yet, at most once a `UNLISTED_RETRY_SECONDS` per app. A failed read keeps the names
it had and touches nothing else. At most `calls.max_lines` line ids per app get series of their
own; calls on any other line, and calls whose line cannot be read, count under `OTHER`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from exporter.api.lines import LineList

OTHER = "other"  # The line of calls beyond `calls.max_lines`, or with no readable line id.
UNLISTED_RETRY_SECONDS = 60.0
MICROS = 1_000_000  # Costs are summed in millionths of the currency unit, as the app's.


@dataclass(frozen=True)
class LineCalls:
    """One app's lines: calls by line and result, and the names channelList gave."""

    results: Mapping[str, Mapping[str, int]]  # line_id -> result -> calls
    names: Mapping[str, str]  # line_id -> name, for the lines channelList lists
    cost: Mapping[str, Mapping[str, float]]  # line_id -> currency -> amount (the push's pay)


NO_LINES = LineCalls(MappingProxyType({}), MappingProxyType({}), MappingProxyType({}))


class AppLines:
    """One app's line counts, names and channelList schedule; guarded by the ledger's lock."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, int]] = {}
        self.cost: dict[str, dict[str, int]] = {}  # In millionths, as the app's cost.
        self.names: dict[str, str] = {}
        self.tried_at: float | None = None  # The latest channelList read, failed or not.
        self.unlisted = False  # A call named a line the names lack, since the latest read.
        self.error: str | None = None  # The latest read's failure code; None after a success.

    def count(self, line_id: str, result: str, cap: int, known: Iterable[str]) -> None:
        """One call on `line_id` (bounded by `cap` ids), ended as `result`; a line's `known`
        results start at 0, so its first of each shows in increase()."""
        line = self._slot(line_id, cap)
        counts = self.results.get(line)
        if counts is None:
            counts = self.results[line] = dict.fromkeys(known, 0)
        counts[result] = counts.get(result, 0) + 1
        if line != OTHER and line not in self.names:
            self.unlisted = True

    def add_cost(self, line_id: str, currency: str, micros: int) -> None:
        """A call's cost (millionths of `currency`), under the line its call counts under (the
        call is counted first, so a line with no slot of its own is `OTHER`)."""
        costs = self.cost.setdefault(line_id if line_id in self.results else OTHER, {})
        costs[currency] = costs.get(currency, 0) + micros

    def _slot(self, line_id: str, cap: int) -> str:
        """The line a call on `line_id` counts under: its own while fewer than `cap` ids hold
        one, else `OTHER` (which takes no slot)."""
        if line_id in self.results:
            return line_id
        held = len(self.results) - (OTHER in self.results)
        return line_id if line_id and held < cap else OTHER

    def due(self, now: float, refresh_seconds: float, has_calls: bool) -> bool:
        """Whether channelList should be read now."""
        if self.tried_at is None:
            return has_calls or bool(self.results)
        since = now - self.tried_at
        return since >= refresh_seconds or (self.unlisted and since >= UNLISTED_RETRY_SECONDS)

    def listed(self, lines: LineList, now: float, cap: int, known: Iterable[str]) -> None:
        """A successful read: its names replace the ones kept (at most `cap` of them), and each
        line named gets its slot, its `known` results at 0 before its first call, so that
        increase() sees that call too."""
        self.names = dict(lines.lines[:cap])
        for line in self.names:
            if self._slot(line, cap) == line and line not in self.results:
                self.results[line] = dict.fromkeys(known, 0)
        self.tried_at, self.unlisted, self.error = now, False, None

    def failed(self, code: str, now: float) -> str | None:
        """A failed read keeps the names; the code the read before failed with, if any."""
        previous, self.error, self.tried_at = self.error, code, now
        return previous

    def freeze(self) -> LineCalls:
        if not self.results and not self.names:
            return NO_LINES
        return LineCalls(
            results=MappingProxyType(
                {line: MappingProxyType(dict(c)) for line, c in self.results.items()}
            ),
            names=MappingProxyType(dict(self.names)),
            cost=MappingProxyType(
                {
                    line: MappingProxyType({c: units / MICROS for c, units in costs.items()})
                    for line, costs in self.cost.items()
                }
            ),
        )
