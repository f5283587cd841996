"""One unary call to one upstream, and what its answer looks like to the comparison core.

Owns ``Answer`` (exactly what a client would receive: code, details, both
metadata blocks, the response bytes), ``call_unary`` and the translation of
an answer into an ``Observation``: the status is ``200 + code``
(``status``), metadata become headers (``metadata``), the message becomes
JSON when its type is known (``messages``) and raw bytes otherwise. An
answer the gRPC library made up itself (cannot connect, connection lost,
our own deadline, message over the size cap) is a transport failure: an
``Observation.failed`` with the matching ``ErrorKind``, never a status.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from shadowproxy.grpcproxy.messages import message_json
from shadowproxy.grpcproxy.metadata import Metadata, as_headers, forwardable
from shadowproxy.grpcproxy.status import observation_status
from shadowproxy.model import ErrorKind, Observation

__all__ = [
    "JSON",
    "RAW",
    "Answer",
    "call_unary",
    "observe",
    "pairs",
    "past_deadline",
    "settle",
    "transport_failure",
]

JSON = "application/json"
RAW = "application/octet-stream"

_REFUSED = ("failed to connect", "connection refused", "name resolution", "dns resolution")
_RESET = (
    "socket closed",
    "connection reset",
    "broken pipe",
    "rst_stream",
    "goaway",
    "stream removed",
)
_DEADLINE_SLACK = 0.99
"""A deadline error arriving this close to our own timeout is ours."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What an upstream answered to one unary call, as the client would see it."""

    code: grpc.StatusCode
    details: str
    initial: Metadata
    trailing: Metadata
    response: bytes | None
    elapsed_s: float
    timeout_s: float | None
    """The timeout the call was sent with (to tell our deadline from the upstream's)."""


def pairs(metadata: Iterable[Any] | None) -> Metadata:
    """gRPC's metadata object as plain ``(key, value)`` pairs."""
    if not metadata:
        return ()
    return tuple((str(key), value) for key, value in metadata)


async def settle(
    pending: grpc.aio.UnaryUnaryCall[Any, Any] | grpc.aio.StreamUnaryCall[Any, Any],
    started: float,
    timeout_s: float | None,
) -> Answer:
    """Wait for a call with one response; the answer, whatever its status (never raises)."""
    try:
        response = await pending
    except grpc.aio.AioRpcError as exc:
        return Answer(
            code=exc.code(),
            details=exc.details() or "",
            initial=pairs(exc.initial_metadata()),
            trailing=pairs(exc.trailing_metadata()),
            response=None,
            elapsed_s=time.perf_counter() - started,
            timeout_s=timeout_s,
        )
    elapsed = time.perf_counter() - started
    return Answer(
        code=grpc.StatusCode.OK,
        details="",
        initial=pairs(await pending.initial_metadata()),
        trailing=pairs(await pending.trailing_metadata()),
        response=response,
        elapsed_s=elapsed,
        timeout_s=timeout_s,
    )


async def call_unary(
    channel: grpc.aio.Channel,
    method: str,
    request: bytes,
    metadata: Metadata,
    timeout_s: float | None,
) -> Answer:
    """Send ``request`` as raw bytes to ``method``; the answer, whatever its status."""
    call = channel.unary_unary(method, None, None)
    started = time.perf_counter()
    return await settle(
        call(request, metadata=metadata or None, timeout=timeout_s), started, timeout_s
    )


def past_deadline(elapsed_s: float, timeout_s: float | None) -> bool:
    """True when a call that took ``elapsed_s`` ran into our own ``timeout_s``."""
    return timeout_s is not None and elapsed_s >= timeout_s * _DEADLINE_SLACK


def transport_failure(answer: Answer) -> ErrorKind | None:
    """The failure kind when the gRPC library, not the upstream, produced the answer."""
    code = answer.code
    if code is grpc.StatusCode.OK:
        return None
    details = answer.details.lower()
    if code is grpc.StatusCode.DEADLINE_EXCEEDED and answer.timeout_s is not None:
        return ErrorKind.TIMEOUT if past_deadline(answer.elapsed_s, answer.timeout_s) else None
    if answer.trailing:
        return None  # the upstream sent trailers: it answered
    if code is grpc.StatusCode.UNAVAILABLE:
        if any(text in details for text in _REFUSED):
            return ErrorKind.REFUSED
        if any(text in details for text in _RESET):
            return ErrorKind.RESET
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        return ErrorKind.TOO_LARGE
    if code is grpc.StatusCode.INTERNAL and any(text in details for text in _RESET):
        return ErrorKind.RESET
    return None


def _body(response: bytes | None, output: type[Message] | None) -> tuple[bytes, str]:
    """The compared body and its content type."""
    if output is None:
        return response or b"", RAW
    if response is None:
        return b"null", JSON  # an error status carries no message
    rendered = message_json(output, response)
    if rendered is None:
        # Bytes that do not parse as the declared type: the content type differs.
        return response, RAW
    return rendered, JSON


def observe(answer: Answer, output: type[Message] | None, *, cap: int) -> Observation:
    """The comparison core's view of ``answer``; ``output`` is the message class or None.

    A response over ``cap`` bytes is ``truncated`` and not decoded.
    """
    failure = transport_failure(answer)
    if failure is not None:
        return Observation.failed(failure, answer.elapsed_s)
    size = len(answer.response or b"")
    status = observation_status(answer.code)
    metadata = as_headers(forwardable(answer.initial), forwardable(answer.trailing))
    details = () if answer.code is grpc.StatusCode.OK else (("grpc-message", answer.details),)
    if size > cap:
        return Observation(
            status=status,
            headers=(*metadata, *details),
            elapsed_s=answer.elapsed_s,
            body_size=size,
            truncated=True,
        )
    body, content_type = _body(answer.response, output)
    return Observation(
        status=status,
        headers=(*metadata, ("content-type", content_type), *details),
        body=body,
        elapsed_s=answer.elapsed_s,
        body_size=size,
    )
