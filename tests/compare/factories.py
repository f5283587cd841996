"""Test factories for the comparison engine: short observations and exchanges."""

from __future__ import annotations

import json
from collections.abc import Mapping

from shadowproxy.compare.paths import Segments
from shadowproxy.model import (
    ErrorKind,
    Exchange,
    Headers,
    Observation,
    RequestFacts,
    StreamEvent,
    StreamKind,
    StreamWindow,
    WindowEnd,
)

__all__ = [
    "as_body",
    "leaf_paths",
    "make_exchange",
    "make_observation",
    "make_request",
    "make_stream",
    "value_at",
    "with_value_at",
]

JSON = "application/json"


def as_body(body: object) -> bytes:
    """Bytes as given, text as UTF-8, anything else as JSON (big integers kept exact)."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def make_observation(
    status: int = 200,
    body: object = b"",
    headers: Mapping[str, str] | Headers = (),
    ms: float = 1.0,
    *,
    content_type: str | None = JSON,
    truncated: bool = False,
    error: ErrorKind | None = None,
) -> Observation:
    """An observation; ``content_type`` is added first unless None or already in ``headers``."""
    pairs = tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers)
    if content_type is not None and all(k.lower() != "content-type" for k, _ in pairs):
        pairs = (("Content-Type", content_type), *pairs)
    if error is not None:
        return Observation.failed(error, ms / 1000.0)
    data = as_body(body)
    return Observation(
        status=status,
        headers=pairs,
        body=data,
        elapsed_s=ms / 1000.0,
        body_size=len(data),
        truncated=truncated,
    )


Event = tuple[str, object, str | None, float]
"""``(type, data, id, at_ms)``; data as in ``as_body``."""


def make_stream(
    events: list[Event],
    *,
    ended: WindowEnd = WindowEnd.END,
    closed_ms: float | None = None,
    kind: StreamKind = StreamKind.SSE,
) -> Observation:
    """A stream's observation: ``events`` in its window, closed at ``closed_ms`` (else the last)."""
    parsed = tuple(StreamEvent(t, as_body(d), i, ms / 1000.0) for t, d, i, ms in events)
    closed = (closed_ms if closed_ms is not None else (events[-1][3] if events else 1.0)) / 1000.0
    window = StreamWindow(kind, parsed, ended, closed, sum(len(e.data) for e in parsed))
    return Observation(
        status=200,
        headers=(("Content-Type", "text/event-stream"),),
        elapsed_s=parsed[0].at_s if parsed else closed,
        body_size=window.size,
        stream=window,
    )


def make_request(route: str = "/orders/{id}") -> RequestFacts:
    """Request facts for ``route``."""
    return RequestFacts(
        id="req-1",
        method="GET",
        path="/orders/42",
        query="",
        route=route,
        domain="orders",
        started_at=1_700_000_000.0,
    )


def make_exchange(
    legacy: Observation | None = None,
    candidate: Observation | None = None,
    secondary: Observation | None = None,
    *,
    route: str = "/orders/{id}",
) -> Exchange:
    """An exchange; a missing legacy or candidate is an empty 200 JSON answer."""
    return Exchange(
        request=make_request(route),
        legacy=legacy if legacy is not None else make_observation(),
        candidate=candidate if candidate is not None else make_observation(),
        secondary=secondary,
    )


def leaf_paths(value: object, at: Segments = ()) -> list[Segments]:
    """The path of every leaf of a parsed document (an empty container is a leaf)."""
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in leaf_paths(v, (*at, k))]
    if isinstance(value, list) and value:
        return [p for i, v in enumerate(value) for p in leaf_paths(v, (*at, i))]
    return [at]


def value_at(value: object, path: Segments) -> object:
    """The value at ``path`` in a parsed document."""
    for segment in path:
        value = value[segment]  # type: ignore[index]
    return value


def with_value_at(value: object, path: Segments, new: object) -> object:
    """A copy of a parsed document with ``new`` at ``path``."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (with_value_at(v, rest, new) if k == head else v) for k, v in value.items()}
    assert isinstance(value, list)
    return [(with_value_at(v, rest, new) if i == head else v) for i, v in enumerate(value)]
