"""Factories and bounded waits for the sink tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import orjson

from shadowproxy.model import (
    DiffClass,
    Difference,
    ErrorKind,
    Exchange,
    Observation,
    Outcome,
    RequestFacts,
    Verdict,
)
from shadowproxy.settings import EvidenceSettings, RedactSettings, Settings, UpstreamSettings

WAIT_S = 10.0
"""Upper bound on any wait; reaching it means the behaviour is broken."""

T0 = 1_795_441_200.0
"""A fixed wall-clock start (2026-11-23T13:40:00Z)."""


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_settings(
    log_dir: Path, redact: RedactSettings | None = None, **evidence: object
) -> Settings:
    """Settings writing evidence to ``log_dir`` with ``evidence`` overrides."""
    return Settings(
        upstreams=UpstreamSettings(legacy="http://127.0.0.1:1", candidate="http://127.0.0.1:2"),
        evidence=replace(EvidenceSettings(log_dir=str(log_dir)), **evidence),  # type: ignore[arg-type]
        redact=redact or RedactSettings(),
    )


def make_observation(
    status: int | None = 200, ms: float = 3.0, size: int = 10, error: ErrorKind | None = None
) -> Observation:
    """An upstream answer (or failure when ``error``)."""
    if error is not None:
        return Observation.failed(error, ms / 1000)
    return Observation(status=status, elapsed_s=ms / 1000, body_size=size, body=b"x" * size)


def make_exchange(
    id: str = "ex-1",
    route: str = "/orders/{id}",
    domain: str = "orders",
    query: str = "",
    candidate: Observation | None = None,
    secondary: Observation | None = None,
) -> Exchange:
    """An exchange on ``route`` with ordinary legacy and candidate answers."""
    request = RequestFacts(
        id=id,
        method="GET",
        path="/orders/42",
        query=query,
        route=route,
        domain=domain,
        started_at=T0 + 0.123,
    )
    return Exchange(
        request=request,
        legacy=make_observation(),
        candidate=candidate or make_observation(ms=4.0, size=12),
        secondary=secondary,
    )


def make_verdict(outcome: Outcome = Outcome.DIVERGED, *differences: Difference) -> Verdict:
    """A verdict whose classes are those of the non-noise ``differences``."""
    diffs = differences or (
        Difference(DiffClass.SEMANTIC, "value", "$.total", legacy=10.0, candidate=10.01),
    )
    classes = frozenset(d.cls for d in diffs if not d.noise)
    if outcome in (Outcome.MATCH, Outcome.ERROR):
        diffs, classes = (), frozenset()
    return Verdict(outcome=outcome, classes=classes, differences=diffs)


def read_records(log_dir: Path) -> list[dict[str, object]]:
    """Every record in every evidence file of ``log_dir`` (each line must parse)."""
    records = []
    for path in sorted(log_dir.glob("shadow-*.jsonl*")):
        for line in path.read_bytes().splitlines():
            if line:
                records.append(orjson.loads(line))
    return records


def all_bytes(log_dir: Path) -> bytes:
    """The concatenated content of every file in ``log_dir``."""
    return b"".join(p.read_bytes() for p in sorted(log_dir.iterdir()) if p.is_file())


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` until true, failing after ``WAIT_S``."""
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def of_type(records: Iterable[dict[str, object]], kind: str) -> list[dict[str, object]]:
    """The records whose ``type`` is ``kind``."""
    return [r for r in records if r["type"] == kind]
