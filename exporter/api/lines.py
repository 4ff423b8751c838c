"""An app's calling lines: `POST /channelList`, read and parsed into `LineList`s.

The answer is `{"status": "0", "reason": "success", "data": [{"tenantPhoneNumberId": "...",
"phoneNumber": "..."}]}`: every line of the app at once, no paging. `tenantPhoneNumberId` is
the line's id, the one call records name; `phoneNumber` is its name as the console shows it.

Like every answer, this one is hostile until read: the list is bounded (`MAX_LINES_LISTED`), an
id is read as call records read it (`records.line_id`, so `12` and `"12"` are one line), and a
name is cut to a label's length. An entry that cannot be read is skipped and counted; only an
envelope that cannot be read fails the read, with `PollError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from exporter.api.records import line_id
from exporter.api.wire import clean_text, read_document
from exporter.codes import INVALID_RESPONSE, PollError

# More lines than any account has: a longer list is not an answer to trust.
MAX_LINES_LISTED = 10_000


@dataclass(frozen=True)
class LineList:
    """The app's lines as one channelList answer lists them: (line id, name), in the answer's
    order, each id once. `skipped` counts entries that could not be read."""

    lines: tuple[tuple[str, str], ...]
    skipped: int = 0
    pages: int = 1  # One request reads it all (the paging reader asks every read for this).


def channel_list_request(app_id: str) -> bytes:
    return json.dumps({"appId": app_id}).encode("utf-8")


def parse_channel_list(body: bytes) -> LineList:
    """Read one channelList answer; raises `PollError` and nothing else."""
    data = read_document(body).get("data")
    if data is None:
        return LineList(())
    if not isinstance(data, list):
        raise PollError(INVALID_RESPONSE, "data is not a list")
    if len(data) > MAX_LINES_LISTED:
        raise PollError(INVALID_RESPONSE, f"{len(data)} lines listed (at most {MAX_LINES_LISTED})")
    lines: dict[str, str] = {}
    skipped = 0
    for entry in data:
        found = _line(entry)
        if found is None:
            skipped += 1
        else:
            lines.setdefault(*found)
    return LineList(tuple(lines.items()), skipped)


def _line(entry: Any) -> tuple[str, str] | None:
    if not isinstance(entry, dict):
        return None
    key = line_id(entry.get("tenantPhoneNumberId"))
    name = entry.get("phoneNumber")
    if not key or not isinstance(name, (str, int)) or isinstance(name, bool):
        return None
    return key, clean_text(str(name).strip())
