"""Cross-runtime equivalences between JSON leaves that differ in spelling only.

Owns the tests behind ``Equivalences``: RFC 3339 timestamps denoting the same
instant (``Z`` vs ``+00:00``, ``.5`` vs ``.500000``), integers spelled as
decimal strings, and ``null`` / missing / ``[]``. ``1`` vs ``1.0`` needs no
helper. Pure code.
"""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["integer_string_equals", "is_empty_like", "same_instant"]

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z"
)
_INTEGER = re.compile(r"-?(?:0|[1-9]\d*)\Z")


def _instant(text: str) -> tuple[int, str] | None:
    """Whole seconds since the epoch and the significant fraction digits, or None."""
    match = _RFC3339.match(text)
    if match is None:
        return None
    stamp, fraction, offset = match.groups()
    if offset in ("Z", "z"):
        offset = "+00:00"
    try:
        moment = datetime.fromisoformat(f"{stamp.replace('t', 'T')}{offset}")
    except ValueError:
        return None
    # Fractions stay digit strings so nanosecond precision survives (floats would not).
    return int(moment.timestamp()), (fraction or "").rstrip("0")


def same_instant(legacy: str, candidate: str) -> bool:
    """True when both strings are RFC 3339 timestamps of the same instant."""
    left = _instant(legacy)
    return left is not None and left == _instant(candidate)


MAX_SAFE_INTEGER = 2**53 - 1
"""Beyond this, JavaScript and many JSON encoders cannot hold an integer as a number,
so rewrites send it as a string; below it, a string is a real type change."""


def integer_string_equals(text: str, number: int) -> bool:
    """True when ``number`` is a big integer and ``text`` is its canonical decimal spelling."""
    return (
        abs(number) > MAX_SAFE_INTEGER
        and len(text) < 4300
        and _INTEGER.match(text) is not None
        and int(text) == number
    )


def is_empty_like(value: object) -> bool:
    """True for ``null`` and ``[]``, which ``null_missing_empty`` equates with a missing key."""
    return value is None or (type(value) is list and not value)
