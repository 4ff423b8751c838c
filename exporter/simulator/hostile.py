"""What a failing or hostile server sends: the answer of every fault kind, and odd records.

Builders only: ``Simulator`` decides the fault (``faults.decide``) and counts it first, then
calls one of these outside its lock. Large bodies are streamed or built once and cached, so a
1 GiB gzip bomb or a 16 MiB body costs the simulator little memory.
"""

from __future__ import annotations

import functools
import math
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from email.utils import formatdate
from types import MappingProxyType
from typing import Any

from exporter.simulator.api import JSON, Query, Reply, is_int, page_payload
from exporter.simulator.calls import filler_record
from exporter.simulator.campaigns import new_record

# Bodies a broken proxy or server might send: none of them is a page the client may accept.
GARBAGE: Mapping[str, tuple[str, bytes]] = MappingProxyType(
    {
        "html": ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
        "truncated_json": (
            JSON,
            b'{"status":"0","reason":"success","data":{"records":[{"jobId":1,',
        ),
        "no_data": (JSON, b'{"status":"0","reason":"success"}'),
        "empty": (JSON, b""),
    }
)
_MIB = 1 << 20
_FILLER_JOB_ID = 9_000_000_000  # above any simulated task's id
_STREAM_CHUNK = 64 * 1024
_HUGE_FLOAT = 1.7976931348623157e308  # the largest float: two of them overflow a sum


def html_error(status: int) -> Reply:
    """An error page as a proxy in front of the API would send it."""
    body = f"<html><body><h1>{status} Error</h1></body></html>".encode()
    return Reply(status, body, "text/html")


def retry_after(status: int, variant: str, seconds: int, now: float) -> Reply:
    """An HTTP error asking the client to come back ``seconds`` from ``now``."""
    value = str(seconds)
    if variant == "http_date":  # whole seconds only: round up, never ask for less
        value = formatdate(math.ceil(now) + seconds, usegmt=True)
    return replace(html_error(status), headers=(("Retry-After", value),))


def odd_status(variant: str) -> tuple[str, str]:
    """(status, reason) of an ``odd_status`` variant; the 1 MiB ones are made on demand."""
    if variant == "undocumented_code":
        return "-77", "Simulated undocumented error"
    if variant == "word":
        return "MAINTENANCE", "Down for maintenance"
    if variant == "lone_surrogate":
        return "\ud800", "Simulated error"
    if variant == "huge_status":
        return "9" * _MIB, "Simulated error"
    return "-5", "r" * _MIB  # huge_reason


def crowded_page(
    query: Query, count: int, filler: Callable[[int, float], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A page of ``count`` distinct tasks (or ``filler`` records, e.g. calls), consistent with
    itself, whatever size was asked."""
    now = time.time()
    if filler is None:
        records = [new_record(_FILLER_JOB_ID + i, now) for i in range(count)]
    else:
        records = [filler(i, now) for i in range(count)]
    return page_payload(records, total=count, size=query.size, current=query.current)


def poisoned(
    page: dict[str, Any], variant: str, now: float, *, calls: bool = False
) -> dict[str, Any]:
    """The page with one poison value (two records' for ``float_overflow``): in ``taskTotal``,
    or for a page of ``calls`` in ``chargedDuration``."""
    data = page["data"]
    if variant == "records_false":
        data.update(records=False, total=5)
        return page
    records = data["records"]
    needed = 2 if variant == "float_overflow" else 1
    while len(records) < needed:  # a page past the end has no record to poison
        index = len(records)
        records.append(
            filler_record(index, now) if calls else new_record(_FILLER_JOB_ID + index, now)
        )
    field = "chargedDuration" if calls else "taskTotal"
    if variant == "superscript_digit":
        records[0][field] = "²"  # str.isdigit() says yes, int() says no
    elif variant == "huge_integer":
        records[0][field] = int("9" * 400)
    elif calls:  # float_overflow: the sum of two is inf
        for record in records[:2]:
            record.update(chargedDuration=_HUGE_FLOAT, resultStatus="ANSWERED")
    else:  # float_overflow: per status the sum is inf, or an int too large for a float
        for record in records[:2]:
            record.update(taskTotal=_HUGE_FLOAT, taskCompleted=0, status="IN_PROCESS")
    return page


def dripped(body: bytes, interval: float) -> Reply:
    """``body`` one byte every ``interval`` seconds, after honest headers."""
    chunks = (body[i : i + 1] for i in range(len(body)))
    return Reply(chunks=chunks, length=len(body), drip_seconds=interval)


def padded(body: bytes, size: int) -> Reply:
    """Whitespace, then ``body``: ``size`` bytes of valid JSON, made as they are sent."""
    padding = max(0, size - len(body))

    def chunks() -> Iterator[bytes]:
        whole, rest = divmod(padding, _STREAM_CHUNK)
        block = b" " * _STREAM_CHUNK
        for _ in range(whole):
            yield block
        yield b" " * rest + body

    return Reply(chunks=chunks(), length=padding + len(body))


@functools.lru_cache(maxsize=4)
def gzip_bomb(inflated_bytes: int = 1 << 30, tail: bytes = b"") -> bytes:
    """A gzip stream of about ``inflated_bytes / 1000`` that inflates to ``inflated_bytes``:
    spaces, then ``tail``. Built in milliseconds and cached.

    One MiB of spaces is deflated once and its block repeated: a full flush resets the
    compressor, so every MiB compresses to the same bytes and the blocks join into one valid
    deflate stream.
    """
    if not is_int(inflated_bytes) or not len(tail) <= inflated_bytes < 1 << 40:
        raise ValueError("inflated_bytes: must be an integer, at least len(tail), below 1 TiB")
    blocks, rest = divmod(inflated_bytes - len(tail), _MIB)
    spaces = b" " * _MIB
    block_compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = block_compressor.compress(spaces) + block_compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(spaces, crc)
    last = b" " * rest + tail
    crc = zlib.crc32(last, crc)
    end_compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    end = end_compressor.compress(last) + end_compressor.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, no mtime
    trailer = struct.pack("<II", crc, inflated_bytes & 0xFFFFFFFF)
    return header + block * blocks + end + trailer


def odd_valid_records(first_job_id: int = 1) -> list[dict[str, Any]]:
    """Records that are odd but valid, for ``Simulator.set_tasks``: a client must accept each
    as a task of its own (no fault, nothing to count).

    Two jobIds that are different lone surrogates (distinct tasks that a lossy text conversion
    would merge), a jobId sent as a string, a 1 MiB name (to be cut short, not refused), a
    status nobody documents, counts sent as numeric strings and a createTime that is no date.
    """
    now = time.time()
    records = [new_record(first_job_id + i, now) for i in range(6)]
    records[0]["jobId"] = "\ud800"
    records[1]["jobId"] = "\udc00"
    records[2]["jobId"] = str(first_job_id + 2)
    records[3]["name"] = "n" * _MIB
    records[4]["status"] = "SOMETHING_NEW"
    records[5].update(taskTotal="12", taskCompleted="5", createTime="yesterday")
    return records
