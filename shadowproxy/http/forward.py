"""The hot path: answer every client request from legacy, unchanged, at legacy's speed.

``Forwarder.handle`` tells the whole run of one request, in order:

1. name it (a fresh id of the proxy's own; a client's ``X-Request-Id`` is kept
   apart, as ``client_request_id``), find its secrets (``sinks.secrets``) and
   resolve its route from the path with them masked; the id and the secrets
   are bound to its log lines, the secrets to be scrubbed;
2. buffer its body up to ``shadow.mirror_max_body`` and build the upstream headers;
3. ask the route's ownership who answers (docs/cutover.md: legacy, or the
   candidate in canary and candidate mode), whether the other side gets a copy
   (never on a route with ``mirror: false``) and the phase the evidence is
   filed under;
4. start the mirror (``HttpShadow.start``), or count why not;
5. answer from the chosen upstream (``Relay.send``); a candidate that fails
   before answering is retried on legacy (counted) when the route's
   ``fallback`` is on, for idempotent methods with a buffered body;
6. hand the answer the client got to the mirror, which compares off the hot path
   (for an event stream, the relay hands over its window as soon as it closes).

Nothing the shadow path does is awaited here.

A WebSocket upgrade takes steps 1 to 4 in ``Forwarder.upgrade`` (the same
route, owner and forwarding headers as any request); the tunnel,
``shadowproxy.http.websocket``, opens and relays it.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shadowproxy.cutover.canary import Decision, sticky_key
from shadowproxy.cutover.ownership import Ownership
from shadowproxy.http.h1 import IDEMPOTENT_METHODS
from shadowproxy.http.headers import VIA, Pairs, request_headers
from shadowproxy.http.inbound import Inbound, RequestBody, read_body
from shadowproxy.http.relay import Relay, RequestSink, Watch
from shadowproxy.http.routing import Route, RouteTable, resolve_request
from shadowproxy.http.shadow import SHADOW_REQUEST, Fetcher, HttpShadow, MirrorRequest
from shadowproxy.http.sse import ClientAnswer
from shadowproxy.http.upstream import UpstreamClient
from shadowproxy.model import (
    SHADOW_PHASE,
    Observation,
    Phase,
    RequestFacts,
    SkipReason,
    Upstream,
)
from shadowproxy.settings import Settings
from shadowproxy.sinks.binding import bind_request, unbind_request
from shadowproxy.sinks.capture import Capture
from shadowproxy.sinks.secrets import SecretFinder

__all__ = ["Forwarder", "Upgrade"]

# Host is set per upstream; Expect requests go to aiohttp's server, which answers it.
_NOT_RELAYED = frozenset({"host", "expect"})

_NOT_DECIDED = Decision(Upstream.LEGACY, True, SHADOW_PHASE)
"""Without cutover control (no candidate pool): legacy answers, the candidate is mirrored."""

# A random prefix per process and a counter: unique without a system call per request.
# Kept as one number with a leading 1 bit, so hex() (no format spec to parse per
# request) gives the 16 digits after "0x1".
_ID_BASE = (1 << 64) | int.from_bytes(os.urandom(4), "big") << 32
_ID_COUNTER = itertools.count(1)


# The WebSocket handshake's own headers: the tunnel's client sets them for the upstream.
_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    }
)


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A WebSocket upgrade as the hot path decided it; the tunnel opens it."""

    facts: RequestFacts
    route: Route
    raw_target: str
    answered_by: Upstream
    """Legacy, or the candidate in canary and candidate modes (retried on legacy if it fails)."""
    headers: list[tuple[str, str]]
    """End-to-end headers plus X-Forwarded-* and Via, without Host and the handshake's own."""
    host: str | None
    """The Host every upstream gets; None: each its own (``upstreams.host_header: upstream``)."""
    shadow: bool
    """The route shadows WebSockets and this session was admitted to the shadow path."""


def _new_id() -> str:
    """A fresh evidence id: the client never chooses it, so ids never repeat."""
    return hex(_ID_BASE + next(_ID_COUNTER))[3:]


def _facts(
    request: Inbound,
    request_id: str,
    path: str,
    query: str,
    route: Route,
    secrets: tuple[str, ...],
    phase: Phase,
) -> RequestFacts:
    """What the evidence keeps of a client request (a WebSocket upgrade's too)."""
    return RequestFacts(
        id=request_id,
        method=request.method,
        path=path,
        query=query,
        route=route.name,
        domain=route.domain,
        started_at=time.time(),
        client_request_id=request.headers.get("X-Request-Id"),
        secrets=secrets,
        phase=phase,
    )


def _relayed(request: Inbound, host: str | None, drop: frozenset[str]) -> Pairs:
    """The client's headers as every upstream gets them (X-Forwarded-*, Via, none of ``drop``)."""
    return request_headers(
        request.headers.items(),
        client_ip=request.remote,
        scheme=request.scheme,
        host=host,
        via=VIA,
        drop=drop,
    )


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
        secrets: SecretFinder,
        candidate: UpstreamClient | None = None,
        ownership: Ownership | None = None,
        capture: Capture | None = None,
    ) -> None:
        self.settings = settings
        self._capture = capture
        self.routes = routes
        self._legacy = legacy
        self._shadow = shadow
        self._secrets = secrets
        self._candidate = candidate
        self._ownership = ownership
        self._sink = sink
        # The admin token is fixed at start (a reload keeps it), as is the probe's.
        self._relay = Relay(sink, settings.shadow.compare_max_bytes, settings.admin.token_bytes)
        # Fixed at start (a reload keeps the upstreams): each upstream gets its own Host.
        upstreams = settings.upstreams
        self._own_host = upstreams is not None and upstreams.host_header == "upstream"

    def reconfigure(self, settings: Settings, routes: RouteTable) -> None:
        """Swap routes, sampling and rules (SIGHUP); in-flight requests keep their own."""
        self.settings = settings
        self.routes = routes

    def upgrade(self, request: Inbound) -> Upgrade:
        """Who answers a WebSocket upgrade, with which headers, and whether it is shadowed.

        The same rules as any request: the route's owner (a sticky canary
        included), X-Forwarded-For appended, X-Forwarded-Proto and Via set by
        the proxy, the client's Host (or each upstream's own). A session is
        shadowed only on a route with ``stream.websocket: shadow`` whose mode
        mirrors, past the kill switch, sampling and load shedding; any other
        is counted as not mirrored (``upgrade``, or ``mode``).
        """
        raw_target = request.raw_target
        path, _, query = raw_target.partition("?")
        route, secrets = resolve_request(
            self.routes, self._secrets, request.method, path, query, request.headers.items()
        )
        decision = self._who_answers(route, request)
        client_host = request.headers.get("Host")
        headers = _relayed(request, client_host, _NOT_RELAYED | _HANDSHAKE)
        skip = _not_mirrored(route, decision)
        if skip is None:
            skip = SkipReason.UPGRADE
            if route.stream.websocket == "shadow":
                skip = self._shadow.decide(route, "GET", body_complete=True)
        if skip is not None:
            self._shadow.skip(route, skip, decision.phase)
        facts = _facts(request, _new_id(), path, query, route, secrets, decision.phase)
        own_host = self._own_host
        return Upgrade(
            facts=facts,
            route=route,
            raw_target=raw_target,
            answered_by=decision.answered_by,
            headers=headers,
            host=None if own_host else client_host,
            shadow=skip is None,
        )

    def shadow_upgrade(self, upgrade: Upgrade, fetch: Fetcher) -> ClientAnswer | None:
        """Start a WebSocket session's shadow; ``fetch`` opens and reads the other side.

        Returns the future the tunnel resolves with the answering side's
        window, or None when no stream slot or task was free (counted).
        """
        return self._shadow.start(
            MirrorRequest(
                facts=upgrade.facts,
                route=upgrade.route,
                raw_target=upgrade.raw_target,
                headers=[*upgrade.headers, SHADOW_REQUEST],
                host=upgrade.host,
                body=b"",
                answered_by=upgrade.answered_by,
                window=upgrade.route.stream.window,
                fetcher=fetch,
            )
        )

    def upgraded(self, upgrade: Upgrade, *, failed: bool) -> None:
        """The candidate took or failed an upgrade it was to answer (its rollback window)."""
        if upgrade.answered_by is Upstream.CANDIDATE and self._ownership is not None:
            self._ownership.answered(upgrade.route.name, error=failed)

    async def handle(self, request: Inbound) -> None:
        """Answer one client request from legacy (or the candidate) and mirror it when allowed."""
        raw_target = request.raw_target
        path, _, query = raw_target.partition("?")
        route, secrets = resolve_request(
            self.routes, self._secrets, request.method, path, query, request.headers.items()
        )
        request_id = _new_id()
        # bind/unbind rather than a context manager: no generator on every request.
        binding = bind_request(request_id, secrets)
        try:
            await self._forward(request, route, raw_target, path, query, request_id, secrets)
        finally:
            unbind_request(binding)

    async def _forward(
        self,
        request: Inbound,
        route: Route,
        raw_target: str,
        path: str,
        query: str,
        request_id: str,
        secrets: tuple[str, ...],
    ) -> None:
        settings = self.settings
        body = await read_body(request, settings.shadow.mirror_max_body)
        if self._capture is not None and route.capture.percent > 0.0 and route.mirror:
            self._capture_request(request, route, raw_target, body, request_id)
        client_host = request.headers.get("Host")
        headers = _relayed(request, client_host, _NOT_RELAYED)
        decision = self._who_answers(route, request)
        answered_by, phase = decision.answered_by, decision.phase
        client_answer: ClientAnswer | None = None
        window = None
        skip = _not_mirrored(route, decision) or self._shadow.decide(
            route,
            request.method,
            body_complete=body.complete,
            reverse=answered_by is Upstream.CANDIDATE,
        )
        if skip is None:
            window = self._shadow.stream_window(route, request.method, request.headers)
            client_answer = self._shadow.start(
                MirrorRequest(
                    facts=_facts(request, request_id, path, query, route, secrets, phase),
                    route=route,
                    raw_target=raw_target,
                    headers=self._shadow.copy_headers(route, request.method, headers),
                    host=client_host,
                    body=body.data,
                    answered_by=answered_by,
                    window=window,
                )
            )
        else:
            self._shadow.skip(route, skip, phase)
        watch = None if client_answer is None else Watch(client_answer, window)

        own_host = self._own_host

        def with_host(upstream: UpstreamClient) -> list[tuple[str, str]]:
            host = upstream.host if own_host else client_host
            return [*headers, ("Host", host)] if host else headers

        observation: Observation | None = None
        try:
            if answered_by is Upstream.CANDIDATE and self._candidate is not None:
                observation = await self._from_candidate(
                    request, route, raw_target, with_host, body, watch
                )
            else:
                observation = await self._relay.send(
                    request,
                    route,
                    raw_target,
                    with_host(self._legacy),
                    body,
                    self._legacy,
                    Upstream.LEGACY,
                    watch=watch,
                )
        finally:
            if client_answer is not None and not client_answer.done():
                client_answer.set_result(observation)

    def _capture_request(
        self, request: Inbound, route: Route, raw_target: str, body: RequestBody, request_id: str
    ) -> None:
        """Offer the request to the capture (docs/replay.md); event streams are not captured."""
        assert self._capture is not None
        if self._shadow.stream_window(route, request.method, request.headers) is not None:
            return
        self._capture.offer(
            route.capture,
            id=request_id,
            route=route.name,
            domain=route.domain,
            method=request.method,
            target=raw_target,
            headers=request.headers.items(),
            body=body.data if body.complete else None,
        )

    def _who_answers(self, route: Route, request: Inbound) -> Decision:
        """Who answers this request, whether the other side gets a copy, and its phase."""
        if self._ownership is None or self._candidate is None:
            return _NOT_DECIDED
        return self._ownership.decide(
            route.name,
            lambda sticky: sticky_key(sticky, request.headers, request.cookies, request.remote),
        )

    async def _from_candidate(
        self,
        request: Inbound,
        route: Route,
        raw_target: str,
        with_host: Callable[[UpstreamClient], list[tuple[str, str]]],
        body: RequestBody,
        watch: Watch | None,
    ) -> Observation | None:
        """Answer from the candidate; retry on legacy when it fails before answering.

        The retry (fallback) needs the route's ``fallback``, an idempotent method
        and a buffered body; it is counted per route.
        """
        assert self._candidate is not None and self._ownership is not None
        retry: Callable[[], Awaitable[Observation | None]] | None = None
        if route.fallback and request.method in IDEMPOTENT_METHODS and body.complete:

            async def retry() -> Observation | None:
                self._sink.on_fallback(route.name)
                return await self._relay.send(
                    request,
                    route,
                    raw_target,
                    with_host(self._legacy),
                    body,
                    self._legacy,
                    Upstream.LEGACY,
                )

        observation = await self._relay.send(
            request,
            route,
            raw_target,
            with_host(self._candidate),
            body,
            self._candidate,
            Upstream.CANDIDATE,
            retry,
            watch,
        )
        if observation is not None:
            error = not observation.ok or (observation.status or 0) >= 500
            self._ownership.answered(route.name, error=error)
        return observation


def _not_mirrored(route: Route, decision: Decision) -> SkipReason | None:
    """Why the route or its mode keeps this request from being mirrored at all."""
    if not route.mirror:
        return SkipReason.MIRROR_OFF
    return None if decision.mirror else SkipReason.MODE
