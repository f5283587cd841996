"""The drill's probe of a gRPC proxy: one unary call that asks which side answered.

The call carries the admin token in ``x-shadow-probe``; the proxy then puts
``x-shadow-answered-by`` in its initial metadata. The request is the bytes
``--grpc-request`` gives (an empty message, every field at its default,
without it), sent raw to the method ``--path`` names. The answer's status is
the google.rpc HTTP mapping of its code, so the drill's rule (a status below
500 from the expected side) reads gRPC as it reads HTTP: ``UNAVAILABLE``,
``INTERNAL``, ``UNKNOWN`` and ``DEADLINE_EXCEEDED`` are failures, ``NOT_FOUND``
or ``INVALID_ARGUMENT`` an answer.
"""

from __future__ import annotations

import grpc

from shadowproxy.grpcproxy.answering import ANSWERED_BY, PROBE
from shadowproxy.grpcproxy.status import http_status

__all__ = ["probe_grpc"]

_TIMEOUT_S = 5.0


def _answered_by(metadata: object) -> str | None:
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == ANSWERED_BY:
            return str(value)
    return None


def probe_grpc(
    target: str, method: str, request: bytes, token: str | None
) -> tuple[int | None, str | None]:
    """Call ``method`` on the proxy at ``target`` (``HOST:PORT``): its status and who answered.

    ``(None, None)`` when the call did not reach the proxy.
    """
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(method, None, None)
        try:
            _, answer = call.with_call(
                request, metadata=((PROBE, token or ""),), timeout=_TIMEOUT_S
            )
        except grpc.RpcError as exc:
            code = exc.code()
            initial = exc.initial_metadata()  # type: ignore[attr-defined]  # it is the call too
            if code is grpc.StatusCode.UNAVAILABLE and not initial:
                return None, None
            return http_status(code), _answered_by(initial)
        return http_status(grpc.StatusCode.OK), _answered_by(answer.initial_metadata())
