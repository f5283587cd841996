"""WebSocket upgrades: tunnelled to legacy message by message, never mirrored.

A WebSocket session is stateful and usually not idempotent, so the copy the
candidate would get is meaningless; the tunnel only keeps the client's
connection working through the proxy. It reaches legacy through an aiohttp
session of its own (the upstream pools speak plain HTTP/1.1 only), with
legacy's limits and timeouts, no cookies and no added headers.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from yarl import URL

from shadowproxy.http.headers import end_to_end
from shadowproxy.http.upstream import UpstreamClient

__all__ = ["Refusal", "WebSocketTunnel", "is_upgrade", "open_session"]

# Headers the WebSocket handshake itself owns; aiohttp sets them for legacy.
_HANDSHAKE = frozenset(
    {
        "host",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "content-length",
    }
)
_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
# Exceptions that mean "legacy or the client failed", as opposed to a bug here.
_FAILURES: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)


def open_session(
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
    limit: int,
    tls: ssl.SSLContext,
) -> aiohttp.ClientSession:
    """An aiohttp session for WebSocket upgrades: its own pool, no cookies, no added headers.

    ``tls`` is the context for ``wss`` (``https``) targets, as for the upstream's pool.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=300, ssl=tls),
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout_s,
            sock_connect=connect_timeout_s,
            sock_read=read_timeout_s,
        ),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=_AUTO_HEADERS,
        trust_env=False,
        raise_for_status=False,
    )


def is_upgrade(request: web.Request) -> bool:
    """True for an HTTP/1.1 Upgrade request (WebSocket or any other protocol)."""
    connection = request.headers.get("Connection", "").lower()
    return "upgrade" in {t.strip() for t in connection.split(",")} and "Upgrade" in request.headers


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    async for message in source:
        if message.type is aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        else:
            break
    await sink.close()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a tunnel did not open; the hand-over answers it with the proxy's error JSON."""

    status: int
    upstream: str
    reason: str


class WebSocketTunnel:
    """Relays WebSocket sessions between clients and legacy."""

    __slots__ = ("_legacy", "_session")

    def __init__(self, legacy: UpstreamClient, session: aiohttp.ClientSession) -> None:
        self._legacy = legacy
        self._session = session

    def _url(self, raw_target: str) -> URL:
        """Legacy's URL for a raw request target, byte-identical (no re-encoding)."""
        return URL(self._legacy.base + raw_target, encoded=True)

    async def relay(self, request: web.Request) -> web.StreamResponse | Refusal:
        """Relay one session until either side closes, or say why it cannot open."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return Refusal(501, "proxy", "only WebSocket upgrades are supported")
        protocols = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        headers = [
            (n, v) for n, v in end_to_end(request.headers.items()) if n.lower() not in _HANDSHAKE
        ]
        try:
            upstream = await self._session.ws_connect(
                self._url(request.raw_path), headers=headers, protocols=protocols, autoclose=False
            )
        except _FAILURES as exc:
            return Refusal(502, "legacy", f"websocket handshake failed: {type(exc).__name__}")
        async with upstream:
            client = web.WebSocketResponse(protocols=protocols, autoclose=False)
            await client.prepare(request)
            pumps = asyncio.gather(_pump(client, upstream), _pump(upstream, client))
            try:
                await pumps
            except _FAILURES:
                pumps.cancel()
            return client

    async def aclose(self) -> None:
        """Close the session and its connections."""
        await self._session.close()
