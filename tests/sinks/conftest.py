"""Fixtures for the sink tests: a fresh metrics registry and an Evidence factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from shadowproxy.settings import RedactSettings
from shadowproxy.sinks import Evidence, Metrics
from tests.sinks.sinks_factories import FakeClock, make_settings


@pytest.fixture
def metrics() -> Metrics:
    """Metrics on a registry of their own."""
    return Metrics(CollectorRegistry())


@pytest.fixture
def clock() -> FakeClock:
    """A hand-driven clock starting at ``T0``."""
    return FakeClock()


@pytest.fixture
def make_evidence(
    tmp_path: Path, metrics: Metrics, clock: FakeClock
) -> Iterator[Callable[..., Evidence]]:
    """Build started Evidence objects writing to ``tmp_path/logs``; closed at teardown."""
    made: list[Evidence] = []

    def build(redact: RedactSettings | None = None, **evidence: object) -> Evidence:
        ev = Evidence(
            make_settings(tmp_path / "logs", redact, **evidence),
            metrics,
            worker_id="test-1",
            clock=clock,
        )
        ev.start()
        made.append(ev)
        return ev

    yield build
    for ev in made:
        ev.close(5.0)
