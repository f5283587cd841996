"""Streaming calls relayed: the answering side's messages as they arrive, then its status.

``relay_stream`` sends the answering side's initial metadata, each message
as it arrives, then counts and relays the final status and trailing
metadata (``Answering.send``). When a mirror waits (``client_answer``, a
mirrored server-streaming call), each message is recorded for its window
after it was relayed (``WindowTap``: raw bytes only, nothing is decoded
here). A call whose client goes away is counted (``Answering.gone``) and
closes the window as ``client``; a side cut by its transport within the
window leaves nothing to compare.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc

from shadowproxy.grpcproxy.answering import Answering, Context, Serving
from shadowproxy.grpcproxy.answers import Answer, pairs, transport_failure
from shadowproxy.grpcproxy.metadata import Metadata
from shadowproxy.grpcproxy.status import observation_status
from shadowproxy.grpcproxy.streams import RAW_MESSAGE, ended_with, stream_headers
from shadowproxy.model import StreamKind, WindowEnd
from shadowproxy.shadow.streams import ClientAnswer, WindowTap

__all__ = ["relay_stream"]


async def relay_stream(
    answering: Answering,
    serving: Serving,
    call: grpc.aio.UnaryStreamCall | grpc.aio.StreamStreamCall,  # type: ignore[type-arg]
    context: Context,
    client_answer: ClientAnswer | None = None,
    ended: Callable[[Answer], None] | None = None,
) -> AsyncIterator[bytes]:
    """The answering side's messages as they arrive, then its status and trailing metadata.

    ``ended`` is told how the stream ended (the candidate's feeds its rollback).
    """
    started = time.perf_counter()
    deadline = serving.deadline
    sent_initial = False
    tap: WindowTap | None = None
    initial: Metadata = ()
    try:
        initial = pairs(await call.initial_metadata())
        forwarded = answering.initial(serving, initial)
        if forwarded:
            await context.send_initial_metadata(forwarded)
        sent_initial = True
        if client_answer is not None:
            ok = observation_status(grpc.StatusCode.OK)
            tap = WindowTap(
                client_answer,
                serving.method.window,
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
        # Cancelled while waiting for the side, or closed while the client's write was.
        answering.gone(serving, time.perf_counter() - started)
        if tap is not None:
            tap.end(WindowEnd.CLIENT)
        raise
    finally:
        call.cancel()
        if client_answer is not None and tap is None and not client_answer.done():
            client_answer.set_result(None)  # the side failed before its first message
    if tap is not None:
        if transport_failure(answer) is None:
            tap.end(
                WindowEnd.END,
                *ended_with(initial, answer.trailing, answer.code, answer.details),
            )
        else:
            tap.failed()
    if ended is not None:
        ended(answer)
    await answering.send(serving, answer, context, stream=True, initial_sent=sent_initial)
