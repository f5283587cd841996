"""The hot path's metric writes, gathered and written on one shared timer (sinks/batch.py)."""

from __future__ import annotations

import sys
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shadowproxy.sinks.batch import Batch
from shadowproxy.sinks.metrics import LATENCY_BUCKETS_S, Children
from tests.support import eventually

COUNTS = 200_000
SAMPLES = [0.0, 0.0009, 0.001, 0.0011, 0.003, 0.02, 0.02, 0.7, 12.0, 61.0, 0.0025]


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    """Every sample but the creation time, which differs between any two registries."""
    return [
        (sample.name, sample.labels, sample.value)
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    ]


def _histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "lat_seconds", "latency", ("side",), buckets=LATENCY_BUCKETS_S, registry=registry
    )


class TestLatencies:
    """Latencies written per bucket expose exactly what one ``observe`` per sample does."""

    def test_same_exposition_as_observe(self) -> None:
        """Buckets (bounds included), count and sum match, sample for sample."""
        observed = CollectorRegistry()
        child = _histogram(observed).labels("legacy")
        for sample in SAMPLES:
            child.observe(sample)
        gathered = CollectorRegistry()
        batch = Batch()
        children = Children(_histogram(gathered))
        for sample in SAMPLES:
            batch.observe(children, sample, "legacy")
        batch.flush()
        assert _samples(gathered) == _samples(observed)


class TestGathering:
    """Inside a running loop nothing is written at once; a collection or the timer writes it."""

    async def test_collecting_the_registry_flushes_first(self) -> None:
        """A read of this process's registry always sees every count, the timer notwithstanding."""
        registry = CollectorRegistry()
        batch = Batch()
        registry.register(batch)
        counter = Counter("things", "things", ("kind",), registry=registry)
        children = Children(counter)
        for _ in range(3):
            batch.count(children, "a")
        assert counter.labels("a")._value.get() == 0
        assert registry.get_sample_value("things_total", {"kind": "a"}) == 3

    async def test_the_timer_writes_without_a_collection(self) -> None:
        """What a supervisor reads from the workers' files arrives without anyone collecting."""
        registry = CollectorRegistry()
        batch = Batch()
        gauge = Gauge("inflight", "in flight", registry=registry)
        counter = Counter("things", "things", ("kind",), registry=registry)
        batch.count(Children(counter), "b")
        batch.set(gauge, 5)
        batch.set(gauge, 7)
        await eventually(lambda: counter.labels("b")._value.get() == 1)
        assert gauge._value.get() == 7

    def test_without_a_loop_writes_at_once(self) -> None:
        """Outside the event loop (start-up, synchronous callers) nothing waits."""
        counter = Counter("things", "things", ("kind",), registry=CollectorRegistry())
        Batch().count(Children(counter), "c")
        assert counter.labels("c")._value.get() == 1

    def test_a_failing_write_is_reported_not_raised(self) -> None:
        """A write that raises reaches ``on_failure``, never the caller or the loop."""
        failures: list[Exception] = []
        batch = Batch()
        batch.on_failure(failures.append)
        counter = Counter("things", "things", ("kind",), registry=CollectorRegistry())
        batch.count(Children(counter), "too", "many")
        assert [type(exc) for exc in failures] == [ValueError]


class TestThreads:
    """A scrape renders in a thread (admin/scrape.py) and flushes while the loop counts."""

    async def test_a_flush_from_another_thread_loses_no_count(self) -> None:
        """Every count lands once, however the flushing thread interleaves with the counting."""
        registry = CollectorRegistry()
        counter = Counter("c", "counts", ("route",), registry=registry)
        children, batch = Children(counter), Batch()
        done = threading.Event()

        def scrape() -> None:
            while not done.is_set():
                batch.flush()

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
        scraper = threading.Thread(target=scrape)
        scraper.start()
        try:
            for n in range(COUNTS):
                batch.count(children, f"/r{n % 50}")
        finally:
            done.set()
            scraper.join()
            sys.setswitchinterval(interval)
        batch.flush()
        total = sum(
            sample.value
            for metric in registry.collect()
            for sample in metric.samples
            if sample.name == "c_total"
        )
        assert total == COUNTS
