"""The gRPC hot path: answer every call from the side that owns its method, unchanged.

A generic handler takes any method with raw bytes in and out. ``_unary``
tells the run of a unary call, in order:

1. read the call: its metadata (the proxy's own ``x-shadow-*`` keys are
   never forwarded), the client's remaining deadline, whether it is the
   drill's probe;
2. ask the method's ownership who answers (docs/cutover.md: legacy, or the
   candidate in canary and candidate mode, sticky by ``metadata:NAME`` or
   the peer's address), whether the other side gets a copy and the phase
   the evidence is filed under;
3. start the mirror (``GrpcShadow.start``), or count why not; the copy goes
   to the side that does not answer;
4. call the answering side with the client's deadline (``grpc.timeout_s``
   without one); a read the candidate fails to answer at all (refused,
   reset) is retried once on legacy when the method's ``fallback`` is on
   (counted); what the candidate answered feeds the method's automatic
   rollback (``UNAVAILABLE``, ``INTERNAL``, ``UNKNOWN``, ``DEADLINE_EXCEEDED``
   and transport failures are errors);
5. relay and count the answer (``Answering``) and hand it to the mirror.

Streaming calls go to the answering side too (``relay.relay_stream``);
server-streaming ones are mirrored over a window, client-streaming and
bidirectional ones never. Nothing the shadow path does is awaited here.
Each mirrored call gets an evidence id of the proxy's own; the client's
``x-request-id`` is kept apart (``client_request_id``), and the secrets of
its metadata are found for the evidence to scrub.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from shadowproxy.cutover.canary import Decision
from shadowproxy.cutover.ownership import Ownership
from shadowproxy.grpcproxy.answering import (
    GRPC_METHOD,
    Answering,
    Context,
    Serving,
    failed,
    sticky_key,
)
from shadowproxy.grpcproxy.answers import Answer, call_unary, settle, transport_failure
from shadowproxy.grpcproxy.metadata import Metadata, from_client
from shadowproxy.grpcproxy.methods import GrpcMethod, MethodTable, reads_only
from shadowproxy.grpcproxy.relay import relay_stream
from shadowproxy.grpcproxy.shadow import SHADOW_MARK, GrpcShadow, MirrorCall
from shadowproxy.model import SHADOW_PHASE, ErrorKind, RequestFacts, SkipReason, Upstream
from shadowproxy.settings import GrpcSettings
from shadowproxy.sinks.secrets import SecretFinder

__all__ = ["GrpcForwarder"]

_NOT_DECIDED = Decision(Upstream.LEGACY, True, SHADOW_PHASE)
"""Without cutover control: legacy answers, the candidate is mirrored."""
_RETRIED = frozenset({ErrorKind.REFUSED, ErrorKind.RESET})
"""Candidate failures a read is retried on legacy after: the candidate answered nothing."""


def _text_metadata(metadata: Metadata) -> list[tuple[str, str]]:
    """The metadata with text values (``-bin`` keys carry bytes)."""
    return [(key, value) for key, value in metadata if isinstance(value, str)]


def _falls_back(name: str, method: GrpcMethod, answer: Answer) -> bool:
    """A read the candidate answered nothing to, on a method with ``fallback``.

    Only a read: legacy got the mirror's copy already, so a write would run twice.
    """
    return (
        method.fallback
        and method.mirror
        and reads_only(name)
        and transport_failure(answer) in _RETRIED
    )


def _remaining(context: Context) -> float | None:
    # The stubs say float; the library returns None when the client set no deadline.
    remaining: float | None = context.time_remaining()
    return None if remaining is None else max(remaining, 0.0)


class GrpcForwarder(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """The generic handler for every method, for one worker."""

    def __init__(
        self,
        *,
        settings: GrpcSettings,
        table: MethodTable,
        legacy: grpc.aio.Channel,
        candidate: grpc.aio.Channel,
        shadow: GrpcShadow,
        answering: Answering,
        secrets: SecretFinder,
        ownership: Ownership | None = None,
        on_fallback: Callable[[str], None] | None = None,
    ) -> None:
        """``legacy`` and ``candidate`` are the channels that answer clients."""
        self.settings = settings
        self.table = table
        self._channels = {Upstream.LEGACY: legacy, Upstream.CANDIDATE: candidate}
        self._shadow = shadow
        self._answering = answering
        self._secrets = secrets
        self._ownership = ownership
        self._on_fallback = on_fallback

    def reconfigure(self, settings: GrpcSettings, table: MethodTable) -> None:
        """Swap methods, sampling and rules (SIGHUP); in-flight calls keep their own."""
        self.settings = settings
        self.table = table

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        """A raw-bytes handler of the right cardinality for any method."""
        raw_name: str | bytes = handler_call_details.method
        name = raw_name.decode("utf-8", "replace") if isinstance(raw_name, bytes) else raw_name
        method = self.table.resolve(name)
        handlers: dict[str, Callable[..., grpc.RpcMethodHandler]] = {  # type: ignore[type-arg]
            "unary_unary": grpc.unary_unary_rpc_method_handler,
            "unary_stream": grpc.unary_stream_rpc_method_handler,
            "stream_unary": grpc.stream_unary_rpc_method_handler,
            "stream_stream": grpc.stream_stream_rpc_method_handler,
        }
        behaviours: dict[str, Callable[..., Any]] = {
            "unary_unary": self._unary,
            "unary_stream": self._unary_stream,
            "stream_unary": self._stream_unary,
            "stream_stream": self._stream_stream,
        }
        # A partial keeps the coroutine / async-generator nature grpc inspects.
        bound = functools.partial(behaviours[method.cardinality], name, method)
        return handlers[method.cardinality](bound)

    def _serve(self, method: GrpcMethod, context: Context) -> tuple[Metadata, Decision, Serving]:
        """The call's forwardable metadata, who answers it, and how it is served."""
        invocation = context.invocation_metadata()
        metadata = from_client(invocation)
        decision = _NOT_DECIDED
        if self._ownership is not None:
            peer = context.peer() or ""
            decision = self._ownership.decide(
                method.name, lambda sticky: sticky_key(sticky, metadata, peer)
            )
        serving = Serving(
            method=method,
            deadline=_remaining(context),
            answered_by=decision.answered_by,
            probe=self._answering.probed(invocation),
        )
        return metadata, decision, serving

    def _mirror(
        self,
        name: str,
        request: bytes,
        metadata: Metadata,
        decision: Decision,
        serving: Serving,
    ) -> MirrorCall | None:
        """What the mirror replays, or None (counted) when the call is not mirrored."""
        method = serving.method
        skip = SkipReason.MODE if not decision.mirror else None
        skip = skip or self._shadow.decide(method, len(request))
        if skip is not None:
            self._shadow.skip(method, skip, decision.phase)
            return None
        text = _text_metadata(metadata)
        return MirrorCall(
            facts=RequestFacts(
                id=secrets.token_hex(8),
                method=GRPC_METHOD,
                path=name,
                query="",
                route=method.name,
                domain=method.domain,
                started_at=time.time(),
                client_request_id=next(
                    (value for key, value in text if key == "x-request-id"), None
                ),
                secrets=self._secrets.in_request(text, ""),
                phase=decision.phase,
            ),
            method=method,
            request=request,
            metadata=(*metadata, SHADOW_MARK),
            deadline_s=serving.deadline,
            answered_by=decision.answered_by,
        )

    async def _unary(
        self, name: str, method: GrpcMethod, request: bytes, context: Context
    ) -> bytes | None:
        metadata, decision, serving = self._serve(method, context)
        call = self._mirror(name, request, metadata, decision, serving)
        client_answer = None if call is None else self._shadow.start(call)
        deadline = serving.deadline
        timeout = deadline if deadline is not None else self.settings.timeout_s
        channel = self._channels[serving.answered_by]
        started = time.perf_counter()
        answer: Answer | None = None
        try:
            answer = await call_unary(channel, name, request, metadata, timeout)
        except asyncio.CancelledError:
            self._answering.gone(serving, time.perf_counter() - started)
            raise
        finally:
            if client_answer is not None and not client_answer.done():
                client_answer.set_result(answer)
        self._answered(serving, answer)
        if serving.answered_by is Upstream.CANDIDATE and _falls_back(name, method, answer):
            return await self._fallback(name, request, metadata, serving, context)
        return await self._answering.send(serving, answer, context)

    async def _fallback(
        self, name: str, request: bytes, metadata: Metadata, serving: Serving, context: Context
    ) -> bytes | None:
        """Answer from legacy after the candidate failed to (counted per method)."""
        if self._on_fallback is not None:
            self._on_fallback(serving.method.name)
        retry = Serving(serving.method, _remaining(context), Upstream.LEGACY, serving.probe)
        timeout = retry.deadline if retry.deadline is not None else self.settings.timeout_s
        started = time.perf_counter()
        try:
            answer = await call_unary(
                self._channels[Upstream.LEGACY], name, request, metadata, timeout
            )
        except asyncio.CancelledError:
            self._answering.gone(retry, time.perf_counter() - started)
            raise
        return await self._answering.send(retry, answer, context)

    async def _stream_unary(
        self, name: str, method: GrpcMethod, requests: AsyncIterator[bytes], context: Context
    ) -> bytes | None:
        metadata, decision, serving = self._serve(method, context)
        self._shadow.skip(method, SkipReason.UPGRADE, decision.phase)
        call = self._channels[serving.answered_by].stream_unary(name, None, None)
        started = time.perf_counter()
        pending = call(requests, metadata=metadata or None, timeout=serving.deadline)
        try:
            answer = await settle(pending, started, serving.deadline)
        except asyncio.CancelledError:
            self._answering.gone(serving, time.perf_counter() - started)
            raise
        self._answered(serving, answer)
        return await self._answering.send(serving, answer, context)

    def _answered(self, serving: Serving, answer: Answer) -> None:
        """Feed what the candidate answered to the method's automatic rollback."""
        if serving.answered_by is Upstream.CANDIDATE and self._ownership is not None:
            self._ownership.answered(serving.method.name, error=failed(answer))

    async def _unary_stream(
        self, name: str, method: GrpcMethod, request: bytes, context: Context
    ) -> AsyncIterator[bytes]:
        metadata, decision, serving = self._serve(method, context)
        copy = self._mirror(name, request, metadata, decision, serving)
        client_answer = None if copy is None else self._shadow.start_stream(copy)
        call = self._channels[serving.answered_by].unary_stream(name, None, None)(
            request, metadata=metadata or None, timeout=serving.deadline
        )
        ended = functools.partial(self._answered, serving)
        async for message in relay_stream(
            self._answering, serving, call, context, client_answer, ended
        ):
            yield message

    async def _stream_stream(
        self, name: str, method: GrpcMethod, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[bytes]:
        metadata, decision, serving = self._serve(method, context)
        self._shadow.skip(method, SkipReason.UPGRADE, decision.phase)
        call = self._channels[serving.answered_by].stream_stream(name, None, None)(
            requests, metadata=metadata or None, timeout=serving.deadline
        )
        ended = functools.partial(self._answered, serving)
        async for message in relay_stream(self._answering, serving, call, context, None, ended):
            yield message
