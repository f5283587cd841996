"""The client's side of a gRPC call: who answers it, how the answer is relayed and counted.

Owns the per-call ``Serving`` (the method, the client's deadline, the side
that answers and whether the call is the drill's probe), the sticky key a
canary reads from a call (``metadata:NAME`` or the peer's address), and
``Answering``: relaying a settled answer (initial metadata, the message or
the status code and details, trailing metadata) and counting it (the
request, the answering side's latency and failure), and counting a call
whose client went away first (at its deadline a timeout of the answering
side, before it ``CANCELLED``). When the gRPC library itself failed to reach
the answering side, the client gets the same status code with the details
``shadowproxy: <side> <reason>``. A probe carrying the admin token in
``x-shadow-probe`` gets ``x-shadow-answered-by`` in its initial metadata.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from shadowproxy.grpcproxy.answers import Answer, past_deadline, transport_failure
from shadowproxy.grpcproxy.metadata import Metadata, forwardable
from shadowproxy.grpcproxy.methods import GrpcMethod
from shadowproxy.grpcproxy.shadow import GrpcEvidence
from shadowproxy.grpcproxy.status import http_status, observation_status
from shadowproxy.model import ErrorKind, Observation, Upstream

__all__ = [
    "ANSWERED_BY",
    "ERROR_CODES",
    "GRPC_METHOD",
    "PROBE",
    "Answering",
    "Context",
    "Serving",
    "failed",
    "sticky_key",
]

log = structlog.get_logger(__name__)

GRPC_METHOD = "POST"
"""The HTTP method recorded for gRPC calls (every call is an HTTP/2 POST)."""
PROBE = "x-shadow-probe"
"""The metadata key of the drill's probe (the admin token)."""
ANSWERED_BY = "x-shadow-answered-by"
"""The initial metadata key that tells a probe which side answered."""
ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
"""The codes a candidate answering a method counts as errors for automatic rollback."""

Context = grpc.aio.ServicerContext[Any, Any]
"""The server-side context of one call (raw bytes both ways)."""


@dataclass(frozen=True, slots=True)
class Serving:
    """One call as the hot path serves it."""

    method: GrpcMethod
    deadline: float | None
    """The client's remaining time when the call arrived, or None without a deadline."""
    answered_by: Upstream = Upstream.LEGACY
    probe: bool = False
    """The call carries the admin token in ``x-shadow-probe``."""


def sticky_key(sticky: str, metadata: Metadata, peer: str) -> str:
    """The canary key of a call: ``metadata:NAME``'s value, else the peer's address."""
    kind, _, name = sticky.partition(":")
    if kind == "metadata":
        value = next((v for k, v in metadata if k == name and isinstance(v, str)), None)
        if value:
            return f"metadata:{value}"
    # ipv4:10.0.0.5:51234, ipv6:[::1]:51234: the address without the port.
    return f"client:{peer.rpartition(':')[0] or peer}"


def failed(answer: Answer) -> bool:
    """True when ``answer`` counts as an error of the side that gave it (rollback's errors)."""
    return transport_failure(answer) is not None or answer.code in ERROR_CODES


def _light(answer: Answer) -> Observation:
    """The answering side's latency and failure for the metrics, without decoding anything."""
    failure = transport_failure(answer)
    if failure is not None:
        return Observation.failed(failure, answer.elapsed_s)
    return Observation(status=observation_status(answer.code), elapsed_s=answer.elapsed_s)


class Answering:
    """Relays answers to clients and counts every call, for one worker."""

    def __init__(self, sink: GrpcEvidence, probe_token: bytes | None) -> None:
        self._sink = sink
        self._token = probe_token

    def probed(self, invocation: Iterable[tuple[str, str | bytes]] | None) -> bool:
        """True when the call carries the admin token in ``x-shadow-probe`` (constant time)."""
        token = self._token
        if token is None or not invocation:
            return False
        given = next((v for k, v in invocation if k == PROBE), None)
        if given is None:
            return False
        data = given if isinstance(given, bytes) else given.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(data, token)

    def initial(self, serving: Serving, metadata: Metadata) -> Metadata:
        """The initial metadata the client gets: the side's, and for a probe who answered."""
        forwarded = forwardable(metadata)
        if serving.probe:
            return (*forwarded, (ANSWERED_BY, str(serving.answered_by)))
        return forwarded

    async def send(
        self,
        serving: Serving,
        answer: Answer,
        context: Context,
        *,
        stream: bool = False,
        initial_sent: bool = False,
    ) -> bytes | None:
        """Relay a settled answer to the client and count it.

        A stream's duration is not a latency, so only its failures reach the
        upstream metrics; its initial metadata went out before its messages
        (``initial_sent``), unless it failed first.
        """
        method = serving.method
        light = _light(answer)
        if not stream or not light.ok:
            self._sink.on_upstream(serving.answered_by, method.name, light)
        self._sink.on_request(method.name, GRPC_METHOD, http_status(answer.code))
        initial = () if initial_sent else self.initial(serving, answer.initial)
        if initial:
            await context.send_initial_metadata(initial)
        trailing = forwardable(answer.trailing)
        if answer.code is grpc.StatusCode.OK:
            if trailing:
                context.set_trailing_metadata(trailing)
            return answer.response
        await context.abort(answer.code, self._details(serving, answer), trailing)

    def gone(self, serving: Serving, elapsed_s: float) -> None:
        """Count a call whose client went away before it was answered (gRPC cancels the handler).

        At the client's deadline that is a timeout of the answering side,
        counted as any other: the request (``DEADLINE_EXCEEDED``), the side's
        latency and the error. Before it, the client cancelled the call
        (``CANCELLED``), which is no upstream failure.
        """
        method, side = serving.method, serving.answered_by
        if past_deadline(elapsed_s, serving.deadline):
            timeout = Observation.failed(ErrorKind.TIMEOUT, elapsed_s)
            self._sink.on_upstream(side, method.name, timeout)
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            log.warning(f"{side} failed", route=method.name, reason=str(ErrorKind.TIMEOUT))
        else:
            code = grpc.StatusCode.CANCELLED
        self._sink.on_request(method.name, GRPC_METHOD, http_status(code))

    def _details(self, serving: Serving, answer: Answer) -> str:
        failure = transport_failure(answer)
        if failure is None:
            return answer.details
        side = serving.answered_by
        log.warning(f"{side} failed", route=serving.method.name, reason=str(failure))
        return f"shadowproxy: {side} {failure}"
