"""The lean client-facing HTTP/1.1 server against raw loopback clients writing exact bytes.

Each test starts ``Server`` with a small handler over ``Inbound`` and, as the
fallback for handed-over connections, a real aiohttp low-level server whose
handler answers ``299 Fallback``: the status says which server took a request,
and both record what they saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from shadowproxy.http.inbound import Inbound
from shadowproxy.http.server import Server
from shadowproxy.http.server_connection import ServerConnection
from shadowproxy.http.server_request import MAX_HEADERS, MAX_LINE, RequestHead, ServerRequest
from shadowproxy.model import ClientTimeout, ConnectionRefusal
from shadowproxy.settings import ClientSettings
from tests.support import WAIT_S, eventually

HIGH_WATER = 256 * 1024
"""The server's bound on buffered request body bytes before it stops reading."""
INTERNAL = b'{"error": "internal", "upstream": "proxy"}'

Handler = Callable[[Inbound], Awaitable[None]]


@dataclass
class Seen:
    """One request as a handler saw it (the lean one records it before running)."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    remote: str
    body: bytes = b""


@dataclass
class Answer:
    """One answer as the client read it; ``raw`` holds its exact bytes."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    """A raw loopback client: exact bytes out, answers parsed just enough to check them."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, *, head: bool = False) -> Answer:
        """The next final answer (interim 1xx skipped); ``head`` when it answers a HEAD."""
        async with asyncio.timeout(WAIT_S):
            while True:
                raw = await self.reader.readuntil(b"\r\n\r\n")
                lines = raw[:-4].decode("latin-1").split("\r\n")
                version, status, reason = [*lines[0].split(" ", 2), ""][:3]
                headers = [
                    (name, value.strip())
                    for name, value in (line.split(":", 1) for line in lines[1:])
                ]
                if not 100 <= int(status) < 200:
                    break
            answer = Answer(version[5:], int(status), reason, headers, b"", raw)
            if head or answer.status in (204, 304):
                return answer
            if (answer.header("Transfer-Encoding") or "").lower() == "chunked":
                body = bytearray()
                while True:
                    line = await self.reader.readuntil(b"\r\n")
                    size = int(line, 16)
                    data = await self.reader.readexactly(size + 2)
                    answer.raw += line + data
                    body += data[:-2]
                    if size == 0:
                        break
                answer.body = bytes(body)
            elif (length := answer.header("Content-Length")) is not None:
                answer.body = await self.reader.readexactly(int(length))
                answer.raw += answer.body
            else:
                answer.body = await self.reader.read()
                answer.raw += answer.body
            return answer

    async def exactly(self, size: int) -> bytes:
        """``size`` bytes, or fewer if the connection ends first."""
        async with asyncio.timeout(WAIT_S):
            try:
                return await self.reader.readexactly(size)
            except asyncio.IncompleteReadError as cut:
                return cut.partial

    async def rest(self) -> bytes:
        """Whatever arrives until the server ends the connection (EOF or reset)."""
        data = bytearray()
        async with asyncio.timeout(WAIT_S):
            with contextlib.suppress(ConnectionError):
                while chunk := await self.reader.read(65536):
                    data += chunk
        return bytes(data)

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0), as a client that crashed would."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@dataclass
class Harness:
    """A running lean server and its aiohttp fallback, with what each handler saw."""

    server: Server
    fallback: web.Server
    lean: list[Seen] = field(default_factory=list)
    handed: list[Seen] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)
    address: tuple[str, int] = ("", 0)

    async def connect(self) -> Client:
        host, port = self.address
        async with asyncio.timeout(WAIT_S):
            reader, writer = await asyncio.open_connection(host, port)
        client = Client(reader, writer)
        self.clients.append(client)
        return client

    def connection(self) -> ServerConnection:
        """The server side of the only open lean connection."""
        (connection,) = self.server.connections
        return connection


async def echo(request: Inbound) -> None:
    """Answer 200 with what the request was, body included (read whole)."""
    body = bytearray()
    while chunk := await request.read(65536):
        body += chunk
    seen = {
        "method": request.method,
        "target": request.raw_target,
        "headers": list(request.headers.items()),
        "remote": request.remote,
        "body": body.decode("latin-1"),
        "content_length": request.content_length,
        "has_body": request.has_body,
    }
    request.answer(200, "OK", [("Content-Type", "application/json")], json.dumps(seen).encode())


async def hello(request: Inbound) -> None:
    """Answer ``hello`` with one header; the body, if any, is read first."""
    while await request.read(65536):
        pass
    request.answer(200, "OK", [("X-A", "1")], b"hello")


@contextlib.asynccontextmanager
async def serving(handler: Handler = echo, **options: Any) -> AsyncIterator[Harness]:
    """A lean server on 127.0.0.1 running ``handler``; aiohttp answers what it hands over.

    ``options`` go to ``Server``, over a bound no other test reaches.
    """

    async def fallback(request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        seen = Seen(request.method, request.raw_path, list(request.headers.items()), "", body)
        harness.handed.append(seen)
        return web.Response(status=299, reason="Fallback", body=b"fallback:" + body)

    async def recording(request: Inbound) -> None:
        harness.lean.append(
            Seen(request.method, request.raw_target, list(request.headers.items()), request.remote)
        )
        await handler(request)

    aiohttp_server = web.Server(fallback)
    bound = {
        "max_connections": 64,
        "elsewhere": lambda: 0,
        "refused": lambda reason: None,
        "clients": ClientSettings(address_share_percent=100),
        "timed_out": lambda phase: None,
        **options,
    }
    harness = Harness(Server(recording, aiohttp_server, **bound), aiohttp_server)
    await harness.server.start("127.0.0.1", 0, reuse_port=False, backlog=64)
    harness.address = harness.server.address
    try:
        yield harness
    finally:
        for client in harness.clients:
            await client.close()
        await harness.server.shutdown(0.1)
        harness.fallback.pre_shutdown()
        await harness.fallback.shutdown(0.1)


def get(target: str = "/", *fields: str, version: str = "1.1") -> bytes:
    """A request head for ``target`` with ``Host`` and the given header lines."""
    lines = [f"GET {target} HTTP/{version}", "Host: test", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post(body: bytes, target: str = "/", *fields: str) -> bytes:
    """A POST framed by Content-Length."""
    lines = [f"POST {target} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class TestOrdinaryRequests:
    """Ordinary requests reach the handler with their parts; answers are exact."""

    async def test_answer_bytes_are_exact_and_keep_alive(self) -> None:
        """answer() writes status line, headers, an added Content-Length, body; twice on a link."""
        async with serving(hello) as harness:
            client = await harness.connect()
            expected = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello"
            for _ in range(2):
                await client.send(get())
                assert await client.exactly(len(expected)) == expected
        assert len(harness.lean) == 2
        assert harness.handed == []

    async def test_given_content_length_is_not_repeated(self) -> None:
        """An answer whose headers carry Content-Length gets no second one."""

        async def handler(request: Inbound) -> None:
            request.answer(201, "Created", [("Content-Length", "2")], b"ok")

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(get())
            answer = await client.answer()
        assert answer.raw == b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"

    async def test_handler_sees_the_request_parts(self) -> None:
        """Method, raw target with query, headers (repeats kept, any case) and remote arrive."""
        seen: list[tuple[str | None, list[str], str | None]] = []

        async def handler(request: Inbound) -> None:
            headers = request.headers
            seen.append((headers.get("x-ONE"), headers.getall("X-Rep"), headers.get("HOST")))
            await echo(request)

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(
                get("/a/b%20c?x=1&y=%2F&x=2", "X-One: 1", "x-rep: a", "X-Rep: b", "X-REP: c")
            )
            answer = await client.answer()
        echoed = answer.json()
        assert (answer.status, echoed["method"], echoed["target"]) == (
            200,
            "GET",
            "/a/b%20c?x=1&y=%2F&x=2",
        )
        assert echoed["headers"] == [
            ["Host", "test"],
            ["X-One", "1"],
            ["x-rep", "a"],
            ["X-Rep", "b"],
            ["X-REP", "c"],
        ]
        assert echoed["remote"] == "127.0.0.1"
        assert (echoed["content_length"], echoed["has_body"]) == (None, False)
        assert seen == [("1", ["a", "b", "c"], "test")]

    async def test_cookies_and_scheme(self) -> None:
        """cookies merges every Cookie header; scheme is http."""
        seen: list[tuple[dict[str, str], str]] = []

        async def handler(request: Inbound) -> None:
            seen.append((dict(request.cookies), request.scheme))
            await hello(request)

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(get("/", "Cookie: a=1; b=2", "Cookie: c=3"))
            assert (await client.answer()).status == 200
        assert seen == [({"a": "1", "b": "2", "c": "3"}, "http")]

    async def test_a_connection_is_answered_by_one_task_that_ends_with_it(self) -> None:
        """Sequential and pipelined requests on one connection run in one task, which is
        not a request's while the connection is idle, and ends when the client closes."""
        tasks: list[asyncio.Task[object] | None] = []

        async def handler(request: Inbound) -> None:
            tasks.append(asyncio.current_task())
            request.answer(200, "OK", [], b"ok")

        async with serving(handler) as harness:
            client = await harness.connect()
            for _ in range(2):
                await client.send(get())
                assert (await client.answer()).body == b"ok"
            await client.send(get() + get())
            assert [(await client.answer()).body for _ in range(2)] == [b"ok", b"ok"]
            assert harness.connection().task is None
            other = await harness.connect()
            await other.send(get())
            assert (await other.answer()).body == b"ok"
            await client.close()
            first = tasks[0]
            assert first is not None
            await eventually(first.done)
        assert tasks[:4] == [first] * 4
        assert tasks[4] is not first

    async def test_pipelined_requests_are_answered_in_order(self) -> None:
        """Three requests sent in one write get three answers, in the order sent."""
        async with serving() as harness:
            client = await harness.connect()
            await client.send(get("/1") + post(b"two", "/2") + get("/3"))
            answers = [await client.answer() for _ in range(3)]
        assert [a.json()["target"] for a in answers] == ["/1", "/2", "/3"]
        assert answers[1].json()["body"] == "two"
        assert [s.target for s in harness.lean] == ["/1", "/2", "/3"]

    async def test_pipelined_request_waits_for_the_previous_answer(self) -> None:
        """A second pipelined request starts only once the first one's answer is written."""
        release = asyncio.Event()
        order: list[str] = []

        async def handler(request: Inbound) -> None:
            order.append(f"start {request.raw_target}")
            if request.raw_target == "/slow":
                await release.wait()
            order.append(f"end {request.raw_target}")
            request.answer(200, "OK", [], request.raw_target.encode())

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(get("/slow") + get("/fast"))
            await eventually(lambda: order == ["start /slow"])
            release.set()
            bodies = [(await client.answer()).body for _ in range(2)]
        assert bodies == [b"/slow", b"/fast"]
        assert order == ["start /slow", "end /slow", "start /fast", "end /fast"]

    async def test_pipelined_requests_beyond_the_bound_pause_reading(self) -> None:
        """Pipelined heads past the buffer bound pause reading; every one is answered in order."""
        release = asyncio.Event()

        async def handler(request: Inbound) -> None:
            await release.wait()
            request.answer(200, "OK", [], request.raw_target.encode())

        filler = "X-Fill: " + "f" * 4000
        requests = [get(f"/{i}", filler) for i in range(200)]
        async with serving(handler) as harness:
            client = await harness.connect()
            client.writer.write(b"".join(requests))
            await eventually(lambda: len(harness.lean) == 1)
            transport = harness.connection()._transport
            assert transport is not None
            await eventually(lambda: not transport.is_reading())
            release.set()
            bodies = [(await client.answer()).body for _ in requests]
        assert bodies == [f"/{i}".encode() for i in range(200)]
        assert len(harness.lean) == 200

    async def test_request_split_across_writes(self) -> None:
        """A head and body arriving a few bytes at a time still make one request."""
        data = post(b"0123456789", "/split", "X-A: 1")
        async with serving() as harness:
            client = await harness.connect()
            for at in range(0, len(data), 7):
                await client.send(data[at : at + 7])
            answer = await client.answer()
        assert (answer.json()["target"], answer.json()["body"]) == ("/split", "0123456789")


class TestConnectionBound:
    """At ``max_connections`` open connections, one more is closed on arrival and counted."""

    async def test_one_over_the_bound_is_closed_and_counted(self) -> None:
        """The third of two allowed is closed unread; once one closes, a new one is served."""
        refused: list[ConnectionRefusal] = []
        async with serving(max_connections=2, refused=refused.append) as harness:
            first, second = await harness.connect(), await harness.connect()
            for client in (first, second):
                await client.send(get("/"))
                assert (await client.answer()).status == 200
            third = await harness.connect()
            assert await third.rest() == b""
            assert refused == [ConnectionRefusal.LIMIT]
            await first.close()
            await eventually(lambda: len(harness.server.connections) == 1)
            fourth = await harness.connect()
            await fourth.send(get("/again"))
            assert (await fourth.answer()).status == 200
        assert [seen.target for seen in harness.lean] == ["/", "/", "/again"]

    async def test_handed_over_connections_count_towards_the_bound(self) -> None:
        """Connections aiohttp holds (``elsewhere``) leave room for fewer lean ones."""
        async with serving(max_connections=2, elsewhere=lambda: 1) as harness:
            first = await harness.connect()
            await first.send(get("/"))
            assert (await first.answer()).status == 200
            second = await harness.connect()
            assert await second.rest() == b""


QUICK = ClientSettings(header_timeout_s=0.3, body_timeout_s=0.3, keepalive_timeout_s=1.5)
"""Client timeouts short enough for a test, keep-alive well above the others."""


async def trickle(client: Client, data: bytes, every_s: float) -> None:
    """Send ``data`` a byte at a time, ``every_s`` apart, until done or the server closes."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            await client.send(bytes([byte]))
            await asyncio.sleep(every_s)  # the slow client under test, not a synchronisation


class TestClientTimeouts:
    """Slow heads and bodies are cut off; idle keep-alive lasts its own, longer, time."""

    async def test_silent_connection_closed_after_the_head_timeout(self) -> None:
        """A connection that sends nothing is closed header_timeout_s after accept."""
        phases: list[ClientTimeout] = []
        async with serving(clients=QUICK, timed_out=phases.append) as harness:
            client = await harness.connect()
            assert await client.rest() == b""
        assert phases == [ClientTimeout.HEAD]

    @pytest.mark.parametrize("first", [True, False], ids=["first-request", "after-keep-alive"])
    async def test_slowloris_head_is_cut_off(self, first: bool) -> None:
        """A head trickling in a byte every 50 ms is closed although bytes keep coming.

        On a kept-alive connection the clock starts with the next head's first byte."""
        phases: list[ClientTimeout] = []
        async with serving(hello, clients=QUICK, timed_out=phases.append) as harness:
            client = await harness.connect()
            if not first:
                await client.send(get())
                assert (await client.answer()).status == 200
            slow = asyncio.get_running_loop().create_task(
                trickle(client, get("/slow", *(f"X-{i}: {i}" for i in range(50))), 0.05)
            )
            assert await client.rest() == b""
            await slow
        assert phases == [ClientTimeout.HEAD]
        assert [seen.target for seen in harness.lean] == ([] if first else ["/"])

    async def test_idle_keep_alive_outlasts_a_slow_head(self) -> None:
        """Idle after an answer, a connection lives keepalive_timeout_s, not header_timeout_s."""
        async with serving(hello, clients=QUICK) as harness:
            idle, slow = await harness.connect(), await harness.connect()
            for client in (idle, slow):
                await client.send(get())
                assert (await client.answer()).status == 200
            loop = asyncio.get_running_loop()
            started = loop.time()
            await slow.send(b"GET /never-finished HTTP/1.1\r\n")
            assert await slow.rest() == b""
            slow_s = loop.time() - started
            assert await idle.rest() == b""
            idle_s = loop.time() - started
        # The head had 0.3 s, the idle connection 1.5 s.
        assert idle_s > 2 * slow_s

    async def test_stalled_body_is_cut_off(self) -> None:
        """A body that stops arriving aborts the connection, unanswered."""
        phases: list[ClientTimeout] = []
        async with serving(hello, clients=QUICK, timed_out=phases.append) as harness:
            client = await harness.connect()
            await client.send(post(b"0123456789")[:-7])
            assert await client.rest() == b""
        assert phases == [ClientTimeout.BODY]
        assert [seen.target for seen in harness.lean] == ["/"]

    async def test_body_paused_by_the_server_is_not_cut_off(self) -> None:
        """While the handler does not read (reading paused), silence is not the client's."""
        release = asyncio.Event()

        async def late(request: Inbound) -> None:
            await release.wait()
            await hello(request)

        body = b"x" * (2 * HIGH_WATER)
        async with serving(late, clients=QUICK) as harness:
            client = await harness.connect()
            client.writer.write(post(body))
            await eventually(lambda: len(harness.lean) == 1)
            transport = harness.connection()._transport
            assert transport is not None
            await eventually(lambda: not transport.is_reading())
            await asyncio.sleep(3 * QUICK.body_timeout_s)  # longer than a stalled body gets
            release.set()
            answer = await client.answer()
        assert (answer.status, answer.body) == (200, b"hello")


class TestAddressShare:
    """One client address holds at most its share of max_connections; others still get in."""

    async def connect_from(self, harness: Harness, address: str) -> Client:
        host, port = harness.address
        async with asyncio.timeout(WAIT_S):
            reader, writer = await asyncio.open_connection(host, port, local_addr=(address, 0))
        client = Client(reader, writer)
        harness.clients.append(client)
        return client

    async def test_share_per_address(self) -> None:
        """Share 50 % of 4: a third connection from one address is refused, another's is served."""
        refused: list[ConnectionRefusal] = []
        share = ClientSettings(address_share_percent=50)
        async with serving(max_connections=4, clients=share, refused=refused.append) as harness:
            first, second = [await self.connect_from(harness, "127.0.0.1") for _ in range(2)]
            for client in (first, second):
                await client.send(get("/"))
                assert (await client.answer()).status == 200
            third = await self.connect_from(harness, "127.0.0.1")
            assert await third.rest() == b""
            other = await self.connect_from(harness, "127.0.0.2")
            await other.send(get("/other"))
            assert (await other.answer()).status == 200
            await first.close()
            await eventually(lambda: len(harness.server.connections) == 2)
            again = await self.connect_from(harness, "127.0.0.1")
            await again.send(get("/again"))
            assert (await again.answer()).status == 200
        assert refused == [ConnectionRefusal.ADDRESS_SHARE]

    async def test_handed_over_connections_keep_their_share(self) -> None:
        """A connection handed to aiohttp counts for its address until it closes."""
        refused: list[ConnectionRefusal] = []
        share = ClientSettings(address_share_percent=25)
        async with serving(max_connections=4, clients=share, refused=refused.append) as harness:
            handed = await self.connect_from(harness, "127.0.0.1")
            await handed.send(
                b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            )
            assert (await handed.answer()).status == 299
            second = await self.connect_from(harness, "127.0.0.1")
            assert await second.rest() == b""
            await handed.close()
            await eventually(lambda: bool(harness.fallback.connections) is False)
            third = await self.connect_from(harness, "127.0.0.1")
            await third.send(get("/"))
            assert (await third.answer()).status == 200
        assert refused == [ConnectionRefusal.ADDRESS_SHARE]


class TestRequestBodies:
    """Bodies framed by Content-Length reach the handler whole, in order, with back-pressure."""

    async def test_body_by_read(self) -> None:
        """read(n) returns at most n bytes at a time, then b"" once the body ended."""
        reads: list[bytes] = []

        async def handler(request: Inbound) -> None:
            while chunk := await request.read(4):
                reads.append(chunk)
            reads.append(await request.read(4))
            request.answer(200, "OK", [], b"")

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(post(b"0123456789"))
            assert (await client.answer()).status == 200
        assert reads == [b"0123", b"4567", b"89", b""]

    async def test_body_by_chunks(self) -> None:
        """body_chunks() yields the whole body; content_length and has_body describe it."""
        chunks: list[bytes] = []
        described: list[tuple[int | None, bool]] = []

        async def handler(request: Inbound) -> None:
            described.append((request.content_length, request.has_body))
            chunks.extend([chunk async for chunk in request.body_chunks()])
            request.answer(200, "OK", [], b"")

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(post(b"hello world"))
            assert (await client.answer()).status == 200
        assert b"".join(chunks) == b"hello world"
        assert described == [(11, True)]

    async def test_body_arriving_in_several_writes(self) -> None:
        """A body sent in parts, the handler already reading, arrives whole and in order."""
        started = asyncio.Event()

        async def handler(request: Inbound) -> None:
            started.set()
            await echo(request)

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(post(b"abc", "/", "X-A: 1")[:-3] + b"a")
            async with asyncio.timeout(WAIT_S):
                await started.wait()
            await client.send(b"b")
            await client.send(b"c")
            answer = await client.answer()
            await client.send(get("/next"))
            assert (await client.answer()).json()["target"] == "/next"
        assert answer.json()["body"] == "abc"

    async def test_large_body_pauses_reading_and_arrives_whole(self) -> None:
        """A 4 MiB body the handler has yet to read: reading pauses, then all of it arrives."""
        body = random.Random(4).randbytes(4 * 1024 * 1024)
        go = asyncio.Event()
        received = bytearray()
        requests: list[Inbound] = []

        async def handler(request: Inbound) -> None:
            requests.append(request)
            await go.wait()
            while chunk := await request.read(50_000):
                received.extend(chunk)
            request.answer(200, "OK", [], b"%d" % len(received))

        async with serving(handler) as harness:
            client = await harness.connect()
            client.writer.write(post(body))
            await eventually(lambda: bool(requests))
            transport = harness.connection()._transport
            assert transport is not None
            await eventually(lambda: not transport.is_reading())
            buffered = getattr(requests[0], "buffered", None)
            assert buffered is not None and HIGH_WATER <= buffered <= 2 * HIGH_WATER
            go.set()
            async with asyncio.timeout(WAIT_S):
                await client.writer.drain()
            answer = await client.answer()
        assert answer.body == b"%d" % len(body)
        assert received == body

    async def test_large_body_by_chunks_stays_bounded(self) -> None:
        """body_chunks() of a 2 MiB body never yields more than the buffer bound at once."""
        body = random.Random(2).randbytes(2 * 1024 * 1024)
        sizes: list[int] = []
        received = bytearray()

        async def handler(request: Inbound) -> None:
            async for chunk in request.body_chunks():
                sizes.append(len(chunk))
                received.extend(chunk)
            request.answer(200, "OK", [], b"")

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(post(body))
            assert (await client.answer()).status == 200
        assert received == body
        assert max(sizes) <= HIGH_WATER

    async def test_unread_body_closes_after_the_answer(self) -> None:
        """A handler answering without reading the body: the answer arrives, then EOF."""

        async def handler(request: Inbound) -> None:
            request.answer(200, "OK", [], b"early")

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(post(b"x" * 1000) + get("/never"))
            answer = await client.answer()
            assert await client.rest() == b""
        assert (answer.status, answer.body) == (200, b"early")
        assert [s.target for s in harness.lean] == ["/"]

    async def test_partly_read_body_closes_after_the_answer(self) -> None:
        """A handler reading only part of a body that is still arriving: answer, then EOF."""
        read = asyncio.Event()

        async def handler(request: Inbound) -> None:
            await request.read(3)
            read.set()
            request.answer(200, "OK", [], b"partial")

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(post(b"0123456789")[:-7])
            async with asyncio.timeout(WAIT_S):
                await read.wait()
            answer = await client.answer()
            assert await client.rest() == b""
        assert answer.body == b"partial"


class TestConnectionOptions:
    """Connection: close and HTTP/1.0 decide whether a connection carries another request."""

    async def test_connection_close_from_11_client(self) -> None:
        """Connection: close from a 1.1 client: the answer says close and EOF follows."""
        async with serving(hello) as harness:
            client = await harness.connect()
            await client.send(get("/", "Connection: close") + get("/never"))
            answer = await client.answer()
            assert await client.rest() == b""
        assert answer.raw == (
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        )
        assert len(harness.lean) == 1

    async def test_http10_closes_by_default(self) -> None:
        """An HTTP/1.0 request without keep-alive: a 1.0 answer saying close, then EOF."""
        async with serving(hello) as harness:
            client = await harness.connect()
            await client.send(get(version="1.0"))
            answer = await client.answer()
            assert await client.rest() == b""
        assert answer.raw == (
            b"HTTP/1.0 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        )

    async def test_http10_keep_alive(self) -> None:
        """HTTP/1.0 asking keep-alive: the answer says Connection: keep-alive; a second follows."""
        expected = (
            b"HTTP/1.0 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"
        )
        async with serving(hello) as harness:
            client = await harness.connect()
            for _ in range(2):
                await client.send(get("/", "Connection: keep-alive", version="1.0"))
                assert (await client.answer()).raw == expected
        assert len(harness.lean) == 2

    async def test_idle_connection_closes_after_keepalive_timeout(self) -> None:
        """A kept-alive connection left idle after its answer is closed by the keep-alive timer."""
        async with serving(hello, clients=ClientSettings(keepalive_timeout_s=0.5)) as harness:
            client = await harness.connect()
            await client.send(get())
            assert (await client.answer()).status == 200
            assert await client.rest() == b""
        assert len(harness.lean) == 1


class TestStreamedAnswers:
    """start/write/end frame a body as the client's version and the headers require."""

    @staticmethod
    async def streamer(request: Inbound, headers: list[tuple[str, str]]) -> None:
        await request.start(200, "OK", headers)
        for part in (b"hello", b"", b" world!"):
            await request.write(part)
        await request.end()

    async def test_chunked_to_11_client(self) -> None:
        """No Content-Length, 1.1 client: chunked framing, empty writes skipped, terminator."""
        expected = (
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n7\r\n world!\r\n0\r\n\r\n"
        )
        async with serving(lambda r: self.streamer(r, [("X-A", "1")])) as harness:
            client = await harness.connect()
            for _ in range(2):
                await client.send(get())
                assert await client.exactly(len(expected)) == expected

    async def test_close_delimited_to_10_client(self) -> None:
        """No Content-Length, 1.0 client asking keep-alive: raw body, Connection: close, EOF."""
        async with serving(lambda r: self.streamer(r, [("X-A", "1")])) as harness:
            client = await harness.connect()
            await client.send(get("/", "Connection: keep-alive", version="1.0"))
            data = await client.rest()
        assert data == b"HTTP/1.0 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\nhello world!"

    async def test_with_content_length_is_raw(self) -> None:
        """Content-Length among the headers: the body goes raw and the connection is kept."""
        expected = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world!"
        async with serving(lambda r: self.streamer(r, [("Content-Length", "12")])) as harness:
            client = await harness.connect()
            for _ in range(2):
                await client.send(get())
                assert await client.exactly(len(expected)) == expected

    async def test_large_answer_waits_for_a_slow_client(self) -> None:
        """A 16 MiB streamed answer: the handler's writes wait for a slow client; all arrives."""
        chunk = random.Random(16).randbytes(64 * 1024)
        written = 0
        finished = asyncio.Event()

        async def handler(request: Inbound) -> None:
            nonlocal written
            await request.start(200, "OK", [("Content-Length", str(256 * len(chunk)))])
            for _ in range(256):
                await request.write(chunk)
                written += 1
            finished.set()

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(get())
            await eventually(lambda: harness.connection()._write_paused)
            assert not finished.is_set()
            answer = await client.answer()
        assert finished.is_set()
        assert answer.body == chunk * 256

    async def test_head_answer_has_no_body(self) -> None:
        """HEAD answered with answer() and a body: Content-Length of that body, no body bytes."""

        async def handler(request: Inbound) -> None:
            request.answer(200, "OK", [], b"" if request.method == "GET" else b"hello")

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n" + get())
            head = await client.answer(head=True)
            after = await client.answer()
        assert head.raw == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        assert after.raw == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    async def test_streamed_head_answer_has_no_framing(self) -> None:
        """HEAD answered with start()/end(): neither chunked framing nor terminator; kept alive."""
        async with serving(lambda r: r.start(200, "OK", [("X-A", "1")])) as harness:
            client = await harness.connect()
            for _ in range(2):
                await client.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n")
                assert (await client.answer(head=True)).raw == b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n"

    @pytest.mark.parametrize("status", [204, 304])
    async def test_bodiless_status_by_start(self, status: int) -> None:
        """A 204 or 304 started without Content-Length: no framing, no body, kept alive."""
        expected = b"HTTP/1.1 %d Nothing\r\nX-A: 1\r\n\r\n" % status

        async def handler(request: Inbound) -> None:
            await request.start(status, "Nothing", [("X-A", "1")])
            await request.end()

        async with serving(handler) as harness:
            client = await harness.connect()
            for _ in range(2):
                await client.send(get())
                assert (await client.answer()).raw == expected

    async def test_204_by_answer_has_no_body_and_no_length(self) -> None:
        """A 204 through answer(): no body bytes and no Content-Length (RFC 9110 §8.6)."""

        async def handler(request: Inbound) -> None:
            request.answer(204, "No Content", [("X-A", "1")], b"")

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(get() + get())
            answers = [(await client.answer()).raw for _ in range(2)]
        assert answers == [b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"] * 2

    async def test_304_by_answer_has_no_body(self) -> None:
        """A 304 through answer() with a body: the body is not sent; the next answer follows."""

        async def handler(request: Inbound) -> None:
            body = b"stale" if request.raw_target == "/304" else b"fresh"
            request.answer(304 if request.raw_target == "/304" else 200, "X", [], body)

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(get("/304") + get("/200"))
            first = await client.answer()
            second = await client.answer()
        assert first.raw.startswith(b"HTTP/1.1 304 X\r\n")
        assert first.raw.endswith(b"\r\n\r\n")
        assert second.raw == b"HTTP/1.1 200 X\r\nContent-Length: 5\r\n\r\nfresh"


LONG_VALUE = "v" * (MAX_LINE - len("X-Long: ") + 1)
"""A value whose header line is one byte over MAX_LINE but within aiohttp's field limit."""


class TestHandOver:
    """Requests the lean server does not take go, with the connection, to aiohttp."""

    @pytest.mark.parametrize(
        ("request_bytes", "body"),
        [
            (b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
             b"hello", b"hello"),
            (b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
             b""),
            (b"GET /h2 HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\n\r\n", b""),
            (b"GET / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Upgrade\r\n\r\n", b""),
            (b"GET http://t/abs HTTP/1.1\r\nHost: t\r\n\r\n", b""),
            (b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", b""),
            (get("/", *(f"X-{i}: {i}" for i in range(MAX_HEADERS))), b""),
            (get("/", f"X-Long: {LONG_VALUE}"), b""),
        ],
        ids=["expect", "chunked", "upgrade", "upgrade-header-only", "connection-upgrade",
             "absolute-form", "asterisk", "101-headers", "long-line"],
    )  # fmt: skip
    async def test_fallback_serves_it(self, request_bytes: bytes, body: bytes) -> None:
        """The fallback (aiohttp) answers the request; the lean handler never sees it."""
        async with serving() as harness:
            client = await harness.connect()
            await client.send(request_bytes)
            answer = await client.answer()
        assert (answer.status, answer.reason, answer.body) == (299, "Fallback", b"fallback:" + body)
        assert harness.lean == []
        assert len(harness.handed) == 1

    @pytest.mark.parametrize(
        "request_bytes",
        [
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
            get("/", f"X-Long: {'v' * (MAX_LINE + 10)}"),
            get("/" + "p" * MAX_LINE),
            get("/", *(f"X-{i}: {i}" for i in range(200))),
            b"GET / HTTP/1.1\nHost: a\n\n",
            b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"FROB / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n",
        ],
        ids=["two-hosts", "two-lengths", "line-too-long", "target-too-long", "200-headers",
             "bare-lf", "invalid-method", "unknown-method", "negative-length", "space-in-name",
             "obs-fold"],
    )  # fmt: skip
    async def test_fallback_refuses_malformed(self, request_bytes: bytes) -> None:
        """Malformed input is handed over and refused by aiohttp with 400; neither handler runs."""
        async with serving() as harness:
            client = await harness.connect()
            await client.send(request_bytes)
            answer = await client.answer()
            assert await client.rest() == b""
        assert answer.status == 400
        assert (harness.lean, harness.handed) == ([], [])

    async def test_bare_lf_head_arriving_byte_by_byte(self) -> None:
        """A bare-LF blank line is noticed across writes (only new bytes are searched)."""
        async with serving() as harness:
            client = await harness.connect()
            for byte in b"GET / HTTP/1.1\nHost: a\n\n":
                await client.send(bytes([byte]))
            answer = await client.answer()
        assert answer.status == 400
        assert (harness.lean, harness.handed) == ([], [])

    @pytest.mark.parametrize("pipelined", [False, True], ids=["in-turn", "pipelined"])
    async def test_hand_over_after_a_lean_request(self, pipelined: bool) -> None:
        """An ordinary request then a chunked one on one connection: lean answers, then aiohttp."""
        chunked = (
            b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n"
        )
        async with serving() as harness:
            client = await harness.connect()
            if pipelined:
                await client.send(post(b"xyz", "/lean") + chunked)
                first = await client.answer()
            else:
                await client.send(post(b"xyz", "/lean"))
                first = await client.answer()
                await client.send(chunked)
            second = await client.answer()
            await client.send(get("/after"))
            third = await client.answer()
        assert (first.status, first.json()["body"]) == (200, "xyz")
        assert (second.status, second.body) == (299, b"fallback:abc")
        assert third.status == 299
        assert [s.target for s in harness.lean] == ["/lean"]
        assert [s.target for s in harness.handed] == ["/c", "/after"]

    async def test_large_handed_over_request_behind_a_lean_one(self) -> None:
        """A chunked upload past the read bound, pipelined behind a lean request, arrives whole."""
        release = asyncio.Event()
        data = random.Random(3).randbytes(300_000).hex().encode()  # under aiohttp's 1 MiB

        async def handler(request: Inbound) -> None:
            await release.wait()
            await hello(request)

        chunked = b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunked += b"".join(
            b"%x\r\n%b\r\n" % (len(part), part)
            for part in (data[at : at + 100_000] for at in range(0, len(data), 100_000))
        )
        chunked += b"0\r\n\r\n"
        async with serving(handler) as harness:
            client = await harness.connect()
            client.writer.write(get("/lean") + chunked)
            await eventually(lambda: len(harness.lean) == 1)
            transport = harness.connection()._transport
            assert transport is not None
            await eventually(lambda: not transport.is_reading())
            release.set()
            first = await client.answer()
            second = await client.answer()
        assert (first.status, first.body) == (200, b"hello")
        assert (second.status, second.body) == (299, b"fallback:" + data)
        assert [s.target for s in harness.handed] == ["/up"]


class TestFailures:
    """A failing handler or a vanishing client never takes the server down."""

    async def test_exception_answers_500_and_closes(self) -> None:
        """A handler raising before answering: 500 with the proxy's JSON error, then EOF."""

        async def handler(request: Inbound) -> None:
            raise RuntimeError("boom")

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(get() + get("/never"))
            answer = await client.answer()
            assert await client.rest() == b""
        assert (answer.status, answer.body) == (500, INTERNAL)
        assert answer.header("Content-Type") == "application/json; charset=utf-8"
        assert answer.header("Connection") == "close"
        assert len(harness.lean) == 1

    async def test_exception_after_start_aborts(self) -> None:
        """A handler raising after its answer started: no 500, the cut answer ends the link."""

        async def handler(request: Inbound) -> None:
            await request.start(200, "OK", [])
            await request.write(b"part")
            raise RuntimeError("boom")

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(get())
            data = await client.rest()
        assert data == (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n")

    async def test_connection_reset_aborts_without_500(self) -> None:
        """A handler raising ConnectionResetError: the connection ends with no answer at all."""

        async def handler(request: Inbound) -> None:
            raise ConnectionResetError("gone")

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(get())
            assert await client.rest() == b""

    async def test_client_gone_mid_body(self) -> None:
        """The client closing mid-body makes read() raise ConnectionError; the server serves on."""
        got_part = asyncio.Event()
        failures: list[BaseException] = []

        async def handler(request: Inbound) -> None:
            if request.raw_target == "/next":
                await echo(request)
                return
            got_part.set()
            try:
                while await request.read(65536):
                    pass
            except Exception as exc:
                failures.append(exc)
                raise

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(post(b"x" * 1000)[:-990])
            async with asyncio.timeout(WAIT_S):
                await got_part.wait()
            await client.close()
            await eventually(lambda: not harness.server.connections)
            other = await harness.connect()
            await other.send(post(b"ok", "/next"))
            answer = await other.answer()
        assert [type(exc) for exc in failures] == [ConnectionResetError]
        assert answer.json()["body"] == "ok"

    async def test_client_gone_while_writing(self) -> None:
        """A client gone before the answer: write raises ConnectionResetError in the handler."""
        release = asyncio.Event()
        failures: list[BaseException] = []

        async def handler(request: Inbound) -> None:
            await release.wait()
            try:
                await request.start(200, "OK", [])
            except Exception as exc:
                failures.append(exc)
                raise

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(get())
            await eventually(lambda: len(harness.lean) == 1)
            connection = harness.connection()
            client.reset()
            await eventually(lambda: connection.closed)
            release.set()
            await eventually(lambda: bool(failures))
        assert [type(exc) for exc in failures] == [ConnectionResetError]

    @pytest.mark.parametrize("requests", [1, 2], ids=["one", "pipelined"])
    async def test_half_closed_client_gets_its_answers(self, requests: int) -> None:
        """A client shutting its write side after its requests gets every answer, then EOF."""
        release = asyncio.Event()

        async def handler(request: Inbound) -> None:
            await release.wait()
            await hello(request)

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(b"".join(get(f"/{n}") for n in range(requests)))
            client.writer.write_eof()
            await eventually(lambda: len(harness.lean) == 1 and harness.connection()._eof)
            release.set()
            data = await client.rest()
        assert data == b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello" * requests


class TestShutdown:
    """shutdown() stops accepting, closes idle links and lets in-flight requests finish."""

    async def test_idle_closed_in_flight_finished_new_refused(self) -> None:
        """Idle link closed at once, new ones refused, the in-flight answer says close."""
        release = asyncio.Event()

        async def handler(request: Inbound) -> None:
            if request.raw_target == "/slow":
                await release.wait()
            await hello(request)

        async with serving(handler) as harness:
            idle = await harness.connect()
            await idle.send(get())
            assert (await idle.answer()).status == 200
            busy = await harness.connect()
            await busy.send(get("/slow"))
            await eventually(lambda: len(harness.lean) == 2)
            async with asyncio.TaskGroup() as group:
                shutdown = group.create_task(harness.server.shutdown(WAIT_S))
                assert await idle.rest() == b""
                with pytest.raises(ConnectionRefusedError):
                    await harness.connect()
                assert not shutdown.done()
                release.set()
                answer = await busy.answer()
                assert await busy.rest() == b""
        assert answer.raw == (
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        )
        assert harness.server.connections == set()

    async def test_large_in_flight_answer_is_delivered_whole(self) -> None:
        """An in-flight answer still buffered when its handler returns reaches the client whole."""
        body = random.Random(32).randbytes(32 * 1024 * 1024)
        release = asyncio.Event()

        async def handler(request: Inbound) -> None:
            await release.wait()
            request.answer(200, "OK", [], body)

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(get())
            await eventually(lambda: len(harness.lean) == 1)
            release.set()
            await harness.server.shutdown(WAIT_S)
            data = await client.rest()
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        received, sent = len(data), len(head) + len(body)
        assert received == sent
        assert data == head + body

    async def test_stuck_request_is_cancelled_after_the_timeout(self) -> None:
        """A handler that never finishes is cancelled once the timeout passes; the link ends."""
        cancelled = asyncio.Event()

        async def handler(request: Inbound) -> None:
            await request.start(200, "OK", [])
            await request.write(b"part")
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async with serving(handler) as harness:
            client = await harness.connect()
            await client.send(get())
            await eventually(lambda: len(harness.lean) == 1)
            async with asyncio.timeout(WAIT_S):
                await harness.server.shutdown(0.2)
            assert cancelled.is_set()
            data = await client.rest()
        assert data == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n"
        assert harness.server.connections == set()


class TestMemory:
    """Connections and requests are freed by reference counting, not by a later collection."""

    @staticmethod
    def alive() -> list[str]:
        """The server's connections, requests and heads the collector still tracks."""
        kinds = (ServerConnection, ServerRequest, RequestHead)
        return [type(o).__name__ for o in gc.get_objects() if isinstance(o, kinds)]

    async def test_served_requests_leave_no_cycles(self) -> None:
        """With the collector off, no connection, request or head outlives its connection.

        A handler failing is left out: pytest's log capture keeps the logged
        traceback, and with it the request's frames, for the test's report.
        """

        async def handler(request: Inbound) -> None:
            if request.raw_target == "/stream":
                await request.start(200, "OK", [])
                await request.write(b"streamed")
                await request.end()
            else:
                await echo(request)

        gc.collect()
        gc.disable()
        try:
            async with serving(handler) as harness:
                client = await harness.connect()
                for _ in range(5):
                    await client.send(get("/a?b") + post(b"body") + get("/stream"))
                    assert [(await client.answer()).status for _ in range(3)] == [200] * 3
                await client.send(get("/last", "Connection: close"))
                assert (await client.answer()).status == 200
                assert await client.rest() == b""
                handed = await harness.connect()
                await handed.send(get("/lean") + b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
                assert [(await handed.answer()).status for _ in range(2)] == [200, 299]
            alive = self.alive()
        finally:
            gc.enable()
        assert len(harness.lean) == 17
        assert alive == []

    async def test_client_gone_mid_body_leaves_no_cycles(self) -> None:
        """With the collector off, a request whose client left mid-body is freed with its link."""
        failed = asyncio.Event()

        async def handler(request: Inbound) -> None:
            try:
                while await request.read(65536):
                    pass
            except ConnectionError:
                failed.set()
                raise

        gc.collect()
        gc.disable()
        try:
            async with serving(handler) as harness:
                client = await harness.connect()
                await client.send(post(b"x" * 100)[:-50])
                await eventually(lambda: len(harness.lean) == 1)
                await client.close()
                async with asyncio.timeout(WAIT_S):
                    await failed.wait()
                await eventually(lambda: not harness.server.connections)
            alive = self.alive()
        finally:
            gc.enable()
        assert alive == []
