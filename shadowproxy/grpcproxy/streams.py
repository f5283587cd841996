"""Server-streaming calls on the shadow path: each side's window of messages, decoded to compare.

A mirrored server-streaming call is compared over a window, as an SSE
stream is (docs/streams.md, the method's ``stream`` window): legacy's
messages are recorded as the relay sends them to the client
(``shadow.streams.WindowTap`` of kind ``grpc``, raw bytes only: nothing is
decoded on the hot path), until ``max_events`` messages, ``max_bytes``
bytes, ``max_seconds``, the end of the stream or the client leaving. The
copy is read the same way a little longer (``grace_s`` more, twice the
messages and bytes) by ``fetch_stream``, then its call is cancelled. Off
the hot path, ``decoded`` turns both windows' messages into what the
comparison sees: proto3 JSON with descriptors (event type ``message``), raw
bytes without (``binary``), so the comparison engine aligns and compares
them message by message. A side's status is its final gRPC code when the
stream ended within the window, else ``OK`` so far; its headers are its
metadata (``grpc-message`` holding the status details of an error).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import grpc
from google.protobuf.message import Message

from shadowproxy.grpcproxy.answers import Answer, pairs, transport_failure
from shadowproxy.grpcproxy.messages import message_json
from shadowproxy.grpcproxy.metadata import Metadata, as_headers, forwardable
from shadowproxy.grpcproxy.status import observation_status
from shadowproxy.model import (
    ErrorKind,
    Headers,
    Observation,
    StreamEvent,
    StreamKind,
    WindowEnd,
)
from shadowproxy.settings import StreamSettings
from shadowproxy.shadow.streams import Recorder

__all__ = [
    "MESSAGE",
    "RAW_MESSAGE",
    "decoded",
    "ended_with",
    "fetch_stream",
    "stream_headers",
]

RAW_MESSAGE = "binary"
"""The event type of a message as raw bytes (recorded, or without descriptors)."""
MESSAGE = "message"
"""The event type of a message decoded with its descriptor, as JSON."""


def stream_headers(initial: Metadata, trailing: Metadata = ()) -> Headers:
    """A stream's metadata as comparable headers."""
    return as_headers(forwardable(initial), forwardable(trailing))


def ended_with(
    initial: Metadata, trailing: Metadata, code: grpc.StatusCode, details: str
) -> tuple[int, Headers]:
    """The status and headers of a stream that ended with ``code`` (details as ``grpc-message``)."""
    headers = stream_headers(initial, trailing)
    if code is not grpc.StatusCode.OK:
        headers = (*headers, ("grpc-message", details))
    return observation_status(code), headers


def decoded(observation: Observation, output: type[Message] | None) -> Observation:
    """``observation``'s window with its raw messages as the comparison sees them."""
    window = observation.stream
    if window is None or output is None:
        return observation
    events = []
    for event in window.events:
        rendered = message_json(output, event.data)
        if rendered is None:
            events.append(event)  # bytes that do not parse as the declared type stay raw
        else:
            events.append(dataclasses.replace(event, type=MESSAGE, data=rendered))
    return dataclasses.replace(
        observation, stream=dataclasses.replace(window, events=tuple(events))
    )


async def fetch_stream(
    channel: grpc.aio.Channel,
    method: str,
    request: bytes,
    metadata: Metadata,
    *,
    window: StreamSettings,
    deadline_s: float | None,
) -> Observation:
    """Call a server-streaming ``method`` and read the copy's window; never raises for failures.

    The window is read for ``max_seconds + grace_s``, to twice the messages
    and bytes, and within the client's remaining deadline; then the call is
    cancelled. Failing before its first message is the failure's kind; cut
    by its upstream after it is ``incomplete``.
    """
    started = time.perf_counter()
    recorder = Recorder(StreamKind.GRPC, 2 * window.max_events, 2 * window.max_bytes)
    call = channel.unary_stream(method, None, None)(
        request, metadata=metadata or None, timeout=deadline_s
    )
    initial: Metadata = ()
    try:
        async with asyncio.timeout(window.max_seconds + window.grace_s):
            initial = pairs(await call.initial_metadata())
            async for message in call:
                at_s = time.perf_counter() - started
                counted = recorder.count(len(message))
                ended = recorder.add(StreamEvent(RAW_MESSAGE, message, None, at_s)) or counted
                if ended is not None:
                    return _cut(recorder, initial, ended, started)
            trailing = pairs(await call.trailing_metadata())
            status, headers = ended_with(initial, trailing, grpc.StatusCode.OK, "")
    except TimeoutError:
        return _cut(recorder, initial, WindowEnd.TIME, started)
    except grpc.aio.AioRpcError as exc:
        elapsed = time.perf_counter() - started
        answer = Answer(
            code=exc.code(),
            details=exc.details() or "",
            initial=initial,
            trailing=pairs(exc.trailing_metadata()),
            response=None,
            elapsed_s=elapsed,
            timeout_s=deadline_s,
        )
        failure = transport_failure(answer)
        if failure is not None:
            kind = ErrorKind.INCOMPLETE if recorder.size else failure
            return Observation.failed(kind, elapsed)
        status, headers = ended_with(initial, answer.trailing, answer.code, answer.details)
    finally:
        call.cancel()
    closed_s = time.perf_counter() - started
    return recorder.observation(status, headers, WindowEnd.END, closed_s)


def _cut(recorder: Recorder, initial: Metadata, ended: WindowEnd, started: float) -> Observation:
    """The window of a stream still open when it closed: ``OK`` so far."""
    closed_s = time.perf_counter() - started
    status = observation_status(grpc.StatusCode.OK)
    return recorder.observation(status, stream_headers(initial), ended, closed_s)
