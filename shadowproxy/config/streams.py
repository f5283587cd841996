"""The ``streams:`` section (the default window) and a route's ``stream:`` (its own)."""

from __future__ import annotations

from shadowproxy.config.reader import Reader
from shadowproxy.settings import RouteStream, StreamSettings

__all__ = ["WEBSOCKET_MODES", "route_stream", "stream_window", "streams_section"]

WEBSOCKET_MODES = ("tunnel", "shadow")
# Bounds that keep one window's comparison cheap: aligning two sequences costs
# up to their lengths multiplied, and every byte is held until the window ends.
_MAX_EVENTS = 10_000
_MAX_BYTES = 16 * 1024 * 1024
_MAX_SECONDS = 3600.0


def stream_window(reader: Reader, base: StreamSettings) -> StreamSettings:
    """A window from ``reader``'s keys where set, ``base`` elsewhere."""
    max_events = reader.integer("max_events", base.max_events, minimum=1)
    if max_events > _MAX_EVENTS:
        raise reader.error(f"must be <= {_MAX_EVENTS}", "max_events")
    max_bytes = reader.integer("max_bytes", base.max_bytes, minimum=1)
    if max_bytes > _MAX_BYTES:
        raise reader.error(f"must be <= {_MAX_BYTES}", "max_bytes")
    return StreamSettings(
        max_events=max_events,
        max_seconds=reader.number(
            "max_seconds", base.max_seconds, exclusive_min=True, maximum=_MAX_SECONDS
        ),
        max_bytes=max_bytes,
        grace_s=reader.number("grace_s", base.grace_s, maximum=_MAX_SECONDS),
    )


def streams_section(top: Reader) -> StreamSettings:
    """The top-level ``streams:`` section: the window every route inherits."""
    reader = top.child("streams")
    window = stream_window(reader, StreamSettings())
    reader.finish()
    return window


def route_stream(reader: Reader, base: StreamSettings) -> RouteStream:
    """A route's ``stream:`` mapping."""
    websocket = reader.string("websocket", "tunnel") or "tunnel"
    if websocket not in WEBSOCKET_MODES:
        raise reader.error(f"must be one of {', '.join(WEBSOCKET_MODES)}", "websocket")
    stream = RouteStream(
        window=stream_window(reader, base),
        sse=reader.boolean("sse", False),
        websocket=websocket,  # type: ignore[arg-type]
    )
    reader.finish()
    return stream
