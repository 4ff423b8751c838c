"""What the aivoice API's status codes mean, and what an operator should check for each.

These numbers belong to the aivoice product only: the vendor's SMS API uses other numbers for
some of the same words, so this table must never be shared with another product.

A code is also a label value (`aivoice_api_errors_total{code=...}`), so `code_label` keeps the
set of values small whatever the API sends: a documented code, a number-like undocumented one,
`http_<N>`, a transport failure, or `other`.
"""

from __future__ import annotations

import re
from types import MappingProxyType

# The `code` label values for failures that never reached the API's own status field.
TIMEOUT = "timeout"
CONNECTION = "connection"
INVALID_RESPONSE = "invalid_response"
TRANSPORT_CODES = (TIMEOUT, CONNECTION, INVALID_RESPONSE)
# An API status that is neither documented nor number-like (or one too many distinct codes).
OTHER = "other"
# Not a request's failure: a whole app poll outran `poll.timeout_seconds`.
POLL_TIMEOUT = "poll_timeout"

# Codes the taskList page documents: each starts at 0 on every app so that increase() sees the
# first error.
TASK_LIST_CODES = ("-1", "-4", "-6", "-37", "-49", "-50", "-57", "-58", "-59")
# Codes the channelList page documents (an app's lines), each at 0 from the start likewise.
CHANNEL_LIST_CODES = ("-1", "-4", "-5", "-6", "-27", "-37", "-49", "-57", "-58", "-59")

EXPLANATIONS = MappingProxyType(
    {
        "-1": "authentication error: check the account's api_key and api_secret",
        "-3": "insufficient balance: top up the account",
        "-4": "timestamp expired: this host's clock is probably off; check NTP (timedatectl)",
        "-5": "system exception on the API's side: usually passes; retry later",
        "-6": "IP restricted: this host's public IP is not on the app's allow list",
        "-16": "timestamp expired (as the generic spec numbers it): check this host's clock (NTP)",
        "-27": "parameter validation failed: check app_ids, task_name and api.page_size",
        "-32": "task does not exist",
        "-37": "application does not exist: check the app id in the config",
        "-46": "network error or bad parameter on the API's side",
        "-49": "account not authenticated: finish the account verification in the console",
        "-50": "application not quoted: the app has no price plan yet; ask the vendor",
        "-52": "concurrency exceeds the account's maximum",
        "-57": "the Sign header was empty",
        "-58": "the Timestamp header was empty",
        "-59": "the Api-Key header was empty: check the account's api_key",
        TIMEOUT: "no whole answer within api.timeout_seconds: the API is slow or unreachable",
        CONNECTION: "the connection failed: see the detail for where (connecting or reading)",
        INVALID_RESPONSE: "the answer was not the JSON the API documents, or was over the "
        "exporter's bounds: check api.base_url and the detail",
        OTHER: "an undocumented, non-numeric status from the API: see the reason in the detail",
        POLL_TIMEOUT: "the app's whole poll outran poll.timeout_seconds (too many pages for "
        "api.max_requests_per_second, or a slow API); its last good data is kept",
    }
)

# getBalance belongs to the account (the vendor lists it with the SMS API), and the SMS API
# numbers its errors its own way: -2 is the restricted IP that aivoice calls -6, -16 the expired
# timestamp aivoice calls -4. Its own table, never mixed with the one above.
BALANCE_CODES = ("-1", "-2", "-13", "-16", "-18")
BALANCE_EXPLANATIONS = MappingProxyType(
    {
        "-1": "authentication error: check the account's api_key and api_secret",
        "-2": "IP restricted: this host's public IP is not on the account's allow list",
        "-13": "user locked: the account is locked; see the vendor console or ask the vendor",
        "-16": "timestamp expired: this host's clock is probably off; check NTP (timedatectl)",
        "-18": "system error on the API's side: usually passes; retry later",
    }
)

_NUMBER_LIKE = re.compile(r"-?[0-9]{1,9}")
_HTTP_STATUS = re.compile(r"[1-5][0-9]{2}")


def code_label(status: str) -> str:
    """The label value for an API `status`: documented or number-like as it is, else `other`."""
    if status in EXPLANATIONS or _NUMBER_LIKE.fullmatch(status):
        return status
    return OTHER


def http_code(status: int) -> str:
    """`http_<N>` for a real HTTP status; anything outside 100..599 is not one."""
    text = str(status)
    return f"http_{text}" if _HTTP_STATUS.fullmatch(text) else "http_other"


def explain_balance(code: str) -> str:
    """`explain` for a getBalance code: the SMS table's words, the transport's as everywhere."""
    if code in BALANCE_EXPLANATIONS:
        return BALANCE_EXPLANATIONS[code]
    if _NUMBER_LIKE.fullmatch(code):
        return "an undocumented getBalance status code: see the vendor's documentation"
    return explain(code)


def explain(code: str) -> str:
    """A human sentence for a code label value, including `http_<N>` and unknown codes."""
    if code in EXPLANATIONS:
        return EXPLANATIONS[code]
    if code.startswith("http_"):
        status = code.removeprefix("http_")
        if status == "429":
            return "HTTP 429: the API is rate limiting; lower api.max_requests_per_second"
        if status.startswith("3"):
            return (
                f"HTTP {status}: a redirect, never followed (it would carry the credentials "
                "elsewhere): check api.base_url"
            )
        if status.startswith("5"):
            return f"HTTP {status}: the API had a server error; it usually passes"
        return f"HTTP {status}: unexpected; check api.base_url"
    return "an undocumented status code: see the vendor's documentation"


class PollError(Exception):
    """A request (or a poll) that failed for good; `code` is the label value it is counted as.

    `retry_after_seconds` is the server's `Retry-After`, when it sent one; `explanation`
    replaces `explain(code)` for an endpoint with a code table of its own (getBalance).
    """

    def __init__(
        self,
        code: str,
        detail: str = "",
        *,
        retry_after_seconds: float | None = None,
        explanation: str | None = None,
    ) -> None:
        said = explain(code) if explanation is None else explanation
        super().__init__(f"{code}: {said}" + (f" ({detail})" if detail else ""))
        self.code = code
        self.detail = detail
        self.retry_after_seconds = retry_after_seconds

    @property
    def transient(self) -> bool:
        """Worth another try: the failure says nothing about the request itself."""
        if self.code in (TIMEOUT, CONNECTION, INVALID_RESPONSE):
            return True
        return self.code == "http_429" or self.code.startswith("http_5")
