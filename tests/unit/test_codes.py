"""Status codes as label values and as explanations."""

from __future__ import annotations

from exporter.codes import http_code


def test_http_codes_outside_the_status_range_are_one_label() -> None:
    assert http_code(302) == "http_302"
    assert http_code(999) == "http_other"
