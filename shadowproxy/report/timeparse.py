"""Instants and durations as the report's flags and files spell them.

Owns parsing of RFC 3339 instants, relative instants (``14d`` ago) and
durations (``36h``), and the one output format. Standard library only.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from shadowproxy.timestamps import rfc3339

__all__ = ["format_instant", "parse_duration", "parse_instant", "parse_record_ts"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``text`` such as ``14d``, ``36h``, ``90m``; raises ValueError."""
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a duration like 14d, 36h, 30m")
    return float(found.group(1)) * _UNITS[found.group(2)]


def parse_instant(text: str, now: float) -> float:
    """Epoch seconds of an RFC 3339 instant, or of ``now`` minus a duration like ``14d``."""
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        return parse_record_ts(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither RFC 3339 nor a relative time like 14d") from None


_MINUTES: dict[str, float] = {}
_MAX_CACHED_MINUTES = 100_000


def parse_record_ts(text: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp; a missing offset means UTC.

    The writers' own form (``2026-11-23T13:40:00.123Z``) takes a fast path:
    the minute is parsed once and cached, the seconds are added.
    """
    if len(text) == 24 and text[23] == "Z" and text[16] == ":":
        minute = _MINUTES.get(text[:16])
        if minute is None:
            if len(_MINUTES) >= _MAX_CACHED_MINUTES:
                _MINUTES.clear()
            minute = _MINUTES[text[:16]] = _parse(text[:16])
        seconds = float(text[17:23])
        if 0.0 <= seconds < 61.0:
            return minute + seconds
    return _parse(text)


def _parse(text: str) -> float:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_instant(epoch: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds, the evidence files' own format."""
    return None if epoch is None else rfc3339(epoch)
