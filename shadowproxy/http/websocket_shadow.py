"""A WebSocket session's shadow: a second WebSocket to the other side, fed copies of the client's.

The tunnel hands every relayed message to ``ShadowCopy.relayed`` once it was
sent on. The answering side's messages fill its window (a
``shadowproxy.http.sse.LegacyTap`` of kind ``websocket``), which resolves
the mirror when it closes (``max_events`` messages, ``max_bytes``,
``max_seconds``, or the session's end). The client's messages are queued for
the copy, bounded by the window's bytes; ``fetch``, run by the mirror in the
shadow pool, opens the other side's WebSocket (within ``shadow.timeout_s``),
sends it the queued copies and reads its messages into a window read a
little longer (``grace_s`` more, twice the messages and bytes), then closes
it. A copy that does not keep up (its queue full: it reads slower than the
client sends) is dropped and counted as ``backpressure``; the client is
never slowed. A copy that failed to open is an observation like any
upstream failure (``refused``, ``timeout``), and one that answered the
handshake with another status is compared by that status.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import aiohttp
from yarl import URL

from shadowproxy.http.sse import ClientAnswer, LegacyTap
from shadowproxy.http.upstream import UpstreamClient
from shadowproxy.model import (
    ErrorKind,
    Observation,
    SkipReason,
    StreamEvent,
    StreamKind,
    WindowEnd,
)
from shadowproxy.settings import ShadowSettings, StreamSettings
from shadowproxy.shadow.streams import Recorder

__all__ = ["SWITCHING", "ShadowCopy", "ws_url"]

SWITCHING = 101
"""The status of an accepted upgrade."""
_FAILURES: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)


def ws_url(upstream: UpstreamClient, raw_target: str) -> URL:
    """The upstream's URL for a raw request target, byte-identical (no re-encoding)."""
    return URL(upstream.base + raw_target, encoded=True)


def _kind(message: aiohttp.WSMessage) -> tuple[str, bytes] | None:
    if message.type is aiohttp.WSMsgType.TEXT:
        return "text", str(message.data).encode()
    if message.type is aiohttp.WSMsgType.BINARY:
        return "binary", bytes(message.data)
    return None


class ShadowCopy:
    """One session's copy to the side that does not answer it."""

    __slots__ = (
        "_answer",
        "_closed",
        "_dropped",
        "_protocols",
        "_queue",
        "_queued",
        "_raw_target",
        "_reading",
        "_session",
        "_settings",
        "_started",
        "_tap",
        "_wake",
        "_window",
    )

    def __init__(
        self,
        session: aiohttp.ClientSession,
        raw_target: str,
        protocols: list[str],
        window: StreamSettings,
        settings: ShadowSettings,
    ) -> None:
        self._session = session
        self._raw_target = raw_target
        self._protocols = protocols
        self._window = window
        self._settings = settings
        self._queue: deque[aiohttp.WSMessage] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._closed = False
        self._dropped = False
        self._reading: asyncio.Timeout | None = None
        self._answer: ClientAnswer | None = None
        self._tap: LegacyTap | None = None
        self._started = time.perf_counter()

    def attach(self, client_answer: ClientAnswer) -> None:
        """Record the answering side's window for the mirror waiting on ``client_answer``."""
        self._answer = client_answer
        self._tap = LegacyTap(
            client_answer, self._window, SWITCHING, (), self._started, StreamKind.WEBSOCKET
        )

    def relayed(self, message: aiohttp.WSMessage, *, from_client: bool) -> None:
        """A message the tunnel relayed: queue a client's for the copy, record a server's."""
        if from_client:
            self._copy(message)
            return
        kind = _kind(message)
        if self._tap is not None and kind is not None and not self._tap.message(*kind):
            self._tap = None

    def end(self, ended: WindowEnd) -> None:
        """The session is over (the upstream or the client closed it)."""
        if self._tap is not None:
            self._tap.end(ended)
        self._stop()

    def cancel(self) -> None:
        """The answering side never opened: nothing to compare, and no copy may stay open."""
        if self._tap is not None:
            self._tap.failed()
        self._stop()

    def _copy(self, message: aiohttp.WSMessage) -> None:
        if self._closed:
            return
        size = len(message.data)
        if self._queued + size > self._window.max_bytes:
            # The copy reads slower than the client sends: drop it, never wait for it.
            self._dropped = True
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(SkipReason.BACKPRESSURE)
            self._stop()
            return
        self._queue.append(message)
        self._queued += size
        self._wake.set()

    def _stop(self) -> None:
        """No more copies; a copy being read ends at once."""
        self._closed = True
        self._queue.clear()
        self._wake.set()
        if self._reading is not None:
            self._reading.reschedule(asyncio.get_running_loop().time())

    async def fetch(
        self, upstream: UpstreamClient, headers: list[tuple[str, str]]
    ) -> Observation | SkipReason:
        """Open the copy on ``upstream``, feed it, read its window, close it."""
        started = self._started
        window = self._window
        url = ws_url(upstream, self._raw_target)
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                socket = await self._session.ws_connect(
                    url, headers=headers, protocols=self._protocols, autoclose=False
                )
        except aiohttp.WSServerHandshakeError as exc:
            return Observation(status=exc.status, elapsed_s=time.perf_counter() - started)
        except _FAILURES as exc:
            kind = ErrorKind.TIMEOUT if isinstance(exc, TimeoutError) else ErrorKind.REFUSED
            return Observation.failed(kind, time.perf_counter() - started)
        recorder = Recorder(StreamKind.WEBSOCKET, 2 * window.max_events, 2 * window.max_bytes)
        deadline = asyncio.get_running_loop().time() + window.max_seconds + window.grace_s
        deadline -= time.perf_counter() - started
        async with socket:
            sending = asyncio.gather(self._send(socket))
            try:
                ended = await self._read(socket, recorder, deadline)
            finally:
                self._stop()
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)
        if self._dropped:
            return SkipReason.BACKPRESSURE
        closed_s = time.perf_counter() - started
        return recorder.observation(SWITCHING, (), ended, closed_s)

    async def _send(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        """Send the queued copies until the copy closes."""
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and not self._closed:
                message = self._queue.popleft()
                self._queued -= len(message.data)
                if message.type is aiohttp.WSMsgType.TEXT:
                    await socket.send_str(message.data)
                else:
                    await socket.send_bytes(message.data)

    async def _read(
        self, socket: aiohttp.ClientWebSocketResponse, recorder: Recorder, deadline: float
    ) -> WindowEnd:
        """The copy's messages until its window is full, it closes, or ``deadline`` (loop time)."""
        if self._closed:
            return WindowEnd.END
        try:
            async with asyncio.timeout_at(deadline) as self._reading:
                async for message in socket:
                    kind = _kind(message)
                    if kind is None:
                        break
                    at_s = time.perf_counter() - self._started
                    counted = recorder.count(len(kind[1]))
                    ended = recorder.add(StreamEvent(kind[0], kind[1], None, at_s)) or counted
                    if ended is not None:
                        return ended
        except TimeoutError:
            return WindowEnd.TIME
        except _FAILURES:
            return WindowEnd.END
        finally:
            self._reading = None
        return WindowEnd.END
