"""The gRPC hot path: answer every call from legacy, unchanged, at legacy's speed.

A generic handler takes any method with raw bytes in and out. Unary and
client-streaming calls are settled with legacy and relayed as one answer:
initial metadata, the message or the status code and details, trailing
metadata. Server-streaming and bidirectional calls relay legacy's messages
as they arrive. The client's remaining deadline is legacy's timeout (a unary
call without one gets ``grpc.timeout_s``). When the gRPC library itself
failed to reach legacy, the client gets the same status code with the
details ``shadowproxy: legacy <reason>``. A call whose client goes away first
(gRPC cancels the handler) is still counted: at the client's deadline as a
legacy timeout, before it as ``CANCELLED``. The shadow path is started before
legacy is called and told legacy's answer afterwards; nothing it does is
awaited here. Each mirrored call gets an evidence id of the proxy's own; the
client's ``x-request-id`` metadata is kept apart (``client_request_id``), and
the secrets of its metadata (authorization, cookies, secret-looking keys) are
found for the evidence to scrub.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import structlog

from shadowproxy.grpcproxy.answers import (
    Answer,
    call_unary,
    pairs,
    past_deadline,
    settle,
    transport_failure,
)
from shadowproxy.grpcproxy.metadata import Metadata, forwardable
from shadowproxy.grpcproxy.methods import GrpcMethod, MethodTable
from shadowproxy.grpcproxy.shadow import SHADOW_MARK, GrpcEvidence, GrpcShadow, MirrorCall
from shadowproxy.grpcproxy.status import http_status, observation_status
from shadowproxy.grpcproxy.streams import RAW_MESSAGE, ended_with, stream_headers
from shadowproxy.model import (
    ErrorKind,
    Observation,
    RequestFacts,
    SkipReason,
    StreamKind,
    Upstream,
    WindowEnd,
)
from shadowproxy.settings import GrpcSettings
from shadowproxy.shadow.streams import ClientAnswer, WindowTap
from shadowproxy.sinks.secrets import SecretFinder

__all__ = ["GRPC_METHOD", "GrpcForwarder"]

log = structlog.get_logger(__name__)

GRPC_METHOD = "POST"
"""The HTTP method recorded for gRPC calls (every call is an HTTP/2 POST)."""

Context = grpc.aio.ServicerContext[Any, Any]
"""The server-side context of one call (raw bytes both ways)."""


def _text_metadata(metadata: Metadata) -> list[tuple[str, str]]:
    """The metadata with text values (``-bin`` keys carry bytes)."""
    return [(key, value) for key, value in metadata if isinstance(value, str)]


def _remaining(context: Context) -> float | None:
    # The stubs say float; the library returns None when the client set no deadline.
    remaining: float | None = context.time_remaining()
    return None if remaining is None else max(remaining, 0.0)


def _light(answer: Answer) -> Observation:
    """Legacy's latency and failure for the metrics, without decoding anything."""
    failure = transport_failure(answer)
    if failure is not None:
        return Observation.failed(failure, answer.elapsed_s)
    return Observation(status=observation_status(answer.code), elapsed_s=answer.elapsed_s)


class GrpcForwarder(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """The generic handler for every method, for one worker."""

    def __init__(
        self,
        *,
        settings: GrpcSettings,
        table: MethodTable,
        legacy: grpc.aio.Channel,
        shadow: GrpcShadow,
        sink: GrpcEvidence,
        secrets: SecretFinder,
    ) -> None:
        self.settings = settings
        self.table = table
        self._legacy = legacy
        self._shadow = shadow
        self._sink = sink
        self._secrets = secrets

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

    async def _unary(
        self, name: str, method: GrpcMethod, request: bytes, context: Context
    ) -> bytes | None:
        metadata = forwardable(context.invocation_metadata())
        deadline = _remaining(context)
        client_answer = None
        skip = self._shadow.decide(method, len(request))
        if skip is None:
            client_answer = self._shadow.start(
                self._mirror_call(name, method, request, metadata, deadline)
            )
        else:
            self._shadow.skip(method, skip)
        answer: Answer | None = None
        timeout = deadline if deadline is not None else self.settings.timeout_s
        started = time.perf_counter()
        try:
            answer = await call_unary(self._legacy, name, request, metadata, timeout)
        except asyncio.CancelledError:
            self._gone(method, time.perf_counter() - started, deadline)
            raise
        finally:
            if client_answer is not None and not client_answer.done():
                client_answer.set_result(answer)
        return await self._answer(method, answer, context)

    def _mirror_call(
        self,
        name: str,
        method: GrpcMethod,
        request: bytes,
        metadata: Metadata,
        deadline: float | None,
    ) -> MirrorCall:
        """What the mirror replays: a fresh evidence id, the client's own id and secrets apart."""
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
            ),
            method=method,
            request=request,
            metadata=(*metadata, SHADOW_MARK),
            deadline_s=deadline,
        )

    async def _stream_unary(
        self, name: str, method: GrpcMethod, requests: AsyncIterator[bytes], context: Context
    ) -> bytes | None:
        self._shadow.skip(method, SkipReason.UPGRADE)
        deadline = _remaining(context)
        call = self._legacy.stream_unary(name, None, None)
        started = time.perf_counter()
        pending = call(
            requests, metadata=forwardable(context.invocation_metadata()) or None, timeout=deadline
        )
        try:
            answer = await settle(pending, started, deadline)
        except asyncio.CancelledError:
            self._gone(method, time.perf_counter() - started, deadline)
            raise
        return await self._answer(method, answer, context)

    async def _answer(
        self, method: GrpcMethod, answer: Answer, context: Context, *, stream: bool = False
    ) -> bytes | None:
        """Relay a settled answer to the client and count it.

        A stream's duration is not a latency, so only its failures reach the upstream metrics.
        """
        light = _light(answer)
        if not stream or not light.ok:
            self._sink.on_upstream(Upstream.LEGACY, method.name, light)
        self._sink.on_request(method.name, GRPC_METHOD, http_status(answer.code))
        initial = forwardable(answer.initial)
        if initial:
            await context.send_initial_metadata(initial)
        trailing = forwardable(answer.trailing)
        if answer.code is grpc.StatusCode.OK:
            if trailing:
                context.set_trailing_metadata(trailing)
            return answer.response
        await context.abort(answer.code, self._details(method, answer), trailing)

    def _gone(self, method: GrpcMethod, elapsed_s: float, deadline: float | None) -> None:
        """Count a call whose client went away before legacy answered (gRPC cancels the handler).

        At the client's deadline that is a legacy timeout, counted as any other: the
        request (``DEADLINE_EXCEEDED``), legacy's latency and the error. Before it,
        the client cancelled the call (``CANCELLED``), which is no legacy failure.
        """
        if past_deadline(elapsed_s, deadline):
            timeout = Observation.failed(ErrorKind.TIMEOUT, elapsed_s)
            self._sink.on_upstream(Upstream.LEGACY, method.name, timeout)
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            log.warning("legacy failed", route=method.name, reason=str(ErrorKind.TIMEOUT))
        else:
            code = grpc.StatusCode.CANCELLED
        self._sink.on_request(method.name, GRPC_METHOD, http_status(code))

    def _details(self, method: GrpcMethod, answer: Answer) -> str:
        failure = transport_failure(answer)
        if failure is None:
            return answer.details
        log.warning("legacy failed", route=method.name, reason=str(failure))
        return f"shadowproxy: legacy {failure}"

    async def _unary_stream(
        self, name: str, method: GrpcMethod, request: bytes, context: Context
    ) -> AsyncIterator[bytes]:
        metadata = forwardable(context.invocation_metadata())
        deadline = _remaining(context)
        client_answer = None
        skip = self._shadow.decide(method, len(request))
        if skip is None:
            client_answer = self._shadow.start_stream(
                self._mirror_call(name, method, request, metadata, deadline)
            )
        else:
            self._shadow.skip(method, skip)
        call = self._legacy.unary_stream(name, None, None)(
            request, metadata=metadata or None, timeout=deadline
        )
        async for message in self._relay_stream(method, call, context, deadline, client_answer):
            yield message

    async def _stream_stream(
        self, name: str, method: GrpcMethod, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[bytes]:
        self._shadow.skip(method, SkipReason.UPGRADE)
        deadline = _remaining(context)
        call = self._legacy.stream_stream(name, None, None)(
            requests, metadata=forwardable(context.invocation_metadata()) or None, timeout=deadline
        )
        async for message in self._relay_stream(method, call, context, deadline):
            yield message

    async def _relay_stream(
        self,
        method: GrpcMethod,
        call: grpc.aio.UnaryStreamCall | grpc.aio.StreamStreamCall,  # type: ignore[type-arg]
        context: Context,
        deadline: float | None,
        client_answer: ClientAnswer | None = None,
    ) -> AsyncIterator[bytes]:
        """Legacy's messages as they arrive, then its status and trailing metadata.

        With ``client_answer`` (a mirrored call), each message is recorded for
        the mirror's window after it was relayed (``WindowTap``).
        """
        started = time.perf_counter()
        sent_initial = False
        tap: WindowTap | None = None
        initial: Metadata = ()
        try:
            initial = pairs(await call.initial_metadata())
            forwarded = forwardable(initial)
            if forwarded:
                await context.send_initial_metadata(forwarded)
            sent_initial = True
            if client_answer is not None:
                ok = observation_status(grpc.StatusCode.OK)
                tap = WindowTap(
                    client_answer,
                    method.window,
                    StreamKind.GRPC,
                    ok,
                    stream_headers(initial),
                    started,
                )
            async for message in call:
                yield message
                if tap is not None and not tap.message(RAW_MESSAGE, message):
                    tap = None
            answer = Answer(
                code=grpc.StatusCode.OK,
                details="",
                initial=(),
                trailing=pairs(await call.trailing_metadata()),
                response=None,
                elapsed_s=time.perf_counter() - started,
                timeout_s=deadline,
            )
        except grpc.aio.AioRpcError as exc:
            answer = Answer(
                code=exc.code(),
                details=exc.details() or "",
                initial=() if sent_initial else pairs(exc.initial_metadata()),
                trailing=pairs(exc.trailing_metadata()),
                response=None,
                elapsed_s=time.perf_counter() - started,
                timeout_s=deadline,
            )
        except (asyncio.CancelledError, GeneratorExit):
            # Cancelled while waiting for legacy, or closed while the client's write was.
            self._gone(method, time.perf_counter() - started, deadline)
            if tap is not None:
                tap.end(WindowEnd.CLIENT)
            raise
        finally:
            call.cancel()
            if client_answer is not None and tap is None and not client_answer.done():
                client_answer.set_result(None)  # legacy failed before its first message
        if tap is not None:
            if transport_failure(answer) is None:
                tap.end(
                    WindowEnd.END,
                    *ended_with(initial, answer.trailing, answer.code, answer.details),
                )
            else:
                tap.failed()
        await self._answer(method, answer, context, stream=True)
