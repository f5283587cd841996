"""WebSockets through the proxy: forwarding headers, cutover, and the opt-in shadow."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websockets
from aiohttp import web

from tests.streams.sse_support import exchanges
from tests.support import Backend, backend, eventually, make_settings, running_proxy


def echo(prefix: str, change: Callable[[Any], Any] = lambda v: v, flip: bool = False) -> Any:
    """A WebSocket server answering each text message with ``prefix`` + it (JSON changed by
    ``change``), and each binary one with its bytes (reversed with ``flip``)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            if message.type is web.WSMsgType.TEXT:
                try:
                    await socket.send_str(json.dumps(change(json.loads(message.data))))
                except ValueError:
                    await socket.send_str(prefix + message.data)
            elif message.type is web.WSMsgType.BINARY:
                await socket.send_bytes(message.data[::-1] if flip else message.data)
        return socket

    return handler


def _ws(url: str) -> str:
    return "ws" + url.removeprefix("http")


async def _talk(url: str, messages: list[str], **headers: str) -> list[str]:
    """Send each message and read one answer to it, with the ``websockets`` client."""
    answers = []
    async with websockets.connect(_ws(url), additional_headers=headers) as socket:
        for message in messages:
            await socket.send(message)
            answers.append(str(await socket.recv()))
    return answers


class TestForwarding:
    """An upgrade gets the same forwarding headers as any request (issue 18, item 8)."""

    async def test_headers_follow_the_http_rules(self, tmp_path: Path) -> None:
        """X-Forwarded-For appended, X-Forwarded-Proto set, client's Host, Via, nothing added."""
        async with (
            backend(echo("legacy:")) as legacy,
            backend(echo("candidate:")) as candidate,
            running_proxy(make_settings(legacy.url, candidate.url, tmp_path)) as proxy,
        ):
            answers = await _talk(
                f"{proxy.url}/ws",
                ["hi"],
                **{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
            )
            assert answers == ["legacy:hi"]
        (seen,) = legacy.seen
        headers: dict[str, list[str]] = {}
        for name, value in seen.headers:
            headers.setdefault(name.lower(), []).append(value)
        assert headers["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"]
        assert headers["x-forwarded-proto"] == ["http"]
        assert headers["host"] == [proxy.url.removeprefix("http://")]
        assert headers["x-forwarded-host"] == [proxy.url.removeprefix("http://")]
        assert headers["via"] == ["1.1 shadowproxy"]
        assert headers["user-agent"][0].startswith("Python/")  # the client's own
        assert "accept" not in headers
        assert "accept-encoding" not in headers
        assert candidate.seen == []


def _routed(mode: str, **route: Any) -> dict[str, Any]:
    return {"routes": [{"match": "/ws", "mode": mode, **route}]}


class TestCutover:
    """In canary and candidate modes the upgrade goes to the side that answers."""

    async def _answers(self, tmp_path: Path, document: dict[str, Any]) -> tuple[str, Backend]:
        async with (
            backend(echo("legacy:")) as legacy,
            backend(echo("candidate:")) as candidate,
            running_proxy(make_settings(legacy.url, candidate.url, tmp_path, document)) as proxy,
        ):
            (answer,) = await _talk(f"{proxy.url}/ws", ["hi"])
        return answer, candidate

    async def test_candidate_mode(self, tmp_path: Path) -> None:
        """The candidate answers the session; legacy never sees it."""
        answer, _ = await self._answers(tmp_path, _routed("candidate"))
        assert answer == "candidate:hi"

    async def test_canary_mode(self, tmp_path: Path) -> None:
        """A canary at 100 % sends the session to the candidate, at 0 % (shadow) to legacy."""
        answer, _ = await self._answers(tmp_path, _routed("canary", canary_percent=100))
        assert answer == "candidate:hi"
        answer, candidate = await self._answers(tmp_path, _routed("shadow"))
        assert answer == "legacy:hi"
        assert candidate.seen == []

    async def test_failing_candidate_hands_the_session_to_legacy(self, tmp_path: Path) -> None:
        """A candidate that refuses the handshake: legacy answers, the client never notices."""

        async def refuse(request: web.Request) -> web.Response:
            return web.Response(status=503)

        async with (
            backend(echo("legacy:")) as legacy,
            backend(refuse) as candidate,
            running_proxy(
                make_settings(legacy.url, candidate.url, tmp_path, _routed("candidate"))
            ) as proxy,
        ):
            assert await _talk(f"{proxy.url}/ws", ["hi"]) == ["legacy:hi"]
            assert len(candidate.seen) == 1


def _shadowed(**stream: Any) -> dict[str, Any]:
    return {
        "routes": [{"match": "/ws", "stream": {"websocket": "shadow", **stream}}],
        "evidence": {"sample_matches_percent": 100},
    }


class TestShadow:
    """``stream.websocket: shadow`` copies the client's messages to the candidate and compares."""

    async def test_server_messages_compared_one_by_one(self, tmp_path: Path) -> None:
        """A value the candidate answers differently is a difference at its message's path."""

        def drift(value: Any) -> Any:
            return {**value, "total": value["total"] + 1} if value.get("n") == 1 else value

        messages = [json.dumps({"n": n, "total": 10}) for n in range(3)]
        async with (
            backend(echo("legacy:")) as legacy,
            backend(echo("candidate:", drift)) as candidate,
            running_proxy(
                make_settings(legacy.url, candidate.url, tmp_path, _shadowed(max_events=3))
            ) as proxy,
        ):
            answers = await _talk(f"{proxy.url}/ws", messages)
            assert answers == messages
            await eventually(lambda: len(exchanges(tmp_path)) == 1)
            assert len(candidate.seen) == 1
        (record,) = exchanges(tmp_path)
        assert record["stream"]["kind"] == "websocket"
        assert record["stream"]["legacy"]["events"] == 3
        assert [(d["kind"], d["path"]) for d in record["differences"]] == [
            ("value", "$[1].text.total")
        ]

    async def test_binary_and_text_by_bytes(self, tmp_path: Path) -> None:
        """Text that is not JSON and binary messages compare by their bytes."""
        async with (
            backend(echo("same:")) as legacy,
            backend(echo("same:", flip=True)) as candidate,
            running_proxy(
                make_settings(legacy.url, candidate.url, tmp_path, _shadowed(max_events=2))
            ) as proxy,
        ):
            async with websockets.connect(_ws(f"{proxy.url}/ws")) as socket:
                await socket.send("plain text")
                assert await socket.recv() == "same:plain text"
                await socket.send(b"\x00\x01bytes")
                assert await socket.recv() == b"\x00\x01bytes"
            await eventually(lambda: len(exchanges(tmp_path)) == 1)
        (record,) = exchanges(tmp_path)
        (difference,) = record["differences"]
        assert (difference["kind"], difference["path"]) == ("body", "$[1].binary")
        assert difference["legacy"]["bytes"] == 7
        assert set(difference["legacy"]) == {"bytes", "sha256"}

    async def test_candidate_that_pushes_back_is_dropped_not_the_client(
        self, tmp_path: Path
    ) -> None:
        """A candidate that never reads: the shadow is dropped and counted; the client's
        messages are answered at legacy's pace throughout."""
        release = asyncio.Event()

        async def stalled(request: web.Request) -> web.StreamResponse:
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            await release.wait()  # never reads: its socket buffers fill
            return socket

        # More than the kernel's socket buffers hold, so the candidate's socket must fill.
        big = "x" * 256 * 1024
        async with (
            backend(echo("legacy:")) as legacy,
            backend(stalled) as candidate,
            running_proxy(
                make_settings(
                    legacy.url,
                    candidate.url,
                    tmp_path,
                    _shadowed(max_bytes=1 << 20, max_seconds=60),
                )
            ) as proxy,
        ):
            try:
                async with websockets.connect(_ws(f"{proxy.url}/ws"), max_size=None) as socket:
                    for _ in range(64):
                        await socket.send(big)
                        assert await socket.recv() == "legacy:" + big
                    await eventually(
                        lambda: (
                            proxy.metric("shadowproxy_shadow_skipped_total", reason="backpressure")
                            == 1
                        )
                    )
                    assert proxy.metric("shadowproxy_shadow_inflight") == 0
            finally:
                release.set()
        assert exchanges(tmp_path) == []


class TestClientPace:
    """The client's frames never wait for the copy."""

    async def test_slow_candidate_leaves_round_trips_at_legacys_pace(self, tmp_path: Path) -> None:
        """Median round trip on a shadowed route with a candidate that takes 50 ms per message,
        against the same route tunnelled only, interleaved: within 3x (waiting would be 50x)."""

        async def slow(request: web.Request) -> web.StreamResponse:
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            async for message in socket:
                await asyncio.sleep(0.05)  # the candidate's pace
                await socket.send_str(message.data)
            return socket

        document = {
            "routes": [
                {"match": "/shadowed", "stream": {"websocket": "shadow", "max_events": 1000}},
                {"match": "/tunnelled"},
            ]
        }
        rounds = 30
        async with (
            backend(echo("legacy:")) as legacy,
            backend(slow) as candidate,
            running_proxy(make_settings(legacy.url, candidate.url, tmp_path, document)) as proxy,
            websockets.connect(_ws(f"{proxy.url}/shadowed")) as shadowed,
            websockets.connect(_ws(f"{proxy.url}/tunnelled")) as tunnelled,
        ):
            times: dict[str, list[float]] = {"shadowed": [], "tunnelled": []}
            for n in range(rounds):
                for name, socket in (("shadowed", shadowed), ("tunnelled", tunnelled)):
                    started = time.perf_counter()
                    await socket.send(f"m{n}")
                    assert await socket.recv() == f"legacy:m{n}"
                    times[name].append(time.perf_counter() - started)
            assert len(candidate.seen) == 1
        median = {name: statistics.median(values) for name, values in times.items()}
        assert median["shadowed"] <= 3 * median["tunnelled"], median
