"""Upstream clients: one ClientSession per backend, and failures turned into values.

Each upstream gets its own session and connection pool, so a candidate that
hangs can never take legacy's connections. Sessions never decompress, never
follow redirects, keep no cookies and add no headers of their own: the
upstream sees what the client sent, and the client gets what legacy sent.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Mapping

import aiohttp
from yarl import URL

from shadowproxy.model import ErrorKind, Headers, Observation

__all__ = [
    "PREAMBLE_ERRORS",
    "Upstream",
    "classify_error",
    "fetch_observation",
    "open_session",
    "raw_headers",
]

# Exceptions that mean "this upstream failed", as opposed to a bug here.
PREAMBLE_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
)

_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def open_session(
    *, connect_timeout_s: float, read_timeout_s: float, limit: int
) -> aiohttp.ClientSession:
    """A session for one upstream: its own pool, no cookies, no added headers."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=300),
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


class Upstream:
    """A backend's base URL and its session."""

    __slots__ = ("base", "host", "name", "session")

    def __init__(self, name: str, base: str, session: aiohttp.ClientSession) -> None:
        self.name = name
        self.base = base.rstrip("/")
        self.host = URL(base).raw_authority
        self.session = session

    def url(self, raw_target: str) -> URL:
        """The upstream URL for a raw request target, byte-identical (no re-encoding)."""
        return URL(self.base + raw_target, encoded=True)


def classify_error(exc: BaseException) -> ErrorKind:
    """Map a client-side exception to the reason recorded as evidence."""
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ErrorKind.INCOMPLETE
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return ErrorKind.TIMEOUT
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, TimeoutError):
            return ErrorKind.TIMEOUT
        return ErrorKind.REFUSED
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ErrorKind.RESET
    if isinstance(exc, aiohttp.ClientOSError | OSError):
        code = getattr(exc, "errno", None)
        if code in {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}:
            return ErrorKind.RESET
        if code == errno.ECONNREFUSED:
            return ErrorKind.REFUSED
    if isinstance(exc, aiohttp.ClientResponseError):
        return ErrorKind.INCOMPLETE
    return ErrorKind.OTHER


def raw_headers(response: aiohttp.ClientResponse) -> Headers:
    """Response headers in wire order, repeated ones kept."""
    return tuple(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in response.raw_headers
    )


def _declared_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("Content-Length")
    return int(value) if value is not None and value.isdigit() else None


def _too_large(
    response: aiohttp.ClientResponse, kept: bytes, size: int, started: float
) -> Observation:
    return Observation(
        status=response.status,
        headers=raw_headers(response),
        body=kept,
        elapsed_s=time.perf_counter() - started,
        body_size=size,
        truncated=True,
        error=ErrorKind.TOO_LARGE,
    )


async def fetch_observation(
    upstream: Upstream,
    method: str,
    raw_target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    max_bytes: int,
    timeout_s: float,
) -> Observation:
    """Send one shadow request and observe the answer; never raises for upstream failures.

    The body is read up to ``max_bytes``; past that the connection is dropped
    (not drained) and the observation is marked truncated.
    """
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            async with upstream.session.request(
                method,
                upstream.url(raw_target),
                headers=headers,
                data=body or None,
                allow_redirects=False,
            ) as response:
                declared = _declared_length(response.headers)
                if declared is not None and declared > max_bytes:
                    # Known to be over the cap: reading any of it would only cost CPU.
                    response.close()
                    return _too_large(response, b"", declared, started)
                received = bytearray()
                while chunk := await response.content.read(max_bytes + 1 - len(received)):
                    received += chunk
                    if len(received) > max_bytes:
                        response.close()
                        return _too_large(
                            response, bytes(received[:max_bytes]), len(received), started
                        )
                return Observation(
                    status=response.status,
                    headers=raw_headers(response),
                    body=bytes(received),
                    elapsed_s=time.perf_counter() - started,
                    body_size=len(received),
                )
    except PREAMBLE_ERRORS as exc:
        return Observation.failed(
            classify_error(exc), time.perf_counter() - started, type(exc).__name__
        )
