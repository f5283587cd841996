"""What every shadowed stream shares, whatever the protocol: slots, windows, the answering tap.

A stream's shadow lives for its whole window, holding both sides' events,
so streams have a bound of their own (``shadow.max_streams``) within the
task pool's (``StreamSlots``). Taking a slot never waits: at the bound the
stream is not shadowed and the caller counts ``streams_full``.

A side's window (``Recorder``) keeps its events up to ``max_events`` and
counts its bytes up to ``max_bytes``. The answering side's window is
recorded from what the proxy relays to the client (``WindowTap``: an SSE
chunk, a WebSocket message, a gRPC message), after it was relayed, and
resolves the mirror's ``client_answer`` when it closes: full, at
``max_seconds`` (a timer), at the stream's end, or when the client leaves.
Used by ``http.sse``, ``http.websocket_shadow`` and ``grpcproxy.streams``.
"""

from __future__ import annotations

import asyncio
import time

from shadowproxy.model import (
    Headers,
    Observation,
    SkipReason,
    StreamEvent,
    StreamKind,
    StreamWindow,
    WindowEnd,
)
from shadowproxy.settings import StreamSettings

__all__ = ["ClientAnswer", "Recorder", "StreamSlots", "WindowTap"]

ClientAnswer = asyncio.Future[Observation | SkipReason | None]
"""The mirror's future: the client's answer, None when it failed, or why it is not compared."""


class StreamSlots:
    """At most ``limit`` shadow streams at once."""

    __slots__ = ("_limit", "_taken")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._taken = 0

    def __len__(self) -> int:
        return self._taken

    def take(self) -> bool:
        """Take a slot; False (take nothing) when all are taken."""
        if self._taken >= self._limit:
            return False
        self._taken += 1
        return True

    def give(self) -> None:
        """Give a slot back."""
        self._taken -= 1


class Recorder:
    """One side's window: events and bytes as they arrive, up to the window's bounds."""

    __slots__ = ("_events", "_kind", "_max_bytes", "_max_events", "size")

    def __init__(self, kind: StreamKind, max_events: int, max_bytes: int) -> None:
        self._kind = kind
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._events: list[StreamEvent] = []
        self.size = 0

    def count(self, size: int) -> WindowEnd | None:
        """Count ``size`` bytes read; ``BYTES`` once the window holds its bytes."""
        self.size += size
        return WindowEnd.BYTES if self.size >= self._max_bytes else None

    def add(self, event: StreamEvent) -> WindowEnd | None:
        """Keep ``event``; ``EVENTS`` once the window holds its events (later ones are not kept)."""
        events = self._events
        if len(events) < self._max_events:
            events.append(event)
        return WindowEnd.EVENTS if len(events) >= self._max_events else None

    def window(self, ended: WindowEnd, closed_s: float) -> StreamWindow:
        """The window as it closed."""
        return StreamWindow(self._kind, tuple(self._events), ended, closed_s, self.size)

    def observation(
        self, status: int, headers: Headers, ended: WindowEnd, closed_s: float
    ) -> Observation:
        """The side's observation: its window; latency to its first event (or the window's end)."""
        events = self._events
        return Observation(
            status=status,
            headers=headers,
            elapsed_s=events[0].at_s if events else closed_s,
            body_size=self.size,
            stream=self.window(ended, closed_s),
        )


class WindowTap:
    """The answering side's window, recorded from what the proxy relays to the client.

    ``message`` records one message after it was relayed and returns False
    once the window has closed (the caller then stops calling it). The
    window closes at ``max_seconds`` (a timer), when full, or with ``end``
    (the stream ended, or the client left); ``status`` and ``headers`` are
    what the side answered so far, and ``end`` may give the final ones (a
    gRPC status and trailers). A stream the upstream cut within the window
    resolves the mirror with None (``failed``).
    """

    __slots__ = ("_answer", "_headers", "_status", "_timer", "recorder", "started")

    def __init__(
        self,
        client_answer: ClientAnswer,
        window: StreamSettings,
        kind: StreamKind,
        status: int,
        headers: Headers,
        started: float,
    ) -> None:
        self._answer = client_answer
        self._status = status
        self._headers = headers
        self.started = started
        """When the request started (``time.perf_counter``): event times count from it."""
        self.recorder = Recorder(kind, window.max_events, window.max_bytes)
        left = window.max_seconds - (time.perf_counter() - started)
        self._timer = asyncio.get_running_loop().call_later(
            max(left, 0.0), self.end, WindowEnd.TIME
        )

    @property
    def open(self) -> bool:
        """True until the window has closed."""
        return not self._answer.done()

    def message(self, event_type: str, data: bytes) -> bool:
        """Record a message the client was sent; False once the window has closed."""
        if not self.open:
            return False
        at_s = time.perf_counter() - self.started
        recorder = self.recorder
        counted = recorder.count(len(data))
        ended = recorder.add(StreamEvent(event_type, data, None, at_s)) or counted
        if ended is not None:
            self.end(ended)
            return False
        return True

    def end(
        self,
        ended: WindowEnd = WindowEnd.END,
        status: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Close the window, with the final ``status`` and ``headers`` when they are known."""
        self._timer.cancel()
        if self.open:
            closed_s = time.perf_counter() - self.started
            self._answer.set_result(
                self.recorder.observation(
                    self._status if status is None else status,
                    self._headers if headers is None else headers,
                    ended,
                    closed_s,
                )
            )

    def failed(self) -> None:
        """The upstream cut the stream within the window: nothing to compare."""
        self._timer.cancel()
        if self.open:
            self._answer.set_result(None)
