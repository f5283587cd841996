"""WebSocket upgrades: relayed message by message to the side that answers, shadowed where asked.

``Forwarder.upgrade`` decides, as for any request: the route, who answers
(legacy, or the candidate in canary and candidate modes), the forwarding
headers (X-Forwarded-For appended, X-Forwarded-Proto and Via set by the
proxy, Host as for HTTP) and whether the session is shadowed. The tunnel
carries it out with aiohttp's client, in a session of its own (the upstream
pools speak plain HTTP/1.1 only) with legacy's limits and timeouts, no
cookies and no headers of its own. A candidate that fails the handshake is
replaced by legacy (an upgrade is a GET without a body) and counts as a
candidate error for rollback. A shadowed session also gets a
``websocket_shadow.ShadowCopy``, which each relayed message is handed to
once it was sent on: the client's frames never wait for the copy.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from shadowproxy.http.forward import Forwarder, Upgrade
from shadowproxy.http.upstream import UpstreamClient
from shadowproxy.http.websocket_shadow import ShadowCopy, ws_url
from shadowproxy.model import Upstream, WindowEnd
from shadowproxy.settings import ShadowSettings

__all__ = ["FAILURES", "Refusal", "WebSocketTunnel", "is_upgrade", "open_session", "ws_url"]

_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
FAILURES: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)
"""Exceptions that mean "an upstream or the client failed", as opposed to a bug here."""


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


def with_host(
    headers: list[tuple[str, str]], host: str | None, upstream: UpstreamClient
) -> list[tuple[str, str]]:
    """``headers`` plus the Host ``upstream`` gets: the client's, or its own."""
    return [*headers, ("Host", host or upstream.host)]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a tunnel did not open; the hand-over answers it with the proxy's error JSON."""

    status: int
    upstream: str
    reason: str


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    copy: ShadowCopy | None,
    *,
    from_client: bool,
) -> None:
    async for message in source:
        if message.type is aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        else:
            break
        # After the send: the copy never delays a frame.
        if copy is not None:
            copy.relayed(message, from_client=from_client)
    await sink.close()


class WebSocketTunnel:
    """Relays WebSocket sessions between clients and the side that answers them."""

    __slots__ = ("_candidate", "_forwarder", "_legacy", "_session", "_settings", "_shadow_session")

    def __init__(
        self,
        forwarder: Forwarder,
        legacy: UpstreamClient,
        candidate: UpstreamClient,
        session: aiohttp.ClientSession,
        shadow_session: aiohttp.ClientSession,
        settings: ShadowSettings,
    ) -> None:
        self._forwarder = forwarder
        self._legacy = legacy
        self._candidate = candidate
        self._session = session
        self._shadow_session = shadow_session
        self._settings = settings

    async def relay(self, request: web.Request, plan: Upgrade) -> web.StreamResponse | Refusal:
        """Relay one session until either side closes, or say why it cannot open."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return Refusal(501, "proxy", "only WebSocket upgrades are supported")
        protocols = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        copy = self._shadow(plan, protocols) if plan.shadow else None
        upstream = await self._open(plan, protocols, copy)
        if isinstance(upstream, Refusal):
            return upstream
        async with upstream:
            client = web.WebSocketResponse(protocols=protocols, autoclose=False)
            await client.prepare(request)
            pumps = asyncio.gather(
                _pump(client, upstream, copy, from_client=True),
                _pump(upstream, client, copy, from_client=False),
            )
            try:
                await pumps
            except FAILURES:
                pumps.cancel()
            if copy is not None:
                copy.end(WindowEnd.END if upstream.closed else WindowEnd.CLIENT)
            return client

    def _shadow(self, plan: Upgrade, protocols: list[str]) -> ShadowCopy | None:
        """The session's copy to the other side, started now so both sides start together."""
        copy = ShadowCopy(
            self._shadow_session,
            plan.raw_target,
            protocols,
            plan.route.stream.window,
            self._settings,
        )
        client_answer = self._forwarder.shadow_upgrade(plan, copy.fetch)
        if client_answer is None:
            return None
        copy.attach(client_answer)
        return copy

    async def _open(
        self, plan: Upgrade, protocols: list[str], copy: ShadowCopy | None
    ) -> aiohttp.ClientWebSocketResponse | Refusal:
        """The answering side's WebSocket; a failing candidate hands the session to legacy."""
        if plan.answered_by is Upstream.CANDIDATE:
            try:
                opened = await self._connect(self._candidate, plan, protocols)
            except FAILURES:
                self._forwarder.upgraded(plan, failed=True)
                # Legacy answers now, and it must not get a shadow session too.
                if copy is not None:
                    copy.cancel()
            else:
                self._forwarder.upgraded(plan, failed=False)
                return opened
        try:
            return await self._connect(self._legacy, plan, protocols)
        except FAILURES as exc:
            if copy is not None:
                copy.cancel()
            return Refusal(502, "legacy", f"websocket handshake failed: {type(exc).__name__}")

    async def _connect(
        self, upstream: UpstreamClient, plan: Upgrade, protocols: list[str]
    ) -> aiohttp.ClientWebSocketResponse:
        return await self._session.ws_connect(
            ws_url(upstream, plan.raw_target),
            headers=with_host(plan.headers, plan.host, upstream),
            protocols=protocols,
            autoclose=False,
        )

    async def aclose(self) -> None:
        """Close the sessions and their connections."""
        await self._session.close()
        await self._shadow_session.close()
