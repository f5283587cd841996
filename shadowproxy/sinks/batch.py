"""The hot path's metric writes, gathered and written at most every ``FLUSH_S``.

prometheus_client's multiprocess mode (``--workers N``) makes every write
take a lock, ask the kernel for the process id and write a memory-mapped
file, and every labelled child costs a lookup: a mirrored request made about
ten such writes. ``Batch`` keeps the counts, latencies and gauge values in
plain dicts and writes them on one shared timer: however many requests came
in between, each series touched costs one write. A collection of the
registry (a scrape of this process, a test reading a value) flushes first,
so nothing read in this process lags; the sum over workers the supervisor
reads lags by at most ``FLUSH_S``. Without a running loop a write goes
through at once.

Writing at the end of every event-loop turn instead paid nothing: a request
spans several turns and one turn rarely holds two requests' writes to one
series, so the flushes cost more than they saved (docs/performance.md).

Latencies are written per bucket through prometheus_client's histogram child
internals (``_upper_bounds``, ``_buckets``, ``_sum``);
``tests/sinks/test_sinks_batch.py`` holds the result to that of ``observe``
for every sample.

A scrape renders the registry in a thread (``admin/scrape.py``), so a
collection flushes off the event loop while the loop keeps counting: one
lock covers the dicts, held only to update or swap them (a read of one dict
and a write to its replacement counted a value twice). The metric writes
themselves happen outside it; prometheus_client's children lock their own.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import Collector

__all__ = ["FLUSH_S", "Batch", "LabelledChildren"]

FLUSH_S: Final = 0.1
"""The longest a gathered write waits."""


class LabelledChildren(Protocol):
    """A metric's children by label values (``shadowproxy.sinks.metrics.Children``)."""

    def get(self, *values: str) -> Any: ...


class Batch(Collector):
    """Counts, latencies and gauge values of this turn; ``flush`` writes them.

    Registered first on the metrics' registry, it flushes whenever the
    registry is collected. ``failed`` hears of a write that raised.
    """

    __slots__ = ("_counts", "_due", "_failed", "_gauges", "_latencies", "_lock")

    def __init__(self) -> None:
        self._counts: dict[tuple[LabelledChildren, tuple[str, ...]], int] = {}
        self._latencies: dict[tuple[LabelledChildren, tuple[str, ...]], list[float]] = {}
        self._gauges: dict[Gauge, float] = {}
        self._due = False
        self._failed: Callable[[Exception], None] | None = None
        self._lock = threading.Lock()

    def on_failure(self, failed: Callable[[Exception], None]) -> None:
        """Call ``failed`` with what a flush raised (it is never raised into the loop)."""
        self._failed = failed

    def count(self, children: LabelledChildren, *values: str) -> None:
        """Add 1 to the counter child of ``values``."""
        key = (children, values)
        with self._lock:
            counts = self._counts
            counts[key] = counts.get(key, 0) + 1
        if not self._due:
            self._schedule()

    def observe(self, children: LabelledChildren, seconds: float, *values: str) -> None:
        """Observe ``seconds`` in the histogram child of ``values``."""
        key = (children, values)
        with self._lock:
            latencies = self._latencies
            samples = latencies.get(key)
            if samples is None:
                latencies[key] = [seconds]
            else:
                samples.append(seconds)
        if not self._due:
            self._schedule()

    def set(self, gauge: Gauge, value: float) -> None:
        """Set ``gauge`` to ``value`` (the last value of the turn is written)."""
        with self._lock:
            self._gauges[gauge] = value
        if not self._due:
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._due = True
        loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        """Write everything gathered; never raises."""
        self._due = False
        with self._lock:
            counts, self._counts = self._counts, {}
            latencies, self._latencies = self._latencies, {}
            gauges, self._gauges = self._gauges, {}
        try:
            for (children, values), n in counts.items():
                counter: Counter = children.get(*values)
                counter.inc(n)
            for (children, values), samples in latencies.items():
                _observe_all(children.get(*values), samples)
            for gauge, value in gauges.items():
                gauge.set(value)
        except Exception as exc:  # a metric write must never reach the loop or the client
            if self._failed is not None:
                self._failed(exc)

    # -- Collector ---------------------------------------------------------

    def describe(self) -> Iterable[Any]:
        return ()

    def collect(self) -> Iterable[Any]:
        self.flush()
        return ()


def _observe_all(child: Histogram, samples: list[float]) -> None:
    """``child.observe(sample)`` for each sample: one write per bucket touched, one for the sum."""
    bounds: list[float] = child._upper_bounds
    per_bucket: dict[int, int] = {}
    for sample in samples:
        index = bisect.bisect_left(bounds, sample)
        per_bucket[index] = per_bucket.get(index, 0) + 1
    for index, n in per_bucket.items():
        child._buckets[index].inc(n)
    child._sum.inc(sum(samples))
