"""The one timestamp format of the evidence: RFC 3339 UTC with milliseconds.

Writers (the sinks, cutover records) and the reader (the report) share it, so
what is written is exactly what is read back. Pure code.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from shadowproxy.memo import ByValue

__all__ = ["rfc3339"]

_SECONDS_KEPT = 64
# Every exchange record formats its start and its phase's start: the date and time
# of a second are built once, not per record (18k instructions a call otherwise).
_seconds: ByValue[int, str] = ByValue(_SECONDS_KEPT)
_MILLIS = tuple(f"{n:03d}" for n in range(1000))


def _second(second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of ``second`` since the epoch, in UTC."""
    text = _seconds.get(second)
    if text is None:
        text = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")[:-6]
        _seconds.keep(second, text)
    return text


def rfc3339(ts: float) -> str:
    """``ts`` (seconds since the epoch) as RFC 3339 UTC with milliseconds.

    For example ``2026-11-23T13:40:00.123Z``: what ``datetime.fromtimestamp``
    and ``isoformat(timespec="milliseconds")`` give, microseconds rounded half
    to even and then cut to milliseconds, as they are.
    """
    fraction, whole = math.modf(ts)
    second = int(whole)
    scaled = fraction * 1_000_000
    micros = math.floor(scaled)
    # Half to even, as datetime rounds; ``scaled - micros`` is exact.
    rest = scaled - micros
    if rest > 0.5 or (rest == 0.5 and micros % 2 == 1):
        micros += 1
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    elif micros < 0:
        second -= 1
        micros += 1_000_000
    return f"{_second(second)}.{_MILLIS[micros // 1000]}Z"
