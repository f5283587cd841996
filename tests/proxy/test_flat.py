"""Exchanges and verdicts cross to the comparison process as built-in values, whole."""

from __future__ import annotations

import pickle
import pickletools
from dataclasses import fields
from types import MappingProxyType

from shadowproxy.model import (
    DiffClass,
    Difference,
    ErrorKind,
    Exchange,
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
from shadowproxy.shadow.flat import exchange_of, flat_exchange, flat_verdict, verdict_of

# Every field set away from its default, so a field the round trip loses shows.
FACTS = RequestFacts(
    "0123456789abcdef",
    "POST",
    "/orders/7",
    "page=2",
    "/orders",
    "shop",
    1_765_000_000.125,
    "client-42",
    ("s3cret",),
    Phase("canary", 25.0, 1_765_000_000.5),
)
WINDOW = StreamWindow(
    StreamKind.SSE,
    (StreamEvent("message", b"one", "1", 0.01), StreamEvent("tick", b"two", None, 0.02)),
    WindowEnd.EVENTS,
    0.5,
    42,
)
EXCHANGE = Exchange(
    FACTS,
    Observation(200, (("Content-Type", "text/event-stream"),), b"", 0.01, 42, True, None, WINDOW),
    Observation(None, (), b"", 0.2, 0, False, ErrorKind.TIMEOUT, None),
    Observation(201, (("X-A", "1"), ("x-a", "2")), b'{"a":1}', 0.03, 7, False, None, None),
    Upstream.CANDIDATE,
)
VERDICT = Verdict(
    Outcome.DIVERGED,
    frozenset({DiffClass.SEMANTIC, DiffClass.TIMING}),
    (
        Difference(DiffClass.SEMANTIC, "value", "$.a", {"b": [1, 2.5, None]}, "x", False),
        Difference(DiffClass.TIMING, "latency", "latency", 0.01, 0.2, True),
    ),
    MappingProxyType({"number_format": 2}),
    "differences truncated at 2",
)


def _globals(flat: object) -> list[str]:
    """The opcodes of ``flat``'s pickle that name a class or function."""
    data = pickle.dumps(flat, protocol=pickle.HIGHEST_PROTOCOL)
    return [op.name for op, _, _ in pickletools.genops(data) if "GLOBAL" in op.name]


class TestFlat:
    def test_an_exchange_crosses_whole(self) -> None:
        crossed = exchange_of(pickle.loads(pickle.dumps(flat_exchange(EXCHANGE))))
        assert crossed == EXCHANGE
        assert crossed.answered_by is Upstream.CANDIDATE
        assert crossed.candidate.error is ErrorKind.TIMEOUT

    def test_a_verdict_crosses_whole_and_read_only(self) -> None:
        crossed = verdict_of(pickle.loads(pickle.dumps(flat_verdict(VERDICT))))
        assert crossed == VERDICT
        assert isinstance(crossed.equivalences, MappingProxyType)
        assert crossed.outcome is Outcome.DIVERGED

    def test_no_class_crosses_by_name(self) -> None:
        """The reason for flattening: pickle imports a module for every class it names."""
        assert _globals(flat_exchange(EXCHANGE)) == []
        assert _globals(flat_verdict(VERDICT)) == []
        assert _globals(EXCHANGE) != []

    def test_the_values_have_the_fields_flat_knows(self) -> None:
        """A field added to a value must be carried by ``shadow/flat.py`` too."""
        known = {
            RequestFacts: 10,
            Phase: 3,
            Observation: 8,
            StreamWindow: 5,
            StreamEvent: 4,
            Exchange: 5,
            Difference: 6,
            Verdict: 5,
        }
        assert {value: len(fields(value)) for value in known} == known
