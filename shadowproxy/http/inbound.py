"""One client request as the hot path sees it, whichever HTTP server parsed it.

Two servers feed the hot path: the lean one (``shadowproxy.http.server``),
which takes the common requests, and aiohttp's, which takes the connections
the lean one hands over (upgrades, ``Expect``, chunked uploads, anything
malformed). ``Inbound`` is what ``Forwarder`` needs from either: the request's
parts, its body, and a way to answer. The lean server's ``ServerRequest`` is
one; ``shadowproxy.http.handover.AiohttpInbound`` adapts aiohttp's request.

Every string here (target, header names and values, and those of the answer)
holds one character per byte on the wire, decoded as Latin-1, so the bytes a
client sent reach the upstreams unchanged and legacy's reach the client
unchanged, whichever server parsed them.
"""

from __future__ import annotations

import http
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from multidict import MultiMapping

__all__ = [
    "JSON",
    "BodyStream",
    "Inbound",
    "Pairs",
    "RequestBody",
    "answer_error",
    "error_body",
    "origin_target",
    "read_body",
]

Pairs = list[tuple[str, str]]
JSON = "application/json; charset=utf-8"


def error_body(upstream: str, reason: str) -> bytes:
    """The small JSON body the proxy answers with when it cannot relay an answer.

    The one place it is built: ``answer_error`` sends it through an ``Inbound``,
    ``shadowproxy.http.handover.json_error`` as an aiohttp answer.
    """
    return json.dumps({"error": reason, "upstream": upstream}).encode()


def origin_target(target: str) -> str:
    """The path and query of a request target: a ``#fragment`` never leaves the proxy.

    RFC 9112 section 3.2.1 allows none in a request; llhttp accepts one.
    """
    return target.partition("#")[0] if "#" in target else target


class Inbound(Protocol):
    """A client request and its answer.

    The answer is either ``answer`` (head and body in one go) or ``start``,
    any number of ``write`` and ``end``. Writing to a client that has gone
    raises ``ConnectionResetError``.
    """

    @property
    def method(self) -> str: ...
    @property
    def raw_target(self) -> str:
        """The request target exactly as sent (path and query), without a fragment."""
        ...

    @property
    def headers(self) -> MultiMapping[str]:
        """Case-insensitive, repeated fields kept in wire order."""
        ...

    @property
    def remote(self) -> str: ...
    @property
    def scheme(self) -> str: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def has_body(self) -> bool: ...
    @property
    def cookies(self) -> Mapping[str, str]: ...

    async def read(self, limit: int) -> bytes:
        """Up to ``limit`` body bytes; ``b""`` once the body has ended."""
        ...

    def body_chunks(self) -> AsyncIterator[bytes]:
        """The rest of the body as it arrives."""
        ...

    def answer(self, status: int, reason: str, headers: Pairs, body: bytes) -> None:
        """The whole answer; Content-Length is added when ``headers`` lack it."""
        ...

    async def start(self, status: int, reason: str, headers: Pairs) -> None:
        """Send the head of an answer whose body follows through ``write``."""
        ...

    async def write(self, chunk: bytes) -> None: ...
    async def end(self) -> None: ...
    def abort(self) -> None:
        """Drop the client connection, so a cut answer never looks complete."""
        ...


def answer_error(request: Inbound, status: int, upstream: str, reason: str) -> None:
    """Answer ``request`` with ``status`` and the error body naming ``upstream`` and ``reason``."""
    request.answer(
        status,
        http.HTTPStatus(status).phrase,
        [("Content-Type", JSON)],
        error_body(upstream, reason),
    )


@dataclass(frozen=True, slots=True)
class RequestBody:
    """The request body as far as it was buffered."""

    data: bytes
    complete: bool
    """False when the body exceeded the buffering limit; the rest is streamed upstream."""


_NO_BODY = RequestBody(b"", True)


async def read_body(request: Inbound, limit: int) -> RequestBody:
    """Buffer the request body up to ``limit``; beyond it, the rest is left to stream."""
    if not request.has_body:
        return _NO_BODY
    declared = request.content_length
    if declared is not None and declared > limit:
        return RequestBody(b"", False)
    buffered = bytearray()
    while chunk := await request.read(limit + 1 - len(buffered)):
        buffered += chunk
        if len(buffered) > limit:
            return RequestBody(bytes(buffered), False)
    return RequestBody(bytes(buffered), True)


class BodyStream:
    """``prefix`` (what was buffered), then the rest of the body as it arrives.

    An iterator class, not an async generator: mypyc compiles no async generators.
    """

    __slots__ = ("_prefix", "_rest")

    def __init__(self, prefix: bytes, request: Inbound) -> None:
        self._prefix: bytes | None = prefix
        self._rest = request.body_chunks()

    def __aiter__(self) -> BodyStream:
        return self

    async def __anext__(self) -> bytes:
        prefix = self._prefix
        if prefix is not None:
            self._prefix = None
            return prefix
        return await anext(self._rest)
