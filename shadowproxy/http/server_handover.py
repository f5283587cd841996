"""A connection the lean server handed to aiohttp's: the client limits aiohttp lacks, kept.

aiohttp's server closes idle kept-alive connections, but has no timeout for
a request head (from accept, or from its first byte) and knows nothing of the
per-address share of connections. ``HandedOver`` sits between the transport
and aiohttp's protocol: it passes every event on unchanged, closes the
connection when a request head takes longer than ``clients.header_timeout_s``
or the connection idles past ``clients.keepalive_timeout_s``, and gives the
client address its connection back when the connection closes. The hand-over's
application tells it when a request is being handled (``busy``) and when it is
done (``idle``); the body timeout is the hand-over's own (its reads are bounded
by ``clients.body_timeout_s``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from shadowproxy.model import ClientTimeout

if TYPE_CHECKING:
    from shadowproxy.http.server import Server

__all__ = ["HandedOver"]


class HandedOver(asyncio.Protocol):
    """Forwards a handed-over connection's events to aiohttp's protocol, and keeps its clocks."""

    __slots__ = ("_busy", "_head_started", "_idle_since", "_inner", "_loop", "_remote", "_server",
                 "_timer", "_transport")  # fmt: skip

    def __init__(
        self, inner: asyncio.Protocol, server: Server, remote: str, head_started: float
    ) -> None:
        self._inner = inner
        self._server = server
        self._remote = remote
        self._loop = asyncio.get_running_loop()
        self._head_started: float | None = head_started
        """When the awaited head began (inherited from the lean server); None when idle."""
        self._idle_since = head_started
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    @classmethod
    def of(cls, transport: asyncio.BaseTransport | None) -> HandedOver | None:
        """The watch of the connection ``transport`` carries, if it was handed over."""
        protocol = transport.get_protocol() if transport is not None else None
        return protocol if isinstance(protocol, HandedOver) else None

    # -- the request's handler ---------------------------------------------

    def busy(self) -> None:
        """A request's head has been read and its handler runs: no client clock meanwhile."""
        self._busy = True
        self._head_started = None

    def idle(self) -> None:
        """The handler is done: the keep-alive clock runs until the next head's first byte."""
        self._busy = False
        self._idle_since = self._loop.time()
        self._arm(self._idle_since + self._server.clients.keepalive_timeout_s)

    # -- asyncio.Protocol, passed on -----------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._inner.connection_made(transport)
        self._check()

    def data_received(self, data: bytes) -> None:
        if not self._busy and self._head_started is None:
            # The first byte of the next request starts its head's clock.
            self._head_started = self._loop.time()
            self._arm(self._head_started + self._server.clients.header_timeout_s)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None
        self._server.release(self._remote)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # -- the clock ------------------------------------------------------------

    def _check(self) -> None:
        """Close the connection past its deadline, or re-arm for the next one."""
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        clients = self._server.clients
        now = self._loop.time()
        if self._busy:
            # The upstream's timeouts bound the answer; the body has its own.
            self._arm(now + clients.keepalive_timeout_s)
            return
        head = self._head_started
        if head is None:
            deadline = self._idle_since + clients.keepalive_timeout_s
        else:
            deadline = head + clients.header_timeout_s
        if deadline > now:
            self._arm(deadline)
            return
        if head is not None:
            self._server.timed_out(ClientTimeout.HEAD)
        transport.close()

    def _arm(self, deadline: float) -> None:
        """Make the timer fire by ``deadline``."""
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._check)
