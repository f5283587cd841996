"""The hot path: answer every client request from legacy, unchanged, at legacy's speed.

Legacy's status, end-to-end headers and body bytes go to the client as they
arrive; at most ``compare_max_bytes`` is kept aside for comparison. Legacy
failures become 502/504 with a small JSON body; a legacy reset mid-body
aborts the client connection so a cut body never looks complete. The
shadow path is started before legacy is called and told legacy's outcome
afterwards; nothing it does is awaited here.

Cutover (docs/cutover.md): the route's ownership decides per request whether
legacy or the candidate answers; the other side is mirrored. A candidate
that fails before answering (connection error, timeout) is retried on legacy
for idempotent methods with a buffered body; otherwise the client gets the
same 502/504 JSON as for a legacy failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from shadowproxy.cutover.ownership import Ownership
from shadowproxy.cutover.state import sticky_key
from shadowproxy.http.h1 import IDEMPOTENT_METHODS
from shadowproxy.http.h1_response import Response as UpstreamResponse
from shadowproxy.http.headers import NO_BODY_STATUS, request_headers, response_headers
from shadowproxy.http.inbound import Inbound, answer_error
from shadowproxy.http.routing import Route, RouteTable
from shadowproxy.http.shadow import HttpShadow, MirrorRequest
from shadowproxy.http.upstream import (
    PREAMBLE_ERRORS,
    UpstreamClient,
    UpstreamError,
    failed_observation,
)
from shadowproxy.model import ErrorKind, Observation, RequestFacts, SkipReason, Upstream
from shadowproxy.settings import Settings

__all__ = [
    "ONE_WRITE_MAX_BYTES",
    "PROBE_HEADER",
    "Forwarder",
    "RequestSink",
]

log = structlog.get_logger(__name__)

VIA = "1.1 shadowproxy"
_MAX_REQUEST_ID = 128
# Host is set per upstream; Expect requests go to aiohttp's server, which answers it.
_NOT_RELAYED = frozenset({"host", "expect"})
# Legacy's body cut or stalled, or the client gone (ConnectionResetError) while we write to it.
_BODY_ERRORS = (UpstreamError, ConnectionError, TimeoutError)

ONE_WRITE_MAX_BYTES = 64 * 1024
"""Answers with a Content-Length up to this are read whole and sent in one write."""

PROBE_HEADER = "X-Shadow-Probe"
"""A request carrying it gets ``X-Shadow-Answered-By: legacy|candidate`` (used by drills)."""


class RequestSink(Protocol):
    """What the hot path reports (``shadowproxy.sinks.Evidence`` satisfies it)."""

    def on_request(self, route: str, method: str, status: int | None) -> None: ...
    def on_upstream(self, upstream: Upstream, route: str, observation: Observation) -> None: ...


@dataclass(frozen=True, slots=True)
class _Body:
    data: bytes
    complete: bool
    """False when the body exceeded ``mirror_max_body`` and is being streamed."""


_NO_BODY = _Body(b"", True)

# A random prefix per process and a counter: unique without a system call per request.
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def _request_id(request: Inbound) -> str:
    given = request.headers.get("X-Request-Id", "")
    if given and len(given) <= _MAX_REQUEST_ID and given.isprintable():
        return given
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


async def _read_body(request: Inbound, limit: int) -> _Body:
    """Buffer the request body up to ``limit``; beyond it, stream the rest to legacy."""
    if not request.has_body:
        return _NO_BODY
    declared = request.content_length
    if declared is not None and declared > limit:
        return _Body(b"", False)
    buffered = bytearray()
    while chunk := await request.read(limit + 1 - len(buffered)):
        buffered += chunk
        if len(buffered) > limit:
            return _Body(bytes(buffered), False)
    return _Body(bytes(buffered), True)


async def _stream_rest(prefix: bytes, request: Inbound) -> AsyncIterator[bytes]:
    yield prefix
    async for chunk in request.body_chunks():
        yield chunk


class Forwarder:
    """The catch-all request handler for one worker."""

    def __init__(
        self,
        *,
        settings: Settings,
        routes: RouteTable,
        legacy: UpstreamClient,
        shadow: HttpShadow,
        sink: RequestSink,
        candidate: UpstreamClient | None = None,
        ownership: Ownership | None = None,
    ) -> None:
        self.settings = settings
        self.routes = routes
        self._legacy = legacy
        self._shadow = shadow
        self._sink = sink
        self._candidate = candidate
        self._ownership = ownership

    def reconfigure(self, settings: Settings, routes: RouteTable) -> None:
        """Swap routes, sampling and rules (SIGHUP); in-flight requests keep their own."""
        self.settings = settings
        self.routes = routes

    def not_mirrored(self, raw_target: str, reason: SkipReason) -> None:
        """Count a request answered outside ``handle`` (a WebSocket tunnel) as not mirrored."""
        self._shadow.skip(self.routes.resolve(raw_target.partition("?")[0]), reason)

    async def handle(self, request: Inbound) -> None:
        """Answer one client request from legacy and mirror it when allowed."""
        raw_target = request.raw_target
        path, _, query = raw_target.partition("?")
        route = self.routes.resolve(path)
        request_id = _request_id(request)
        # bind/reset rather than bound_contextvars(): same effect without the
        # context-manager generator on every request.
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self._forward(request, route, raw_target, path, query, request_id)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    async def _forward(
        self,
        request: Inbound,
        route: Route,
        raw_target: str,
        path: str,
        query: str,
        request_id: str,
    ) -> None:
        settings = self.settings
        method = request.method
        body = await _read_body(request, settings.shadow.mirror_max_body)
        scheme = request.scheme
        client_host = request.headers.get("Host")
        upstream_headers = request_headers(
            request.headers.items(),
            client_ip=request.remote,
            scheme=scheme,
            host=client_host,
            via=VIA,
            drop=_NOT_RELAYED,
        )
        own_host = settings.upstreams.host_header == "upstream"

        answered_by, mirror = Upstream.LEGACY, True
        if self._ownership is not None and self._candidate is not None:
            ownership = self._ownership
            decision = ownership.decide(
                route.name,
                lambda: sticky_key(
                    ownership.sticky(route.name),
                    request.headers,
                    request.cookies,
                    request.remote,
                ),
            )
            answered_by, mirror = decision.answered_by, decision.mirror
        client_answer: asyncio.Future[Observation | None] | None = None
        skip = (
            self._shadow.decide(route, method, body_complete=body.complete)
            if mirror
            else SkipReason.MODE
        )
        if skip is None:
            client_answer = self._shadow.start(
                MirrorRequest(
                    facts=RequestFacts(
                        id=request_id,
                        method=method,
                        path=path,
                        query=query,
                        route=route.name,
                        domain=route.domain,
                        started_at=time.time(),
                    ),
                    route=route,
                    raw_target=raw_target,
                    headers=[*upstream_headers, ("X-Shadow-Request", "1")],
                    host=client_host,
                    body=body.data,
                    answered_by=answered_by,
                )
            )
        else:
            self._shadow.skip(route, skip)

        def with_host(upstream: UpstreamClient) -> list[tuple[str, str]]:
            host = upstream.host if own_host else client_host
            return [*upstream_headers, ("Host", host)] if host else upstream_headers

        observation: Observation | None = None
        try:
            if answered_by is Upstream.CANDIDATE and self._candidate is not None:
                observation = await self._from_candidate(
                    request, route, method, raw_target, with_host, body
                )
            else:
                observation = await self._relay(
                    request, route, method, raw_target, with_host(self._legacy), body
                )
        finally:
            if client_answer is not None and not client_answer.done():
                client_answer.set_result(observation)

    async def _from_candidate(
        self,
        request: Inbound,
        route: Route,
        method: str,
        raw_target: str,
        with_host: Callable[[UpstreamClient], list[tuple[str, str]]],
        body: _Body,
    ) -> Observation | None:
        """Answer from the candidate; retry on legacy when it fails before answering."""
        assert self._candidate is not None and self._ownership is not None
        retry: Callable[[], Awaitable[Observation | None]] | None = None
        # A failed candidate answer to an idempotent request is retried on legacy.
        if method in IDEMPOTENT_METHODS and body.complete:

            async def retry() -> Observation | None:
                return await self._relay(
                    request, route, method, raw_target, with_host(self._legacy), body
                )

        observation = await self._relay(
            request,
            route,
            method,
            raw_target,
            with_host(self._candidate),
            body,
            upstream=self._candidate,
            retry=retry,
        )
        if observation is not None:
            error = not observation.ok or (observation.status or 0) >= 500
            self._ownership.answered(route.name, error=error)
        return observation

    async def _relay(
        self,
        request: Inbound,
        route: Route,
        method: str,
        raw_target: str,
        headers: list[tuple[str, str]],
        body: _Body,
        *,
        upstream: UpstreamClient | None = None,
        retry: Callable[[], Awaitable[Observation | None]] | None = None,
    ) -> Observation | None:
        """Send to legacy (or ``upstream``) and stream its answer back.

        The observation is None when legacy failed; a failed candidate gives
        its failed observation (the shadow path compares it as an error).
        ``retry`` answers instead when the upstream failed before responding.
        """
        target = upstream or self._legacy
        name = Upstream.CANDIDATE if upstream is not None else Upstream.LEGACY
        started = time.perf_counter()
        data = body.data if body.complete else _stream_rest(body.data, request)
        if not body.complete and request.content_length is not None:
            headers = [*headers, ("Content-Length", str(request.content_length))]
        try:
            # The pool's own timers bound this (connect, then legacy.timeout_s of
            # silence), so no asyncio.timeout per request is needed.
            upstream_response = await target.pool.request(
                method, target.target(raw_target), headers, data
            )
        except PREAMBLE_ERRORS as exc:
            failed = failed_observation(exc, started)
            kind = failed.error
            self._sink.on_upstream(name, route.name, failed)
            kept = failed if name is Upstream.CANDIDATE else None
            if retry is not None:
                log.warning(
                    "candidate failed; retrying on legacy", route=route.name, reason=str(kind)
                )
                await retry()
                return kept
            status = 504 if kind is ErrorKind.TIMEOUT else 502
            self._sink.on_request(route.name, method, status)
            log.warning(f"{name} failed", route=route.name, reason=str(kind), status=status)
            answer_error(request, status, str(name), str(kind))
            return kept

        async with upstream_response:
            return await self._stream_back(request, route, method, upstream_response, started, name)

    async def _stream_back(
        self,
        request: Inbound,
        route: Route,
        method: str,
        upstream: UpstreamResponse,
        started: float,
        answered_by: Upstream = Upstream.LEGACY,
    ) -> Observation | None:
        cap = self.settings.shadow.compare_max_bytes
        headers = upstream.headers
        status = upstream.status
        relayed = response_headers(headers, VIA)
        if PROBE_HEADER in request.headers:
            relayed.append(("X-Shadow-Answered-By", str(answered_by)))
        self._sink.on_request(route.name, method, status)
        has_body = method != "HEAD" and status not in NO_BODY_STATUS
        declared = upstream.content_length if has_body else None
        if declared is not None and declared <= ONE_WRITE_MAX_BYTES:
            # Small and framed: read it whole and answer with one write (head and
            # body together) instead of a write per header block and chunk.
            try:
                data = await upstream.read()
            except _BODY_ERRORS as exc:
                with contextlib.suppress(*_BODY_ERRORS):
                    # The head goes out first so the client sees a cut body, as when streaming.
                    await request.start(status, upstream.reason, relayed)
                return self._failed_mid_body(request, route, started, answered_by, exc)
            request.answer(status, upstream.reason, relayed, data)
            observation = Observation(
                status=status,
                headers=headers,
                body=data[:cap],
                elapsed_s=time.perf_counter() - started,
                body_size=len(data),
                truncated=len(data) > cap,
            )
            self._sink.on_upstream(answered_by, route.name, observation)
            return observation
        await request.start(status, upstream.reason, relayed)
        kept = bytearray()
        size = 0
        try:
            if has_body:
                async for chunk in upstream.chunks():
                    size += len(chunk)
                    if len(kept) <= cap:
                        kept += chunk[: cap + 1 - len(kept)]
                    await request.write(chunk)
            await request.end()
        except _BODY_ERRORS as exc:
            return self._failed_mid_body(request, route, started, answered_by, exc)
        truncated = len(kept) > cap
        observation = Observation(
            status=status,
            headers=headers,
            body=bytes(kept[:cap]),
            elapsed_s=time.perf_counter() - started,
            body_size=size,
            truncated=truncated,
        )
        self._sink.on_upstream(answered_by, route.name, observation)
        return observation

    def _failed_mid_body(
        self,
        request: Inbound,
        route: Route,
        started: float,
        answered_by: Upstream,
        exc: BaseException,
    ) -> Observation | None:
        """Record an answer cut after its head and abort the client connection."""
        if isinstance(exc, ConnectionResetError):
            # The client went away; legacy is fine, there is just nobody to answer.
            log.info("client disconnected", route=route.name)
            return None
        failed = failed_observation(exc, started)
        kind = failed.error
        self._sink.on_upstream(answered_by, route.name, failed)
        log.warning(f"{answered_by} failed mid-body; aborting client connection", reason=str(kind))
        request.abort()
        return failed if answered_by is Upstream.CANDIDATE else None
