"""How an injected fault answers a request: the bodies of ``hostile`` put together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exporter.simulator.api import EMPTY_PAGE, Query, Reply, api_error, json_bytes
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
