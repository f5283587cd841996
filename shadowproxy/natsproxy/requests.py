"""Request/reply on NATS: serve a subject in the queue group, answer from legacy, mirror.

``NatsRequests.arrived`` takes each request the subscription delivers; at
``nats.max_inflight`` requests in flight it waits, so further requests wait
in the subscription's pending messages (``nats.max_pending``; beyond it
nats-py drops them, counted). ``_answer`` tells the run of one request:

1. name it (a fresh evidence id; the requester's ``Nats-Msg-Id`` or
   ``X-Request-Id`` header is kept apart), find the secrets of its headers;
2. start the mirror, or count why not (a request may write, so a subject is
   mirrored only with ``mirror: true``);
3. forward it to legacy's subject on legacy's connection, with its
   headers, and publish legacy's reply (payload byte for byte, headers) to
   the requester's reply subject at once: the requester waits for legacy
   and nothing else; without a reply from legacy the requester gets none,
   as it would have from legacy;
4. hand legacy's reply to the mirror, which compares off the hot path.

The copy goes to the candidate's subject on the candidate's connection
(and the secondary's on legacy's), with ``X-Shadow-Request: 1``, waiting at
most ``shadow.timeout_s``; whatever the candidate does (no responders,
silence, a flood, nonsense) ends as its observation in the mirror task.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from shadowproxy.compare.rules import CompareRules
from shadowproxy.model import Exchange, Observation, RequestFacts, SkipReason, Upstream
from shadowproxy.natsproxy.messages import failure, observed
from shadowproxy.natsproxy.sink import NatsSink
from shadowproxy.settings import NatsRequestSpec, ShadowSettings
from shadowproxy.shadow.mirror import Mirrors, fetch_copies
from shadowproxy.shadow.tasks import TaskPool
from shadowproxy.sinks.secrets import SecretFinder

__all__ = ["REQUEST", "NatsRequests", "NatsRoute", "new_id"]

log = structlog.get_logger(__name__)

REQUEST = "REQUEST"
"""The method recorded for a NATS request (``EVENT`` for events)."""
SHADOW_MARK = ("X-Shadow-Request", "1")
"""The header a mirrored request carries, as HTTP's ``X-Shadow-Request`` does."""
_ID_HEADERS = ("Nats-Msg-Id", "X-Request-Id")

_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def new_id() -> str:
    """A fresh evidence id of the proxy's own."""
    return f"n{_ID_PREFIX}{next(_ID_COUNTER):08x}"


@dataclass(frozen=True, slots=True)
class NatsRoute:
    """A subject as the shadow runtime files it: its route name, domain and rules."""

    name: str
    domain: str
    rules: CompareRules


class NatsRequests:
    """One request subject of one process: served, forwarded, mirrored."""

    def __init__(
        self,
        spec: NatsRequestSpec,
        *,
        requesters: Client,
        legacy: Client,
        candidate: Callable[[], Client | None],
        mirrors: Mirrors,
        sink: NatsSink,
        secrets: SecretFinder,
        shadow: ShadowSettings,
        hot: TaskPool,
        inflight: asyncio.Semaphore,
    ) -> None:
        self.spec = spec
        self.route = NatsRoute(spec.subject, spec.domain, spec.rules)
        self._requesters = requesters
        self._legacy = legacy
        self._candidate = candidate
        self._mirrors = mirrors
        self._sink = sink
        self._secrets = secrets
        self._shadow = shadow
        self._hot = hot
        self._inflight = inflight

    async def arrived(self, msg: Msg) -> None:
        """The subscription's callback: answer ``msg`` in a task of its own, bounded."""
        await self._inflight.acquire()
        if not self._hot.spawn(self._answer(msg), name=f"nats-request-{self.spec.subject}"):
            self._inflight.release()  # stopping: the pool takes nothing new

    async def _answer(self, msg: Msg) -> None:
        try:
            await self._run(msg)
        except Exception as exc:  # a bug here must not stop the subscription's other requests
            log.error("nats request failed", route=self.spec.subject, error=type(exc).__name__)
        finally:
            self._inflight.release()

    async def _run(self, msg: Msg) -> None:
        spec = self.spec
        headers = dict(msg.headers or {})
        client_answer: asyncio.Future[Observation | None] | None = None
        skip = self._decide(msg)
        if skip is None:
            client_answer = self._mirrors.spawn(
                self.route,
                lambda future: self._mirror(self._facts(headers), msg.data, headers, future),
                name=f"nats-shadow-{spec.subject}",
            )
        else:
            self._mirrors.skip(self.route, skip)
        answered: Observation | None = None
        try:
            answered = observation = await self._forward(msg, headers)
        finally:
            if client_answer is not None and not client_answer.done():
                client_answer.set_result(answered)
        self._sink.on_upstream(Upstream.LEGACY, spec.subject, observation)
        self._sink.on_request(spec.subject, REQUEST, 200 if observation.ok else None)

    def _decide(self, msg: Msg) -> SkipReason | None:
        """Why this request is not mirrored, or None when it should be."""
        if self._mirrors.paused:
            return SkipReason.PAUSED
        if not self.spec.mirror or not msg.reply:
            return SkipReason.METHOD
        if len(msg.data) > self._shadow.mirror_max_body:
            return SkipReason.BODY_TOO_LARGE
        return self._mirrors.admit(self.spec.sample_percent)

    def _facts(self, headers: dict[str, str]) -> RequestFacts:
        spec = self.spec
        return RequestFacts(
            id=new_id(),
            method=REQUEST,
            path=spec.subject,
            query="",
            route=spec.subject,
            domain=spec.domain,
            started_at=time.time(),
            client_request_id=next((headers[h] for h in _ID_HEADERS if h in headers), None),
            secrets=self._secrets.in_request(headers.items(), ""),
        )

    async def _forward(self, msg: Msg, headers: dict[str, str]) -> Observation:
        """Legacy's reply, published to the requester as it came; a failure as a value."""
        spec = self.spec
        started = time.perf_counter()
        cap = self._shadow.compare_max_bytes
        try:
            if not msg.reply:
                await self._legacy.publish(spec.legacy, msg.data, headers=headers or None)
                return Observation(status=200, elapsed_s=time.perf_counter() - started)
            reply = await self._legacy.request(
                spec.legacy, msg.data, timeout=spec.timeout_s, headers=headers or None
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            log.warning("legacy failed", route=spec.subject, reason=type(exc).__name__)
            return failure(exc, started)
        elapsed = time.perf_counter() - started
        try:
            await self._requesters.publish(msg.reply, reply.data, headers=reply.headers)
        except (nats.errors.Error, OSError) as exc:
            log.warning("reply not delivered", route=spec.subject, reason=type(exc).__name__)
        return observed(reply.data, reply.headers, elapsed, cap=cap)

    async def _mirror(
        self,
        facts: RequestFacts,
        data: bytes,
        headers: dict[str, str],
        client_answer: asyncio.Future[Observation | None],
    ) -> None:
        spec = self.spec
        marked = {**headers, SHADOW_MARK[0]: SHADOW_MARK[1]}
        candidate, secondary, answered = await fetch_copies(
            lambda target: self._fetch(target, data, marked),
            (self._candidate(), spec.candidate),
            None if spec.secondary is None else (self._legacy, spec.secondary),
            client_answer,
        )
        if answered is None or not answered.ok:
            self._mirrors.skip(self.route, SkipReason.LEGACY_FAILED)
            return
        await self._mirrors.settle(Exchange(facts, answered, candidate, secondary), self.route)

    async def _fetch(
        self, target: tuple[Client | None, str], data: bytes, headers: dict[str, str]
    ) -> Observation:
        """One shadow side's reply, or its failure; never raises for what that side does."""
        client, subject = target
        started = time.perf_counter()
        if client is None:
            # The candidate's connection is not up (its server is down): nothing answers.
            return failure(nats.errors.NoRespondersError(), started)
        try:
            reply = await client.request(
                subject, data, timeout=self._shadow.timeout_s, headers=headers
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            return failure(exc, started)
        elapsed = time.perf_counter() - started
        return observed(reply.data, reply.headers, elapsed, cap=self._shadow.compare_max_bytes)
