"""What every mirror shares, whatever the protocol: admission, spawning, fetching, recording.

HTTP (``http.shadow``) and gRPC (``grpcproxy.shadow``) each decide first what
only they know (methods, body size, call type), and each replays a request and
reads an answer its own way. The rest is one: the kill switch, sampling,
loop-lag shedding and the hand-off to the bounded task pool (``queue_full``
when it is full); the copies fetched at once; then the evidence in one order:
the mirrored upstreams' observations, ``body_too_large`` for a truncated answer
(comparing prefixes would invent differences), the comparison (``queue_full``
when the comparison pool is full), and the verdict.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from shadowproxy.compare.rules import CompareRules
from shadowproxy.model import (
    SHADOW_PHASE,
    Exchange,
    Observation,
    Phase,
    SkipReason,
    Upstream,
    Verdict,
)
from shadowproxy.settings import ShadowSettings
from shadowproxy.shadow.comparisons import Comparisons
from shadowproxy.shadow.control import LagMonitor, ShadowSwitch
from shadowproxy.shadow.tasks import TaskPool

__all__ = ["EvidenceSink", "MirroredRoute", "Mirrors", "fetch_copies"]

U = TypeVar("U")
T = TypeVar("T")
Obs = TypeVar("Obs")


class EvidenceSink(Protocol):
    """What the shadow paths report to (``shadowproxy.sinks.Evidence``)."""

    def on_upstream(self, upstream: Upstream, route: str, observation: Observation) -> None: ...
    def on_skip(
        self, route: str, domain: str, reason: SkipReason, phase: Phase = SHADOW_PHASE
    ) -> None: ...
    def on_verdict(self, exchange: Exchange, verdict: Verdict) -> None: ...


class MirroredRoute(Protocol):
    """An HTTP route or a gRPC method: what the evidence is filed under and compared by."""

    @property
    def name(self) -> str: ...
    @property
    def domain(self) -> str: ...
    @property
    def rules(self) -> CompareRules: ...


async def fetch_copies(
    fetch: Callable[[U], Awaitable[Obs]],
    target: U,
    secondary: U | None,
    client_answer: asyncio.Future[T],
) -> tuple[Obs, Obs | None, T]:
    """The copies from ``target`` and ``secondary`` (at once), then the answer the client got.

    ``client_answer`` (resolved by the hot path) is cancelled when this ends
    without it, so the hot path's later attempt to resolve it is a no-op
    rather than a result nobody reads.
    """
    try:
        if secondary is None:
            mirrored, second = await fetch(target), None
        else:
            # Unpacked from gather's list (typeshed's tuple is checked by the compiled build).
            mirrored, second = await asyncio.gather(*[fetch(target), fetch(secondary)])
        return mirrored, second, await client_answer
    finally:
        if not client_answer.done():
            client_answer.cancel()


class Mirrors:
    """One worker's mirrors of one protocol: admitted, spawned, then filed as evidence."""

    __slots__ = ("_comparisons", "_evidence", "_lag", "_pool", "_switch", "settings")

    def __init__(
        self,
        settings: ShadowSettings,
        pool: TaskPool,
        switch: ShadowSwitch,
        lag: LagMonitor,
        comparisons: Comparisons,
        evidence: EvidenceSink,
    ) -> None:
        self.settings = settings
        self._pool = pool
        self._switch = switch
        self._lag = lag
        self._comparisons = comparisons
        self._evidence = evidence

    @property
    def paused(self) -> bool:
        """True while the kill switch is on."""
        return self._switch.paused

    def admit(self, sample_percent: float) -> SkipReason | None:
        """``sampled_out`` or ``overload``, or None: the last checks before mirroring."""
        if sample_percent < 100.0 and random.random() * 100.0 >= sample_percent:
            return SkipReason.SAMPLED_OUT
        if self._lag.lag_ms > self.settings.max_loop_lag_ms:
            return SkipReason.OVERLOAD
        return None

    def spawn(
        self,
        route: MirroredRoute,
        mirror: Callable[[asyncio.Future[T]], Coroutine[Any, Any, None]],
        name: str,
        phase: Phase = SHADOW_PHASE,
    ) -> asyncio.Future[T] | None:
        """Start ``mirror(client_answer)`` in the pool; returns the future the hot path resolves.

        None, counted as ``queue_full`` in ``phase``, when the pool is full: nothing waits.
        """
        client_answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if not self._pool.spawn(mirror(client_answer), name=name):
            self.skip(route, SkipReason.QUEUE_FULL, phase)
            return None
        return client_answer

    def skip(self, route: MirroredRoute, reason: SkipReason, phase: Phase = SHADOW_PHASE) -> None:
        """Count a request of ``route`` in ``phase`` that is not mirrored, or not compared."""
        self._evidence.on_skip(route.name, route.domain, reason, phase)

    async def settle(
        self,
        exchange: Exchange,
        route: MirroredRoute,
        present: Callable[[Verdict], Verdict] | None = None,
        adjust: Callable[[Verdict], Verdict] | None = None,
    ) -> Verdict | None:
        """Record ``exchange`` and compare it; the verdict, or None when it was skipped.

        The side that did not answer the client (``exchange.answered_by``) is
        the mirrored one. ``adjust`` changes the verdict as compared (mapped
        ids are equal: ``shadow.identity``); ``present`` rewrites it for the
        evidence only (gRPC names its status codes), and the caller gets the
        verdict before ``present``.
        """
        reverse = exchange.answered_by is Upstream.CANDIDATE
        legacy, candidate = exchange.legacy, exchange.candidate
        mirrored, answer = (legacy, candidate) if reverse else (candidate, legacy)
        self._evidence.on_upstream(
            Upstream.LEGACY if reverse else Upstream.CANDIDATE, route.name, mirrored
        )
        if exchange.secondary is not None:
            self._evidence.on_upstream(Upstream.SECONDARY, route.name, exchange.secondary)
        phase = exchange.request.phase
        if answer.truncated:
            self.skip(route, SkipReason.BODY_TOO_LARGE, phase)
            return None
        verdict = await self._comparisons.compare(exchange, route.rules)
        if verdict is None:
            self.skip(route, SkipReason.QUEUE_FULL, phase)
            return None
        if adjust is not None:
            verdict = adjust(verdict)
        self._evidence.on_verdict(exchange, verdict if present is None else present(verdict))
        return verdict
