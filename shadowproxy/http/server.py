"""The client-facing HTTP/1.1 server: llhttp-parsed heads, everything unusual handed to aiohttp.

aiohttp's server costs about as much CPU per request as the rest of the hot
path (request and response objects, header multidicts, the router, the
middleware chain); ``docs/performance.md`` has the figures. This server takes
the requests a proxy sees nearly all the time (HTTP/1.0 or 1.1, an
origin-form target, a body framed by Content-Length or none) and answers
them through the same handler, writing each answer with as few writes as
possible.

Any other request is handed over, with the connection, to aiohttp's server:
upgrades, ``Expect``, any ``Transfer-Encoding`` (chunked uploads), targets
that are not a path, more than ``MAX_HEADERS`` header lines, over-long
lines, and anything llhttp or this server's checks refuse. The raw bytes of
that request, and whatever followed it, go to aiohttp's protocol as if it
had read them itself, so hostile and unusual input meets exactly the
checks and answers it met before this server existed, and this server only
ever deals with well-formed requests.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence

from shadowproxy.http.inbound import Inbound
from shadowproxy.http.server_connection import ServerConnection
from shadowproxy.model import ClientTimeout, ConnectionRefusal
from shadowproxy.settings import ClientSettings

__all__ = ["TLS_HANDSHAKE_TIMEOUT_S", "Fallback", "Handler", "Server"]

# Not Final: mypyc inlines Final constants, and a test shortens this one on the module.
TLS_HANDSHAKE_TIMEOUT_S = 10.0
"""An HTTPS client that has not finished its handshake by then is disconnected."""

Handler = Callable[[Inbound], Awaitable[None]]
"""Answers one request (``Forwarder.handle``)."""
Fallback = Callable[[], asyncio.Protocol]
"""Makes the aiohttp protocol a handed-over connection continues with."""


class Server:
    """Listens and serves; ``shutdown`` stops accepting and drains in-flight requests.

    At most ``max_connections`` client connections are open at once, counting
    the ``elsewhere()`` ones handed over, and one client address holds at most
    its share of them (``clients.address_share_percent``); a connection beyond
    either is closed on arrival and reported to ``refused``. A connection too
    slow with a request head or body (``clients``) is closed and reported to
    ``timed_out``.
    """

    def __init__(
        self,
        handler: Handler,
        fallback: Fallback,
        *,
        max_connections: int,
        elsewhere: Callable[[], int],
        refused: Callable[[ConnectionRefusal], None],
        clients: ClientSettings,
        timed_out: Callable[[ClientTimeout], None],
    ) -> None:
        self.handler = handler
        self.fallback = fallback
        self.max_connections = max_connections
        self.elsewhere = elsewhere
        self.refused = refused
        self.clients = clients
        self.timed_out = timed_out
        self._address_limit = clients.address_limit(max_connections)
        self._per_address: dict[str, int] = {}
        """Open connections (lean and handed over) per client address; no zero entries."""
        self.connections: set[ServerConnection] = set()
        self.closing = False
        self.scheme = "http"
        self._server: asyncio.Server | None = None

    async def start(
        self,
        host: str,
        port: int,
        *,
        reuse_port: bool,
        backlog: int,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """Listen on ``host:port``; HTTPS with ``tls``."""
        loop = asyncio.get_running_loop()
        self.scheme = "http" if tls is None else "https"
        self._server = await loop.create_server(
            lambda: ServerConnection(self),
            host,
            port,
            reuse_port=reuse_port,
            backlog=backlog,
            ssl=tls,
            # A connection counts against max_connections only once its
            # handshake is done: a client stalling in it is cut off here.
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S if tls is not None else None,
        )

    def admit(self, remote: str) -> ConnectionRefusal | None:
        """Count a new connection from ``remote``, or say why it must be closed unread."""
        if len(self.connections) + self.elsewhere() >= self.max_connections:
            return ConnectionRefusal.LIMIT
        held = self._per_address.get(remote, 0)
        if held >= self._address_limit:
            return ConnectionRefusal.ADDRESS_SHARE
        self._per_address[remote] = held + 1
        return None

    def release(self, remote: str) -> None:
        """A connection ``admit`` counted has closed."""
        held = self._per_address.pop(remote, 0)
        if held > 1:
            self._per_address[remote] = held - 1

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        # uvloop's ``sockets`` is a list, asyncio's the tuple typeshed declares: the
        # compiled build checks a declared tuple, so this one is read untyped.
        sockets: Sequence[socket.socket] = getattr(self._server, "sockets")  # noqa: B009
        host, port = sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def shutdown(self, timeout_s: float) -> None:
        """Stop accepting, close idle connections, give in-flight ones ``timeout_s``."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.task is None:
                connection.close()
        busy = {c.task: c for c in self.connections if c.task is not None}
        if not busy:
            return
        _, pending = await asyncio.wait(busy, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        # Only the cut answers are aborted: finished ones are still leaving the
        # socket buffers of connections that are closing.
        for task in pending:
            busy[task].abort()
