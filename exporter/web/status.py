"""The status page at `/`: which app is failing, since when, with which code and what it means.

A pure function of immutable inputs (the latest snapshots, each app's poll history, the balance
and the call counters) and the time, so it never waits on the API: it reads what the poller
published last. Every value is escaped with `html.escape`, because most of them came from the
network (the API's reason text, task names). The page has no JavaScript, and its one `<style>`
block is constant, so the Content-Security-Policy allows exactly that block, by its hash.

The look is exporter-toolkit's landing page, which every Go exporter serves: the orange header
bar and plain typography.
"""

from __future__ import annotations

import base64
import hashlib
import html
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.balance.read import AccountBalance, BalanceSnapshot
from exporter.calls.counts import PEER, PUSH, REJECTED, VENDOR, AppCalls, CallsSnapshot
from exporter.calls.known import END, START
from exporter.calls.selection import NEITHER
from exporter.codes import explain
from exporter.exposition.exposition import ReloadStatus
from exporter.snapshot import AppSnapshot, Snapshot
from exporter.tasks.history import AppHistory, PollOutcome
from exporter.web.status_lines import lines_section

IN_PROGRESS = "IN_PROCESS"
MAX_TEXT_CHARS = 160  # Of one value from the network, on the page.
MAX_NAMES = 3  # Names of tasks in progress shown per app; the rest is a count.

CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,
"Noto Sans","Liberation Sans",sans-serif;margin:0;color:#212529;line-height:1.4}
header{background-color:#e6522c;color:#fff;font-size:1rem;padding:1rem}
header h1{margin:0;font-size:1.5rem;font-weight:500}
main{padding:1rem}
h2{font-size:1.2rem;font-weight:500;margin:1.5rem 0 .5rem}
a{color:#0d6efd}
ul.links{padding:0;margin:0;list-style:none}
ul.links li{display:inline-block;margin-right:1.5rem}
table{border-collapse:collapse;font-size:.875rem}
table.apps{width:100%}
th,td{border-bottom:1px solid #dee2e6;padding:.35rem .5rem;text-align:left;vertical-align:top}
thead th{background:#f8f9fa;position:sticky;top:0}
tr.failing td{background:#fdf0ed}
tr.failing td:first-child{box-shadow:inset 4px 0 #c0392b}
.state{font-weight:600}
.up{color:#1e7e34}
.down{color:#c0392b}
.waiting{color:#6c757d}
.dim{color:#6c757d;font-size:.8rem}
.net{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.8rem;
overflow-wrap:anywhere}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-weight:600}
.id{white-space:nowrap}
.num{text-align:right;font-variant-numeric:tabular-nums}
details{margin:.25rem 0}
summary{cursor:pointer}
table.history{margin:.25rem 0 .75rem 1.25rem}
"""
_STYLE_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)
"""What the page is sent with: no script, no frame, no request anywhere but the page itself."""


@dataclass(frozen=True)
class ConfiguredApp:
    """One app as the config has it; `shard` only when the apps are split among exporters."""

    account: str
    app_id: str
    shard: str | None = None


@dataclass(frozen=True)
class StatusInputs:
    """Everything the page shows; each part is an immutable snapshot published elsewhere."""

    version: str
    telemetry_path: str = "/metrics"
    apps: tuple[ConfiguredApp, ...] = ()
    snapshot: Snapshot | None = None
    history: Mapping[str, AppHistory] = field(default_factory=lambda: MappingProxyType({}))
    calls: CallsSnapshot | None = None
    calls_enabled: bool = False
    push_enabled: bool = False
    balance: BalanceSnapshot = field(default_factory=BalanceSnapshot)
    reload: ReloadStatus | None = None
    lifecycle: bool = False


@dataclass(frozen=True)
class _Row:
    app: ConfiguredApp
    polled: AppSnapshot | None
    history: AppHistory
    calls: AppCalls | None
    balance: AccountBalance | None

    @property
    def state(self) -> str:
        if self.polled is None:
            return "waiting"
        return "up" if self.polled.up else "down"


_ORDER = {"down": 0, "waiting": 1, "up": 2}
_STATE_WORDS = {"up": "up", "down": "down", "waiting": "not polled yet"}


def render_status(inputs: StatusInputs, now: float | None = None) -> bytes:
    """The page, as UTF-8 bytes; `now` (Unix seconds) is when "how long ago" counts from."""
    now = time.time() if now is None else now
    rows = sorted(_rows(inputs), key=lambda row: _ORDER[row.state])  # Stable: config order.
    parts = [
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>AI-voice exporter</title><style>{CSS}</style></head>\n<body>"
        "<header><h1>AI-voice exporter</h1></header>\n<main>"
        "<p>Prometheus exporter for the ITNIO AI-voice API. "
        f"Page made at {_when(now, now, ago=False)}; it shows what the latest polls found "
        "and never waits on the API.</p>\n",
        _links(inputs),
        f"<h2>Apps</h2>\n<p>{_summary(rows)}</p>\n",
        *_app_table(inputs, rows, now),
        lines_section(row.calls for row in rows if row.calls is not None),
        '<h2>Recent polls</h2>\n<p class="dim">The last 20 polls of each app, and its last 20 '
        "failures however old, newest first.</p>\n",
        *(_history(row, now) for row in rows),
        _about(inputs, now),
        "</main></body></html>\n",
    ]
    return "".join(parts).encode("utf-8", "replace")


def _rows(inputs: StatusInputs) -> Iterator[_Row]:
    polled = {app.app_id: app for app in inputs.snapshot.apps} if inputs.snapshot else {}
    calls = {app.app_id: app for app in inputs.calls.apps} if inputs.calls else {}
    balances = {balance.account: balance for balance in inputs.balance.accounts}
    for app in inputs.apps:
        account = inputs.balance.apps.get(app.app_id)
        yield _Row(
            app,
            polled.get(app.app_id),
            inputs.history.get(app.app_id) or AppHistory(),
            calls.get(app.app_id),
            None if account is None else balances.get(account),
        )


def _links(inputs: StatusInputs) -> str:
    links = [
        (inputs.telemetry_path.lstrip("/"), f"Metrics ({inputs.telemetry_path})"),
        ("-/healthy", "Health (/-/healthy)"),
        ("-/ready", "Readiness (/-/ready)"),
    ]
    items = "".join(f'<li><a href="{_e(href)}">{_e(text)}</a></li>' for href, text in links)
    return f'<ul class="links">{items}</ul>\n'


def _summary(rows: list[_Row]) -> str:
    counts = {state: sum(1 for row in rows if row.state == state) for state in _ORDER}
    said = [
        f'<span class="state {state}">{counts[state]} {_STATE_WORDS[state]}</span>'
        for state in _ORDER
        if counts[state]
    ]
    return (
        f"{_count(len(rows), 'app')}"
        + (": " + ", ".join(said) if said else "")
        + ". Failing apps come first."
    )


def _app_table(inputs: StatusInputs, rows: list[_Row], now: float) -> Iterator[str]:
    sharded = any(row.app.shard is not None for row in rows)
    balance = bool(inputs.balance.apps)
    headings = [
        "Account",
        "App",
        *(["Shard"] if sharded else []),
        "State",
        "Last poll",
        "Tasks held",
        "In progress",
        "Last error",
        *(["Call records"] if inputs.calls_enabled else []),
        *(["Push rejections"] if inputs.push_enabled else []),
        *(["Balance"] if balance else []),
    ]
    yield '<table class="apps"><thead><tr>'
    yield "".join(f"<th>{_e(heading)}</th>" for heading in headings)
    yield "</tr></thead>\n<tbody>\n"
    for row in rows:
        cells = [
            f'<span class="id">{_e(row.app.account)}</span>',
            f'<b class="id">{_e(row.app.app_id)}</b>',
            *([_e(row.app.shard or "")] if sharded else []),
            f'<span class="state {row.state}">{_STATE_WORDS[row.state]}</span>',
            _last_poll(row.history.last, now),
            *_tasks(row.polled),
            _last_error(row, now),
            *([_calls_read(row.history, now)] if inputs.calls_enabled else []),
            *([_push_rejections(row.calls)] if inputs.push_enabled else []),
            *([_balance(row.balance, now)] if balance else []),
        ]
        failing = ' class="failing"' if row.state == "down" else ""
        yield f"<tr{failing}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>\n"
    yield "</tbody></table>\n"


def _last_poll(last: PollOutcome | None, now: float) -> str:
    if last is None:
        return '<span class="dim">none yet</span>'
    took = f"took {_duration(last.duration_seconds)}"
    return f'{_when(last.finished_seconds, now)}<br><span class="dim">{took}</span>'


def _tasks(polled: AppSnapshot | None) -> list[str]:
    if polled is None or polled.tasks is None:
        return ['<span class="dim">none served</span>', ""]
    running = [task for task in polled.tasks if task.status == IN_PROGRESS]
    names = ", ".join(_e(_cut(task.name or task.job_id, 60)) for task in running[:MAX_NAMES])
    more = len(running) - MAX_NAMES
    if more > 0:
        names += f" and {more} more"
    shown = f'<br><span class="net">{names}</span>' if names else ""
    return [f'<span class="num">{len(polled.tasks)}</span>', f"{len(running)}{shown}"]


def _last_error(row: _Row, now: float) -> str:
    failure = row.history.last_failure
    if failure is None or failure.error is None:
        return '<span class="dim">none</span>'
    said = _error(failure.error, failure.detail)
    if row.history.failing_since is not None:
        return f"{said}<br>failing since {_when(row.history.failing_since, now)}"
    at = _when(failure.finished_seconds, now)
    return f'<span class="dim">{said}<br>at {at}; polls succeed since</span>'


def _error(code: str, detail: str) -> str:
    text = f"<code>{_e(code)}</code> {_e(explain(code))}"
    if detail:
        text += f'<br><span class="net">{_e(_cut(detail, MAX_TEXT_CHARS))}</span>'
    return text


def _calls_read(history: AppHistory, now: float) -> str:
    read = history.calls
    if read is None:
        return '<span class="dim">not read yet</span>'
    if read.error is None:
        return f'<span class="up">read</span> {_when(read.finished_seconds, now)}'
    return (
        f'<span class="down">failed</span> {_when(read.finished_seconds, now)}'
        f"<br><code>{_e(read.error)}</code> {_e(explain(read.error))}"
    )


def _push_rejections(calls: AppCalls | None) -> str:
    rejected = 0 if calls is None else calls.records.get((PUSH, REJECTED), 0)
    return f'<span class="num{" down" if rejected else ""}">{rejected}</span>'


def _balance(balance: AccountBalance | None, now: float) -> str:
    if balance is None:
        return '<span class="dim">not read yet</span>'
    if balance.balance is None:
        return '<span class="down">no balance served</span>'
    amount = f'<span class="num">{balance.balance.balance:,.2f}</span>'
    if balance.last_success_seconds is None:
        return amount
    read = _when(balance.last_success_seconds, now)
    if not balance.up:
        return f'{amount}<br><span class="down">reads fail</span>; last read {read}'
    return f"{amount}<br>read {read}"


def _history(row: _Row, now: float) -> str:
    """The app's recent polls, one short row each. An error's meaning and detail are written
    at its newest row only; older rows of the same error say its code, which keeps 200 failing
    apps' histories to a readable size."""
    outcomes = row.history.outcomes()
    failures = sum(1 for outcome in outcomes if not outcome.ok)
    summary = (
        f'<summary><b>{_e(row.app.app_id)}</b> <span class="state {row.state}">'
        f"{_STATE_WORDS[row.state]}</span>: {_count(len(outcomes), 'poll')} shown, "
        f"{failures} failed</summary>"
    )
    if not outcomes:
        return f"<details>{summary}</details>\n"
    lines = [
        "<tr><th>Finished (UTC)</th><th>Took</th><th>Pages</th><th>Result</th><th>Error</th></tr>"
    ]
    said: set[tuple[str, str]] = set()
    for outcome in outcomes:
        pages = "" if outcome.pages is None else str(outcome.pages)
        if outcome.error is None:
            result, error = '<td class="up">ok</td>', ""
        elif (outcome.error, outcome.detail) in said:
            result, error = '<td class="down">failed</td>', f"<code>{_e(outcome.error)}</code>"
        else:
            said.add((outcome.error, outcome.detail))
            result, error = '<td class="down">failed</td>', _error(outcome.error, outcome.detail)
        lines.append(
            f"<tr><td>{_stamp(outcome.finished_seconds, now)}</td>"
            f'<td class="num">{_duration(outcome.duration_seconds)}</td>'
            f'<td class="num">{pages}</td>{result}<td>{error}</td></tr>'
        )
    table = '<table class="history">' + "\n".join(lines) + "</table>"
    opened = " open" if row.state == "down" else ""
    return f"<details{opened}>{summary}{table}</details>\n"


def _about(inputs: StatusInputs, now: float) -> str:
    facts = [("Version", _e(inputs.version))]
    reload = inputs.reload
    if reload is not None:
        loaded = _when(reload.success_seconds, now)
        if reload.successful:
            facts.append(("Config", f'<span class="up">loaded</span> {loaded}'))
        else:
            facts.append(
                (
                    "Config",
                    '<span class="down">the last reload failed</span> (see the log); '
                    f"running the config loaded {loaded}",
                )
            )
    reloads = "POST /-/reload, or SIGHUP" if inputs.lifecycle else "SIGHUP"
    facts.append(("Reload with", _e(reloads)))
    calls = inputs.calls
    if inputs.calls_enabled and calls is not None and calls.selects_by is not None:
        facts.append(("recordQuery windows select calls by", _selects_by(calls.selects_by)))
    if inputs.push_enabled and calls is not None and calls.push_requests is not None:
        senders = {sender for sender, _ in calls.push_requests}
        facts.append(("Push requests answered", _answers(calls.push_requests, VENDOR)))
        if PEER in senders:
            facts.append(("Forwarded pushes answered", _answers(calls.push_requests, PEER)))
        stray = calls.unattributed.get((PUSH, REJECTED), 0)
        facts.append(("Pushed records for no configured app", str(stray)))
    body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in facts)
    return f"<h2>Exporter</h2>\n<table>{body}</table>\n"


def _answers(answers: Mapping[tuple[str, str], int], sender: str) -> str:
    """The statuses answered to `sender` so far, with how many of each (those at 0 left out)."""
    shown = ", ".join(
        f"<code>{_e(code)}</code> {count}"
        for (who, code), count in sorted(answers.items())
        if who == sender and count
    )
    return shown or "none yet"


def _selects_by(selects_by: str) -> str:
    """What the records have shown of recordQuery's windows (exporter.calls.selection)."""
    if selects_by in (START, END):
        return f"their {selects_by} time"
    if selects_by == NEITHER:
        return (
            '<span class="down">neither start nor end time</span>: every poll reads the whole '
            "lookback"
        )
    return "not known yet: polls read the whole lookback until the records show it"


def _when(seconds: float, now: float, *, ago: bool = True) -> str:
    """A moment in UTC (the date only when it is not today's), and how long before `now`."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    shown = _stamp(seconds, now) if ago else stamp.replace("T", " ").rstrip("Z")
    text = f'<time datetime="{stamp}">{shown} UTC</time>'
    return f'{text} <span class="dim">({_ago(now - seconds)})</span>' if ago else text


def _stamp(seconds: float, now: float) -> str:
    """A moment in UTC, short: the time of day, and the date too when it is not today's."""
    moment = time.gmtime(seconds)
    today = moment[:3] == time.gmtime(now)[:3]
    return time.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M:%S", moment)


def _ago(seconds: float) -> str:
    if seconds < 1:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _e(value: str) -> str:
    return html.escape(value, quote=True)
