"""The aggregator's mutable sums, and the checks a record passes before it is summed.

Owns per-route counters, skip reasons and latency histograms while reading,
per-fingerprint counts, and the value checks: counters are integers from 0
to 2**63-1 (a larger one is hostile: no writer makes it, and it would
overflow the rates), difference paths are cut. Imports the histogram
core and the report's errors and values.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any

from shadowproxy.histogram import BUCKETS, LatencyHistogram
from shadowproxy.report.errors import HostileValueError
from shadowproxy.report.summary import COUNTED

__all__ = [
    "MAX_COUNT",
    "MAX_PATH_CHARS",
    "FingerprintAcc",
    "HistogramAcc",
    "RouteAcc",
    "check_counters",
    "cut",
]

MAX_COUNT = 2**63 - 1
"""The largest counter a record may carry (the writer's are far smaller)."""
MAX_PATH_CHARS = 1024
"""Longest difference path kept; longer paths are cut."""
_MAX_SKIP_REASONS = 32
_MAX_REASON_CHARS = 64
_INT_TYPE = frozenset({int})
_BUCKET_KEYS = frozenset(str(i) for i in range(BUCKETS))


def check_counters(values: Sequence[Any], names: Iterable[str], prefix: str = "") -> None:
    """ValueError unless every value is an integer 0..MAX_COUNT; HostileValueError past it."""
    # C-level checks first: this runs for every rollup.
    if (
        set(map(type, values)) <= _INT_TYPE
        and min(values, default=0) >= 0
        and max(values, default=0) <= MAX_COUNT
    ):
        return
    for name, v in zip(names, values, strict=False):
        if type(v) is int and v > MAX_COUNT:
            digits = len(str(v))
            raise HostileValueError(f"{prefix}{name}: a count of {digits} digits, beyond 64 bits")
    raise ValueError("counts must be non-negative integers")


def cut(value: str, limit: int = MAX_PATH_CHARS) -> str:
    """``value`` cut to ``limit`` characters, the last one an ellipsis."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


class HistogramAcc:
    """Bucket counts keyed as in the JSONL (strings), turned into a LatencyHistogram at the end.

    Merging rollups is the report's hottest loop; keeping the string keys
    saves an ``int()`` per bucket per rollup.
    """

    __slots__ = ("buckets", "sum_ms")

    def __init__(self) -> None:
        self.buckets: dict[str, int] = {}
        self.sum_ms = 0.0

    @staticmethod
    def checked(data: Any, side: str) -> tuple[Mapping[str, int], float]:
        """The buckets and sum of one side's JSONL histogram; ValueError when malformed."""
        if not data:
            return {}, 0.0
        if not isinstance(data, dict):
            raise ValueError("a latency histogram must be an object")
        buckets = data.get("buckets") or {}
        if not isinstance(buckets, dict):
            raise ValueError("latency buckets must be an object")
        # Set operations, min() and max() run in C: much cheaper than a Python loop per bucket.
        counts = buckets.values()
        if not (
            buckets.keys() <= _BUCKET_KEYS
            and set(map(type, counts)) <= _INT_TYPE
            and min(counts, default=0) >= 0
        ):
            raise ValueError("bad latency buckets")
        if max(counts, default=0) > MAX_COUNT:
            check_counters(list(counts), buckets, f"latency.{side}.buckets.")
        sum_ms = data.get("sum_ms", 0.0)
        if type(sum_ms) not in (int, float) or sum_ms < 0:
            raise ValueError("latency sum_ms must be a non-negative number")
        if sum_ms > MAX_COUNT:
            raise HostileValueError(f"latency.{side}.sum_ms: {sum_ms:.3g} ms is beyond 64 bits")
        return buckets, float(sum_ms)

    def add(self, buckets: Mapping[str, int], sum_ms: float) -> None:
        """Add checked buckets."""
        mine = self.buckets
        keys = buckets.keys()
        # Every step is a C loop: old counts, plus the new ones, written back.
        sums = map(operator.add, map(mine.get, keys, repeat(0)), buckets.values())
        mine.update(zip(keys, sums, strict=True))
        self.sum_ms += sum_ms

    def histogram(self) -> LatencyHistogram:
        """The core histogram these buckets make."""
        return LatencyHistogram.from_json({"buckets": self.buckets, "sum_ms": self.sum_ms})


class RouteAcc:
    """Mutable per-route sums while reading."""

    __slots__ = ("candidate", "counters", "legacy", "skipped", "streams")

    def __init__(self) -> None:
        self.counters = [0] * len(COUNTED)
        self.streams = 0
        self.skipped: dict[str, int] = {}
        self.legacy = HistogramAcc()
        self.candidate = HistogramAcc()

    @staticmethod
    def checked_skipped(skipped: Any) -> Mapping[str, int]:
        """A rollup's ``skipped`` counts; ValueError when malformed."""
        if not skipped:
            return {}
        if not isinstance(skipped, dict):
            raise ValueError("skipped must be an object")
        if max(map(len, skipped)) > _MAX_REASON_CHARS:
            raise ValueError(f"skip reasons longer than {_MAX_REASON_CHARS} characters")
        check_counters(list(skipped.values()), skipped, "skipped.")
        return skipped

    def add_skipped(self, skipped: Mapping[str, int]) -> None:
        """Add checked skip counts; reasons past the 32nd distinct one count as ``other``."""
        mine = self.skipped
        for reason, n in skipped.items():
            key = reason if reason in mine or len(mine) < _MAX_SKIP_REASONS else "other"
            mine[key] = mine.get(key, 0) + n

    def merge(self, other: RouteAcc) -> None:
        """Add another accumulator of the same route."""
        self.counters = [a + b for a, b in zip(self.counters, other.counters, strict=True)]
        self.streams += other.streams
        self.add_skipped(other.skipped)
        self.legacy.add(other.legacy.buckets, other.legacy.sum_ms)
        self.candidate.add(other.candidate.buckets, other.candidate.sum_ms)


class FingerprintAcc:
    """Mutable per-fingerprint count, first/last seen and the earliest example."""

    __slots__ = ("count", "domain", "example", "first", "last")

    def __init__(self, domain: str, ts: float, example: str) -> None:
        self.domain = domain
        self.count = 0
        self.first = ts
        self.last = ts
        self.example = example

    def merge(self, other: FingerprintAcc) -> None:
        """Add another accumulator of the same fingerprint."""
        self.count += other.count
        self.last = max(self.last, other.last)
        if other.first < self.first:
            self.first, self.example = other.first, other.example
