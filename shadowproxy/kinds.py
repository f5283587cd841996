"""The closed vocabularies of the evidence: sides, outcomes, classes and reasons.

Each is a ``StrEnum`` whose values are part of the JSONL or metrics contract
(docs/evidence.md). ``shadowproxy.model`` builds its values from them and
re-exports them, so callers import them from either. The innermost module:
standard library only.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ClientTimeout",
    "ConnectionRefusal",
    "DiffClass",
    "ErrorKind",
    "EventFate",
    "Outcome",
    "SkipReason",
    "StreamKind",
    "Upstream",
    "WindowEnd",
]


class Upstream(StrEnum):
    """Which backend an observation came from."""

    LEGACY = "legacy"
    CANDIDATE = "candidate"
    SECONDARY = "secondary"


class ErrorKind(StrEnum):
    """Why an upstream gave no comparable answer. Part of the JSONL contract."""

    TIMEOUT = "timeout"
    REFUSED = "refused"
    RESET = "reset"
    INCOMPLETE = "incomplete"
    TOO_LARGE = "too_large"
    DECODE = "decode"
    OTHER = "other"


class SkipReason(StrEnum):
    """Why a request was not mirrored. Part of the metrics and JSONL contract."""

    SAMPLED_OUT = "sampled_out"
    METHOD = "method"
    BODY_TOO_LARGE = "body_too_large"
    QUEUE_FULL = "queue_full"
    PAUSED = "paused"
    UPGRADE = "upgrade"
    OVERLOAD = "overload"
    LEGACY_FAILED = "legacy_failed"
    MODE = "mode"
    """The route's mode mirrors nothing (``legacy-only``)."""
    MIRROR_OFF = "mirror_off"
    """The route sets ``mirror: false`` (a state-changing read, never replayed)."""
    STREAMS_FULL = "streams_full"
    """A stream (SSE or WebSocket shadow) found every stream slot of the worker taken."""
    STREAM = "stream"
    """Legacy answered an event stream to a request not recognised as one."""
    BACKPRESSURE = "backpressure"
    """A WebSocket shadow was dropped because the candidate did not keep up."""


class ConnectionRefusal(StrEnum):
    """Why a client connection was closed on arrival. Part of the metrics contract."""

    LIMIT = "max_client_connections"
    """The worker already had ``max_client_connections`` open."""
    ADDRESS_SHARE = "address_share"
    """The client's address already held its share (``clients.address_share_percent``)."""


class ClientTimeout(StrEnum):
    """Which client timeout closed a connection. Part of the metrics contract."""

    HEAD = "head"
    """The request head did not arrive whole within ``clients.header_timeout_s``."""
    BODY = "body"
    """The request body stayed silent for ``clients.body_timeout_s``."""


class EventFate(StrEnum):
    """What became of one NATS event. Part of the metrics contract."""

    MATCHED = "matched"
    """Paired with the other side's within the window, and compared."""
    LATE = "late"
    """Paired, the second after the window but within ``late_s``; compared."""
    MISSING = "missing"
    """Legacy's, never paired: the candidate did not send it."""
    EXTRA = "extra"
    """The candidate's, never paired: legacy did not send it."""
    DUPLICATE = "duplicate"
    """Its ``Nats-Msg-Id`` came from its side before."""
    UNCORRELATED = "uncorrelated"
    """Its payload has no correlation key."""
    DROPPED = "dropped"
    """Pushed out of a full window (``max_pending``) before it was paired."""


class Outcome(StrEnum):
    """The verdict of one exchange."""

    MATCH = "match"
    DIVERGED = "diverged"
    NOISE = "noise"
    ERROR = "error"


class DiffClass(StrEnum):
    """How much a difference matters for cutover."""

    STRUCTURAL = "structural"
    SEMANTIC = "semantic"
    TIMING = "timing"


class StreamKind(StrEnum):
    """The protocol of a stream. Part of the JSONL contract."""

    SSE = "sse"
    WEBSOCKET = "websocket"
    GRPC = "grpc"
    """A gRPC server-streaming call: its messages are the events."""


class WindowEnd(StrEnum):
    """Why a stream's comparison window closed. Part of the JSONL contract."""

    EVENTS = "events"
    """It held the window's number of events."""
    TIME = "time"
    """The window's time passed."""
    BYTES = "bytes"
    """It held the window's number of bytes."""
    END = "end"
    """The upstream ended the stream (or the session) within the window."""
    CLIENT = "client"
    """The client went away within the window."""
