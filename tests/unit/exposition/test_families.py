"""The families' shared writing rules: values as client_python writes them, label escaping."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from prometheus_client.utils import floatToGoString

from exporter.exposition.families import value_text

WHOLE = st.integers(0, 2**60)


@given(st.one_of(WHOLE, WHOLE.map(float), st.floats(allow_nan=False, allow_infinity=True)))
@example(999_999)
@example(1_000_000)
@example(1_000_000.0)
@example(1_764_000_000.0)
@example(2**53 - 1)
@example(2**53)
@example(float(2**53))
@example(-0.0)
@example(-1_000_000.0)
def test_value_text_is_float_to_go_string(number: float) -> None:
    assert value_text(number) == floatToGoString(number)


def test_value_text_of_nan_is_float_to_go_string() -> None:
    assert value_text(float("nan")) == floatToGoString(float("nan")) == "NaN"
