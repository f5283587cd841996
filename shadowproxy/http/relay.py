"""Relaying one answer: send the request upstream, stream the answer to the client, keep a copy.

The answering upstream's status, end-to-end headers and body bytes go to the
client as they arrive; at most ``keep_bytes`` (``shadow.compare_max_bytes``)
is kept aside for the comparison. An answer framed by a Content-Length up to
``ONE_WRITE_MAX_BYTES`` is read whole and sent, head and body, in one write.
A failure before the answer becomes 502 (504 for a timeout) with the proxy's
error JSON, or the caller's ``retry``; a body cut after its head aborts the
client connection, so a cut body never looks complete. Every outcome is
reported to the ``RequestSink`` and returned as an ``Observation``.

When a mirror waits for the answer (``Watch``) and the answer is an event
stream, each chunk, once written to the client, also goes to a
``shadowproxy.http.sse.LegacyTap`` until the stream's window closes.
"""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

import structlog

from shadowproxy.http.h1_response import REMEMBERED_HEAD_BYTES
from shadowproxy.http.h1_response import Response as UpstreamResponse
from shadowproxy.http.headers import NO_BODY_STATUS, VIA, Pairs, response_headers
from shadowproxy.http.inbound import BodyStream, Inbound, RequestBody, answer_error
from shadowproxy.http.routing import Route
from shadowproxy.http.sse import ClientAnswer, LegacyTap, tap_legacy
from shadowproxy.http.upstream import (
    PREAMBLE_ERRORS,
    UpstreamClient,
    UpstreamError,
    failed_observation,
)
from shadowproxy.memo import ByIdentity
from shadowproxy.model import ErrorKind, Headers, Observation, Upstream, WindowEnd
from shadowproxy.settings import StreamSettings

__all__ = ["ONE_WRITE_MAX_BYTES", "PROBE_HEADER", "Relay", "RequestSink", "Watch"]

log = structlog.get_logger(__name__)

# The answer's body cut or stalled, or the client gone (ConnectionResetError) while we write to it.
_BODY_ERRORS = (UpstreamError, ConnectionError, TimeoutError)

ONE_WRITE_MAX_BYTES: Final = 64 * 1024
"""Answers with a Content-Length up to this are read whole and sent in one write."""

PROBE_HEADER: Final = "X-Shadow-Probe"
"""A request carrying the admin token in it gets ``X-Shadow-Answered-By: legacy|candidate``
(used by drills); without the token, or with none configured, it gets nothing."""


_RELAYED_HEADS: Final = 64
"""Upstream heads whose relayed headers are kept; when that many are held it starts over."""


def _relayed_with_body(headers: Headers) -> Pairs:
    """``headers`` as relayed on an answer whose status allows a body."""
    return response_headers(headers, VIA, 200)


class RequestSink(Protocol):
    """What the hot path reports (``shadowproxy.sinks.Evidence`` satisfies it)."""

    def on_request(self, route: str, method: str, status: int | None) -> None: ...
    def on_upstream(self, upstream: Upstream, route: str, observation: Observation) -> None: ...
    def on_fallback(self, route: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Watch:
    """A mirror waiting for this answer: its future, and the stream window if it is a stream."""

    client_answer: ClientAnswer
    window: StreamSettings | None

    def __init__(self, client_answer: ClientAnswer, window: StreamSettings | None) -> None:
        # Written out so mypyc compiles it (shadowproxy.model says why).
        object.__setattr__(self, "client_answer", client_answer)
        object.__setattr__(self, "window", window)


class Relay:
    """Sends one request to the upstream that answers and relays the answer to the client."""

    __slots__ = ("_keep_bytes", "_probe_token", "_relayed", "_sink")

    def __init__(self, sink: RequestSink, keep_bytes: int, probe_token: bytes | None) -> None:
        self._sink = sink
        self._keep_bytes = keep_bytes
        self._probe_token = probe_token
        self._relayed: ByIdentity[Headers, Pairs] = ByIdentity(_RELAYED_HEADS)
        """The relayed headers of a head ``parse_head`` remembers (the same tuple each
        time it is answered), read only: up to 64 heads of at most 2 KiB."""

    async def send(
        self,
        request: Inbound,
        route: Route,
        raw_target: str,
        headers: list[tuple[str, str]],
        body: RequestBody,
        target: UpstreamClient,
        name: Upstream,
        retry: Callable[[], Awaitable[Observation | None]] | None = None,
        watch: Watch | None = None,
    ) -> Observation | None:
        """Send to ``target`` (``name``: legacy or the candidate) and stream its answer back.

        The observation is None when legacy failed; a failed candidate gives
        its failed observation (the shadow path compares it as an error).
        ``retry`` answers instead when the upstream failed before responding.
        ``watch`` is the mirror waiting for the answer, tapped if it is an event stream.
        """
        method = request.method
        started = time.perf_counter()
        data = body.data if body.complete else BodyStream(body.data, request)
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
            tap = None
            if watch is not None:
                tap = tap_legacy(
                    watch.client_answer,
                    watch.window,
                    upstream_response.status,
                    upstream_response.headers,
                    started,
                )
            return await self._stream_back(
                request, route, method, upstream_response, started, name, tap
            )

    async def _stream_back(
        self,
        request: Inbound,
        route: Route,
        method: str,
        upstream: UpstreamResponse,
        started: float,
        answered_by: Upstream,
        tap: LegacyTap | None,
    ) -> Observation | None:
        cap = self._keep_bytes
        headers = upstream.headers
        status = upstream.status
        if upstream.head_size <= REMEMBERED_HEAD_BYTES and status not in NO_BODY_STATUS:
            # The status only matters for the bodiless two.
            relayed = self._relayed.get(headers, _relayed_with_body)
        else:
            relayed = response_headers(headers, VIA, status)
        probe = request.headers.get(PROBE_HEADER)
        if probe is not None and self._probe_allowed(probe):
            relayed = [*relayed, ("X-Shadow-Answered-By", str(answered_by))]
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
                return self._failed_mid_body(request, route, started, answered_by, exc, tap)
            request.answer(status, upstream.reason, relayed, data)
            if tap is not None:
                tap.feed(data)
                tap.end()
            observation = Observation(
                status=status,
                headers=headers,
                # A slice, even of the whole, copies the body in the compiled build.
                body=data if len(data) <= cap else data[:cap],
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
                    # After the write: the client's bytes never wait for the parse.
                    if tap is not None and not tap.feed(chunk):
                        tap = None
            await request.end()
        except _BODY_ERRORS as exc:
            return self._failed_mid_body(request, route, started, answered_by, exc, tap)
        if tap is not None:
            tap.end()
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

    def _probe_allowed(self, given: str) -> bool:
        """True when ``given`` is the admin token (compared as bytes, in constant time)."""
        token = self._probe_token
        # A header value holds one character per byte (Latin-1).
        return token is not None and hmac.compare_digest(given.encode("latin-1", "replace"), token)

    def _failed_mid_body(
        self,
        request: Inbound,
        route: Route,
        started: float,
        answered_by: Upstream,
        exc: BaseException,
        tap: LegacyTap | None,
    ) -> Observation | None:
        """Record an answer cut after its head and abort the client connection."""
        if isinstance(exc, ConnectionResetError):
            # The client went away; legacy is fine, there is just nobody to answer.
            log.info("client disconnected", route=route.name)
            if tap is not None:
                tap.end(WindowEnd.CLIENT)
            return None
        if tap is not None:
            tap.failed()
        failed = failed_observation(exc, started)
        kind = failed.error
        self._sink.on_upstream(answered_by, route.name, failed)
        log.warning(f"{answered_by} failed mid-body; aborting client connection", reason=str(kind))
        request.abort()
        return failed if answered_by is Upstream.CANDIDATE else None
