"""Awkward clients: Expect: 100-continue, WebSocket upgrades and disconnects mid-response."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.hardening.harden import fetch
from tests.relay import Fault, Toxic, relay
from tests.support import backend, eventually, json_ok, make_settings, running_proxy

UPLOAD = {"routes": [{"match": "/upload", "domain": "files", "mirror_writes": True}]}


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response's head and its Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


class TestExpectContinue:
    """``Expect: 100-continue`` gets 100 first, then the final answer; the shadow has no Expect."""

    async def test_100_then_final_answer(self, tmp_path: Path) -> None:
        """The client sees 100 Continue, sends its body, gets 200; the copy carries no Expect."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            settings = make_settings(legacy.url, candidate.url, tmp_path, UPLOAD)
            async with running_proxy(settings) as proxy:
                reader, writer = await asyncio.open_connection(
                    proxy.bound.proxy.host, proxy.bound.proxy.port
                )
                writer.write(
                    b"POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n"
                    b"Content-Type: text/plain\r\nExpect: 100-continue\r\n\r\n"
                )
                interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                writer.write(b"hello")
                head, body = await asyncio.wait_for(_read_response(reader), 10)
                writer.close()
                await candidate.wait_for(lambda seen: len(seen) == 1)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        assert head.startswith(b"HTTP/1.1 200")
        assert b'"ok": true' in body
        for seen in (legacy.seen[0], candidate.seen[0]):
            assert seen.body == b"hello"
            assert "expect" not in {k.lower() for k, _ in seen.headers}


class TestWebSocket:
    """A WebSocket upgrade is tunnelled to legacy, both ways, and never mirrored."""

    async def test_tunnelled_not_mirrored(self, tmp_path: Path) -> None:
        """Messages flow both ways through legacy; the candidate sees nothing; skip is upgrade."""

        async def echo(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.send_str("hello from legacy")
            async for message in ws:
                await ws.send_str(f"echo:{message.data}")
            return ws

        async with backend(echo) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                async with aiohttp.ClientSession() as session:
                    async with session.ws_connect(proxy.url + "/ws") as ws:
                        greeting = await ws.receive_str(timeout=10)
                        await ws.send_str("ping")
                        echoed = await ws.receive_str(timeout=10)
                skipped = proxy.metric("shadowproxy_shadow_skipped_total", reason="upgrade")
        assert (greeting, echoed) == ("hello from legacy", "echo:ping")
        assert [s.path for s in legacy.seen] == ["/ws"]
        assert candidate.seen == []
        assert skipped == 1

    @pytest.mark.parametrize(
        ("upgrade", "status", "error"),
        [
            ("h2c", 501, {"error": "only WebSocket upgrades are supported", "upstream": "proxy"}),
            (
                "websocket",
                502,
                {
                    "error": "websocket handshake failed: WSServerHandshakeError",
                    "upstream": "legacy",
                },
            ),
        ],
    )
    async def test_refused_upgrade_is_the_proxy_error_json(
        self, tmp_path: Path, upgrade: str, status: int, error: dict[str, str]
    ) -> None:
        """Another protocol, or legacy refusing the handshake: the proxy's error JSON."""
        async with backend(json_ok) as legacy, backend(json_ok) as candidate:
            async with running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy:
                reader, writer = await asyncio.open_connection(
                    proxy.bound.proxy.host, proxy.bound.proxy.port
                )
                writer.write(
                    b"GET /ws HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade\r\n"
                    b"Upgrade: " + upgrade.encode() + b"\r\nSec-WebSocket-Version: 13\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                )
                head, body = await asyncio.wait_for(_read_response(reader), 10)
                writer.close()
        assert head.startswith(b"HTTP/1.1 %d " % status)
        assert b"\r\nContent-Type: application/json; charset=utf-8\r\n" in head
        assert json.loads(body) == error
        assert candidate.seen == []


class TestDisconnect:
    """A client leaving mid-response leaks no task, no connection and no shadow work."""

    async def test_nothing_leaks(self, tmp_path: Path) -> None:
        """Every task the request started ends, the shadow pool drains, legacy's pool recovers."""

        async def big(request: web.Request) -> web.Response:
            return web.Response(body=b"x" * 200_000, content_type="application/octet-stream")

        drip = Toxic(Fault.DRIP, drip_bytes=4096, drip_interval_s=0.01)
        async with backend(big) as origin, backend(json_ok) as candidate:
            async with relay(origin.url) as legacy:
                settings = make_settings(legacy.url, candidate.url, tmp_path)
                async with running_proxy(settings) as proxy:
                    assert (await fetch(proxy.url + "/warm"))[0] == 200
                    await eventually(lambda: proxy.metric("shadowproxy_shadow_inflight") == 0)
                    # Keep-alive connections (and their server tasks) now exist on every hop.
                    before = asyncio.all_tasks()
                    await legacy.set(drip)

                    reader, writer = await asyncio.open_connection(
                        proxy.bound.proxy.host, proxy.bound.proxy.port
                    )
                    writer.write(b"GET /big HTTP/1.1\r\nHost: shop\r\n\r\n")
                    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                    await asyncio.wait_for(reader.readexactly(4096), 10)
                    writer.transport.abort()

                    await eventually(lambda: not asyncio.all_tasks() - before)
                    inflight = proxy.metric("shadowproxy_shadow_inflight")
                    outcomes = {
                        verdict: proxy.metric(
                            "shadowproxy_comparisons_total",
                            route="/big",
                            domain="default",
                            verdict=verdict,
                        )
                        for verdict in ("match", "diverged", "noise", "error")
                    }
                    outcomes["skipped"] = proxy.metric(
                        "shadowproxy_shadow_skipped_total", reason="legacy_failed"
                    )
                    await legacy.set(Toxic())
                    after = await fetch(proxy.url + "/after")
        assert inflight == 0
        # The shadow copy ended one way: compared, or skipped for want of legacy's answer.
        assert sum(outcomes.values()) == 1
        assert after[0] == 200
        # The keep-alive connection of the warm-up, reused or replaced: never one more.
        assert legacy.open_connections <= 1
