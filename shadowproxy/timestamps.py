"""The one timestamp format of the evidence: RFC 3339 UTC with milliseconds.

Writers (the sinks, cutover records) and the reader (the report) share it, so
what is written is exactly what is read back. Pure code, standard library only.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["rfc3339"]


def rfc3339(ts: float) -> str:
    """``ts`` (seconds since the epoch) as RFC 3339 UTC with milliseconds.

    For example ``2026-11-23T13:40:00.123Z``.
    """
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
