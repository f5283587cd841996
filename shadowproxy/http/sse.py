"""Server-Sent Events on the shadow path: which requests are streams, and each side's window.

A mirrored GET is an event stream when its ``Accept`` names
``text/event-stream`` (every ``EventSource`` sends it) or its route says
``stream.sse: true``; its copy then takes a stream slot and is read as
events. Legacy's answer goes to the client untouched: the relay hands each
chunk, after writing it, to a ``LegacyTap``, which parses events until the
window closes (``max_events`` events, ``max_bytes`` bytes or ``max_seconds``)
and then resolves the mirror's ``client_answer`` with legacy's window; from
then on the relay feeds it nothing. ``fetch_stream`` reads the copy's window
the same way, a little longer (``grace_s`` more, twice the events and
bytes), so an event it sends a little late is still seen. An answer that is
not an event stream is read as a body, within ``shadow.timeout_s``.

Legacy's event stream to a request not recognised as one resolves the
mirror at once with ``SkipReason.STREAM``: its copy was read as a body and
will not be compared, and waiting for the end of legacy's stream would hold
a shadow slot for as long as the client stays.

Events are parsed as the HTML standard's EventSource does: lines end in CR
LF, LF or CR; ``:`` lines are comments; ``event``, ``data`` and ``id`` fields
(the last event id carries over to later events); a blank line dispatches
an event that has data.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Final

from multidict import MultiMapping

from shadowproxy.http.upstream import (
    PREAMBLE_ERRORS,
    UpstreamClient,
    failed_observation,
    observe,
)
from shadowproxy.model import (
    Headers,
    Observation,
    SkipReason,
    StreamEvent,
    StreamKind,
    WindowEnd,
)
from shadowproxy.settings import StreamSettings
from shadowproxy.shadow.streams import ClientAnswer, Recorder, WindowTap

__all__ = [
    "EVENT_STREAM",
    "ClientAnswer",
    "EventParser",
    "LegacyTap",
    "accepts_events",
    "fetch_stream",
    "is_event_stream",
    "tap_legacy",
]

EVENT_STREAM: Final = "text/event-stream"

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


def is_event_stream(headers: Headers) -> bool:
    """True when the answer's Content-Type is ``text/event-stream``."""
    for name, value in headers:
        if name.lower() == "content-type":
            return value.partition(";")[0].strip().lower() == EVENT_STREAM
    return False


def accepts_events(headers: MultiMapping[str]) -> bool:
    """True when the request's Accept names ``text/event-stream``."""
    return any(
        part.partition(";")[0].strip().lower() == EVENT_STREAM
        for value in headers.getall("Accept", ())
        for part in value.split(",")
    )


class EventParser:
    """Parses an event stream chunk by chunk into a ``Recorder``."""

    __slots__ = ("_data", "_first", "_id", "_pending", "_recorder", "_skip_lf", "_type")

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._pending = b""
        self._first = True
        self._skip_lf = False
        self._type = ""
        self._id: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes, at_s: float) -> WindowEnd | None:
        """Parse ``chunk`` (arrived ``at_s`` after the start); the window's end once it is full."""
        ended = self._recorder.count(len(chunk))
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = False
        text = self._pending + chunk if self._pending else chunk
        if self._first and len(text) >= len(_BOM):
            self._first = False
            text = text.removeprefix(_BOM)
        start = 0
        for match in _LINE_END.finditer(text):
            if match.end() == len(text) and match.group() == b"\r":
                # A CR at the end may be the first half of CR LF.
                self._skip_lf = True
            added = self._line(text[start : match.start()], at_s)
            start = match.end()
            ended = ended or added
        self._pending = text[start:]
        return ended

    def _line(self, line: bytes, at_s: float) -> WindowEnd | None:
        if not line:
            return self._dispatch(at_s)
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        value = value.removeprefix(b" ")
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._type = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")
        return None

    def _dispatch(self, at_s: float) -> WindowEnd | None:
        data, event_type = self._data, self._type or "message"
        self._data, self._type = [], ""
        if not data:
            return None
        return self._recorder.add(StreamEvent(event_type, b"\n".join(data), self._id, at_s))


class LegacyTap(WindowTap):
    """The answering side's window, recorded from what the proxy sends the client.

    ``feed`` is called after each chunk of an event stream went to the client
    (``message`` after each message of a WebSocket session) and returns False
    once the window has closed; the caller then stops calling it. The window
    also closes at ``max_seconds`` (a timer), when the stream ends (``end``),
    or when the client goes away (``end(CLIENT)``); a stream cut by the
    upstream within the window resolves the mirror with None (``failed``).
    """

    __slots__ = ("_parser",)

    def __init__(
        self,
        client_answer: ClientAnswer,
        window: StreamSettings,
        status: int,
        headers: Headers,
        started: float,
        kind: StreamKind = StreamKind.SSE,
    ) -> None:
        super().__init__(client_answer, window, kind, status, headers, started)
        self._parser = EventParser(self.recorder)

    def feed(self, chunk: bytes) -> bool:
        """Record a chunk the client was sent; False once the window has closed."""
        if not self.open:
            return False
        ended = self._parser.feed(chunk, time.perf_counter() - self.started)
        if ended is not None:
            self.end(ended)
            return False
        return True


def tap_legacy(
    client_answer: ClientAnswer | None,
    window: StreamSettings | None,
    status: int,
    headers: Headers,
    started: float,
) -> LegacyTap | None:
    """A tap when the answer is an event stream a mirror waits for, else None.

    ``window`` None means the request was not recognised as a stream: the
    mirror is resolved at once with ``SkipReason.STREAM``.
    """
    if client_answer is None or client_answer.done() or not is_event_stream(headers):
        return None
    if window is None:
        client_answer.set_result(SkipReason.STREAM)
        return None
    return LegacyTap(client_answer, window, status, headers, started)


async def fetch_stream(
    upstream: UpstreamClient,
    raw_target: str,
    headers: list[tuple[str, str]],
    *,
    window: StreamSettings,
    timeout_s: float,
    max_bytes: int,
) -> Observation:
    """Send a stream's copy (a GET) and read its window; never raises for upstream failures.

    The answer's head must arrive within ``timeout_s``, and so must a body
    that is not an event stream.
    """
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    began = loop.time()
    lasts = window.max_seconds + window.grace_s
    try:
        async with asyncio.timeout(timeout_s):
            # The connection's own timers must outlast the window, which ends it.
            response = await upstream.pool.request(
                "GET",
                upstream.target(raw_target),
                headers,
                total_s=lasts + timeout_s,
                read_timeout_s=lasts + timeout_s,
            )
        async with response:
            if not is_event_stream(response.headers):
                async with asyncio.timeout_at(began + timeout_s):
                    return await observe(response, started, max_bytes)
            recorder = Recorder(StreamKind.SSE, 2 * window.max_events, 2 * window.max_bytes)
            ended = await _read_window(
                response.chunks(), EventParser(recorder), started, began + lasts
            )
            closed_s = time.perf_counter() - started
            return recorder.observation(response.status, response.headers, ended, closed_s)
    except PREAMBLE_ERRORS as exc:
        return failed_observation(exc, started)


async def _read_window(
    chunks: AsyncIterator[bytes], parser: EventParser, started: float, deadline: float
) -> WindowEnd:
    """Feed ``parser`` until its window is full, the stream ends or ``deadline`` (loop time)."""
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in chunks:
                ended = parser.feed(chunk, time.perf_counter() - started)
                if ended is not None:
                    return ended
    except TimeoutError:
        return WindowEnd.TIME
    return WindowEnd.END
