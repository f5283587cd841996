"""Upstreams: one connection pool per backend, and failures turned into values.

Each upstream gets its own pool (``shadowproxy.http.h1``), so a candidate
that hangs can never take legacy's connections. Requests never decompress,
never follow redirects, keep no cookies and add no headers of their own: the
upstream sees what the client sent, and the client gets what legacy sent.
Every failure of an upstream request becomes an ``Observation`` here
(WebSocket upgrades go to legacy through ``shadowproxy.http.websocket``).
"""

from __future__ import annotations

import errno
import ssl
import time
from urllib.parse import urlsplit

from yarl import URL

from shadowproxy.http.h1 import Pool
from shadowproxy.http.h1_response import Response, UpstreamError
from shadowproxy.model import ErrorKind, Observation

__all__ = [
    "PREAMBLE_ERRORS",
    "UpstreamClient",
    "UpstreamError",
    "classify_error",
    "failed_observation",
    "fetch_observation",
    "observe",
    "open_upstream",
]

# Exceptions that mean "this upstream failed", as opposed to a bug here.
PREAMBLE_ERRORS: tuple[type[BaseException], ...] = (UpstreamError, TimeoutError, OSError)

_DEFAULT_PORTS = {"http": 80, "https": 443}


class UpstreamClient:
    """A backend: its name, its base URL and its connection pool."""

    __slots__ = ("base", "host", "name", "pool", "prefix")

    def __init__(self, name: str, base: str, pool: Pool) -> None:
        self.name = name
        self.base = base.rstrip("/")
        self.host = URL(base).raw_authority
        self.prefix = urlsplit(self.base).path
        """The base URL's path, put before every request target."""
        self.pool = pool

    def target(self, raw_target: str) -> str:
        """The request target sent upstream, byte-identical to the client's (no re-encoding)."""
        return self.prefix + raw_target

    async def aclose(self) -> None:
        """Close the pool's connections."""
        await self.pool.close()


def open_upstream(
    name: str,
    base: str,
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
    limit: int,
    tls: ssl.SSLContext,
) -> UpstreamClient:
    """An upstream with its own pool of at most ``limit`` connections.

    ``tls`` (``shadowproxy.tls.client_context``) is used when ``base`` is https.
    """
    parts = urlsplit(base)
    pool = Pool(
        parts.hostname or "",
        parts.port or _DEFAULT_PORTS[parts.scheme],
        tls=tls if parts.scheme == "https" else None,
        limit=limit,
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
    )
    return UpstreamClient(name, base, pool)


def classify_error(exc: BaseException) -> ErrorKind:
    """Map an exception from an upstream request to the reason recorded as evidence."""
    if isinstance(exc, UpstreamError):
        return exc.kind
    if isinstance(exc, TimeoutError):
        return ErrorKind.TIMEOUT
    if isinstance(exc, OSError):
        code = exc.errno
        if code in {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}:
            return ErrorKind.RESET
        if code == errno.ECONNREFUSED:
            return ErrorKind.REFUSED
    return ErrorKind.OTHER


def failed_observation(exc: BaseException, started: float) -> Observation:
    """The observation of an upstream that failed with ``exc``."""
    return Observation.failed(classify_error(exc), time.perf_counter() - started)


def _too_large(response: Response, kept: bytes, size: int, started: float) -> Observation:
    return Observation(
        status=response.status,
        headers=response.headers,
        body=kept,
        elapsed_s=time.perf_counter() - started,
        body_size=size,
        truncated=True,
        error=ErrorKind.TOO_LARGE,
    )


async def fetch_observation(
    upstream: UpstreamClient,
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
        response = await upstream.pool.request(
            method, upstream.target(raw_target), headers, body, total_s=timeout_s
        )
        async with response:
            return await observe(response, started, max_bytes)
    except PREAMBLE_ERRORS as exc:
        return failed_observation(exc, started)


async def observe(response: Response, started: float, max_bytes: int) -> Observation:
    """Read ``response``'s body up to ``max_bytes`` into an observation.

    Past ``max_bytes`` the rest is not read (the caller drops the connection)
    and the observation is marked truncated. Raises ``UpstreamError`` for a cut body.
    """
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        # Known to be over the cap: reading any of it would only cost CPU.
        return _too_large(response, b"", declared, started)
    if declared is not None:
        data = await response.read()
    else:
        received = bytearray()
        async for chunk in response.chunks():
            received += chunk
            if len(received) > max_bytes:
                kept = bytes(received[:max_bytes])
                return _too_large(response, kept, len(received), started)
        data = bytes(received)
    return Observation(
        status=response.status,
        headers=response.headers,
        body=data,
        elapsed_s=time.perf_counter() - started,
        body_size=len(data),
    )
