"""The shadow path: decide whether to mirror, mirror off the hot path, compare, record.

The hot path calls ``decide`` (cheap, no I/O) and then ``start``, which
spawns one bounded background task and hands back a future for legacy's
observation. The task sends the copy to the candidate (and secondary) at
once, so latencies are comparable, then waits for legacy's observation,
compares and records. Nothing here can delay or fail the client's answer:
a full pool drops the shadow (``queue_full``) instead of waiting.

The secrets of a JSON or form request body are found in the task too, off
the hot path, and join the request's for the evidence (``sinks.secrets``).

When the candidate answered the client (canary, candidate mode), the copy
goes to legacy instead (reverse shadow); the exchange still names each side
by what it is, and its comparison feeds the route's rollback window.

An event stream (``shadowproxy.http.sse``) takes a stream slot besides its
task; its copy is read as a window of events, and the answer the client got
arrives as legacy's window (or a reason it is not compared) when that closes.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from multidict import MultiMapping

from shadowproxy.cutover.ownership import Ownership
from shadowproxy.http.routing import Route
from shadowproxy.http.sse import ClientAnswer, accepts_events, fetch_stream
from shadowproxy.http.upstream import UpstreamClient, fetch_observation
from shadowproxy.model import (
    Exchange,
    Observation,
    Phase,
    RequestFacts,
    SkipReason,
    Upstream,
)
from shadowproxy.settings import IdentitySettings, ShadowSettings, StreamSettings
from shadowproxy.shadow.comparisons import Comparisons
from shadowproxy.shadow.control import LagMonitor, ShadowSwitch
from shadowproxy.shadow.identity import IdentityMap
from shadowproxy.shadow.mirror import EvidenceSink, Mirrors, fetch_copies
from shadowproxy.shadow.streams import StreamSlots
from shadowproxy.shadow.tasks import TaskPool
from shadowproxy.sinks.secrets import SecretFinder

__all__ = ["MIRRORED_METHODS", "SHADOW_REQUEST", "Fetcher", "HttpShadow", "MirrorRequest"]

Fetcher = Callable[[UpstreamClient, list[tuple[str, str]]], Awaitable[Observation | SkipReason]]
"""Observes one upstream, given it and the headers it gets (Host included), or says why not."""

MIRRORED_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Idempotent methods mirrored on every route; others only where a route opts in."""

SHADOW_REQUEST = ("X-Shadow-Request", "1")
"""The header every copy carries (a client's ``X-Shadow-*`` headers never pass)."""


@dataclass(frozen=True, slots=True)
class MirrorRequest:
    """Everything needed to replay one client request to the shadow upstreams."""

    facts: RequestFacts
    route: Route
    raw_target: str
    headers: list[tuple[str, str]]
    """End-to-end request headers without Host, Expect or framing, plus X-Shadow-Request."""
    host: str | None
    """The client's Host, sent unless upstreams get their own."""
    body: bytes
    answered_by: Upstream = Upstream.LEGACY
    """The side answering the client; the copy goes to the other one."""
    window: StreamSettings | None = None
    """The stream window of an event-stream request or a WebSocket session; None for any other."""
    fetcher: Fetcher | None = None
    """How the other side is observed when not by replaying the request (a WebSocket
    session's shadow); it gets no secondary."""

    def __init__(
        self,
        facts: RequestFacts,
        route: Route,
        raw_target: str,
        headers: list[tuple[str, str]],
        host: str | None,
        body: bytes,
        answered_by: Upstream = Upstream.LEGACY,
        window: StreamSettings | None = None,
        fetcher: Fetcher | None = None,
    ) -> None:
        # Written out so mypyc compiles it (shadowproxy.model says why).
        object.__setattr__(self, "facts", facts)
        object.__setattr__(self, "route", route)
        object.__setattr__(self, "raw_target", raw_target)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "answered_by", answered_by)
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "fetcher", fetcher)


class HttpShadow:
    """Owns mirroring for one worker: the gate, the task pool and the comparison."""

    def __init__(
        self,
        *,
        settings: ShadowSettings,
        pool: TaskPool,
        candidate: UpstreamClient,
        secondary: UpstreamClient | None,
        comparisons: Comparisons,
        evidence: EvidenceSink,
        switch: ShadowSwitch,
        lag: LagMonitor,
        legacy: UpstreamClient,
        secrets: SecretFinder,
        own_host: bool = False,
        ownership: Ownership | None = None,
        streams: StreamSlots | None = None,
        identities: IdentityMap | None = None,
    ) -> None:
        self.settings = settings
        self._mirrors = Mirrors(settings, pool, switch, lag, comparisons, evidence)
        self._secrets = secrets
        self._streams = streams or StreamSlots(settings.max_streams)
        self._candidate = candidate
        self._secondary = secondary
        self._own_host = own_host
        self._legacy = legacy
        self._ownership = ownership
        self._ids = identities or IdentityMap(IdentitySettings().max_pairs)

    def decide(
        self, route: Route, method: str, *, body_complete: bool, reverse: bool = False
    ) -> SkipReason | None:
        """Why this request is not mirrored, or None when it should be.

        A write is mirrored only on a route with ``mirror_writes``; on a
        ``dry_run`` route never in ``reverse`` (the candidate answers, the
        copy would go to legacy, which knows no dry-run header).
        """
        if self._mirrors.paused:
            return SkipReason.PAUSED
        if method not in MIRRORED_METHODS and (
            not route.mirror_writes or (reverse and route.dry_run)
        ):
            return SkipReason.METHOD
        if not body_complete:
            return SkipReason.BODY_TOO_LARGE
        return self._mirrors.admit(route.sample_percent)

    def copy_headers(
        self, route: Route, method: str, headers: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """The copy's headers: the request's plus ``X-Shadow-Request: 1``.

        A write on a ``dry_run`` route also carries the dry-run header, exactly
        once and with the configured value: a client's own is dropped, so no
        client can turn a dry run into a commit.
        """
        if not route.dry_run or method in MIRRORED_METHODS:
            return [*headers, SHADOW_REQUEST]
        name = self.settings.dry_run_header
        lower = name.lower()
        kept = [pair for pair in headers if pair[0].lower() != lower]
        return [*kept, SHADOW_REQUEST, (name, self.settings.dry_run_value)]

    def skip(self, route: Route, reason: SkipReason, phase: Phase) -> None:
        """Count a request of ``route`` in ``phase`` that is not mirrored."""
        self._mirrors.skip(route, reason, phase)

    @staticmethod
    def stream_window(
        route: Route, method: str, headers: MultiMapping[str]
    ) -> StreamSettings | None:
        """The window of an event-stream request (a GET that asks for one, or on an SSE route)."""
        if method == "GET" and (route.stream.sse or accepts_events(headers)):
            return route.stream.window
        return None

    def start(self, request: MirrorRequest) -> ClientAnswer | None:
        """Spawn the mirror; returns the future the hot path resolves with legacy's observation.

        Returns None when it was not spawned: the pool is full (counted as
        ``queue_full``), or every stream slot is taken (``streams_full``).
        """
        stream = request.window is not None
        if stream and not self._streams.take():
            self.skip(request.route, SkipReason.STREAMS_FULL, request.facts.phase)
            return None
        started: ClientAnswer | None = self._mirrors.spawn(
            request.route,
            lambda future: self._mirror(request, future),
            name=f"shadow-{request.facts.id}",
            phase=request.facts.phase,
        )
        if started is None and stream:
            self._streams.give()
        return started

    async def _mirror(self, request: MirrorRequest, client_answer: ClientAnswer) -> None:
        try:
            await self._run(request, client_answer)
        finally:
            if request.window is not None:
                self._streams.give()

    async def _run(self, request: MirrorRequest, client_answer: ClientAnswer) -> None:
        reverse = request.answered_by is Upstream.CANDIDATE
        mirrored, secondary, answered = await fetch_copies(
            lambda upstream: self._fetch(upstream, request),
            self._legacy if reverse else self._candidate,
            # A write never goes to the secondary: a legacy instance would apply it twice.
            None
            if request.fetcher is not None or request.facts.method not in MIRRORED_METHODS
            else self._secondary,
            client_answer,
        )
        route = request.route
        if answered is None or isinstance(answered, SkipReason):
            self._mirrors.skip(route, answered or SkipReason.LEGACY_FAILED, request.facts.phase)
            return
        if isinstance(mirrored, SkipReason):
            self._mirrors.skip(route, mirrored)
            return
        legacy, candidate = (mirrored, answered) if reverse else (answered, mirrored)
        second = secondary if isinstance(secondary, Observation) else None
        exchange = Exchange(self._facts(request), legacy, candidate, second, request.answered_by)
        ids = route.identity
        if ids is not None:
            self._ids.learn(ids, legacy, candidate, route.rules.max_decoded_bytes)
        verdict = await self._mirrors.settle(
            exchange,
            route,
            adjust=None if ids is None else functools.partial(self._ids.equate, ids.family),
        )
        if verdict is not None and reverse and self._ownership is not None:
            self._ownership.compared(route.name, verdict, legacy, candidate)

    def _facts(self, request: MirrorRequest) -> RequestFacts:
        """The request's facts, with the secrets of its body added."""
        if not request.body:
            return request.facts
        content_type = next(
            (value for name, value in request.headers if name.lower() == "content-type"), None
        )
        found = self._secrets.in_body(request.body, content_type)
        if not found:
            return request.facts
        return replace(request.facts, secrets=(*request.facts.secrets, *found))

    async def _fetch(
        self, upstream: UpstreamClient, request: MirrorRequest
    ) -> Observation | SkipReason:
        host = upstream.host if self._own_host else request.host
        headers = [*request.headers, ("Host", host)] if host else request.headers
        target, body = request.raw_target, request.body
        ids = request.route.identity
        if ids is not None and upstream is not self._secondary:
            # The copy speaks the other side's ids: legacy's to the candidate, or back.
            target, body = self._ids.rewrite(
                ids, target, body, to_legacy=request.answered_by is Upstream.CANDIDATE
            )
        if request.fetcher is not None:
            return await request.fetcher(upstream, headers)
        if request.window is not None:
            return await fetch_stream(
                upstream,
                target,
                headers,
                window=request.window,
                timeout_s=self.settings.timeout_s,
                max_bytes=self.settings.compare_max_bytes,
            )
        return await fetch_observation(
            upstream,
            request.facts.method,
            target,
            headers,
            body,
            max_bytes=self.settings.compare_max_bytes,
            timeout_s=self.settings.timeout_s,
        )
