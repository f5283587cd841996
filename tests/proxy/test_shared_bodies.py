"""Large bodies cross to the comparison process once; a body seen again crosses as a slot."""

from __future__ import annotations

import pickle

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowproxy.compare.rules import CompareRules
from shadowproxy.model import Exchange, Observation, Outcome, RequestFacts
from shadowproxy.shadow.comparisons import Comparisons
from shadowproxy.shadow.flat import exchange_of, flat_exchange
from shadowproxy.shadow.wire import SHARED_BODIES, SHARED_MIN_BYTES, SharedBodies

JSON = (("Content-Type", "application/json"),)
FACTS = RequestFacts("id", "GET", "/x", "", "/x", "default", 0.0)
PAD = "x" * SHARED_MIN_BYTES


def _body(n: int) -> bytes:
    return orjson.dumps({"a": n, "pad": PAD})


def _exchange(legacy: int, candidate: int, secondary: int | None = None) -> Exchange:
    return Exchange(
        FACTS,
        Observation(200, JSON, _body(legacy)),
        Observation(200, JSON, _body(candidate)),
        None if secondary is None else Observation(200, JSON, _body(secondary)),
    )


def _cross(
    sender: SharedBodies, receiver: SharedBodies, exchange: Exchange
) -> tuple[int, Exchange]:
    """The bytes that crossed for ``exchange``, and what the receiving end rebuilt."""
    packed, slots = sender.pack(exchange)
    wire = pickle.dumps((flat_exchange(packed), slots), protocol=pickle.HIGHEST_PROTOCOL)
    crossed, crossed_slots = pickle.loads(wire)
    return len(wire), receiver.unpack(exchange_of(crossed), crossed_slots)


class TestSharedBodies:
    def test_a_pair_seen_before_crosses_without_its_bodies(self) -> None:
        sender, receiver = SharedBodies(), SharedBodies()
        exchange = _exchange(1, 2)
        first, rebuilt_first = _cross(sender, receiver, exchange)
        again, rebuilt_again = _cross(sender, receiver, _exchange(1, 2))
        assert rebuilt_first == rebuilt_again == exchange
        assert first > 2 * SHARED_MIN_BYTES > SHARED_MIN_BYTES > again

    def test_small_bodies_always_cross_whole(self) -> None:
        sender = SharedBodies()
        small = Exchange(FACTS, Observation(200, JSON, b"{}"), Observation(200, JSON, b"[]"))
        assert sender.pack(small) == (small, (None, None, None))
        assert sender.pack(small) == (small, (None, None, None))

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.integers(0, SHARED_BODIES + 2),
                st.integers(0, SHARED_BODIES + 2),
                st.none() | st.integers(0, SHARED_BODIES + 2),
            ),
            max_size=30,
        )
    )
    def test_both_ends_stay_in_step(self, pairs: list[tuple[int, int, int | None]]) -> None:
        """Whatever bodies come and go, the receiving end rebuilds every exchange exactly."""
        sender, receiver = SharedBodies(), SharedBodies()
        for legacy, candidate, secondary in pairs:
            exchange = _exchange(legacy, candidate, secondary)
            assert _cross(sender, receiver, exchange)[1] == exchange


class TestThroughTheProcess:
    async def test_repeated_and_returning_pairs_keep_their_verdicts(self) -> None:
        """The same pair again, and a pair back after others pushed it out, compare as new."""
        comparisons = Comparisons(inline_max_bytes=64)
        order = [(1, 2), (1, 2), *((n, n + 1) for n in range(3, 3 + SHARED_BODIES)), (1, 2)]
        try:
            verdicts = [
                await comparisons.compare(_exchange(legacy, candidate), CompareRules())
                for legacy, candidate in order
            ]
        finally:
            await comparisons.aclose()
        assert all(v is not None and v.outcome is Outcome.DIVERGED for v in verdicts)
        seen = [(v.differences[0].legacy, v.differences[0].candidate) for v in verdicts if v]
        assert seen == order

    async def test_a_message_that_cannot_be_sent_starts_both_ends_afresh(self) -> None:
        """Its bodies were taken on this end only, so the process is replaced, not misled."""
        comparisons = Comparisons(inline_max_bytes=64)
        unpicklable = CompareRules(ignore=(lambda: None,))  # type: ignore[arg-type]
        try:
            await comparisons.compare(_exchange(1, 2), CompareRules())
            first = comparisons._worker
            assert first is not None
            with pytest.raises((pickle.PicklingError, AttributeError)):
                await comparisons.compare(_exchange(5, 6), unpicklable)
            assert not first.alive
            verdict = await comparisons.compare(_exchange(5, 6), CompareRules())
            assert comparisons._worker is not first
        finally:
            await comparisons.aclose()
        assert verdict is not None
        assert (verdict.differences[0].legacy, verdict.differences[0].candidate) == (5, 6)
