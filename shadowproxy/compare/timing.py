"""Whether the candidate was slow enough to count as a timing difference.

Owns the latency rule: slower by more than ``ratio`` times *and* by at least
``min_delta_ms``, or slower by more than ``absolute_ms``. Pure code.
"""

from __future__ import annotations

from shadowproxy.compare.found import Found
from shadowproxy.compare.rules import TimingRules

__all__ = ["LATENCY_PATH", "is_slow", "latency_difference"]

LATENCY_PATH = "latency"


def is_slow(legacy_ms: float, candidate_ms: float, rules: TimingRules) -> bool:
    """True when ``candidate_ms`` breaks the timing rule against ``legacy_ms``."""
    delta = candidate_ms - legacy_ms
    if delta > rules.absolute_ms:
        return True
    return candidate_ms > legacy_ms * rules.ratio and delta >= rules.min_delta_ms


def latency_difference(legacy_s: float, candidate_s: float, rules: TimingRules) -> Found | None:
    """A ``latency`` difference (values in milliseconds) when the candidate is slow."""
    legacy_ms, candidate_ms = legacy_s * 1000.0, candidate_s * 1000.0
    if not is_slow(legacy_ms, candidate_ms, rules):
        return None
    return Found("latency", LATENCY_PATH, round(legacy_ms, 3), round(candidate_ms, 3))
