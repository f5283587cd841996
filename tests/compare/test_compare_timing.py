"""The latency rule: ratio and minimum delta together, or an absolute delta."""

from __future__ import annotations

import pytest

from shadowproxy.compare import Comparator, CompareRules, TimingRules
from shadowproxy.compare.timing import is_slow
from shadowproxy.model import DiffClass, Outcome
from tests.compare.factories import make_exchange, make_observation

RULES = TimingRules(ratio=2.0, min_delta_ms=10.0, absolute_ms=100.0)


class TestIsSlow:
    """``timing.is_slow``."""

    @pytest.mark.parametrize(
        ("legacy_ms", "candidate_ms", "slow"),
        [
            (10.0, 30.0, True),  # 3x and +20 ms
            (10.0, 19.0, False),  # under 2x
            (1.0, 5.0, False),  # 5x but only +4 ms
            (1.0, 11.0, True),  # 11x and exactly +10 ms
            (200.0, 301.0, True),  # 1.5x but beyond +100 ms
            (200.0, 300.0, False),  # 1.5x and exactly +100 ms
            (30.0, 10.0, False),  # faster is never slow
        ],
    )
    def test_thresholds(self, legacy_ms: float, candidate_ms: float, slow: bool) -> None:
        """Slow needs ratio and min delta together, or more than the absolute delta."""
        assert is_slow(legacy_ms, candidate_ms, RULES) is slow


class TestLatencyDifference:
    """Latency in a verdict."""

    def test_slow_candidate_diverges_on_timing_only(self) -> None:
        """Equal answers with a slow candidate give one timing difference in milliseconds."""
        exchange = make_exchange(make_observation(ms=10.0), make_observation(ms=250.5))
        verdict = Comparator().compare(exchange, CompareRules(timing=RULES))
        assert verdict.outcome is Outcome.DIVERGED
        assert verdict.classes == {DiffClass.TIMING}
        (difference,) = verdict.differences
        assert (difference.kind, difference.path) == ("latency", "latency")
        assert (difference.legacy, difference.candidate) == (10.0, 250.5)

    def test_thresholds_come_from_the_rules(self) -> None:
        """A looser rule turns the same latencies into a match."""
        exchange = make_exchange(make_observation(ms=10.0), make_observation(ms=250.0))
        loose = TimingRules(ratio=100.0, min_delta_ms=10.0, absolute_ms=1000.0)
        assert Comparator().compare(exchange, CompareRules(timing=loose)).outcome is Outcome.MATCH

    def test_latency_can_be_ignored(self) -> None:
        """``ignore: [latency]`` turns the timing difference into noise."""
        exchange = make_exchange(make_observation(ms=10.0), make_observation(ms=250.0))
        verdict = Comparator().compare(exchange, CompareRules(ignore=("latency",)))
        assert verdict.outcome is Outcome.NOISE
        assert [d.noise for d in verdict.differences] == [True]
