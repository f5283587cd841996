"""Which gRPC metadata is forwarded, and how metadata becomes comparable headers.

Owns the reserved keys: pseudo-headers (``:authority``), transport keys the
gRPC library sets itself (``user-agent``, ``te``, ``content-type``) and the
``grpc-`` keys (timeout, encodings, status), except ``grpc-status-details-bin``,
which carries rich error details end to end. Reserved keys are never
forwarded nor compared; a client's ``x-shadow-*`` keys are the proxy's own
and never forwarded either. Binary (``-bin``) values become base64 text in
headers. Pure code.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from shadowproxy.model import Headers

__all__ = ["Metadata", "as_headers", "forwardable", "from_client", "is_reserved"]

Metadata = tuple[tuple[str, str | bytes], ...]
"""gRPC metadata in wire order: lower-case keys, bytes values for ``-bin`` keys."""

_TRANSPORT = frozenset(
    {"user-agent", "te", "content-type", "content-length", "host", "connection", "keep-alive"}
)
_KEPT_GRPC = frozenset({"grpc-status-details-bin"})


def is_reserved(key: str) -> bool:
    """True for keys the gRPC library owns: never forwarded, never compared."""
    name = key.lower()
    if name in _KEPT_GRPC:
        return False
    return name.startswith((":", "grpc-")) or name in _TRANSPORT


def forwardable(metadata: Iterable[tuple[str, str | bytes]] | None) -> Metadata:
    """``metadata`` without reserved keys, order kept."""
    if not metadata:
        return ()
    return tuple((key, value) for key, value in metadata if not is_reserved(key))


def from_client(metadata: Iterable[tuple[str, str | bytes]] | None) -> Metadata:
    """A client's metadata as forwarded: reserved keys and the proxy's own ``x-shadow-*`` dropped.

    A client can neither mark a call as a mirror nor reach an upstream with a probe's token.
    """
    return tuple(
        (key, value) for key, value in forwardable(metadata) if not key.startswith("x-shadow-")
    )


def as_headers(*parts: Metadata) -> Headers:
    """Metadata as comparable header pairs: ``-bin`` values base64-encoded."""
    headers: list[tuple[str, str]] = []
    for metadata in parts:
        for key, value in metadata:
            text = base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value
            headers.append((key, text))
    return tuple(headers)
