"""Mergeable latency histograms with fixed log-spaced buckets.

The bucket layout is part of the JSONL contract: bucket ``i`` holds latencies
in ``(bound(i-1), bound(i)]`` milliseconds with ``bound(i) = 0.01 * 2 ** (i / 8)``,
so each bucket is about 9% wide and any two histograms merge by adding counts.
Pure code: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["BUCKETS", "LatencyHistogram", "bucket_bound_ms", "bucket_index"]

_BASE_MS = 0.01
_STEPS_PER_DOUBLING = 8
BUCKETS = 256
"""Number of buckets; the last one also takes everything beyond it (about 7 hours)."""


def bucket_bound_ms(index: int) -> float:
    """Upper bound, in milliseconds, of bucket ``index``."""
    return float(_BASE_MS * 2.0 ** (index / _STEPS_PER_DOUBLING))


def bucket_index(ms: float) -> int:
    """The bucket a latency of ``ms`` milliseconds falls into."""
    if ms <= _BASE_MS:
        return 0
    index = math.ceil(_STEPS_PER_DOUBLING * math.log2(ms / _BASE_MS) - 1e-9)
    return min(index, BUCKETS - 1)


class LatencyHistogram:
    """Sparse counts per bucket plus count and sum; merge by addition."""

    __slots__ = ("count", "counts", "sum_ms")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.sum_ms = 0.0

    def observe(self, ms: float) -> None:
        """Add one latency."""
        index = bucket_index(ms)
        self.counts[index] = self.counts.get(index, 0) + 1
        self.count += 1
        self.sum_ms += ms

    def merge(self, other: LatencyHistogram) -> None:
        """Add another histogram's counts to this one."""
        for index, n in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + n
        self.count += other.count
        self.sum_ms += other.sum_ms

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile ``q`` (0..1), or None when empty.

        Reporting the bucket's upper bound overstates by at most one bucket
        (about 9%), never understates.
        """
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return bucket_bound_ms(index)
        return bucket_bound_ms(max(self.counts))

    def to_json(self) -> dict[str, object]:
        """The JSONL form: ``{"count", "sum_ms", "buckets": {"index": count}}``."""
        return {
            "count": self.count,
            "sum_ms": round(self.sum_ms, 3),
            "buckets": {str(i): n for i, n in sorted(self.counts.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> LatencyHistogram:
        """Rebuild a histogram from its JSONL form; raises ValueError when malformed."""
        hist = cls()
        buckets = data.get("buckets", {})
        if not isinstance(buckets, Mapping):
            raise ValueError("buckets must be an object")
        for key, n in buckets.items():
            index = int(key)
            if not 0 <= index < BUCKETS or not isinstance(n, int) or n < 0:
                raise ValueError(f"bad bucket {key!r}")
            hist.counts[index] = hist.counts.get(index, 0) + n
        hist.count = sum(hist.counts.values())
        sum_ms = data.get("sum_ms", 0.0)
        hist.sum_ms = float(sum_ms) if isinstance(sum_ms, int | float) else 0.0
        return hist

    @classmethod
    def of(cls, values: Iterable[float]) -> LatencyHistogram:
        """A histogram holding ``values`` (milliseconds)."""
        hist = cls()
        for ms in values:
            hist.observe(ms)
        return hist
