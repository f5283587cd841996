"""Comparisons: small pairs inline on the loop, large pairs on the worker thread."""

from __future__ import annotations

import threading

import orjson

from shadowproxy.compare import Comparator
from shadowproxy.compare.rules import CompareRules
from shadowproxy.model import Exchange, Observation, Outcome, RequestFacts, Verdict
from shadowproxy.proxy.comparisons import Comparisons

JSON = (("Content-Type", "application/json"),)


def _exchange(legacy: object, candidate: object) -> Exchange:
    facts = RequestFacts("id", "GET", "/x", "", "/x", "default", 0.0)
    return Exchange(
        facts,
        Observation(200, JSON, orjson.dumps(legacy)),
        Observation(200, JSON, orjson.dumps(candidate)),
    )


class _Spy:
    """Delegates to a Comparator and notes which thread called it."""

    def __init__(self, comparator: Comparator, threads: list[str]) -> None:
        self._comparator = comparator
        self._threads = threads

    def compare(self, exchange: Exchange, rules: CompareRules) -> Verdict:
        self._threads.append(threading.current_thread().name)
        return self._comparator.compare(exchange, rules)


class TestComparisons:
    """Where the comparison runs never changes the verdict."""

    async def test_small_inline_large_on_thread(self) -> None:
        """A pair over the inline bound is compared on the worker thread, with the same verdict."""
        comparisons = Comparisons(inline_max_bytes=64)
        threads: list[str] = []
        comparisons._inline = _Spy(comparisons._inline, threads)  # type: ignore[assignment]
        comparisons._large = _Spy(comparisons._large, threads)  # type: ignore[assignment]
        try:
            small = await comparisons.compare(_exchange({"a": 1}, {"a": 2}), CompareRules())
            big = await comparisons.compare(
                _exchange({"a": 1, "pad": "x" * 100}, {"a": 2, "pad": "x" * 100}), CompareRules()
            )
        finally:
            comparisons.close()
        assert small.outcome is big.outcome is Outcome.DIVERGED
        assert [d.path for d in small.differences] == [d.path for d in big.differences] == ["$.a"]
        assert threads[0] == threading.main_thread().name
        assert threads[1].startswith("shadowproxy-compare")
