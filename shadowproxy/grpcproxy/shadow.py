"""The gRPC shadow path: decide whether to mirror a call, mirror it off the hot path, compare.

The same gates, bounds and evidence as the HTTP shadow path: the kill switch,
read-only methods unless configured (skip ``method``), unary and
server-streaming calls only (client-streaming and bidirectional ones skip
``upgrade``), the request size cap (``body_too_large``), sampling, loop lag
(``overload``) and a full task pool (``queue_full``); a server-streaming
call also needs a stream slot (``streams_full``). The copy goes to the
candidate (and secondary) at once with the client's remaining deadline,
capped at ``shadow.timeout_s`` (a stream's copy: read over its window,
``grpcproxy.streams``); the task then waits for legacy's answer (a stream's
window), compares and records. Nothing here can delay or fail the client's
answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Protocol

import grpc

from shadowproxy.cutover.ownership import Ownership
from shadowproxy.grpcproxy.answers import Answer, call_unary, observe
from shadowproxy.grpcproxy.metadata import Metadata
from shadowproxy.grpcproxy.methods import GrpcMethod
from shadowproxy.grpcproxy.status import code_name
from shadowproxy.grpcproxy.streams import decoded, fetch_stream
from shadowproxy.model import (
    SHADOW_PHASE,
    Exchange,
    Observation,
    Phase,
    RequestFacts,
    SkipReason,
    Upstream,
    Verdict,
)
from shadowproxy.settings import ShadowSettings
from shadowproxy.shadow.comparisons import Comparisons
from shadowproxy.shadow.control import LagMonitor, ShadowSwitch
from shadowproxy.shadow.mirror import EvidenceSink, Mirrors, fetch_copies
from shadowproxy.shadow.streams import ClientAnswer, StreamSlots
from shadowproxy.shadow.tasks import TaskPool

__all__ = [
    "MIRRORED_CARDINALITIES",
    "RAW_NOTE",
    "SHADOW_MARK",
    "GrpcEvidence",
    "GrpcShadow",
    "MirrorCall",
]

MIRRORED_CARDINALITIES = frozenset({"unary_unary", "unary_stream"})
"""Call shapes that are mirrored: one request, one answer or a stream of them."""

RAW_NOTE = "raw protobuf bytes compared (no descriptor for this method)"
"""The verdict note of exchanges compared without descriptors."""

SHADOW_MARK = ("x-shadow-request", "1")
"""Metadata added to mirrored calls, as ``X-Shadow-Request`` is for HTTP."""


class GrpcEvidence(EvidenceSink, Protocol):
    """What the gRPC listener reports to (``shadowproxy.sinks.Evidence`` is one)."""

    def on_request(self, route: str, method: str, status: int | None) -> None: ...
    def on_fallback(self, route: str) -> None: ...


@dataclass(frozen=True, slots=True)
class MirrorCall:
    """Everything needed to replay one unary call to the shadow upstreams."""

    facts: RequestFacts
    method: GrpcMethod
    request: bytes
    metadata: Metadata
    """The forwardable client metadata plus ``SHADOW_MARK``."""
    deadline_s: float | None
    """The client's remaining time when the call arrived, or None without a deadline."""
    answered_by: Upstream = Upstream.LEGACY
    """The side answering the client; the copy goes to the other one."""

    @property
    def reverse(self) -> bool:
        """True when the candidate answers and legacy gets the copy (reverse shadow)."""
        return self.answered_by is Upstream.CANDIDATE


def _named(verdict: Verdict, raw: bool) -> Verdict:
    """Status differences shown as code names; the raw-bytes note when raw."""
    differences = tuple(
        dataclasses.replace(d, legacy=code_name(d.legacy), candidate=code_name(d.candidate))
        if d.kind == "status"
        else d
        for d in verdict.differences
    )
    note = verdict.note
    if raw:
        note = RAW_NOTE if note is None else f"{RAW_NOTE}; {note}"
    if note == verdict.note and differences == verdict.differences:
        return verdict
    return dataclasses.replace(verdict, differences=differences, note=note)


class GrpcShadow:
    """Owns mirroring of gRPC calls for one worker."""

    def __init__(
        self,
        *,
        settings: ShadowSettings,
        pool: TaskPool,
        candidate: grpc.aio.Channel,
        legacy: grpc.aio.Channel,
        secondary: grpc.aio.Channel | None,
        comparisons: Comparisons,
        evidence: GrpcEvidence,
        switch: ShadowSwitch,
        lag: LagMonitor,
        streams: StreamSlots,
        ownership: Ownership | None = None,
    ) -> None:
        """``candidate``, ``legacy`` and ``secondary`` are the shadow channels of each side."""
        self.settings = settings
        self._mirrors = Mirrors(settings, pool, switch, lag, comparisons, evidence)
        self._streams = streams
        self._candidate = candidate
        self._legacy = legacy
        self._secondary = secondary
        self._ownership = ownership

    def decide(self, method: GrpcMethod, request_size: int) -> SkipReason | None:
        """Why this call is not mirrored, or None when it should be."""
        if self._mirrors.paused:
            return SkipReason.PAUSED
        if method.cardinality not in MIRRORED_CARDINALITIES:
            return SkipReason.UPGRADE
        if not method.mirror:
            return SkipReason.METHOD
        if request_size > self.settings.mirror_max_body:
            return SkipReason.BODY_TOO_LARGE
        return self._mirrors.admit(method.sample_percent)

    def skip(self, method: GrpcMethod, reason: SkipReason, phase: Phase = SHADOW_PHASE) -> None:
        """Count a call of ``method`` in ``phase`` that is not mirrored."""
        self._mirrors.skip(method, reason, phase)

    def start(self, call: MirrorCall) -> asyncio.Future[Answer | None] | None:
        """Spawn the mirror; returns the future the hot path resolves with legacy's answer.

        Returns None (and counts ``queue_full``) when the pool is full.
        """
        return self._mirrors.spawn(
            call.method,
            lambda future: self._mirror(call, future),
            name=f"grpc-shadow-{call.facts.id}",
            phase=call.facts.phase,
        )

    def start_stream(self, call: MirrorCall) -> ClientAnswer | None:
        """Spawn a server-streaming call's mirror; returns the future legacy's window resolves.

        Returns None when it was not spawned: every stream slot is taken
        (counted as ``streams_full``) or the pool is full (``queue_full``).
        """
        if not self._streams.take():
            self.skip(call.method, SkipReason.STREAMS_FULL, call.facts.phase)
            return None
        started: ClientAnswer | None = self._mirrors.spawn(
            call.method,
            lambda future: self._mirror_stream(call, future),
            name=f"grpc-stream-{call.facts.id}",
            phase=call.facts.phase,
        )
        if started is None:
            self._streams.give()
        return started

    async def _mirror_stream(self, call: MirrorCall, client_answer: ClientAnswer) -> None:
        method, phase = call.method, call.facts.phase
        try:
            copy, secondary, answered = await fetch_copies(
                lambda channel: fetch_stream(
                    channel,
                    call.facts.path,
                    call.request,
                    call.metadata,
                    window=method.window,
                    deadline_s=call.deadline_s,
                ),
                self._legacy if call.reverse else self._candidate,
                self._secondary,
                client_answer,
            )
            if not isinstance(answered, Observation):
                self._mirrors.skip(method, answered or SkipReason.LEGACY_FAILED, phase)
                return
            output = method.output
            second = None if secondary is None else decoded(secondary, output)
            await self._settle(call, decoded(answered, output), decoded(copy, output), second)
        finally:
            self._streams.give()

    async def _mirror(self, call: MirrorCall, client_answer: asyncio.Future[Answer | None]) -> None:
        copy, secondary, answer = await fetch_copies(
            lambda channel: self._fetch(channel, call),
            self._legacy if call.reverse else self._candidate,
            self._secondary,
            client_answer,
        )
        method = call.method
        cap = self.settings.compare_max_bytes
        answered = None if answer is None else observe(answer, method.output, cap=cap)
        # A failing candidate's answer is compared (an error verdict); legacy's is not.
        if answered is None or (not answered.ok and not call.reverse):
            self._mirrors.skip(method, SkipReason.LEGACY_FAILED, call.facts.phase)
            return
        await self._settle(call, answered, copy, secondary)

    async def _settle(
        self,
        call: MirrorCall,
        answered: Observation,
        copy: Observation,
        secondary: Observation | None,
    ) -> None:
        """Compare and file the exchange; the reverse shadow's feeds the route's rollback."""
        method = call.method
        legacy, candidate = (copy, answered) if call.reverse else (answered, copy)
        verdict = await self._mirrors.settle(
            Exchange(call.facts, legacy, candidate, secondary, call.answered_by),
            method,
            present=lambda verdict: _named(verdict, raw=method.output is None),
        )
        if verdict is not None and call.reverse and self._ownership is not None:
            self._ownership.compared(method.name, verdict, legacy, candidate)

    async def _fetch(self, channel: grpc.aio.Channel, call: MirrorCall) -> Observation:
        timeout = self.settings.timeout_s
        if call.deadline_s is not None:
            timeout = min(timeout, call.deadline_s)
        answer = await call_unary(
            channel, call.facts.path, call.request, call.metadata, max(timeout, 0.001)
        )
        return observe(answer, call.method.output, cap=self.settings.compare_max_bytes)
