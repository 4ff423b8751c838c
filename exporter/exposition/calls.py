"""The call-outcome families, rendered at scrape time from the ledger's snapshot.

Pushes arrive between polls, so these are not part of the cached exposition: `CallMetrics`
re-renders only the apps whose `AppCalls` changed since the last scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

from exporter.calls.counts import TALK_BUCKETS, AppCalls, CallsSnapshot
from exporter.calls.lines import LineCalls
from exporter.calls.selection import SELECTIONS
from exporter.calls.storage import StorageStats
from exporter.exposition.families import (
    CALL_FAMILIES,
    PUSH_REQUESTS,
    STORAGE_WRITES,
    WINDOWS_SELECT_BY,
    Fragments,
    Lines,
    Section,
    by_family,
    encode,
    escape,
    result_counter,
    value_text,
)

_TALK_BOUNDS = (*(repr(float(bound)) for bound in TALK_BUCKETS), "+Inf")


def render_calls(calls: AppCalls) -> Fragments:
    """One app's lines for each of CALL_FAMILIES.

    # TYPE aivoice_calls_up gauge
    aivoice_calls_up{app_id="LILIN888"} 1.0
    # TYPE aivoice_call_results_total counter
    aivoice_call_results_total{app_id="LILIN888",result="ANSWERED"} 412.0
    # TYPE aivoice_call_talk_duration_seconds histogram
    aivoice_call_talk_duration_seconds_bucket{app_id="LILIN888",le="5.0"} 3.0
    # TYPE aivoice_call_cost_total counter
    aivoice_call_cost_total{app_id="LILIN888",currency="USD"} 20.55
    # TYPE aivoice_task_call_results_total counter
    aivoice_task_call_results_total{app_id="LILIN888",job_id="20",result="BUSY"} 7.0
    # TYPE aivoice_line_call_results_total counter
    aivoice_line_call_results_total{app_id="LILIN888",line_id="7301",result="ANSWERED"} 96.0
    # TYPE aivoice_line_call_cost_total counter
    aivoice_line_call_cost_total{app_id="LILIN888",currency="USD",line_id="7301"} 4.8
    # TYPE aivoice_line_info gauge
    aivoice_line_info{app_id="LILIN888",line="+1 555 0100",line_id="7301"} 1.0
    # TYPE aivoice_call_records_total counter
    aivoice_call_records_total{app_id="LILIN888",outcome="counted",source="push"} 430.0
    """
    app_label = f'app_id="{escape(calls.app_id)}"'
    up = (
        []
        if calls.up is None
        else [f"aivoice_calls_up{{{app_label}}} {1.0 if calls.up else 0.0}\n"]
    )
    talk = []
    name = "aivoice_call_talk_duration_seconds"
    for bound, count in zip(_TALK_BOUNDS, calls.talk_buckets, strict=True):
        talk.append(f'{name}_bucket{{{app_label},le="{bound}"}} {value_text(count)}\n')
    talk.append(f"{name}_count{{{app_label}}} {value_text(calls.talk_buckets[-1])}\n")
    talk.append(f"{name}_sum{{{app_label}}} {value_text(calls.talk_sum)}\n")
    billed = (
        f"aivoice_call_billed_seconds_total{{{app_label}}} {value_text(calls.billed_seconds)}\n"
    )
    tasks = [
        f'aivoice_task_call_results_total{{{app_label},job_id="{escape(job_id)}",'
        f'result="{escape(result)}"}} {value_text(count)}\n'
        for job_id, counts in calls.task_results.items()
        for result, count in sorted(counts.items())
    ]
    return (
        encode(up),
        _labelled("aivoice_call_results_total", app_label, "result", calls.results),
        encode(talk),
        encode([billed]),
        _labelled("aivoice_call_cost_total", app_label, "currency", calls.cost),
        _labelled("aivoice_call_hangups_total", app_label, "hangup_by", calls.hangups),
        _labelled("aivoice_call_intents_total", app_label, "intent", calls.intents),
        encode(tasks),
        *render_lines(app_label, calls.lines),
        _record_lines(app_label, calls.records),
    )


def render_lines(app_label: str, lines: LineCalls) -> tuple[Lines, Lines, Lines]:
    """One app's calls by line and result, cost by line, and the lines' names."""
    results = encode(
        f'aivoice_line_call_results_total{{{app_label},line_id="{escape(line)}",'
        f'result="{escape(result)}"}} {value_text(count)}\n'
        for line, counts in sorted(lines.results.items())
        for result, count in sorted(counts.items())
    )
    cost = encode(
        f'aivoice_line_call_cost_total{{{app_label},currency="{escape(currency)}",'
        f'line_id="{escape(line)}"}} {value_text(amount)}\n'
        for line, costs in sorted(lines.cost.items())
        for currency, amount in sorted(costs.items())
    )
    names = encode(
        f'aivoice_line_info{{{app_label},line="{escape(name)}",line_id="{escape(line)}"}} 1.0\n'
        for line, name in sorted(lines.names.items())
    )
    return results, cost, names


def _labelled(name: str, app_label: str, label: str, counts: Mapping[str, float]) -> Lines:
    return encode(
        f'{name}{{{app_label},{label}="{escape(value)}"}} {value_text(count)}\n'
        for value, count in sorted(counts.items())
    )


def _record_lines(app_label: str, records: Mapping[tuple[str, str], int]) -> Lines:
    """Records by source and outcome; `app_label` is empty for records of no configured app."""
    prefix = f"{app_label}," if app_label else ""
    return encode(
        f'aivoice_call_records_total{{{prefix}outcome="{outcome}",source="{source}"}} '
        f"{value_text(count)}\n"
        for (source, outcome), count in sorted(records.items())
    )


def render_storage(stats: StorageStats, openmetrics: bool) -> bytes:
    """# TYPE aivoice_storage_writes_total counter
    aivoice_storage_writes_total{result="failure"} 0.0
    aivoice_storage_writes_total{result="success"} 12.0
    """
    return result_counter(STORAGE_WRITES, stats.writes, openmetrics)


def render_selection(selects_by: str) -> Lines:
    """aivoice_call_windows_select_by{time="end"} 1.0"""
    return encode(
        f'aivoice_call_windows_select_by{{time="{name}"}} {1.0 if name == selects_by else 0.0}\n'
        for name in SELECTIONS
    )


def render_push_requests(answers: Mapping[tuple[str, str], int]) -> Lines:
    """aivoice_push_requests_total{code="200",sender="peer"} 80.0
    aivoice_push_requests_total{code="200",sender="vendor"} 120.0
    aivoice_push_requests_total{code="404",sender="vendor"} 2.0
    """
    return encode(
        f'aivoice_push_requests_total{{code="{escape(code)}",sender="{escape(sender)}"}} '
        f"{value_text(count)}\n"
        for (sender, code), count in sorted(answers.items())
    )


class CallMetrics:
    """The call families, rendered from the ledger's snapshot when a scrape finds it changed.

    Pushes arrive between polls, so these are not part of the cached exposition; each app's
    lines are kept with the `AppCalls` they came from (compared by identity), so a push to one
    app re-renders that app only.
    """

    def __init__(self, source: Callable[[], CallsSnapshot]) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._apps: dict[str, tuple[AppCalls, Fragments]] = {}
        self._rendered: tuple[CallsSnapshot, Sequence[Section]] | None = None

    def render(self, openmetrics: bool) -> bytes:
        return b"".join(
            part
            for family, lines in self._sections()
            if lines
            for part in (family.header(openmetrics), *lines)
        )

    def _sections(self) -> Sequence[Section]:
        snapshot = self._source()
        with self._lock:
            if self._rendered is not None and self._rendered[0] is snapshot:
                return self._rendered[1]
            self._apps = {calls.app_id: (calls, self._fragments(calls)) for calls in snapshot.apps}
            per_app = [fragments for _, fragments in self._apps.values()]
            sections = by_family(CALL_FAMILIES, per_app)
            if snapshot.unattributed:
                family, lines = sections[-1]
                sections[-1] = (family, lines + _record_lines("", snapshot.unattributed))
            if snapshot.push_requests is not None:
                sections.append((PUSH_REQUESTS, render_push_requests(snapshot.push_requests)))
            if snapshot.selects_by is not None:
                sections.append((WINDOWS_SELECT_BY, render_selection(snapshot.selects_by)))
            self._rendered = (snapshot, sections)
            return sections

    def _fragments(self, calls: AppCalls) -> Fragments:
        kept = self._apps.get(calls.app_id)
        if kept is not None and kept[0] is calls:
            return kept[1]
        return render_calls(calls)
