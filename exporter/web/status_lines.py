"""The status page's "Lines" section: each app's calling lines, worst answer rate first.

A line whose answer rate sinks while the app's other lines hold is the one to pull (a carrier
labelling it as spam, or its account in arrears); the table puts it at the top of its app.
Names and ids come from the network, so every value is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping

from exporter.calls.counts import ANSWERED, AppCalls
from exporter.calls.lines import OTHER

MAX_NAME_CHARS = 80  # Of a line's name on the page.
_HEADINGS = ("App", "Line", "Name", "Calls", "Answered", "Line faults")


def lines_section(apps: Iterable[AppCalls]) -> str:
    """The section, or "" when no app has counted a call by line or listed a line."""
    rows = [row for calls in apps for row in _app_rows(calls)]
    if not rows:
        return ""
    head = "".join(f"<th>{heading}</th>" for heading in _HEADINGS)
    return (
        '<h2>Lines</h2>\n<p class="dim">Each app\'s calling lines, by the calls counted since '
        "the exporter started, the worst answered share of each app first. A line far below "
        "the app's others is the one to check: carrier spam labels, arrears.</p>\n"
        f'<table class="lines"><thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "".join(rows)
        + "</tbody></table>\n"
    )


def _app_rows(calls: AppCalls) -> list[str]:
    lines = calls.lines
    figures = {
        line: _figures(lines.results.get(line, {})) for line in {*lines.results, *lines.names}
    }
    # Lines with calls, worst answered share first; then listed lines without calls.
    order = sorted(figures, key=lambda line: (figures[line][0] == 0, figures[line][1], line))
    rows = []
    for line in order:
        total, share, faults = figures[line]
        name = lines.names.get(line, "")
        missing = "beyond the cap, or no line id" if line == OTHER else "not listed"
        shown = _e(_cut(name)) if name else f'<span class="dim">{missing}</span>'
        answered = f"{share:.0%}" if total else '<span class="dim">no calls</span>'
        rows.append(
            f'<tr><td><b class="id">{_e(calls.app_id)}</b></td>'
            f'<td class="id net">{_e(line)}</td><td>{shown}</td>'
            f'<td class="num">{total}</td><td class="num">{answered}</td>'
            f'<td class="num">{faults}</td></tr>\n'
        )
    return rows


def _figures(counts: Mapping[str, int]) -> tuple[int, float, int]:
    """Calls, the answered share (0 with no calls) and line or platform faults."""
    total = sum(counts.values())
    answered = sum(n for result, n in counts.items() if result in ANSWERED)
    faults = counts.get("FROM_PHONE_ERROR", 0) + counts.get("SYSTEM_ERROR", 0)
    return total, (answered / total if total else 0.0), faults


def _cut(text: str) -> str:
    return text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 1] + "…"


def _e(value: str) -> str:
    return html.escape(value, quote=True)
