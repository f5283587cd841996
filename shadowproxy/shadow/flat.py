"""Exchanges and verdicts as nested tuples of built-in values, and back.

What crosses the pipe to the comparison process (``wire``). Pickle handles
tuples, strings, numbers and bytes in C; a dataclass or an enum member costs it
a named global per class in every message, which it finds again by importing
the class's module (about a third of the hand-off, measured in
docs/performance.md). So values cross flattened: each value as the tuple of
its fields in declaration order, each enum member as its string value, and
each end rebuilds them through the classes' own ``__init__``.
``tests/proxy/test_flat.py`` holds every field of every value to a round trip.
"""

from __future__ import annotations

from types import MappingProxyType

from shadowproxy.model import (
    NO_EQUIVALENCES,
    DiffClass,
    Difference,
    ErrorKind,
    Exchange,
    Headers,
    JsonValue,
    Observation,
    Outcome,
    Phase,
    RequestFacts,
    StreamEvent,
    StreamKind,
    StreamWindow,
    Upstream,
    Verdict,
    WindowEnd,
)

__all__ = [
    "FlatExchange",
    "FlatVerdict",
    "exchange_of",
    "flat_exchange",
    "flat_verdict",
    "verdict_of",
]

_FlatRequest = tuple[
    str,
    str,
    str,
    str,
    str,
    str,
    float,
    str | None,
    tuple[str, ...],
    tuple[str, float | None, float | None],
]
_FlatEvent = tuple[str, bytes, str | None, float]
_FlatWindow = tuple[str, tuple[_FlatEvent, ...], str, float, int]
_FlatObservation = tuple[
    int | None, Headers, bytes, float, int, bool, str | None, _FlatWindow | None
]
_FlatDifference = tuple[str, str, str, JsonValue, JsonValue, bool]
FlatExchange = tuple[_FlatRequest, _FlatObservation, _FlatObservation, _FlatObservation | None, str]
"""An exchange as ``flat_exchange`` gives it."""
FlatVerdict = tuple[str, tuple[str, ...], tuple[_FlatDifference, ...], dict[str, int], str | None]
"""A verdict as ``flat_verdict`` gives it."""

# Members by value, looked up in C: calling the enum class runs in the interpreter.
_UPSTREAMS = {str(member): member for member in Upstream}
_ERRORS = {str(member): member for member in ErrorKind}
_STREAM_KINDS = {str(member): member for member in StreamKind}
_WINDOW_ENDS = {str(member): member for member in WindowEnd}
_OUTCOMES = {str(member): member for member in Outcome}
_CLASSES = {str(member): member for member in DiffClass}


def flat_exchange(exchange: Exchange) -> FlatExchange:
    """``exchange`` as built-in values."""
    request = exchange.request
    phase = request.phase
    secondary = exchange.secondary
    return (
        (
            request.id,
            request.method,
            request.path,
            request.query,
            request.route,
            request.domain,
            request.started_at,
            request.client_request_id,
            request.secrets,
            (phase.mode, phase.percent, phase.since),
        ),
        _flat_observation(exchange.legacy),
        _flat_observation(exchange.candidate),
        None if secondary is None else _flat_observation(secondary),
        str(exchange.answered_by),
    )


def exchange_of(flat: FlatExchange) -> Exchange:
    """The exchange ``flat_exchange`` flattened."""
    request, legacy, candidate, secondary, answered_by = flat
    mode, percent, since = request[9]
    return Exchange(
        RequestFacts(
            request[0],
            request[1],
            request[2],
            request[3],
            request[4],
            request[5],
            request[6],
            request[7],
            request[8],
            Phase(mode, percent, since),
        ),
        _observation_of(legacy),
        _observation_of(candidate),
        None if secondary is None else _observation_of(secondary),
        _UPSTREAMS[answered_by],
    )


def _flat_observation(observation: Observation) -> _FlatObservation:
    error = observation.error
    window = observation.stream
    return (
        observation.status,
        observation.headers,
        observation.body,
        observation.elapsed_s,
        observation.body_size,
        observation.truncated,
        None if error is None else str(error),
        None
        if window is None
        else (
            str(window.kind),
            tuple((event.type, event.data, event.id, event.at_s) for event in window.events),
            str(window.ended),
            window.closed_s,
            window.size,
        ),
    )


def _observation_of(flat: _FlatObservation) -> Observation:
    status, headers, body, elapsed_s, body_size, truncated, error, window = flat
    stream = None
    if window is not None:
        kind, events, ended, closed_s, size = window
        stream = StreamWindow(
            _STREAM_KINDS[kind],
            tuple(StreamEvent(type_, data, id_, at_s) for type_, data, id_, at_s in events),
            _WINDOW_ENDS[ended],
            closed_s,
            size,
        )
    return Observation(
        status,
        headers,
        body,
        elapsed_s,
        body_size,
        truncated,
        None if error is None else _ERRORS[error],
        stream,
    )


def flat_verdict(verdict: Verdict) -> FlatVerdict:
    """``verdict`` as built-in values."""
    return (
        str(verdict.outcome),
        tuple(str(cls) for cls in verdict.classes),
        tuple(
            (str(diff.cls), diff.kind, diff.path, diff.legacy, diff.candidate, diff.noise)
            for diff in verdict.differences
        ),
        dict(verdict.equivalences),
        verdict.note,
    )


def verdict_of(flat: FlatVerdict) -> Verdict:
    """The verdict ``flat_verdict`` flattened, its equivalences read-only as the engine's are."""
    outcome, classes, differences, equivalences, note = flat
    return Verdict(
        _OUTCOMES[outcome],
        frozenset(_CLASSES[cls] for cls in classes),
        tuple(
            Difference(_CLASSES[cls], kind, path, legacy, candidate, noise)
            for cls, kind, path, legacy, candidate, noise in differences
        ),
        MappingProxyType(equivalences) if equivalences else NO_EQUIVALENCES,
        note,
    )
