"""NATS messages as the comparison core sees them, and NATS failures as values.

Owns the translation of a reply or an event into an ``Observation``: status
200 (a NATS message has no status: it arrived), its headers as NATS
clients see them (a map), the payload as the body, and a Content-Type: the
message's own ``Content-Type`` header, else ``application/json`` when the
payload starts like a JSON document (``{`` or ``[``), else
``application/octet-stream``, so JSON is compared with the engine and
anything else as bytes. A payload over the comparison cap is ``truncated``.
A request that got no reply is an ``Observation.failed``: no responders is
``refused``, no reply in time ``timeout``, a lost connection ``reset``.
Imports nats-py's errors only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import nats.errors

from shadowproxy.model import ErrorKind, Headers, Observation

__all__ = ["JSON", "RAW", "content_type", "failure", "header_pairs", "observed"]

JSON = "application/json"
RAW = "application/octet-stream"

_JSON_START = frozenset(b"{[")
_LOST = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
)
_WHITESPACE = b" \t\r\n"


def header_pairs(headers: Mapping[str, str] | None) -> Headers:
    """A message's headers as comparable pairs."""
    return () if not headers else tuple(headers.items())


def content_type(data: bytes, headers: Headers) -> str:
    """The message's Content-Type header, else JSON or bytes by the payload's first character."""
    for name, value in headers:
        if name.lower() == "content-type":
            return value
    start = data.lstrip(_WHITESPACE)[:1]
    return JSON if start and start[0] in _JSON_START else RAW


def observed(
    data: bytes, headers: Mapping[str, str] | None, elapsed_s: float, *, cap: int
) -> Observation:
    """A reply or an event that arrived; cut at ``cap`` bytes (``truncated``)."""
    pairs = header_pairs(headers)
    shown = (*pairs, ("content-type", content_type(data, pairs)))
    if len(data) > cap:
        return Observation(
            status=200, headers=shown, elapsed_s=elapsed_s, body_size=len(data), truncated=True
        )
    return Observation(
        status=200, headers=shown, body=data, elapsed_s=elapsed_s, body_size=len(data)
    )


def failure(exc: Exception, started: float) -> Observation:
    """A request that got no usable reply, by the kind of its failure."""
    elapsed = time.perf_counter() - started
    if isinstance(exc, nats.errors.NoRespondersError):
        kind = ErrorKind.REFUSED
    elif isinstance(exc, nats.errors.TimeoutError | TimeoutError):
        kind = ErrorKind.TIMEOUT
    elif isinstance(exc, _LOST):
        kind = ErrorKind.RESET
    else:
        kind = ErrorKind.OTHER
    return Observation.failed(kind, elapsed)
