"""The upstream HTTP/1.1 client against scripted loopback servers writing exact bytes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import re
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
import trustme

from shadowproxy.http.h1 import Pool
from shadowproxy.http.h1_connection import FEED_BUDGET, MAX_HEAD_BYTES, Connection
from shadowproxy.http.h1_response import Response, UpstreamError
from shadowproxy.http.upstream import UpstreamClient, open_upstream
from shadowproxy.model import ErrorKind
from shadowproxy.settings import UpstreamTLS
from shadowproxy.tls import client_context
from tests.support import WAIT_S, eventually

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
HIGH_WATER = 256 * 1024
"""h1's per-connection buffer bound before it stops reading the socket."""


@dataclass
class Upstream:
    """What a scripted server saw: connections accepted and raw requests, in arrival order."""

    accepted: int = 0
    received: list[bytes] = field(default_factory=list)
    server_closed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a connection was closed by the server (its handler ended)."""
    client_closed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a handler waiting for the client's EOF saw it."""

    def methods(self) -> list[bytes]:
        return [request.split(b" ", 1)[0] for request in self.received]


@dataclass
class Peer:
    """One accepted connection, as the scripted server drives it."""

    upstream: Upstream
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    index: int

    async def request(self) -> bytes:
        """Read one whole request (Content-Length or chunked body) and record its raw bytes."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        body = b""
        if b"\r\ntransfer-encoding: chunked\r\n" in head.lower():
            while True:
                line = await self.reader.readuntil(b"\r\n")
                size = int(line, 16)
                body += line + await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length := re.search(rb"\r\ncontent-length: *(\d+)\r\n", head.lower()):
            body = await self.reader.readexactly(int(length[1]))
        self.upstream.received.append(head + body)
        return head + body

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_eof(self) -> None:
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass
        self.upstream.client_closed.set()


Handler = Callable[[Peer], Awaitable[None]]


def new_pool(
    port: int,
    limit: int = 0,
    connect_s: float = WAIT_S,
    read_s: float = WAIT_S,
    tls: ssl.SSLContext | None = None,
) -> Pool:
    return Pool("127.0.0.1", port, tls=tls, limit=limit, connect_timeout_s=connect_s,
                read_timeout_s=read_s)  # fmt: skip


@contextlib.asynccontextmanager
async def serve(
    handler: Handler,
    limit: int = 0,
    connect_s: float = WAIT_S,
    read_s: float = WAIT_S,
    tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,
) -> AsyncIterator[tuple[Upstream, Pool]]:
    """A loopback server running ``handler`` per connection (closed after it), and a pool to it.

    ``tls`` is the server's and the client's context, for an https upstream.
    """
    upstream = Upstream()
    peers: list[tuple[asyncio.Task[object], asyncio.StreamWriter]] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append((cast("asyncio.Task[object]", asyncio.current_task()), writer))
        upstream.accepted += 1
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await handler(Peer(upstream, reader, writer, upstream.accepted - 1))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            upstream.server_closed.set()

    server_tls, client_tls = tls or (None, None)
    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=server_tls)
    pool = new_pool(server.sockets[0].getsockname()[1], limit, connect_s, read_s, client_tls)
    try:
        yield upstream, pool
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()
        for _, writer in peers:
            writer.transport.abort()  # ends handlers still reading or writing
        for result in await asyncio.gather(*(task for task, _ in peers), return_exceptions=True):
            if isinstance(result, Exception):
                raise result


async def answer_all(peer: Peer, answer: bytes) -> None:
    while True:
        await peer.request()
        await peer.send(answer)


def always(answer: bytes) -> Handler:
    """Every request on every connection gets ``answer``; connections stay open."""
    return lambda peer: answer_all(peer, answer)


def once(answer: bytes, *, close: bool = False) -> Handler:
    """Each connection: one request gets ``answer``, then close (or wait for the client's)."""

    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer)
        if not close:
            await peer.until_eof()

    return handler


async def fetch(
    pool: Pool, method: str = "GET", target: str = "/", body: bytes = b""
) -> tuple[Response, bytes]:
    """One request, its body read whole and the connection released."""
    async with await pool.request(method, target, [("Host", "upstream")], body) as response:
        return response, await response.read()


async def stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class TestReuse:
    """Connections are kept for the next request exactly when HTTP allows it."""

    async def test_keep_alive_answers_are_exact(self) -> None:
        """Two GETs share one connection; status, reason, headers in order and body are exact."""
        answer = (
            b"HTTP/1.1 200 All Good\r\nSet-Cookie: a=1\r\nX-Other: y\r\nSet-Cookie: b=2\r\n"
            b"Content-Length: 5\r\n\r\nhello"
        )
        async with serve(always(answer)) as (up, pool):
            for _ in range(2):
                response, body = await fetch(pool)
                assert (response.status, response.reason, body) == (200, "All Good", b"hello")
                assert response.headers == (
                    ("Set-Cookie", "a=1"),
                    ("X-Other", "y"),
                    ("Set-Cookie", "b=2"),
                    ("Content-Length", "5"),
                )
                assert response.content_length == 5
        assert (up.accepted, len(up.received)) == (1, 2)

    async def test_chunked_answer_is_decoded_without_trailers(self) -> None:
        """A chunked body arrives decoded, trailer fields stay out of the headers, no length."""
        answer = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n"
        )
        async with serve(always(answer)) as (up, pool):
            for _ in range(2):
                response, body = await fetch(pool)
                assert body == b"hello world"
                assert response.headers == (("Transfer-Encoding", "chunked"), ("Trailer", "X-Sum"))
                assert response.content_length is None
        assert up.accepted == 1

    @pytest.mark.parametrize("fields", [(("Content-Length", "5"),), ()], ids=["length", "bare"])
    async def test_head_answer_has_no_body_and_keeps_the_connection(
        self, fields: tuple[tuple[str, str], ...]
    ) -> None:
        """A HEAD answer (Content-Length or not) has no body; the next request reuses the link."""
        head = "".join(f"{name}: {value}\r\n" for name, value in fields).encode()

        async def handler(peer: Peer) -> None:
            while True:
                if (await peer.request()).startswith(b"HEAD "):
                    await peer.send(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n")
                else:
                    await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

        async with serve(handler) as (up, pool):
            response, body = await fetch(pool, "HEAD")
            assert (body, response.content_length, response.headers) == (b"", 0, fields)
            assert (await fetch(pool))[1] == b"hello"
        assert (up.accepted, up.methods()) == (1, [b"HEAD", b"GET"])

    @pytest.mark.parametrize("status", [204, 304])
    async def test_no_content_answer_keeps_the_connection(self, status: int) -> None:
        """A 204 or 304 answer has an empty body and its connection is reused."""
        answer = b"HTTP/1.1 %d Whatever\r\nX-A: 1\r\n\r\n" % status
        async with serve(always(answer)) as (up, pool):
            for _ in range(2):
                response, body = await fetch(pool)
                assert (response.status, body, response.content_length) == (status, b"", 0)
        assert (up.accepted, len(up.received)) == (1, 2)

    async def test_http10_body_ends_with_the_connection(self) -> None:
        """An HTTP/1.0 answer without length is read until close; the next request reconnects."""
        answer = b"HTTP/1.0 200 OK\r\nX-Kind: old\r\n\r\nuntil the end"
        async with serve(once(answer, close=True)) as (up, pool):
            for _ in range(2):
                response, body = await fetch(pool)
                assert (body, response.content_length) == (b"until the end", None)
        assert up.accepted == 2

    async def test_connection_close_is_not_reused(self) -> None:
        """An answer saying Connection: close is not followed by another request on that link."""
        answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
        async with serve(always(answer)) as (up, pool):
            assert [(await fetch(pool))[1] for _ in range(2)] == [b"ok", b"ok"]
        assert up.accepted == 2

    async def test_interim_answers_are_skipped(self) -> None:
        """100 Continue and 103 Early Hints are not seen; the final answer has only its headers."""
        answer = (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + OK
        )
        async with serve(always(answer)) as (_, pool):
            response, body = await fetch(pool)
        assert (response.status, response.reason, body) == (200, "OK", b"ok")
        assert response.headers == (("Content-Length", "2"),)

    async def test_pool_close_closes_idle_connections(self) -> None:
        """Closing the pool closes its kept-alive idle connections: the upstream sees EOF."""
        async with serve(once(OK)) as (up, pool):
            await fetch(pool)
            await pool.close()
            async with asyncio.timeout(WAIT_S):
                await up.client_closed.wait()
        assert up.accepted == 1


async def drops_second_request(peer: Peer) -> None:
    """The first connection answers one request, reads the next and closes unanswered."""
    if peer.index > 0:
        await answer_all(peer, OK)
    await peer.request()
    await peer.send(OK)
    await peer.request()


class TestStaleConnection:
    """A kept-alive connection the upstream closed is retried only when that is safe."""

    async def test_closed_idle_connection_then_get_succeeds(self) -> None:
        """The upstream closes after its answer; the next GET still succeeds, on a new link."""
        async with serve(once(OK, close=True)) as (up, pool):
            await fetch(pool)
            await up.server_closed.wait()
            assert (await fetch(pool))[1] == b"ok"
        assert up.accepted == 2

    async def test_get_is_retried_on_a_new_connection(self) -> None:
        """A reused connection closed before any answer byte: the GET is sent again, once."""
        async with serve(drops_second_request) as (up, pool):
            await fetch(pool)
            assert (await fetch(pool))[1] == b"ok"
        assert (up.accepted, up.methods()) == (2, [b"GET"] * 3)

    async def test_post_is_not_retried(self) -> None:
        """A reused connection closed before any answer byte: a POST fails RESET, sent once."""
        async with serve(drops_second_request) as (up, pool):
            await fetch(pool, "POST", body=b"x")
            with pytest.raises(UpstreamError) as error:
                await fetch(pool, "POST", body=b"x")
        assert error.value.kind is ErrorKind.RESET
        assert (up.accepted, up.methods()) == (1, [b"POST"] * 2)


class TestErrors:
    """Each failure is an UpstreamError whose kind says what went wrong."""

    async def test_nothing_listening_is_refused(self, closed_port: int) -> None:
        """Connecting to a port nobody listens on fails REFUSED."""
        pool = new_pool(closed_port)
        with pytest.raises(UpstreamError) as error:
            await fetch(pool)
        await pool.close()
        assert error.value.kind is ErrorKind.REFUSED

    @pytest.mark.parametrize(
        ("handler", "kind"),
        [
            (once(b"", close=True), ErrorKind.RESET),
            (once(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), ErrorKind.OTHER),
            (
                once(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n"),
                ErrorKind.OTHER,
            ),
            (once(b""), ErrorKind.TIMEOUT),
        ],
        ids=["closed-unanswered", "not-http", "head-too-large", "silent"],
    )
    async def test_no_usable_head(self, handler: Handler, kind: ErrorKind) -> None:
        """A fresh connection without a usable answer head fails with its kind, not retried."""
        async with serve(handler, read_s=0.2) as (up, pool):
            with pytest.raises(UpstreamError) as error:
                await pool.request("GET", "/", [])
        assert error.value.kind is kind
        assert (up.accepted, len(up.received)) == (1, 1)

    async def test_cut_body_is_incomplete(self) -> None:
        """A body cut short of its Content-Length makes read() fail INCOMPLETE."""
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd"
        async with serve(once(answer, close=True)) as (up, pool):
            response = await pool.request("GET", "/", [])
            with pytest.raises(UpstreamError) as error:
                async with response:
                    await response.read()
        assert (error.value.kind, response.status, up.accepted) == (ErrorKind.INCOMPLETE, 200, 1)

    async def test_total_bounds_a_body_that_stalls(self) -> None:
        """total_s ends an exchange whose body stalls well within the read timeout."""
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd"
        async with serve(once(answer)) as (_, pool):
            response = await pool.request("GET", "/", [], total_s=0.2)
            with pytest.raises(UpstreamError) as error:
                async with response:
                    await response.read()
        assert (error.value.kind, error.value.detail) == (ErrorKind.TIMEOUT, "deadline passed")

    async def test_a_reused_connection_keeps_each_request_bounded(self) -> None:
        """The connection's timer, armed for a first request bounded at WAIT_S, ends a second
        one that stalls at the second's own, shorter, bound."""

        async def answers_then_stalls(peer: Peer) -> None:
            await peer.request()
            await peer.send(OK)
            await peer.request()
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd")
            await peer.until_eof()

        async with serve(answers_then_stalls) as (up, pool):
            assert (await fetch(pool))[1] == b"ok"
            response = await pool.request("GET", "/", [], total_s=0.2)
            with pytest.raises(UpstreamError) as error:
                async with asyncio.timeout(WAIT_S / 2), response:
                    await response.read()
            assert (error.value.detail, up.accepted) == ("deadline passed", 1)

    async def test_a_cancelled_wait_passes_the_slot_on(self) -> None:
        """limit=1: of two requests waiting, the first is cancelled; the second gets the slot."""
        async with serve(always(OK), limit=1) as (up, pool):
            held = await pool.request("GET", "/", [])
            loop = asyncio.get_running_loop()
            first, second = loop.create_task(fetch(pool)), loop.create_task(fetch(pool))
            await eventually(lambda: len(pool._waiting) == 2)
            first.cancel()
            async with held:
                assert await held.read() == b"ok"
            async with asyncio.timeout(WAIT_S):
                assert (await second)[1] == b"ok"
            assert (await fetch(pool))[1] == b"ok"
        assert (first.cancelled(), up.accepted) == (True, 1)

    async def test_pool_limit_waits_then_times_out(self) -> None:
        """limit=1 with the connection held: a request times out; once released, it is reused."""
        async with serve(always(OK), limit=1, connect_s=0.2) as (up, pool):
            async with await pool.request("GET", "/", []) as held:
                with pytest.raises(UpstreamError) as error:
                    await pool.request("GET", "/", [])
                assert (error.value.kind, error.value.detail) == (
                    ErrorKind.TIMEOUT,
                    "no free connection",
                )
                assert await held.read() == b"ok"
            assert (await fetch(pool))[1] == b"ok"
        assert (up.accepted, len(up.received)) == (1, 2)


BodyFactory = Callable[[], bytes | AsyncIterable[bytes]]


class TestRequestFraming:
    """Requests go out as given, with only the framing the body needs."""

    @pytest.mark.parametrize(
        ("method", "headers", "body", "wire"),
        [
            ("POST", [("X-B", "2"), ("X-A", "1")], lambda: b"hello",
             b"POST /t HTTP/1.1\r\nX-B: 2\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello"),
            ("POST", [], lambda: b"", b"POST /t HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            ("GET", [("Host", "h")], lambda: b"", b"GET /t HTTP/1.1\r\nHost: h\r\n\r\n"),
            ("PUT", [], lambda: stream(b"ab", b"", b"cde"),
             b"PUT /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
            ("PUT", [("Content-Length", "5")], lambda: stream(b"ab", b"cde"),
             b"PUT /t HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde"),
        ],
        ids=["bytes", "empty-post", "empty-get", "stream-chunked", "stream-with-length"],
    )  # fmt: skip
    async def test_wire_bytes(
        self, method: str, headers: list[tuple[str, str]], body: BodyFactory, wire: bytes
    ) -> None:
        """The upstream receives exactly the head in the given order, framing and body bytes."""
        async with serve(always(OK)) as (up, pool):
            async with await pool.request(method, "/t", headers, body()) as response:
                assert await response.read() == b"ok"
        assert up.received == [wire]

    @pytest.mark.parametrize(
        ("target", "headers", "body"),
        [
            ("/", [("X-A", "1\r\nX-Injected: 1")], lambda: b""),
            ("/", [("X-A", "1\rX-Injected: 1")], lambda: b"x"),
            ("/", [("X-A\nX-Injected", "1")], lambda: stream(b"x")),
            ("/ HTTP/1.1\r\nX-Injected: 1\r\nX:", [], lambda: b""),
        ],
        ids=["crlf-in-value", "cr-in-value", "lf-in-name-streamed", "crlf-in-target"],
    )
    async def test_header_with_crlf_is_refused_before_sending(
        self, target: str, headers: list[tuple[str, str]], body: BodyFactory
    ) -> None:
        """A CR or LF in the target or a header raises ValueError; nothing reaches the upstream."""
        async with serve(always(OK)) as (up, pool):
            with pytest.raises(ValueError):
                await pool.request("POST", target, headers, body())
        assert (up.accepted, up.received) == (0, [])


def big_answer(size: int, chunked: bool = False) -> tuple[Handler, bytes]:
    """A handler answering ``size`` random bytes framed by Content-Length (or 64 KiB chunks)."""
    body = random.Random(size).randbytes(size)
    if not chunked:
        return once(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (size, body)), body
    step = 64 * 1024
    parts = b"".join(b"%x\r\n%b\r\n" % (step, body[at : at + step]) for at in range(0, size, step))
    framed = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + parts + b"0\r\n\r\n"
    return once(framed), body


class TestLargeBodies:
    """Large bodies are buffered only up to a bound and arrive intact."""

    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    async def test_chunks_are_read_with_bounded_buffering(self, chunked: bool) -> None:
        """A 4 MiB body: reading pauses past the high-water mark and resumes as chunks() drains.

        Chunked, it is also fed to llhttp a slice per loop turn, which must not
        resume reading out of order."""
        handler, sent = big_answer(4 * 1024 * 1024, chunked)
        async with serve(handler) as (_, pool):
            async with await pool.request("GET", "/", []) as response:
                received = bytearray()
                async with asyncio.timeout(WAIT_S):  # a reader never resumed would hang here
                    while response.buffered <= HIGH_WATER:
                        await response._wait()  # woken by each arrival; nothing consumed yet
                    assert response.buffered <= 2 * HIGH_WATER
                    transport = response._connection._transport
                    assert transport is not None and not transport.is_reading()
                    async for chunk in response.chunks():
                        received += chunk
                        assert response.buffered <= 2 * HIGH_WATER
        assert received == sent

    async def test_read_returns_a_body_larger_than_the_buffer(self) -> None:
        """read() of a 1 MiB framed body returns all of it (reading resumes as read() consumes)."""
        handler, sent = big_answer(1024 * 1024)
        async with serve(handler) as (_, pool):
            async with await pool.request("GET", "/", []) as response:
                async with asyncio.timeout(WAIT_S):
                    assert await response.read() == sent

    async def test_a_framed_body_read_with_its_head_arrives_in_one_piece(self) -> None:
        """Head and a 50 KB Content-Length body in one read reach the caller as one chunk.

        llhttp is fed the head alone, then the body whole: cut at the feed
        budget instead, the body would be copied in two pieces and again to
        join them. The read is handed to the connection directly, so no
        socket decides where it splits."""
        body = bytes(range(256)) * 200
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
        assert len(answer) > FEED_BUDGET

        async def silent(peer: Peer) -> None:
            await peer.request()
            await peer.until_eof()

        async with serve(silent) as (upstream, pool):
            sent = asyncio.get_running_loop().create_task(pool.request("GET", "/", []))
            await eventually(lambda: len(upstream.received) == 1)
            (connection,) = pool._open
            connection.data_received(answer)
            async with await sent as response:
                pieces = [piece async for piece in response.chunks()]
        assert pieces == [body]


class TestTinyChunks:
    """An answer in one-byte chunks costs per byte: few pieces, and the loop keeps turning."""

    async def test_pieces_per_read_and_loop_turns(self) -> None:
        """256 KiB in one-byte chunks: a piece per read, not per chunk; other callbacks run."""
        size = 256 * 1024
        answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        answer += b"1\r\nx\r\n" * size + b"0\r\n\r\n"
        turns = 0

        async def ticker() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)  # counts the loop's turns
                turns += 1

        async with serve(once(answer)) as (_, pool):
            async with await pool.request("GET", "/", []) as response:
                tick = asyncio.get_running_loop().create_task(ticker())
                pieces = [piece async for piece in response.chunks()]
                tick.cancel()
        assert b"".join(pieces) == b"x" * size
        # A slice of FEED_BUDGET wire bytes holds about FEED_BUDGET / 6 chunks.
        assert len(pieces) <= 2 * len(answer) // FEED_BUDGET
        # The loop turned between slices: other clients' callbacks ran meanwhile.
        assert turns >= len(answer) // FEED_BUDGET // 2


class TestTLS:
    """An https upstream: verified against the pool's trust, then plain HTTP/1.1 inside."""

    @staticmethod
    def contexts(ca: trustme.CA, trusted: bool) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server)
        client = ssl.create_default_context()
        if trusted:
            ca.configure_trust(client)
        return server, client

    async def test_answers_and_keep_alive_over_tls(self) -> None:
        """Two GETs to a trusted https upstream share one connection and arrive exact."""
        async with serve(always(OK), tls=self.contexts(trustme.CA(), trusted=True)) as (up, pool):
            assert [(await fetch(pool))[1] for _ in range(2)] == [b"ok", b"ok"]
        assert (up.accepted, len(up.received)) == (1, 2)

    async def test_untrusted_certificate_is_refused(self) -> None:
        """A certificate the pool does not trust fails the connect: refused, nothing sent."""
        async with serve(always(OK), tls=self.contexts(trustme.CA(), trusted=False)) as (up, pool):
            with pytest.raises(UpstreamError) as failure:
                await fetch(pool)
        assert failure.value.kind is ErrorKind.REFUSED
        assert "certificate" in failure.value.detail.lower()
        assert up.received == []

    async def test_private_ca_named_by_ssl_cert_file(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """An upstream signed by a private CA is trusted once SSL_CERT_FILE names its bundle."""
        ca = trustme.CA()
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        server, _ = self.contexts(ca, trusted=False)
        async with serve(always(OK), tls=(server, ssl.create_default_context())) as (up, pool):
            base = f"https://127.0.0.1:{pool.port}"

            def default_trust() -> UpstreamClient:
                # OpenSSL reads SSL_CERT_FILE when the default context loads its trust.
                tls = client_context(UpstreamTLS())
                return open_upstream(
                    "legacy",
                    base,
                    connect_timeout_s=WAIT_S,
                    read_timeout_s=WAIT_S,
                    limit=0,
                    tls=tls,
                )

            system = default_trust()
            monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
            private = default_trust()
            try:
                with pytest.raises(UpstreamError) as failure:
                    await fetch(system.pool)
                _, body = await fetch(private.pool)
            finally:
                await system.aclose()
                await private.aclose()
        assert failure.value.kind is ErrorKind.REFUSED
        assert body == b"ok"
        assert len(up.received) == 1


class TestMemory:
    """Connections are freed by reference counting once closed, not by a later collection."""

    async def test_closed_connections_leave_no_cycles(self) -> None:
        """With the collector off, no connection object outlives its pool's close."""
        gc.collect()
        gc.disable()
        try:
            async with serve(always(OK)) as (up, pool):
                for _ in range(3):
                    await fetch(pool)
            for answer in (b"not http\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ncut"):
                async with serve(once(answer, close=True)) as (_, pool):
                    # Failed answers too: their tracebacks must not pin the connection.
                    with pytest.raises(UpstreamError):
                        await fetch(pool)
            alive = [o for o in gc.get_objects() if isinstance(o, Connection)]
        finally:
            gc.enable()
        assert up.accepted == 1
        assert alive == []
