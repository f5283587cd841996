"""Evidence timestamps: exactly what ``datetime`` formats, with each second's text kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shadowproxy import timestamps
from shadowproxy.timestamps import rfc3339


def _by_datetime(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@given(st.floats(min_value=-1e10, max_value=2.5e11, allow_nan=False))
@example(0.9995)
@example(-1.5e-7)
@example(-0.9999996)
@example(1_765_000_000.9999995)
@example(1_765_000_000.0000005)
@example(253_402_300_799.999)
def test_the_same_text_as_datetime(ts: float) -> None:
    """Microseconds round half to even, then milliseconds are cut, across second boundaries."""
    assert rfc3339(ts) == _by_datetime(ts)


@pytest.mark.parametrize("ts", [float("nan"), float("inf"), 1e20])
def test_out_of_range_raises_as_datetime_does(ts: float) -> None:
    with pytest.raises(Exception) as expected:
        _by_datetime(ts)
    with pytest.raises(type(expected.value)):
        rfc3339(ts)


def test_the_kept_seconds_are_bounded() -> None:
    for second in range(1000):
        rfc3339(1_765_000_000 + second + 0.25)
    assert 0 < len(timestamps._seconds) <= timestamps._SECONDS_KEPT
    assert rfc3339(1_765_000_999.25) == "2025-12-06T06:03:19.250Z"
