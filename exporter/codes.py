"""What the aivoice API's status codes mean, and what an operator should check for each.

These numbers belong to the aivoice product only: the vendor's SMS API uses other numbers for
some of the same words, so this table must never be shared with another product.
"""

from __future__ import annotations

from types import MappingProxyType

# The `code` label values for failures that never reached the API's own status field.
TIMEOUT = "timeout"
CONNECTION = "connection"
INVALID_RESPONSE = "invalid_response"
TRANSPORT_CODES = (TIMEOUT, CONNECTION, INVALID_RESPONSE)

# Codes the taskList page documents: each starts at 0 on every app so that increase() sees the
# first error.
TASK_LIST_CODES = ("-1", "-4", "-6", "-37", "-49", "-50", "-57", "-58", "-59")

EXPLANATIONS = MappingProxyType(
    {
        "-1": "authentication error: check the account's api_key and api_secret",
        "-3": "insufficient balance: top up the account",
        "-4": "timestamp expired: this host's clock is probably off; check NTP (timedatectl)",
        "-5": "system exception on the API's side: usually passes; retry later",
        "-6": "IP restricted: this host's public IP is not on the app's allow list",
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
        TIMEOUT: "no answer within api.timeout_seconds: the API is slow or unreachable",
        CONNECTION: "could not connect: check DNS, proxies, firewalls and api.base_url",
        INVALID_RESPONSE: "the answer was not the JSON the API documents: check api.base_url",
    }
)


def explain(code: str) -> str:
    """A human sentence for a code label value, including `http_<N>` and unknown codes."""
    if code in EXPLANATIONS:
        return EXPLANATIONS[code]
    if code.startswith("http_"):
        status = code.removeprefix("http_")
        if status == "429":
            return "HTTP 429: the API is rate limiting; lower api.max_requests_per_second"
        if status.startswith("5"):
            return f"HTTP {status}: the API had a server error; it usually passes"
        return f"HTTP {status}: unexpected; check api.base_url"
    return "an undocumented status code: see the vendor's documentation"
