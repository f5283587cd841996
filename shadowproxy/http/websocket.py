"""WebSocket upgrades: tunnelled to legacy message by message, never mirrored.

A WebSocket session is stateful and usually not idempotent, so the copy the
candidate would get is meaningless; the tunnel only keeps the client's
connection working through the proxy.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from shadowproxy.proxy.headers import end_to_end
from shadowproxy.proxy.upstream import PREAMBLE_ERRORS, Upstream

__all__ = ["is_upgrade", "tunnel_websocket"]

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


async def tunnel_websocket(
    request: web.Request, legacy: Upstream, raw_target: str
) -> web.StreamResponse:
    """Relay a WebSocket session between the client and legacy until either side closes."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return web.json_response(
            {"error": "only WebSocket upgrades are supported", "upstream": "proxy"}, status=501
        )
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    headers = [
        (n, v) for n, v in end_to_end(request.headers.items()) if n.lower() not in _HANDSHAKE
    ]
    try:
        upstream = await legacy.session.ws_connect(
            legacy.url(raw_target), headers=headers, protocols=protocols, autoclose=False
        )
    except PREAMBLE_ERRORS as exc:
        return web.json_response(
            {"error": f"websocket handshake failed: {type(exc).__name__}", "upstream": "legacy"},
            status=502,
        )
    async with upstream:
        client = web.WebSocketResponse(protocols=protocols, autoclose=False)
        await client.prepare(request)
        pumps = asyncio.gather(_pump(client, upstream), _pump(upstream, client))
        try:
            await pumps
        except PREAMBLE_ERRORS:
            pumps.cancel()
        return client
