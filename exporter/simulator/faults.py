"""What the simulator gets wrong on purpose, and the code each fault must be counted as.

``Faults`` holds the settings (immutable, swapped whole by ``Simulator.set_faults``); ``decide``
and friends turn them into one ``Fault`` per request with every random choice made, so the
simulator counts it before building the answer (``hostile``) and a soak can compare its counts
with the exporter's.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from types import MappingProxyType
from typing import Any, TypedDict

from exporter.simulator.api import ENDPOINTS, is_int
from exporter.simulator.hostile import odd_status

FAULT_KINDS = ("http_5xx", "timeout", "garbage", "api_code")
"""The documented faults: ``Faults.random_kinds``' default, and what the soak has always mixed."""
HOSTILE_FAULT_KINDS = (
    "redirect",
    "drip",
    "oversize",
    "gzip_bomb",
    "too_many_records",
    "poison",
    "odd_status",
    "retry_after",
)
"""Answers a broken or malicious server might send; never injected unless asked for."""
ALL_FAULT_KINDS = FAULT_KINDS + HOSTILE_FAULT_KINDS
"""Every kind ``Faults.random_kinds`` and ``Simulator.fail_next`` accept."""
FAULT_VARIANTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "garbage": ("html", "truncated_json", "no_data", "empty"),
        "poison": ("superscript_digit", "huge_integer", "float_overflow", "records_false"),
        "odd_status": ("undocumented_code", "word", "lone_surrogate", "huge_status", "huge_reason"),
        "retry_after": ("seconds", "http_date"),
    }
)
"""The forms a kind comes in; random faults pick one (seeded), ``fail_next(variant=)`` pins one."""
CHURN_ACTIONS = ("create", "delete")
"""What ``change_before_page`` and ``churn_ratio`` do to an app's tasks."""
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
RETRY_AFTER_STATUSES = (429, 503)
STATS_KINDS = ("http_status", "timeout", "garbage", "api_code", *HOSTILE_FAULT_KINDS)
"""The keys of ``Stats.faults``: ``http_5xx`` is counted as ``http_status``."""
_MIB = 1 << 20


@dataclass(frozen=True, kw_only=True)
class Faults:
    """What the simulator gets wrong on purpose; the defaults are a healthy API.

    Faults touch only requests that are otherwise valid: a request rejected for a real reason
    (a bad sign, say) gets its real answer and is never a fault. With ``app_ids`` set, faults
    (latency and churn included) apply only to requests for those apps; with ``endpoints``
    set, only to requests to those endpoints (``taskList``, ``recordQuery``), so a test can
    break recordQuery alone. Precedence:
    ``fail_next`` first, then ``hang_seconds``, ``http_status``, ``api_code``, ``malformed``, then
    the random ones.

    Fault kinds for ``random_kinds`` and ``Simulator.fail_next``, each counted once in
    ``Stats.faults`` (by kind) and ``Stats.fault_codes`` (by the code the exporter must count):

    * ``http_5xx``: an HTML error page with an HTTP error status (random: 500, 502, 503 or 504;
      ``fail_next``: 503 unless told); ``http_<N>``.
    * ``timeout``: hang ``timeout_hang_seconds``, then drop the connection; ``timeout``.
    * ``garbage``: 200 with a body that is no page (variants ``html``, ``truncated_json``,
      ``no_data``, ``empty``); ``invalid_response``.
    * ``api_code``: 200 with ``{"status": code}`` (``random_api_codes``); the code itself.

    The hostile kinds (``HOSTILE_FAULT_KINDS``), never injected unless asked for:

    * ``redirect``: a 3xx (``redirect_statuses``; ``fail_next`` takes 301, 302, 303, 307 or 308)
      whose ``Location`` points at a capture listener the simulator owns on another loopback
      port. The listener answers a valid, empty page and counts every request that reaches it
      (``Stats.redirect_followed``) and those carrying ``Api-Key``, ``Sign`` or ``Timestamp``
      (``Stats.redirect_credentials``): both must stay 0. ``http_<N>``.
    * ``drip``: 200 with valid headers and ``Content-Length``, then the real page one byte every
      ``drip_interval_seconds``: each read gets data, the whole body takes far longer than any
      client timeout (even an empty page is over 100 bytes). ``timeout``.
    * ``oversize``: 200 with a body of ``oversize_bytes``: whitespace then the real page, so it is
      valid JSON and only a size cap stops it; streamed, never held in memory. ``invalid_response``.
    * ``gzip_bomb``: 200, ``Content-Encoding: gzip``, about 1/1000 of ``gzip_bomb_bytes`` on the
      wire inflating to ``gzip_bomb_bytes`` (whitespace, then a valid empty page); built once
      per size and cached. ``invalid_response``.
    * ``too_many_records``: a valid page holding ``too_many_records`` distinct records, whatever
      was asked. ``invalid_response``.
    * ``poison``: the real page with one value no exporter may accept (variants:
      ``superscript_digit``, taskTotal ``"²"``, which passes ``str.isdigit()`` but not ``int()``;
      ``huge_integer``, a 400-digit taskTotal; ``float_overflow``, two tasks of one status with
      taskTotal 1.7976931348623157e308, whose sum overflows a float; ``records_false``,
      ``records: false`` with ``total: 5``). ``invalid_response``. Odd values a client must
      accept are no fault: serve them with ``set_tasks`` (see ``odd_valid_records``).
    * ``odd_status``: an API error with an odd ``status`` (variants: ``undocumented_code``
      ``"-77"``; ``word`` ``"MAINTENANCE"``; ``lone_surrogate`` ``"\\ud800"`` as a JSON escape;
      ``huge_status``, 1 MiB of digits; ``huge_reason``, status ``"-5"`` with a 1 MiB
      ``reason``). The status itself if it matches ``-?[0-9]{1,9}``, else ``other`` (see
      ``expected_status_code``).
    * ``retry_after``: an HTTP 429 or 503 (``retry_after_statuses``) with ``Retry-After``
      ``retry_after_seconds`` from now, in seconds or as an HTTP date (variants ``seconds``,
      ``http_date``; the date is rounded up to a whole second of the simulator's clock).
      ``http_429`` or ``http_503``.
    """

    latency_seconds: float = 0.0
    """Added before every answer; not a fault."""
    latency_jitter_seconds: float = 0.0
    """Up to this much more latency, uniformly at random (seeded)."""
    api_code: str | None = None
    """Answer every request with this API status (HTTP 200), e.g. ``"-6"``."""
    http_status: int | None = None
    """Answer every request with this HTTP status, e.g. 503 or 429."""
    malformed: bool = False
    """Answer every request with a body that is not JSON or is JSON without ``data``."""
    hang_seconds: float = 0.0
    """Hang every request this long, then drop the connection without an answer."""
    timeout_hang_seconds: float = 15.0
    """How long a random or ``fail_next`` ``timeout`` hangs before dropping the connection:
    set it above the client's timeout, or the client sees a dropped connection instead."""
    random_fail_ratio: float = 0.0
    """Fail this share of requests with one of ``random_kinds``, chosen by a seeded RNG."""
    random_kinds: tuple[str, ...] = FAULT_KINDS
    """Kinds a random fault picks from: any of ``ALL_FAULT_KINDS``."""
    random_api_codes: tuple[str, ...] = ("-5",)
    """Codes a random ``api_code`` fault picks from."""
    redirect_statuses: tuple[int, ...] = (302,)
    """Statuses a random ``redirect`` picks from (301, 302, 303, 307, 308)."""
    drip_interval_seconds: float = 1.0
    """The pause before each byte of a ``drip``: keep it below the client's timeout, so that
    only a bound on the whole request can end it."""
    oversize_bytes: int = 16 * _MIB
    """The body size of an ``oversize`` answer."""
    gzip_bomb_bytes: int = 1 << 30
    """What a ``gzip_bomb`` inflates to."""
    too_many_records: int = 5000
    """Records on a ``too_many_records`` page."""
    retry_after_seconds: int = 1
    """The ``Retry-After`` of a ``retry_after`` answer."""
    retry_after_statuses: tuple[int, ...] = (429,)
    """Statuses a random ``retry_after`` picks from (429, 503)."""
    churn_ratio: float = 0.0
    """Before this share of valid page requests (seeded), create a task or delete the newest
    one, as ``Simulator.change_before_page`` does: creates and deletes alternate, starting with
    a create, so an app holds its start count or one more. Counted in ``Stats.churn``."""
    app_ids: tuple[str, ...] = ()
    """Only these apps suffer the faults above; empty means every app."""
    endpoints: tuple[str, ...] = ()
    """Only requests to these endpoints (``taskList``, ``recordQuery``) suffer the faults
    above; empty means both."""

    def __post_init__(self) -> None:
        for name in ("random_kinds", "random_api_codes", "app_ids", "endpoints"):
            object.__setattr__(self, name, _str_tuple(name, getattr(self, name)))
        for name, allowed in (
            ("redirect_statuses", REDIRECT_STATUSES),
            ("retry_after_statuses", RETRY_AFTER_STATUSES),
        ):
            object.__setattr__(self, name, _status_tuple(name, getattr(self, name), allowed))
        for name in (
            "latency_seconds",
            "latency_jitter_seconds",
            "hang_seconds",
            "timeout_hang_seconds",
        ):
            check_number(name, getattr(self, name), 0.0, float("inf"))
        check_number("random_fail_ratio", self.random_fail_ratio, 0.0, 1.0)
        check_number("churn_ratio", self.churn_ratio, 0.0, 1.0)
        check_number("drip_interval_seconds", self.drip_interval_seconds, 0.001, 3600.0)
        _check_int("oversize_bytes", self.oversize_bytes, 1, 1 << 34)
        _check_int("gzip_bomb_bytes", self.gzip_bomb_bytes, 1, 1 << 34)
        _check_int("too_many_records", self.too_many_records, 1, 1_000_000)
        _check_int("retry_after_seconds", self.retry_after_seconds, 0, 10**9)
        if self.api_code is not None:
            check_api_code("api_code", self.api_code)
        for code in self.random_api_codes:
            check_api_code("random_api_codes", code)
        if self.http_status is not None:
            _check_http_status("http_status", self.http_status)
        if not isinstance(self.malformed, bool):
            raise ValueError("malformed: must be true or false")
        unknown = set(self.random_kinds) - set(ALL_FAULT_KINDS)
        if unknown:
            raise ValueError(
                f"random_kinds: unknown {sorted(unknown)}, known {list(ALL_FAULT_KINDS)}"
            )
        if set(self.endpoints) - set(ENDPOINTS):
            raise ValueError(f"endpoints: must be out of {list(ENDPOINTS)}")
        if self.random_fail_ratio > 0 and not self.random_kinds:
            raise ValueError("random_kinds: empty while random_fail_ratio > 0")
        for kind, choices in (
            ("api_code", "random_api_codes"),
            ("redirect", "redirect_statuses"),
            ("retry_after", "retry_after_statuses"),
        ):
            if kind in self.random_kinds and not getattr(self, choices):
                raise ValueError(f"{choices}: empty while random_kinds has {kind}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        """Build from JSON (``POST /-/faults``); missing fields take their defaults."""
        if not isinstance(data, Mapping):
            raise ValueError("faults: must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown field, known {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, which ``from_dict`` reads back."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def applies_to(self, app_id: str | None, endpoint: str | None = None) -> bool:
        """Whether a request for ``app_id`` (None: unknown) to ``endpoint`` (None: any) is in
        the faults' scope."""
        in_endpoints = not self.endpoints or endpoint is None or endpoint in self.endpoints
        return in_endpoints and (not self.app_ids or app_id in self.app_ids)


def check_number(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name}: must be a number in [{low}, {high}], got {value!r}")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not is_int(value) or not low <= value <= high:
        raise ValueError(f"{name}: must be an integer in [{low}, {high}], got {value!r}")


def _status_tuple(name: str, value: object, allowed: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name}: must be a list of HTTP statuses out of {list(allowed)}")
    if not all(is_int(item) and item in allowed for item in value):
        raise ValueError(f"{name}: must be a list of HTTP statuses out of {list(allowed)}")
    return tuple(value)


def _str_tuple(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise ValueError(f"{name}: must be a list of strings")
    if not all(isinstance(item, str) for item in value):
        raise ValueError(f"{name}: must be a list of strings")
    return tuple(value)


def check_api_code(name: str, code: object) -> None:
    if not isinstance(code, str) or not re.fullmatch(r"-[1-9][0-9]*", code):
        raise ValueError(f"{name}: must be a negative code as a string like '-5', got {code!r}")


def _check_http_status(name: str, status: object) -> None:
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"{name}: must be an HTTP error status 400..599, got {status!r}")


def check_fault_status(kind: str, status: object) -> None:
    """The ``http_status`` ``fail_next`` may give a kind, or ValueError."""
    allowed = {"redirect": REDIRECT_STATUSES, "retry_after": RETRY_AFTER_STATUSES}
    if kind == "http_5xx":
        _check_http_status("http_status", status)
    elif kind in allowed:
        if not is_int(status) or status not in allowed[kind]:
            raise ValueError(f"http_status: {kind} takes one of {list(allowed[kind])}")
    else:
        raise ValueError(f"http_status: {kind} takes none")


def expected_status_code(status: str) -> str:
    """The ``code`` an exporter must count for an API error ``status``: the status if it
    looks like an API code (``-?[0-9]{1,9}``), else ``other``, so labels stay bounded."""
    return status if re.fullmatch(r"-?[0-9]{1,9}", status) else "other"


@dataclass(frozen=True)
class Fault:
    """One injected fault, decided (and counted) before its answer is built."""

    kind: str  # one of ALL_FAULT_KINDS
    code: str  # what the exporter should count: "http_503", "timeout", "invalid_response", "-5"
    status: int = 0  # the HTTP status of http_5xx, redirect and retry_after
    api_code: str = ""  # of api_code
    variant: str = ""  # one of FAULT_VARIANTS[kind], where the kind has variants
    hang: float = 0.0  # of timeout


@dataclass(frozen=True)
class Pending:
    """A ``fail_next`` entry waiting for a request."""

    kind: str
    app_id: str | None
    api_code: str
    http_status: int | None
    variant: str | None
    endpoint: str | None = None

    @classmethod
    def checked(
        cls,
        kind: str,
        app_id: str | None,
        api_code: str,
        http_status: int | None,
        variant: str | None,
        endpoint: str | None,
    ) -> Pending:
        """The entry, once every field is one ``fail_next`` accepts; else a ValueError."""
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint: must be one of {list(ENDPOINTS)}, got {endpoint!r}")
        if kind not in ALL_FAULT_KINDS:
            raise ValueError(f"kind: unknown {kind!r}, known {list(ALL_FAULT_KINDS)}")
        check_api_code("api_code", api_code)
        if http_status is not None:
            check_fault_status(kind, http_status)
        if variant is not None and variant not in FAULT_VARIANTS.get(kind, ()):
            known = list(FAULT_VARIANTS.get(kind, ()))
            raise ValueError(f"variant: {kind} has no variant {variant!r}, known {known}")
        return cls(kind, app_id, api_code, http_status, variant, endpoint)


def configured_fault(faults: Faults, rng: random.Random) -> Fault | None:
    """The fault every request in scope gets, if the settings name one."""
    if faults.hang_seconds > 0:
        return Fault("timeout", "timeout", hang=faults.hang_seconds)
    if faults.http_status is not None:
        return decide("http_5xx", faults, rng, status=faults.http_status)
    if faults.api_code is not None:
        return decide("api_code", faults, rng, api_code=faults.api_code)
    if faults.malformed:
        return decide("garbage", faults, rng)
    return None


def random_fault(faults: Faults, rng: random.Random) -> Fault | None:
    """A fault for ``random_fail_ratio`` of the requests, drawn from ``rng``."""
    if faults.random_fail_ratio <= 0 or rng.random() >= faults.random_fail_ratio:
        return None
    kind = rng.choice(faults.random_kinds)
    # The draws the documented kinds have always made, in their order, keep old seeds' runs.
    api_code = rng.choice(faults.random_api_codes) if faults.random_api_codes else "-5"
    status = rng.choice((500, 502, 503, 504))
    if kind == "redirect":
        status = rng.choice(faults.redirect_statuses)
    elif kind == "retry_after":
        status = rng.choice(faults.retry_after_statuses)
    return decide(kind, faults, rng, api_code=api_code, status=status)


def decide(
    kind: str,
    faults: Faults,
    rng: random.Random,
    *,
    api_code: str = "-5",
    status: int | None = None,
    variant: str | None = None,
) -> Fault:
    """The fault with every random choice made, and the code it must be counted as."""
    variants = FAULT_VARIANTS.get(kind, ())
    if variants and variant is None:
        variant = rng.choice(variants)
    variant = variant or ""
    if kind in ("http_5xx", "redirect", "retry_after"):
        status = status or {"http_5xx": 503, "redirect": 302, "retry_after": 429}[kind]
        return Fault(kind, f"http_{status}", status=status, variant=variant)
    if kind == "api_code":
        return Fault(kind, api_code, api_code=api_code)
    if kind == "timeout":
        return Fault(kind, "timeout", hang=faults.timeout_hang_seconds)
    if kind == "drip":
        return Fault(kind, "timeout")
    if kind == "odd_status":
        status_text, _ = odd_status(variant)
        return Fault(kind, expected_status_code(status_text), variant=variant)
    return Fault(kind, "invalid_response", variant=variant)


class Stats(TypedDict):
    """Counters since start-up, for tests that compare the client's view with the server's."""

    requests: int
    """Every POST to the API path, whatever its answer."""
    answered: dict[str, int]
    """Real (not injected) answers by API status: ``{"0": 10, "-1": 1}``."""
    faults_total: int
    """Requests answered with an injected fault, each once."""
    faults: dict[str, int]
    """Injected faults by kind: http_status (for ``http_5xx``), timeout, garbage, api_code and
    the hostile kinds, each present from the start."""
    fault_codes: dict[str, int]
    """Injected faults by the error code the exporter should count for them
    (``http_503``, ``timeout``, ``invalid_response``, ``-5``, ``other``)."""
    churn: dict[str, int]
    """Tasks created and deleted by ``change_before_page`` and ``churn_ratio``:
    ``{"create": n, "delete": n}``."""
    redirect_followed: int
    """Requests that reached the redirect capture listener: a client that follows redirects."""
    redirect_credentials: int
    """Of those, the ones carrying ``Api-Key``, ``Sign`` or ``Timestamp``."""
    record_queries: int
    """Of ``requests``, those to ``recordQuery``."""
    push_sent: int
    """Push POSTs made: first tries, retries and duplicates."""
    push_delivered: int
    """Calls delivered (answered 200 ``success``), each once: duplicates are not counted."""
    push_retried: int
    """POSTs that repeat a failed one."""
    push_duplicated: int
    """Extra pushes of a call already delivered (their first try)."""
    push_failed: int
    """Pushes given up after the last try (a call, or a duplicate of one)."""
    push_dropped: int
    """Calls never pushed because the queue was full."""
    push_pending: int
    """Pushes waiting in the queue (first tries, retries and duplicates), as of the push
    thread's last round: 0 once everything due was sent."""
