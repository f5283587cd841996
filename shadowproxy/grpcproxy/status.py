"""gRPC status codes as the comparison core, the evidence and the metrics see them.

Owns two documented mappings. ``observation_status`` puts the gRPC code into
``Observation.status`` as ``200 + code`` (``OK`` is 200, ``NOT_FOUND`` 205,
``UNAVAILABLE`` 214), one number per code, so any code change is a
``status`` difference (structural) and ``OK`` reads as 200 in the records.
``http_status`` is the google.rpc HTTP mapping (``NOT_FOUND`` 404,
``UNAVAILABLE`` 503), used only for the ``code_class`` label of
``shadowproxy_requests_total`` so dashboards see client and server errors.
Pure: imports only grpc's ``StatusCode`` enum.
"""

from __future__ import annotations

from types import MappingProxyType

import grpc

__all__ = ["STATUS_BASE", "code_name", "http_status", "observation_status"]

STATUS_BASE = 200
"""``Observation.status`` of ``OK``; code ``n`` becomes ``STATUS_BASE + n``."""

_BY_NUMBER = MappingProxyType({code.value[0]: code for code in grpc.StatusCode})

_HTTP = MappingProxyType(
    {
        grpc.StatusCode.OK: 200,
        grpc.StatusCode.CANCELLED: 499,
        grpc.StatusCode.UNKNOWN: 500,
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.DEADLINE_EXCEEDED: 504,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
        grpc.StatusCode.FAILED_PRECONDITION: 400,
        grpc.StatusCode.ABORTED: 409,
        grpc.StatusCode.OUT_OF_RANGE: 400,
        grpc.StatusCode.UNIMPLEMENTED: 501,
        grpc.StatusCode.INTERNAL: 500,
        grpc.StatusCode.UNAVAILABLE: 503,
        grpc.StatusCode.DATA_LOSS: 500,
        grpc.StatusCode.UNAUTHENTICATED: 401,
    }
)


def observation_status(code: grpc.StatusCode) -> int:
    """``Observation.status`` for ``code``: ``200 + code``."""
    number: int = code.value[0]
    return STATUS_BASE + number


def code_name(status: object) -> object:
    """The code name (``NOT_FOUND``) of an ``observation_status`` value; others unchanged."""
    if isinstance(status, int) and not isinstance(status, bool):
        code = _BY_NUMBER.get(status - STATUS_BASE)
        if code is not None:
            return code.name
    return status


def http_status(code: grpc.StatusCode) -> int:
    """The google.rpc HTTP status of ``code`` (for the requests metric's status class)."""
    return _HTTP.get(code, 500)
