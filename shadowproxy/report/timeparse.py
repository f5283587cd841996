"""Instants and durations as the report's flags and files spell them.

Owns parsing of RFC 3339 instants, relative instants (``14d`` ago) and
durations (``36h``), and the one output format of each. An instant outside the
years 1970-9999 is refused (``HostileValueError``): no evidence was written
then, and formatting it would fail. Imports the standard library and the
report's errors.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from shadowproxy.report.errors import HostileValueError
from shadowproxy.timestamps import rfc3339

__all__ = [
    "format_duration",
    "format_instant",
    "parse_duration",
    "parse_instant",
    "parse_record_ts",
]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC).timestamp()
# A day short of the end of 9999, so that the fast path's seconds stay in range.
_LATEST = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
_YEAR = re.compile(r"\s*(\d{4})-")


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
    except HostileValueError as exc:
        raise ValueError(str(exc)) from None


_MINUTES: dict[str, float] = {}
_MAX_CACHED_MINUTES = 100_000


def parse_record_ts(text: str, key: str = "time") -> float:
    """Epoch seconds of an RFC 3339 timestamp; a missing offset means UTC.

    ValueError when it is not RFC 3339; HostileValueError (naming ``key``)
    when it is, but outside the years 1970-9999. The writers' own form
    (``2026-11-23T13:40:00.123Z``) takes a fast path: the minute is parsed
    once and cached, the seconds are added.
    """
    if len(text) == 24 and text[23] == "Z" and text[16] == ":":
        minute = _MINUTES.get(text[:16])
        if minute is None:
            if len(_MINUTES) >= _MAX_CACHED_MINUTES:
                _MINUTES.clear()
            minute = _MINUTES[text[:16]] = _parse(text[:16], key, text)
        seconds = float(text[17:23])
        if 0.0 <= seconds < 61.0:
            return minute + seconds
    return _parse(text, key, text)


def _parse(text: str, key: str, whole: str) -> float:
    year = _YEAR.match(text)
    if year and not 1970 <= int(year.group(1)) <= 9999:
        raise _impossible(key, whole)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    epoch = moment.timestamp()
    if not _EARLIEST <= epoch <= _LATEST:
        raise _impossible(key, whole)
    return epoch


def _impossible(key: str, text: str) -> HostileValueError:
    return HostileValueError(f"{key}: {text[:40]!r} is outside the years 1970-9999")


def format_instant(epoch: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds, the evidence files' own format."""
    return None if epoch is None else rfc3339(epoch)


def format_duration(seconds: float | None) -> str:
    """``3d 4h``, ``5h 12m``, ``42s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"
