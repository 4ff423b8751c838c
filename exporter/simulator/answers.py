"""How an injected fault answers a request: the bodies of ``hostile`` put together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exporter.simulator.api import EMPTY_PAGE, REASONS, Query, Reply, api_error, json_bytes
from exporter.simulator.calls import filler_record
from exporter.simulator.faults import Fault, Faults
from exporter.simulator.hostile import (
    GARBAGE,
    crowded_page,
    dripped,
    gzip_bomb,
    html_error,
    odd_status,
    padded,
    poisoned,
    retry_after,
)
from exporter.simulator.lines import HOSTILE_LINES, AppLines


def fault_reply(
    fault: Fault,
    faults: Faults,
    query: Query,
    now: float,
    page: Callable[[], dict[str, Any]],
    calls: bool,
    location: str,
) -> Reply:
    """The answer to a request that gets ``fault``; ``page`` builds the page a fault embeds,
    ``calls`` says it is a recordQuery page, ``location`` is where redirects point.

    Built outside the simulator's lock: pages and bombs take time.
    """
    kind = fault.kind
    if kind == "http_5xx":
        return html_error(fault.status)
    if kind == "timeout":
        return Reply(delay=fault.hang, drop=True)
    if kind == "garbage":
        content_type, body = GARBAGE[fault.variant]
        return Reply(body=body, content_type=content_type)
    if kind == "api_code":
        return Reply(body=api_error(fault.api_code))
    if kind == "redirect":
        return Reply(fault.status, content_type="text/plain", headers=(("Location", location),))
    if kind == "retry_after":
        return retry_after(fault.status, fault.variant, faults.retry_after_seconds, now)
    if kind == "odd_status":
        status, reason = odd_status(fault.variant)
        return Reply(body=json_bytes({"status": status, "reason": reason}))
    if kind == "gzip_bomb":
        bomb = gzip_bomb(faults.gzip_bomb_bytes, EMPTY_PAGE)
        return Reply(body=bomb, headers=(("Content-Encoding", "gzip"),))
    if kind == "too_many_records":
        filler = filler_record if calls else None
        return Reply(body=json_bytes(crowded_page(query, faults.too_many_records, filler)))
    if kind == "poison":
        return Reply(body=json_bytes(poisoned(page(), fault.variant, now, calls=calls)))
    if kind == "drip":
        return dripped(json_bytes(page()), faults.drip_interval_seconds)
    if kind == "oversize":
        return padded(json_bytes(page()), faults.oversize_bytes)
    raise AssertionError(f"no answer for fault kind {kind!r}")


def channel_list_reply(
    fault: Fault | None,
    faults: Faults,
    query: Query,
    now: float,
    lines: AppLines,
    location: str,
    count: Callable[[str], None],
) -> Reply:
    """The channelList answer (``count`` counts its code), or how ``fault`` answers it: those
    that rewrite a page here rewrite the list (hostile entries among the lines)."""
    if fault is None:
        count("0")
        return Reply(body=channel_list(lines))
    if fault.kind in ("poison", "too_many_records"):
        return Reply(body=hostile_channel_list(lines))
    if fault.kind == "drip":
        return dripped(channel_list(lines), faults.drip_interval_seconds)
    if fault.kind == "oversize":
        return padded(channel_list(lines), faults.oversize_bytes)
    return fault_reply(fault, faults, query, now, dict, False, location)  # no page in it


def channel_list(lines: AppLines) -> bytes:
    """The channelList answer: every line, no paging."""
    data = [{"tenantPhoneNumberId": line.line_id, "phoneNumber": line.name} for line in lines.lines]
    return json_bytes({"status": "0", "reason": REASONS["0"], "data": data})


def hostile_channel_list(lines: AppLines) -> bytes:
    """A successful answer no client should take as it comes: the lines among hostile entries."""
    data = [
        *HOSTILE_LINES,
        *({"tenantPhoneNumberId": int(x.line_id), "phoneNumber": x.name} for x in lines.lines),
    ]
    return json_bytes({"status": "0", "reason": REASONS["0"], "data": data})
